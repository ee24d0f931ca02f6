"""Score arrivals against a persisted state of the pool instead of re-ranking pool + arrivals.

The pool's state lives under ``PROJECT/index/pool/``: its image and caption faiss indexes
(:class:`mmcurate.project_index.ProjectIndex`, flat up to ``index.EXACT_MAX`` vectors, IVF above)
and its per-pair arrays (``cosine``, the alignment features, the neighbourhood agreements), built
once by one pass over the pool and saved under a fingerprint of the pool's vectors, the head round
and ``k``. An arriving batch of M pairs is added to the indexes, searched (4 searches of M
queries), its agreement terms read only the neighbour rows they need from the memory-mapped pool,
and every strategy below is scored on pool + arrivals from these arrays (calibrator, committee-free
uncertainty and percentiles exactly as in :func:`mmcurate.rank.compute_ranking`). After the batch
is committed, its rows are appended to the state under the grown pool's fingerprint.

Assumptions: a pool pair's arrays are those of the pool it was scored in (arrivals that would
enter its neighbour lists are not propagated back), so scores differ from a full re-rank by the
share of neighbourhoods the arrivals change; tested within 0.02 on every score (exact indexes).
Above ``index.EXACT_MAX`` pairs the full ranking searches a reduced, clustered space and the state
an IVF index in full dimension, so the two approximations differ: ``scripts/bench_arrivals.py`` at
100,000 pairs measured r = 0.82 (max |difference| 0.47) for ``disagreement``, not within the
tolerance above; building the state in the ranking's reduced, clustered space would close that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mmcurate import index as ix
from mmcurate._fileio import atomic_write_json, save_npy_atomic
from mmcurate.project_index import ProjectIndex
from mmcurate.signals import alignment, crossmodal

__all__ = ["INCREMENTAL_STRATEGIES", "PoolScorer"]

INCREMENTAL_STRATEGIES = frozenset({"p_misaligned", "clip_score", "least_confidence", "margin",
                                    "entropy", "egl", "disagreement"})
"""Strategies scored from the persisted state (uncertainty ones on the binary P(aligned) only)."""
_ARRAYS = ("cosine", *alignment.FEATURE_NAMES[1:], "agree_v", "agree_t")


class PoolScorer:
    """The pool's persisted neighbour state, extended by arriving batches.

    Parameters
    ----------
    folder : Path
        Where the state lives (``PROJECT/index/pool``).
    image_embeddings, text_embeddings : (N, D)
        The pool's vectors after the head in use (memory maps are read in chunks or by row).
    fingerprint : str
        Identifies the pool's vectors, head round and ``k``; a saved state under another one is rebuilt.
    k, temperature
        As for :class:`mmcurate.rank.RankContext`.
    """

    def __init__(self, folder: Path, image_embeddings, text_embeddings, *, fingerprint: str,
                 k: int = 10, temperature: float = 0.05) -> None:
        self.folder = Path(folder)
        self.image, self.text = image_embeddings, text_embeddings
        self.n_pool = len(image_embeddings)
        self.k = int(min(k, max(self.n_pool - 1, 1)))
        self.temperature = temperature
        self.fingerprint = fingerprint
        self.index = ProjectIndex(self.folder, image_embeddings, text_embeddings, fingerprint=fingerprint)
        self.arrays = self._load() or self._build()
        self._pending: dict[str, np.ndarray] | None = None

    # -- the pool's state ---------------------------------------------------------------------
    def _load(self) -> dict[str, np.ndarray] | None:
        meta = self.folder / "state.json"
        if not meta.is_file() or json.loads(meta.read_text())["fingerprint"] != self.fingerprint:
            return None
        return {name: np.load(self.folder / f"{name}.npy") for name in _ARRAYS}

    def _build(self) -> dict[str, np.ndarray]:
        """One pass over the pool: its cross-modal and same-modal neighbours, features, agreements."""
        i2t = ix.search(self.index.text, self.image, self.k + 1)
        t2i = ix.search(self.index.image, self.text, self.k + 1)
        cosine = _rowwise(self.image, self.text)
        feats = alignment.alignment_features(cosine, *i2t, *t2i, temperature=self.temperature)
        i2i = _without_own(*ix.search(self.index.image, self.image, self.k + 1), self.k, 0)[1]
        t2t = _without_own(*ix.search(self.index.text, self.text, self.k + 1), self.k, 0)[1]
        arrays = {name: getattr(feats, name) for name in alignment.FEATURE_NAMES}
        arrays["agree_v"] = crossmodal.neighbourhood_agreement(self.image, i2i, self.text)
        arrays["agree_t"] = crossmodal.neighbourhood_agreement(self.text, t2t, self.image)
        self._save(arrays)
        return arrays

    def _save(self, arrays: dict[str, np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            save_npy_atomic(self.folder / f"{name}.npy", np.asarray(arrays[name], np.float64))
        atomic_write_json(self.folder / "state.json", {"fingerprint": self.fingerprint,
                                                       "n": len(arrays["cosine"]), "k": self.k})

    # -- arrivals -------------------------------------------------------------------------------
    def arrival_arrays(self, image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
        """The arrays of M arrivals ``(M, D)`` among pool + arrivals; the indexes now hold them."""
        n = self.n_pool
        self.index.add(image, text)
        i2t = _local(*ix.search(self.index.text, image, self.k + 1), n)
        t2i = _local(*ix.search(self.index.image, text, self.k + 1), n)
        cosine = _rowwise(image, text)
        feats = alignment.alignment_features(cosine, *i2t, *t2i, temperature=self.temperature)
        arrays = {name: getattr(feats, name) for name in alignment.FEATURE_NAMES}
        i2i = _without_own(*ix.search(self.index.image, image, self.k + 1), self.k, n)[1]
        t2t = _without_own(*ix.search(self.index.text, text, self.k + 1), self.k, n)[1]
        arrays["agree_v"] = _agreement(text, i2i, self.text, n)
        arrays["agree_t"] = _agreement(image, t2t, self.image, n)
        self._pending = arrays
        return arrays

    def score(self, image: np.ndarray, text: np.ndarray, *, strategy: str,
              indices_labeled=None, labels=None, random_state: int = 0,
              options: dict[str, Any] | None = None) -> np.ndarray:
        """Scores ``(M,)`` of the arrivals by ``strategy``, ranked among pool + arrivals.

        ``indices_labeled`` are pool rows (arrivals carry no labels yet).
        Raises ``ValueError`` for a strategy not in :data:`INCREMENTAL_STRATEGIES`.
        """
        from mmcurate.rank import RankContext, compute_from_context
        from mmcurate.signals import STRATEGIES

        name = STRATEGIES.get(strategy).name
        if name not in INCREMENTAL_STRATEGIES or (options or {}).get("on", "binary") != "binary":
            raise ValueError(f"strategy {strategy!r} with options {options} is not scored "
                             f"incrementally; incremental: {', '.join(sorted(INCREMENTAL_STRATEGIES))}")
        new = self.arrival_arrays(image, text)
        both = {key: np.concatenate([self.arrays[key], new[key]]) for key in _ARRAYS}
        rows = np.empty((self.n_pool + len(image), 0), np.float32)  # no vectors: all provided
        ctx = RankContext(rows, rows, indices_labeled=indices_labeled, labels=labels, k=self.k,
                          random_state=random_state, temperature=self.temperature, approximate=False)
        feats = alignment.AlignmentFeatures(*(both[f] for f in alignment.FEATURE_NAMES), k=self.k)
        ctx.provide(features=feats, cosine=both["cosine"], agree_v=both["agree_v"],
                    agree_t=both["agree_t"])
        table = compute_from_context(ctx, [name], options={name: options} if options else None)
        return table["score"].to_numpy(np.float64)[self.n_pool :]

    def commit(self, fingerprint: str) -> None:
        """Save indexes and arrays with the last scored arrivals, under the grown pool's ``fingerprint``."""
        if self._pending is None:
            return
        self.arrays = {key: np.concatenate([self.arrays[key], self._pending[key]]) for key in _ARRAYS}
        self.fingerprint = fingerprint
        self.index.save(fingerprint)
        self._save(self.arrays)
        self._pending = None


