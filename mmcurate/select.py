"""Batch selection under a budget: pure functions over arrays, one shared signature.

``select_<name>(scores, *, n, embeddings=None, exclude=None, random_state=None, **options)``
returns ``n`` unique int64 row indices, best first, never one in ``exclude`` (already labelled or
queued); fewer than ``n`` candidates raises :class:`PoolExhaustedError`.

- ``topk``: the n highest scores.
- ``cluster``: spherical k-means on the embeddings; each cluster gets a quota (``proportional`` to
  its candidates or ``uniform``, largest-remainder rounding, unused quota redistributed) filled by
  its best-scored pairs; output interleaved by score.
- ``coreset``: k-center greedy (Sener & Savarese 2018) over the top ``candidates`` by score (all by
  default), seeded with the excluded (labelled) pairs as centres: each pick is the candidate
  farthest from every centre so far. Distances are updated in float32 chunks (no N×N matrix).
- ``sample``: Monte Carlo sampling without replacement ∝ score^(1/T) (Gumbel-top-k), or
  ``method="badge"``: k-means++ seeding over given gradient embeddings (Ash et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mmcurate.exceptions import PoolExhaustedError

__all__ = ["SELECTORS", "get_selector", "select_cluster", "select_coreset", "select_sample", "select_topk"]


def _candidates(scores, n: int, exclude) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values")
    if int(n) <= 0:
        raise ValueError(f"n must be positive, got {n}")
    mask = np.ones(len(s), bool)
    if exclude is not None:
        ex = np.asarray(exclude, dtype=np.int64)
        mask[ex[(ex >= 0) & (ex < len(s))]] = False
    cand = np.flatnonzero(mask)
    if len(cand) < n:
        raise PoolExhaustedError(f"asked for {n} pairs but only {len(cand)} are neither labelled nor queued")
    return s, cand


def _by_score(s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return idx[np.argsort(-s[idx], kind="stable")]


def select_topk(scores, *, n: int, embeddings=None, exclude=None, random_state=None) -> npt.NDArray[np.int64]:
    """The ``n`` highest-scoring candidates (ties by index).

    Examples
    --------
    >>> select_topk(np.array([0.1, 0.9, 0.5]), n=2).tolist()
    [1, 2]
    """
    s, cand = _candidates(scores, n, exclude)
    return _by_score(s, cand)[:n].astype(np.int64)


def _quotas(sizes: np.ndarray, n: int, mode: str) -> np.ndarray:
    weights = sizes.astype(float) if mode == "proportional" else (sizes > 0).astype(float)
    raw = n * weights / weights.sum()
    quota = np.minimum(np.floor(raw).astype(int), sizes)
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    while quota.sum() < n:
        room = quota < sizes
        for c in order:
            if quota.sum() >= n:
                break
            if room[c]:
                quota[c] += 1
    return quota


def select_cluster(scores, *, n: int, embeddings=None, exclude=None, random_state=None,
                   n_clusters: int | None = None, quotas: str = "proportional") -> npt.NDArray[np.int64]:
    """Best-scored pairs per k-means cluster, with quotas (see module docstring)."""
    from mmcurate.index import kmeans

    s, cand = _candidates(scores, n, exclude)
    if embeddings is None:
        raise ValueError("select_cluster needs embeddings (N, D)")
    if quotas not in ("proportional", "uniform"):
        raise ValueError(f"quotas must be proportional or uniform, got {quotas!r}")
    K = int(min(n_clusters or max(2, n // 2), len(cand)))
    _, assign = kmeans(np.asarray(embeddings)[cand], K, random_state=int(random_state or 0))
    sizes = np.bincount(assign, minlength=K)
    quota = _quotas(sizes, n, quotas)
    picked = []
    for c in range(K):
        members = cand[assign == c]
        picked.append(_by_score(s, members)[: quota[c]])
    return _by_score(s, np.concatenate(picked)).astype(np.int64)[:n]


def select_coreset(scores, *, n: int, embeddings=None, exclude=None, random_state=None,
                   candidates: int | None = None, chunk: int = 65536) -> npt.NDArray[np.int64]:
    """k-center greedy over the top-``candidates`` pool, seeded with the excluded pairs."""
    s, cand = _candidates(scores, n, exclude)
    if embeddings is None:
        raise ValueError("select_coreset needs embeddings (N, D)")
    emb = np.asarray(embeddings)
    pool = _by_score(s, cand)[: max(candidates or len(cand), n)]
    X = np.asarray(emb[pool], dtype=np.float32)
    dist = np.full(len(pool), np.inf, dtype=np.float32)
    seeds = np.asarray(exclude if exclude is not None else [], np.int64)
    for start in range(0, len(seeds), 1024):
        C = np.asarray(emb[seeds[start : start + 1024]], dtype=np.float32)
        for a in range(0, len(X), chunk):
            d = 2.0 - 2.0 * (X[a : a + chunk] @ C.T)
            dist[a : a + chunk] = np.minimum(dist[a : a + chunk], d.min(1))
    picked = []
    for _ in range(n):
        i = int(np.argmax(dist)) if np.isfinite(dist).any() else 0
        if not np.isfinite(dist[i]):  # no centre yet: start from the best score
            i = 0
        picked.append(i)
        d = 2.0 - 2.0 * (X @ X[i])
        dist = np.minimum(dist, d)
        dist[i] = -np.inf
    return pool[np.asarray(picked)].astype(np.int64)


def select_sample(scores, *, n: int, embeddings=None, exclude=None, random_state=None,
                  temperature: float = 1.0, method: str = "score") -> npt.NDArray[np.int64]:
    """Sampling ∝ score^(1/T) without replacement (Gumbel-top-k), or BADGE k-means++ seeding."""
    s, cand = _candidates(scores, n, exclude)
    rng = np.random.default_rng(random_state)
    if method == "badge":
        if embeddings is None:
            raise ValueError("method='badge' needs gradient embeddings")
        return _kmeanspp(np.asarray(embeddings, np.float32)[cand], n, rng, cand)
    if method != "score":
        raise ValueError(f"method must be 'score' or 'badge', got {method!r}")
    shifted = s[cand] - s[cand].min() + 1e-12
    keys = np.log(shifted) / temperature + rng.gumbel(size=len(cand))
    return cand[np.argsort(-keys, kind="stable")[:n]].astype(np.int64)


def _kmeanspp(X: np.ndarray, n: int, rng: np.random.Generator, cand: np.ndarray) -> np.ndarray:
    norms = (X * X).sum(1)
    first = int(np.argmax(norms))
    picked = [first]
    d2 = np.maximum(norms + norms[first] - 2 * X @ X[first], 0)
    for _ in range(n - 1):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(d2), 1 / len(d2))
        p[picked] = 0
        p = p / p.sum()
        i = int(rng.choice(len(X), p=p))
        picked.append(i)
        d2 = np.minimum(d2, np.maximum(norms + norms[i] - 2 * X @ X[i], 0))
    return cand[np.asarray(picked)].astype(np.int64)


@dataclass(frozen=True)
class Selector:
    name: str
    description: str
    fn: Callable[..., np.ndarray]


class SelectorRegistry:
    """Diversity modes by name (hyphen/underscore insensitive); ``none`` = ``topk``."""

    def __init__(self, selectors: list[Selector], aliases: dict[str, str]) -> None:
        self._by_name = {s.name: s for s in selectors}
        self._aliases = aliases

    def get(self, name: str) -> Selector:
        key = name.strip().lower().replace("-", "_")
        key = self._aliases.get(key, key)
        if key not in self._by_name:
            raise ValueError(f"unknown diversity/selector {name!r}; valid: none, "
                             f"{', '.join(self._by_name)}")
        return self._by_name[key]

    def names(self) -> list[str]:
        return list(self._by_name)

    def describe(self) -> list[tuple[str, str]]:
        return [("none", "same as topk")] + [(s.name, s.description) for s in self._by_name.values()]


SELECTORS = SelectorRegistry([
    Selector("topk", "the highest scores", select_topk),
    Selector("cluster", "best per k-means cluster, proportional or uniform quotas", select_cluster),
    Selector("coreset", "k-center greedy among high scorers, seeded with labelled pairs", select_coreset),
    Selector("sample", "sampling proportional to score^(1/T); method=badge for k-means++", select_sample),
], aliases={"none": "topk", "top_k": "topk", "kcenter": "coreset", "monte_carlo": "sample"})


def get_selector(name: str) -> Callable[..., np.ndarray]:
    """The selector function registered as ``name``."""
    return SELECTORS.get(name).fn
