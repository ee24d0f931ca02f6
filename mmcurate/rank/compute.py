"""The ranking table: every requested strategy scored on one :class:`RankContext`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate.rank.context import RankContext
from mmcurate.rank.registry import resolve
from mmcurate.signals import alignment

__all__ = ["compute_from_context", "compute_ranking"]


def compute_ranking(
    image_embeddings: npt.ArrayLike,
    text_embeddings: npt.ArrayLike,
    *,
    strategies: Sequence[str] = ("margin",),
    indices_labeled: npt.ArrayLike | None = None,
    labels: npt.ArrayLike | None = None,
    k: int = 10,
    random_state: int = 0,
    categories: npt.ArrayLike | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    approximate: bool | None = None,
    searcher: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None,
    calibrator: alignment.Calibrator | str | None = None,
) -> pd.DataFrame:
    """Score every pair with each strategy; one row per pair, in input order.

    Returns a DataFrame with ``score`` (the first strategy's), one column per strategy, plus
    ``cosine`` and ``p_aligned`` (the calibrated probability). ``options`` maps a strategy name to
    its keyword options (e.g. ``{"density": {"beta": 2.0}}``). ``categories`` is accepted for the
    callers' convenience and returned as a column when given. ``approximate`` and ``searcher``
    choose the neighbour search (see :class:`RankContext`; ``None`` decides by pool size).
    ``calibrator``: P(aligned) from this calibrator (a validated model, :mod:`mmcurate.learn`),
    or ``"prior"`` for the zero-label prior, instead of one fitted on ``labels`` here.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(size=(50, 8)); img /= np.linalg.norm(img, axis=1, keepdims=True)
    >>> df = compute_ranking(img, img, strategies=["margin", "clip_score"])
    >>> df.columns.tolist()[:3]
    ['score', 'margin', 'clip_score']
    """
    image_embeddings, text_embeddings = np.asarray(image_embeddings), np.asarray(text_embeddings)
    if len(image_embeddings) != len(text_embeddings):
        raise ValueError(f"image and text embeddings differ in length: {len(image_embeddings)} "
                         f"vs {len(text_embeddings)}")
    ctx = RankContext(image_embeddings, text_embeddings, indices_labeled=indices_labeled,
                      labels=labels, k=k, random_state=random_state, approximate=approximate,
                      searcher=searcher, calibrator=calibrator)
    return compute_from_context(ctx, strategies, options=options, categories=categories)


def compute_from_context(ctx: RankContext, strategies: Sequence[str], *,
                         options: dict[str, dict[str, Any]] | None = None,
                         categories: npt.ArrayLike | None = None) -> pd.DataFrame:
    """The ranking table of :func:`compute_ranking` from a prepared :class:`RankContext`.

    Every strategy and option is checked (:func:`mmcurate.rank.resolve`) before any is scored;
    each strategy reads only the arrays it declares (:meth:`mmcurate.rank.Strategy.evaluate`).
    """
    requests = resolve(strategies, options)
    columns = {strat.name: strat.evaluate(ctx, opts) for strat, opts in requests}
    table = pd.DataFrame({"score": columns[requests[0][0].name], **columns,
                          "cosine": ctx.cosine, "p_aligned": ctx.proba})
    if categories is not None:
        table["category"] = np.asarray(categories)
    return table
