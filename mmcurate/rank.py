"""Glue: embeddings → neighbours → alignment features → calibrator → every requested signal.

Neighbour searches go through :mod:`mmcurate.index` and are computed once per ranking, only for
the strategies that need them (image→text and text→image always; image→image and text→text for
``disagreement``; joint-space neighbours for ``density``). Inputs may be float16 memory maps;
they are read in chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate import index as ix
from mmcurate.signals import alignment, committee, crossmodal, density
from mmcurate.signals.registry import STRATEGIES

__all__ = ["RankContext", "compute_ranking"]


def _rowwise_cosine(a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        x = np.asarray(a[s : s + chunk], np.float32)
        y = np.asarray(b[s : s + chunk], np.float32)
        out[s : s + chunk] = (x * y).sum(1)
    return out


def _retrieval_rows(own: np.ndarray, sims: np.ndarray, idx: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over the own item and its k alternatives (own skipped if among them): ``(N, k+1)``."""
    rows = np.arange(len(own))[:, None]
    alt = np.where((idx >= 0) & (idx != rows), sims, -np.inf)
    logits = np.column_stack([own, alt]) / temperature
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


class RankContext:
    """Arrays shared by the strategies of one ranking, computed lazily and at most once."""

    def __init__(self, image_embeddings, text_embeddings, *, indices_labeled, labels, k: int,
                 random_state: int, temperature: float = 0.05, n_members: int = 5) -> None:
        self.image, self.text = image_embeddings, text_embeddings
        self.n = len(image_embeddings)
        self.k = int(min(k, max(self.n - 1, 1)))
        self.indices_labeled = np.asarray(indices_labeled if indices_labeled is not None else [], np.int64)
        self.labels = np.asarray(labels if labels is not None else [], np.int64)
        self.random_state = random_state
        self.temperature = temperature
        self.n_members = n_members

    @cached_property
    def i2t(self):
        return ix.knn(self.image, self.text, self.k + 1)

    @cached_property
    def t2i(self):
        return ix.knn(self.text, self.image, self.k + 1)

    @cached_property
    def i2i(self):
        return ix.knn(self.image, self.image, self.k, exclude_self=True)

    @cached_property
    def t2t(self):
        return ix.knn(self.text, self.text, self.k, exclude_self=True)

    @cached_property
    def cosine(self) -> np.ndarray:
        return _rowwise_cosine(self.image, self.text)

    @cached_property
    def features(self) -> alignment.AlignmentFeatures:
        return alignment.alignment_features(self.cosine, *self.i2t, *self.t2i, temperature=self.temperature)

    @cached_property
    def calibrator(self) -> alignment.Calibrator:
        return alignment.fit_calibrator(self.features, self.indices_labeled, self.labels)

    @cached_property
    def design(self) -> np.ndarray:
        return self.calibrator.design(self.features)

    @cached_property
    def proba(self) -> np.ndarray:
        return self.calibrator.predict_proba(self.features)

    @cached_property
    def hessian(self) -> np.ndarray:
        return alignment.hessian(self.calibrator, self.features, self.indices_labeled)

    @cached_property
    def committee(self) -> np.ndarray:
        return committee.fit_committee(self.features, self.indices_labeled, self.labels,
                                       n_members=self.n_members, random_state=self.random_state)

    @cached_property
    def retrieval_i2t(self) -> np.ndarray:
        return _retrieval_rows(self.cosine, *self.i2t, self.temperature)

    @cached_property
    def retrieval_t2i(self) -> np.ndarray:
        return _retrieval_rows(self.cosine, *self.t2i, self.temperature)

    @cached_property
    def agree_v(self) -> np.ndarray:
        return crossmodal.neighbourhood_agreement(self.image, self.i2i[1], self.text)

    @cached_property
    def agree_t(self) -> np.ndarray:
        return crossmodal.neighbourhood_agreement(self.text, self.t2t[1], self.image)

    @cached_property
    def representativeness(self) -> np.ndarray:
        joint = np.empty(self.image.shape, dtype=np.float32)
        for s in range(0, self.n, 65536):
            v = np.asarray(self.image[s : s + 65536], np.float32)
            v = v + np.asarray(self.text[s : s + 65536], np.float32)
            joint[s : s + 65536] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        sims, idx = ix.knn(joint, joint, self.k, exclude_self=True)
        mask = np.zeros(self.n, bool)
        mask[self.indices_labeled] = True
        return density.representativeness(sims, idx, labeled_mask=mask)


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
) -> pd.DataFrame:
    """Score every pair with each strategy; one row per pair, in input order.

    Returns a DataFrame with ``score`` (the first strategy's), one column per strategy, plus
    ``cosine`` and ``p_aligned`` (the calibrated probability). ``options`` maps a strategy name to
    its keyword options (e.g. ``{"density": {"beta": 2.0}}``). ``categories`` is accepted for the
    callers' convenience and returned as a column when given.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(size=(50, 8)); img /= np.linalg.norm(img, axis=1, keepdims=True)
    >>> df = compute_ranking(img, img, strategies=["margin", "clip_score"])
    >>> df.columns.tolist()[:3]
    ['score', 'margin', 'clip_score']
    """
    if not strategies:
        raise ValueError("give at least one strategy; valid: " + ", ".join(STRATEGIES.names()))
    chosen = [STRATEGIES.get(s) for s in strategies]
    if len(image_embeddings) != len(text_embeddings):
        raise ValueError(f"image and text embeddings differ in length: {len(image_embeddings)} "
                         f"vs {len(text_embeddings)}")
    ctx = RankContext(image_embeddings, text_embeddings, indices_labeled=indices_labeled,
                      labels=labels, k=k, random_state=random_state)
    options = {STRATEGIES.get(name).name: opts for name, opts in (options or {}).items()}
    columns: dict[str, np.ndarray] = {}
    for strat in chosen:
        scores = np.asarray(strat.score(ctx, **options.get(strat.name, {})), dtype=np.float64)
        columns[strat.name] = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
    table = pd.DataFrame({"score": columns[chosen[0].name], **columns,
                          "cosine": ctx.cosine, "p_aligned": ctx.proba})
    if categories is not None:
        table["category"] = np.asarray(categories)
    return table
