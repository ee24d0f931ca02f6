"""Score arrivals against a persisted state of the pool instead of re-ranking pool + arrivals.

The pool's state lives under ``PROJECT/index/pool/``: its per-pair arrays (``cosine``, the alignment
features, the neighbourhood agreements) computed exactly as a ranking computes them (one
:class:`mmcurate.rank.RankContext` over the pool, so building it costs one ``disagreement`` ranking)
and the space its neighbours were searched in, saved under a fingerprint of the pool's vectors, the
head round and ``k`` and the search settings. Up to ``index.EXACT_MAX`` pairs that space is the full
embedding space with the image and caption faiss indexes of
:class:`mmcurate.project_index.ProjectIndex` (flat); above it, the ranking's own reduced, clustered
space: the projection basis (:func:`mmcurate.index.fit_projection`) and the image and caption
:class:`mmcurate.index.ClusteredIndex` the ranking built (same ``random_state``, ``nprobe``), saved
as ``.npy`` files and memory-mapped on load. An arriving batch of M pairs is projected with the
saved basis, added to the indexes (each row into the cell of its nearest centroid), searched (2
searches of M queries; the agreements reuse their neighbours), its agreement terms read only the
neighbour rows they need, and every strategy below is scored on pool + arrivals from these arrays
(calibrator, committee-free uncertainty and percentiles exactly as in
:func:`mmcurate.rank.compute_ranking`). After the batch is committed, its rows are appended to the
state under the grown pool's fingerprint (the clustered indexes write only their additions; the
pool's rows are not rewritten).

Assumptions and tolerance: a pool pair's arrays are those of the pool it was scored in (arrivals
that would enter its neighbour lists are not propagated back), so scores differ from a full re-rank
by the share of neighbourhoods the arrivals change: tested within 0.02 on every score with exact
search (1,000 pairs). Above ``EXACT_MAX`` a full re-rank fits its basis and k-means cells on pool +
arrivals, the state on the pool alone; both fits use :func:`mmcurate.index.stable_sample` and the
same seed rows, so they nearly agree, but k-means drifts (cell centroids matched at cosine ~0.97),
and with ``nprobe`` 2 the neighbour lists of rows near a cell border differ: at 25,200 pairs ×
32-d 73% of the arrivals' image→text neighbours are the same. The stated tolerance is therefore
the clustered search's own variance: incremental vs full re-rank differ no more than two full
re-ranks with different seeds (tested per strategy at 25,000 + 200 pairs, where ``disagreement``
gives max |difference| 0.086, r = 0.998 vs the seeds' 0.094, r = 0.997; with ``nprobe`` 1,
``p_misaligned`` misses it: 0.82 vs 0.81). Candidates are re-scored with the full vectors as in the
ranking (``ClusteredIndex.search(full=)``); the arrivals' vectors and those of committed batches are
kept for it, pool rows are read from the memory maps as needed. ``scripts/bench_arrivals.py
--sizes 100000 1000000`` (512-d, 1,000 arrivals, ``disagreement``, idle 2-core machine): into
1,000,000 pairs, state built once in 48.9 s, incremental 1.62 s vs full ranking 49.6 s = 3.3%,
max |difference| 0.076 and r = 0.998 vs a seed floor of 0.112, r = 0.991 (100,000 pairs: 6.0%).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmcurate import index as ix
from mmcurate._fileio import atomic_write_json, read_rows, save_npy_atomic
from mmcurate.project_index import ProjectIndex
from mmcurate.rank import STRATEGIES, RankContext, compute_from_context, without_own
from mmcurate.rank.registry import Engine
from mmcurate.signals import alignment, crossmodal

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.rank import RankContext

__all__ = ["INCREMENTAL", "INCREMENTAL_STRATEGIES", "PoolScorer", "pool_fingerprint", "save_pool_state"]

INCREMENTAL_STRATEGIES = frozenset({"p_misaligned", "clip_score", "least_confidence", "margin",
                                    "entropy", "egl", "disagreement"})
"""Strategies scored from the persisted state (uncertainty ones on the binary P(aligned) only)."""
INCREMENTAL = Engine("incremental scorer", provides=frozenset({"cosine", "features", "agree_v", "agree_t"}),
                     strategies=INCREMENTAL_STRATEGIES,
                     fix="rank pool + arrivals together (mmcurate.rank.compute_ranking), as add does for it")
"""What :meth:`PoolScorer.score` serves: the state's arrays (and what derives from ``features``),
for :data:`INCREMENTAL_STRATEGIES` only (the ones the stated tolerance was tested for)."""
_ARRAYS = ("cosine", *alignment.FEATURE_NAMES[1:], "agree_v", "agree_t")
STATE_VERSION = 2
"""Version of the saved state's layout: 2 = clustered cells fitted and assigned on centred vectors
(``ClusteredIndex.mean``). A state saved under another version is rebuilt, with a logged warning."""
_log = logging.getLogger(__name__)


def _settings(k: int, temperature: float, random_state: int, approximate: bool, reduced_dim: int,
              nprobe: int) -> dict[str, Any]:
    """The search settings a saved state records (it is rebuilt when they differ)."""
    return {"k": k, "temperature": temperature, "random_state": int(random_state),
            "approximate": approximate, "reduced_dim": reduced_dim, "nprobe": nprobe,
            "version": STATE_VERSION}


class PoolScorer:
    """The pool's persisted neighbour state, extended by arriving batches.

    Parameters
    ----------
    folder : Path
        Where the state lives (``PROJECT/index/pool``).
    image_embeddings, text_embeddings : (N, D)
        The pool's vectors after the head in use (memory maps are read in chunks or by row).
    fingerprint : str
        Identifies the pool's vectors, head round and ``k``; a saved state under another one (or
        built with other search settings) is rebuilt.
    k, temperature, random_state, approximate, reduced_dim, nprobe
        As for :class:`mmcurate.rank.RankContext` (``approximate=None``: above ``EXACT_MAX`` pairs);
        ``random_state`` seeds the projection and the clustering, as in the ranking.
    context : RankContext, optional
        A ranking of exactly this pool that already computed the features and agreements (e.g.
        ``disagreement``): a missing or stale state is saved from its arrays, with no search.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        scorer = PoolScorer(proj.pool_state_dir, image, text, fingerprint="fp")
        scores = scorer.score(new_image, new_text, strategy="disagreement")
        scorer.commit("fp+batch")
    """

    def __init__(self, folder: Path, image_embeddings, text_embeddings, *, fingerprint: str,
                 k: int = 10, temperature: float = 0.05, random_state: int = 0,
                 approximate: bool | None = None, reduced_dim: int = ix.REDUCED_DIM, nprobe: int = ix.NPROBE,
                 context: RankContext | None = None) -> None:
        self.folder = Path(folder)
        self.image, self.text = image_embeddings, text_embeddings
        dim = int(np.shape(image_embeddings)[1])
        self._committed = {side: np.empty((0, dim), np.float32) for side in ("image", "text")}
        """Vectors of the arrivals committed since this scorer was made (rows after the pool's)."""
        self.n_pool = len(image_embeddings)
        self.k = int(min(k, max(self.n_pool - 1, 1)))
        self.temperature = temperature
        self.fingerprint = fingerprint
        self.approximate = self.n_pool > ix.EXACT_MAX if approximate is None else bool(approximate)
        self.settings = _settings(self.k, temperature, random_state, self.approximate, reduced_dim, nprobe)
        self.random_state, self.reduced_dim, self.nprobe = int(random_state), reduced_dim, nprobe
        self.index = ProjectIndex(self.folder, image_embeddings, text_embeddings, fingerprint=fingerprint)
        self.basis: np.ndarray | None = None
        self.spaces: dict[str, ix.ClusteredIndex] = {}
        self.arrays = self._load() or self._build(context)
        self._pending: dict[str, np.ndarray] | None = None

    # -- the pool's state ---------------------------------------------------------------------
    def _load(self) -> dict[str, np.ndarray] | None:
        meta_path = self.folder / "state.json"
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        if (meta.get("fingerprint") != self.fingerprint or meta.get("settings") != self.settings
                or meta.get("n") != self.n_pool):
            version = (meta.get("settings") or {}).get("version", 1)
            if version != STATE_VERSION:
                _log.warning("the pool state in %s was saved by an older mmcurate (state version %s, "
                             "now %s); rebuilding it (costs one ranking)", self.folder, version,
                             STATE_VERSION)
            return None
        if self.approximate:
            self.basis = np.load(self.folder / "basis.npy")
            self.spaces = {side: ix.ClusteredIndex.load(self.folder / side) for side in ("image", "text")}
        return {name: np.load(self.folder / f"{name}.npy") for name in _ARRAYS}

    def _build(self, context: RankContext | None) -> dict[str, np.ndarray]:
        """The pool's arrays as a ranking computes them (its cross-modal and same-modal neighbours,
        features, agreements; in the ranking's reduced, clustered space above the threshold)."""
        ctx = context or RankContext(self.image, self.text, indices_labeled=None, labels=None, k=self.k,
                                     random_state=self.random_state, temperature=self.temperature,
                                     approximate=self.approximate, reduced_dim=self.reduced_dim,
                                     nprobe=self.nprobe)
        if (ctx.n, ctx.k, ctx.approximate, ctx.random_state) != (
                self.n_pool, self.k, self.approximate, self.random_state):
            raise ValueError("the ranking context was made for another pool or other settings")
        arrays = {name: getattr(ctx.features, name) for name in alignment.FEATURE_NAMES}
        arrays["agree_v"], arrays["agree_t"] = ctx.agree_v, ctx.agree_t
        if self.approximate:
            self.basis = ctx.basis
            self.spaces = {side: ctx._index(side) for side in ("image", "text")}
        self._save(arrays, fresh=True)
        return arrays

    def _save(self, arrays: dict[str, np.ndarray], *, fresh: bool = False) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "state.json").unlink(missing_ok=True)  # a half-written state never loads
        if self.approximate:
            if fresh:
                save_npy_atomic(self.folder / "basis.npy", np.asarray(self.basis, np.float32))
            for side, space in self.spaces.items():
                space.save(self.folder / side)
        for name in _ARRAYS:
            save_npy_atomic(self.folder / f"{name}.npy", np.asarray(arrays[name], np.float64))
        atomic_write_json(self.folder / "state.json", {"fingerprint": self.fingerprint,
                                                       "n": len(arrays["cosine"]), "k": self.k,
                                                       "settings": self.settings})

    # -- arrivals -------------------------------------------------------------------------------
    def arrival_arrays(self, image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
        """The arrays of M arrivals ``(M, D)`` among pool + arrivals; the indexes now hold them."""
        if self.approximate:
            return self._arrivals_reduced(image, text)
        self.index.add(image, text)
        i2t = ix.search(self.index.text, image, self.k + 1)
        t2i = ix.search(self.index.image, text, self.k + 1)
        return self._arrival_features(image, text, i2t, t2i)

    def _rows(self, side: str, arrivals: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """``rows -> vectors`` of pool rows, then committed arrivals, then ``arrivals`` (reading only
        the pool rows asked for)."""
        base = self.image if side == "image" else self.text
        extra = np.concatenate([self._committed[side], np.asarray(arrivals, np.float32)])
        n_base = len(base)

        def take(rows: np.ndarray) -> np.ndarray:
            rows = np.asarray(rows, np.int64)
            out = np.empty((len(rows), extra.shape[1]), np.float32)
            old = rows < n_base
            out[old] = read_rows(base, rows[old])
            out[~old] = extra[rows[~old] - n_base]
            return out

        return take

    def _arrival_features(self, image: np.ndarray, text: np.ndarray, found_i2t: tuple[np.ndarray, np.ndarray],
                          found_t2i: tuple[np.ndarray, np.ndarray], spaces=None) -> dict[str, np.ndarray]:
        """Features and agreements of the arrivals from their neighbours, with similarities taken
        from the full vectors; ``spaces``: ``(reduced image, reduced text, image rows, text rows)`` for
        agreements in the reduced space (as :class:`mmcurate.rank.RankContext` does)."""
        n, k = self.n_pool, self.k
        if spaces is None:  # exact search: similarities recomputed from the vectors
            texts, images = self._rows("text", text), self._rows("image", image)
            i2t, t2i = ix.rescore(image, texts, found_i2t[1]), ix.rescore(text, images, found_t2i[1])
            own_i, own_t, image_rows, text_rows = image, text, images, texts
        else:  # the reduced search re-scored its candidates in full already (``search(full=)``)
            i2t, t2i = found_i2t, found_t2i
            own_i, own_t, image_rows, text_rows = spaces
        cosine = ix.rowwise_cosine(image, text)
        feats = alignment.alignment_features(cosine, *_local(*i2t, n), *_local(*t2i, n),
                                             temperature=self.temperature, own=cosine)
        arrays = {name: getattr(feats, name) for name in alignment.FEATURE_NAMES}
        arrays["agree_v"] = crossmodal.neighbourhood_agreement(
            own_t, without_own(i2t[1], k, offset=n), text_rows, own=own_t)
        arrays["agree_t"] = crossmodal.neighbourhood_agreement(
            own_i, without_own(t2i[1], k, offset=n), image_rows, own=own_i)
        self._pending = arrays
        self._pending_vectors = (image, text)
        return arrays

    def _arrivals_reduced(self, image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
        """Arrivals projected with the pool's basis, added to and searched in its clustered indexes."""
        if self.basis is None:
            raise RuntimeError("the pool was scored without a reduced space; no basis to project with")
        ri, rt = ix.project(image, self.basis), ix.project(text, self.basis)
        images, texts = self.spaces["image"], self.spaces["text"]
        images.add(ri)
        texts.add(rt)
        i2t = texts.search(ri, self.k + 1, nprobe=self.nprobe, full=(image, self._rows("text", text)),
                           query_mean=images.mean)
        t2i = images.search(rt, self.k + 1, nprobe=self.nprobe, full=(text, self._rows("image", image)),
                            query_mean=texts.mean)
        return self._arrival_features(image, text, i2t, t2i, spaces=(ri, rt, images.rows, texts.rows))

    def score(self, image: np.ndarray, text: np.ndarray, *, strategy: str,
              indices_labeled=None, labels=None, random_state: int = 0,
              options: dict[str, Any] | None = None) -> np.ndarray:
        """Scores ``(M,)`` of the arrivals by ``strategy``, ranked among pool + arrivals.

        ``indices_labeled`` are pool rows (arrivals carry no labels yet); ``random_state`` seeds
        the calibrator's cross-fitting as in :func:`mmcurate.rank.compute_ranking`.
        Raises :class:`~mmcurate.exceptions.UnsupportedStrategyError` (a ``ValueError``), before
        any search, for a strategy or options :data:`INCREMENTAL` does not serve.
        """
        name = STRATEGIES.get(strategy).name
        INCREMENTAL.check([name], {name: options} if options else None)
        new = self.arrival_arrays(image, text)
        both = {key: np.concatenate([self.arrays[key], new[key]]) for key in _ARRAYS}
        feats = alignment.AlignmentFeatures(
            cosine=both["cosine"], z_i2t=both["z_i2t"], z_t2i=both["z_t2i"], logp_i2t=both["logp_i2t"],
            logp_t2i=both["logp_t2i"], rank_i2t=both["rank_i2t"], rank_t2i=both["rank_t2i"], k=self.k)
        provided = {"features": feats, **{key: both[key] for key in ("cosine", "agree_v", "agree_t")}}
        ctx = RankContext.from_arrays(
            self.n_pool + len(image), provided,
            indices_labeled=indices_labeled, labels=labels, k=self.k, random_state=random_state,
            temperature=self.temperature, approximate=False)
        table = compute_from_context(ctx, [name], options={name: options} if options else None)
        return table["score"].to_numpy(np.float64)[self.n_pool :]

    def commit(self, fingerprint: str) -> None:
        """Save indexes and arrays with the last scored arrivals, under the grown pool's ``fingerprint``."""
        if self._pending is None:
            return
        self.arrays = {key: np.concatenate([self.arrays[key], self._pending[key]]) for key in _ARRAYS}
        self.n_pool = len(self.arrays["cosine"])
        self.fingerprint = fingerprint
        if not self.approximate:
            self.index.save(fingerprint)
        for side, vectors in zip(("image", "text"), self._pending_vectors):  # rows for the next batch
            self._committed[side] = np.concatenate([self._committed[side], np.asarray(vectors, np.float32)])
        self._save(self.arrays)
        self._pending = None


def pool_fingerprint(proj: Project, head_round: int | None, k: int) -> str:
    """The fingerprint a project's pool state is saved under: its vectors, the head round and ``k``."""
    return f"{proj.embeddings_fingerprint()}|head={head_round}|k={k}"


def save_pool_state(folder: Path, context: RankContext, *, fingerprint: str) -> bool:
    """Save the pool state from a ranking that computed it (``disagreement`` does); no search.

    Returns False, writing nothing, when ``context`` lacks the features or the agreements, or when
    the state saved in ``folder`` is already that of this pool and these settings.
    """
    if not {"features", "agree_v", "agree_t"} <= vars(context).keys():
        return False
    settings = _settings(context.k, context.temperature, context.random_state, context.approximate,
                         context.reduced_dim, context.nprobe)
    meta = Path(folder) / "state.json"
    if meta.is_file():
        saved = json.loads(meta.read_text())
        if (saved.get("fingerprint"), saved.get("settings"), saved.get("n")) == (
                fingerprint, settings, context.n):
            return False
    (Path(folder) / "state.json").unlink(missing_ok=True)
    PoolScorer(folder, context.image, context.text, fingerprint=fingerprint, k=context.k,
               temperature=context.temperature, random_state=context.random_state,
               approximate=context.approximate, reduced_dim=context.reduced_dim,
               nprobe=context.nprobe, context=context)
    return True


def _local(sims: np.ndarray, idx: np.ndarray, n_pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of pool + arrivals renumbered so arrival i is row i and pool row g is row M + g
    (the own-pair tests compare a neighbour's row with the query's)."""
    m = len(idx)
    return sims, np.where(idx < 0, -1, np.where(idx >= n_pool, idx - n_pool, idx + m))