def _rowwise(a, b, chunk: int = 65536) -> np.ndarray:
    out = np.empty(len(a), np.float64)
    for s in range(0, len(a), chunk):
        x, y = np.asarray(a[s : s + chunk], np.float32), np.asarray(b[s : s + chunk], np.float32)
        out[s : s + len(x)] = (x * y).sum(1)
    return out


def _local(sims: np.ndarray, idx: np.ndarray, n_pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of pool + arrivals renumbered so arrival i is row i and pool row g is row M + g
    (the own-pair tests compare a neighbour's row with the query's)."""
    m = len(idx)
    return sims, np.where(idx < 0, -1, np.where(idx >= n_pool, idx - n_pool, idx + m))


def _without_own(sims, idx, k: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop each query's own row (``offset + i``) and keep ``k`` neighbours."""
    own = offset + np.arange(len(idx))[:, None]
    order = np.argsort(idx == own, axis=1, kind="stable")
    return np.take_along_axis(sims, order, 1)[:, :k], np.take_along_axis(idx, order, 1)[:, :k]


def _agreement(own: np.ndarray, neighbours: np.ndarray, pool, n_pool: int) -> np.ndarray:
    """:func:`crossmodal.neighbourhood_agreement` of arrivals, reading only the pool rows needed."""
    needed = np.unique(neighbours[(neighbours >= 0) & (neighbours < n_pool)])
    other = np.concatenate([np.asarray(own, np.float32), np.asarray(pool[needed], np.float32)])
    where = np.searchsorted(needed, neighbours)  # pool row -> its place after the arrivals
    local = np.where(neighbours < 0, -1, np.where(neighbours >= n_pool, neighbours - n_pool,
                                                  len(own) + where))
    return crossmodal.neighbourhood_agreement(own, local, other)
