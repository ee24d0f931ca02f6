"""Strategy names → scoring functions, as an explicit registry object (no import-time magic).

Each entry scores a :class:`mmcurate.rank.RankContext` (arrays computed once per ranking:
features, P(aligned), committee, neighbours) with one of the pure functions of this package.
Names accept hyphens or underscores; ``qbc`` is an alias of ``vote_entropy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mmcurate._util import check_random_state
from mmcurate.signals import change, committee, crossmodal, density, error_reduction, uncertainty

__all__ = ["STRATEGIES", "Strategy", "StrategyRegistry"]


@dataclass(frozen=True)
class Strategy:
    """A named query strategy: ``score(ctx) -> (N,)``, higher = review first."""

    name: str
    description: str
    score: Callable[..., np.ndarray]
    needs: tuple[str, ...] = ()
    objective: str = "train"
    """``find``: review the likely-wrong pairs first (recall of noise per label); ``train``: ask for
    the labels that teach the filter most (uncertain pairs, mostly clean); ``baseline``."""


class StrategyRegistry:
    """Lookup of strategies by name (hyphen/underscore insensitive)."""

    def __init__(self, strategies: list[Strategy], aliases: dict[str, str] | None = None) -> None:
        self._by_name = {s.name: s for s in strategies}
        self._aliases = dict(aliases or {})

    @staticmethod
    def _norm(name: str) -> str:
        return name.strip().lower().replace("-", "_")

    def get(self, name: str) -> Strategy:
        key = self._norm(name)
        key = self._aliases.get(key, key)
        if key not in self._by_name:
            raise ValueError(f"unknown strategy {name!r}; valid: {', '.join(self.names())}")
        return self._by_name[key]

    def names(self) -> list[str]:
        return list(self._by_name)

    def describe(self) -> list[tuple[str, str]]:
        return [(s.name, s.description) for s in self._by_name.values()]

    def objective(self, name: str) -> str:
        """``find``, ``train`` or ``baseline`` (see :class:`Strategy`)."""
        return self.get(name).objective

    def __contains__(self, name: str) -> bool:
        key = self._norm(name)
        return self._aliases.get(key, key) in self._by_name


def _on(ctx, fn, on: str = "binary"):
    if on == "binary":
        return fn(ctx.proba)
    if on == "i2t":
        return fn(ctx.retrieval_i2t)
    if on == "t2i":
        return fn(ctx.retrieval_t2i)
    if on == "both":
        return (fn(ctx.retrieval_i2t) + fn(ctx.retrieval_t2i)) / 2
    raise ValueError(f"on= must be binary, i2t, t2i or both, got {on!r}")


STRATEGIES = StrategyRegistry([
    Strategy("p_misaligned", "finds noise: 1 - P(aligned) of the current model (calibrator + head, "
             "validated on held-back labels each round; the zero-label prior before any)",
             lambda ctx: 1.0 - ctx.proba, objective="find"),
    Strategy("random", "uniform random scores (the baseline every strategy must beat)",
             lambda ctx: check_random_state(ctx.random_state).random(ctx.n), objective="baseline"),
    Strategy("clip_score", "1 - cosine(image, caption): the plain CLIP-score filter, no learning",
             lambda ctx: 1.0 - ctx.cosine, objective="find"),
    Strategy("least_confidence", "1 - max(P, 1-P) of the calibrated P(aligned) (on=i2t|t2i|both: "
             "of the retrieval softmax)",
             lambda ctx, on="binary": _on(ctx, uncertainty.least_confidence, on)),
    Strategy("margin", "1 - |P(aligned) - P(misaligned)| (on=... as least_confidence)",
             lambda ctx, on="binary": _on(ctx, uncertainty.margin, on)),
    Strategy("entropy", "entropy of P(aligned) (on=... as least_confidence)",
             lambda ctx, on="binary": _on(ctx, uncertainty.entropy, on)),
    Strategy("disagreement", "cross-modal retrieval disagreement: own caption/image ranks, mutual kNN, "
             "neighbourhood agreement (percentile-averaged)",
             lambda ctx: crossmodal.disagreement(
                 ctx.features.rank_i2t, ctx.features.rank_t2i, ctx.features.z_i2t, ctx.features.z_t2i,
                 ctx.agree_v, ctx.agree_t, k=ctx.k), needs=("i2i", "t2t"), objective="find"),
    Strategy("density", "information density: margin x (similarity to unlabelled neighbours)^beta",
             lambda ctx, beta=1.0: density.information_density(
                 uncertainty.margin(ctx.proba), ctx.representativeness, beta=beta), needs=("joint",)),
    Strategy("vote_entropy", "query-by-committee: entropy of the votes of feature views (no labels) "
             "or bootstrap calibrators",
             lambda ctx: committee.vote_entropy(ctx.committee)),
    Strategy("kl_divergence", "query-by-committee: mean KL of members to the consensus",
             lambda ctx: committee.kl_divergence(ctx.committee)),
    Strategy("egl", "expected gradient length of the calibrator's log loss: 2p(1-p)||x||",
             lambda ctx: change.egl(ctx.proba, ctx.design)),
    Strategy("eer", "expected error reduction (one Newton step per candidate; subsampled)",
             lambda ctx, n_candidates=200, n_eval=1000: error_reduction.eer(
                 ctx.design, ctx.calibrator.weights, ctx.hessian, exclude=ctx.indices_labeled,
                 n_candidates=n_candidates, n_eval=n_eval, random_state=ctx.random_state)),
], aliases={"model": "p_misaligned", "qbc": "vote_entropy", "kl": "kl_divergence", "clipscore": "clip_score"})
