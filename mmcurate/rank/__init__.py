"""Ranking: the arrays one ranking shares (:class:`RankContext`), the strategies that read them
(:data:`STRATEGIES`, each declaring what it reads) and the table of scores (:func:`compute_ranking`).

- :mod:`mmcurate.rank.context`: :class:`RankContext` (embeddings → neighbours → alignment features
  → calibrator → …, each array computed lazily and once) and the :class:`ContextView` a strategy
  reads through.
- :mod:`mmcurate.rank.registry`: :class:`Strategy` entries (``needs``, options), the
  :data:`STRATEGIES` registry (:func:`register_strategy` adds your own), and :class:`Engine`: what
  a scoring engine serves, checked before it works.
- :mod:`mmcurate.rank.compute`: :func:`compute_ranking` / :func:`compute_from_context`.
"""

from __future__ import annotations

from mmcurate.rank.compute import compute_from_context, compute_ranking
from mmcurate.rank.context import (
    APPROXIMATE_FROM,
    FROM_FEATURES,
    ContextView,
    RankContext,
    density_candidates,
    joint_vectors,
    selection_vectors,
    without_own,
)
from mmcurate.rank.registry import (
    STRATEGIES,
    TABLE_NEEDS,
    Engine,
    Strategy,
    register_strategy,
    resolve,
    unregister_strategy,
)

__all__ = [
    "APPROXIMATE_FROM", "FROM_FEATURES", "STRATEGIES", "TABLE_NEEDS", "ContextView", "Engine", "RankContext",
    "Strategy", "compute_from_context", "compute_ranking", "density_candidates", "joint_vectors",
    "register_strategy", "resolve", "selection_vectors", "unregister_strategy", "without_own",
]
