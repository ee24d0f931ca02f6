"""Large pools: :class:`ClusteredIndex`, k-means cells searched block by block (shard-invariant)."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from mmcurate._fileio import atomic_write_json, read_rows, save_npy_atomic
from mmcurate.index.exact import _compact, _faiss, as_float32
from mmcurate.index.inner_product import gathered_dots, top_k_inner_product
from mmcurate.index.projection import _sample_keys, stable_sample

NPROBE = 2
"""Cells searched per query group of :class:`ClusteredIndex` in a large pool's ranking. With the
candidates re-scored in the full space 1 gave the same AUROC at 200,000 pairs (see
:class:`mmcurate.rank.RankContext`), but arrivals scored against a persisted pool state
(:mod:`mmcurate.engine.incremental`) then drift further from a full re-rank near cell borders
(``p_misaligned`` max |difference| 0.82 vs 0.32 with 2 at 25,000 + 200 pairs), past the stated
tolerance; so 2."""


MEAN_SAMPLE = 65_536
"""Rows of :func:`stable_sample` a space's mean is taken over (:func:`sample_mean`)."""


def sample_mean(vectors: Any, *, random_state: int = 0) -> npt.NDArray[np.float32]:
    """Mean ``(D,)`` of a seeded :func:`stable_sample` of ``vectors``' rows (all rows up to
    :data:`MEAN_SAMPLE`): what a :class:`ClusteredIndex` centres its cells with. It depends on the
    vectors and the seed only, so a search's queries can be centred the same way in any process.

    Examples
    --------
    >>> sample_mean(np.array([[1.0, 0.0], [0.0, 1.0]])).tolist()
    [0.5, 0.5]
    """
    rows = stable_sample(len(vectors), MEAN_SAMPLE, random_state=random_state)
    return np.asarray(np.asarray(vectors[rows], np.float64).mean(0), np.float32)


def _is_f32c(x: object) -> TypeGuard[npt.NDArray[np.float32]]:
    return isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 2


class ClusteredIndex:
    """Inner-product kNN for large pools: k-means cells, blocked exact search per query group.

    The cells are fitted and assigned on *centred* vectors (each space's mean removed: the
    database's :attr:`mean`, and for the queries ``search(query_mean=)``), while the candidates
    are scored with the vectors as given, so the ranking inside the searched cells is the plain
    inner product. Centring matters for cross-modal search in a CLIP-shaped space, where images
    and captions sit in two cones whose means point apart (Liang et al. 2022): uncentred, every
    image query scored the caption cells by their share of the image cone's direction, and at
    1,000,000 gapped pairs (``scripts/bench_select.py``) 18,190 image queries fell into one caption
    cell, and recall@10 against a brute-force search in the same space was 0.33; centred, no cell
    takes more than 3,583, and the image→caption search took 27 s instead of 42 s (same load). At
    100,000 pairs recall@10 went from 0.93 to 0.94 and a clean pair's own caption lay in the probed
    cells for 99% of the images instead of 94%. :attr:`stats` reports the last search.

    The database is split into ``nlist`` k-means cells (default N / ``cell_size``, so the cost grows
    linearly with N: each query is compared with about ``nprobe · cell_size`` vectors). Queries are
    grouped by their nearest cell c; each group is searched exactly (one BLAS matrix product,
    :func:`top_k_inner_product`) against the union of the ``nprobe`` cells whose centroids are
    nearest to c's (c included). This is an IVF search with probing decided per cell instead of per
    query, which turns N small scans into ``nlist`` dense matrix products (several times faster on
    CPUs) at the cost of recall for queries near a cell border. Results are approximate; rows are
    indices into the database. A query's result depends only on the query, so any split of the
    queries into shards gives the same answers (:meth:`search` is what a shard runs; instances
    pickle). The cells are seeded with the rows of smallest :func:`stable_sample` key and fitted on
    its sample, so an index over the same rows plus a few appended ones has nearly the same cells;
    :meth:`add` appends rows to the fitted cells, and :meth:`save` / :meth:`load` persist an index.
    """

    def __init__(self, database: npt.ArrayLike, *, cell_size: int = 1024, nlist: int | None = None,
                 n_iter: int = 10, random_state: int = 0) -> None:
        faiss = _faiss()
        self.vectors: npt.NDArray[Any] = database if _is_f32c(database) else as_float32(database)
        n, dim = self.vectors.shape
        self.nlist = int(min(nlist or max(1, round(n / cell_size)), n))
        keys = _sample_keys(n, random_state)
        sample = self.vectors[stable_sample(n, 64 * self.nlist, random_state=random_state)]
        first = np.argpartition(keys, self.nlist - 1)[: self.nlist]  # seeds: the smallest keys
        km = faiss.Kmeans(dim, self.nlist, niter=n_iter, seed=int(random_state), spherical=True,
                          verbose=False, min_points_per_centroid=1, max_points_per_centroid=64)
        self.mean = sample_mean(self.vectors, random_state=random_state)
        km.train(sample - self.mean, init_centroids=as_float32(self.vectors[np.sort(first)] - self.mean))
        self.centroids = km.centroids.copy()
        self.added = np.empty((0, dim), dtype=np.float32)
        self._set_cells(self._assign(self.vectors))
        self._near: dict[int, np.ndarray] = {}
        self.stats: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.vectors) + len(self.added)

    def _set_cells(self, assign: np.ndarray) -> None:
        self.order = np.argsort(assign, kind="stable")
        self.starts = np.searchsorted(assign[self.order], np.arange(self.nlist + 1))

    def _cell_of_rows(self) -> np.ndarray:
        """Each row's cell ``(len(self),)``, recovered from ``order`` and ``starts``."""
        assign = np.empty(len(self.order), dtype=np.int64)
        assign[self.order] = np.repeat(np.arange(self.nlist), np.diff(self.starts))
        return assign

    def rows(self, indices: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """The stored vectors of rows ``indices`` (database rows, then added rows), float32."""
        indices = np.asarray(indices, dtype=np.int64)
        n_base = len(self.vectors)
        if len(self.added) == 0:
            return np.asarray(self.vectors[indices], dtype=np.float32)
        out = np.empty((len(indices), self.vectors.shape[1]), dtype=np.float32)
        base = indices < n_base
        out[base] = self.vectors[indices[base]]
        out[~base] = self.added[indices[~base] - n_base]
        return out

    def add(self, vectors: npt.ArrayLike) -> None:
        """Append vectors ``(M, dim)`` as rows ``len(self) .. len(self)+M-1``, each into the cell
        of its nearest centroid (the cells are not refitted)."""
        x = as_float32(vectors)
        if len(x) == 0:
            return
        assign = np.concatenate([self._cell_of_rows(), self._assign(x)])
        self.added = np.concatenate([self.added, x])
        self._set_cells(assign)

    def save(self, folder) -> None:
        """Write the index to ``folder`` as ``.npy`` files; the database rows are not rewritten
        into the folder they were loaded from or last saved to (additions are kept apart)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if getattr(self, "_home", None) != folder.resolve():
            save_npy_atomic(folder / "vectors.npy", self.vectors)
        for name in ("added", "centroids", "order", "starts", "mean"):
            save_npy_atomic(folder / f"{name}.npy", np.asarray(getattr(self, name)))
        atomic_write_json(folder / "clustered.json", {"n_base": len(self.vectors), "n": len(self),
                                                      "nlist": self.nlist})
        self._home = folder.resolve()

    @classmethod
    def load(cls, folder) -> ClusteredIndex:
        """An index written by :meth:`save`, its database rows memory-mapped.

        An index saved before cells were centred (no ``mean.npy``) loads with a zero mean: its
        cells were fitted on uncentred vectors, so it keeps assigning them that way."""
        folder = Path(folder)
        meta = json.loads((folder / "clustered.json").read_text())
        self = cls.__new__(cls)
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        if len(self.vectors) != meta["n_base"]:
            raise ValueError(f"{folder / 'vectors.npy'} holds {len(self.vectors)} rows, "
                             f"{meta['n_base']} expected; rebuild the index")
        for name in ("added", "centroids", "order", "starts"):
            setattr(self, name, np.load(folder / f"{name}.npy"))
        mean = folder / "mean.npy"
        self.mean = np.load(mean) if mean.is_file() else np.zeros(self.centroids.shape[1], np.float32)
        self.nlist = int(meta["nlist"])
        self._near = {}
        self.stats = {}
        self._home = folder.resolve()
        return self

    def _near_cells(self, nprobe: int) -> np.ndarray:
        """``(nlist, nprobe)`` the cells nearest each cell's centroid, computed once per ``nprobe``."""
        if nprobe not in self._near:
            faiss = _faiss()
            _, self._near[nprobe] = faiss.knn(self.centroids, self.centroids, nprobe,
                                              metric=faiss.METRIC_INNER_PRODUCT)
        return self._near[nprobe]

    def _assign(self, x: np.ndarray, mean: npt.ArrayLike | None = None) -> np.ndarray:
        """Nearest centroid of each row of ``x`` centred by ``mean`` (default: the database's):
        ``argmax (x - mean) · c`` = ``argmax x · c - mean · c``, without a centred copy."""
        bias = (self.mean if mean is None else np.asarray(mean, np.float32)) @ self.centroids.T
        out = np.empty(len(x), dtype=np.int64)
        for s in range(0, len(x), 16384):
            out[s : s + 16384] = np.argmax(x[s : s + 16384] @ self.centroids.T - bias, axis=1)
        return out

    def search(self, queries: npt.ArrayLike, k: int, *, nprobe: int = 8, offset: int | None = None,
               exclude_self: bool = False, full: tuple[Any, Any] | None = None,
               query_mean: npt.ArrayLike | None = None
               ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(sims (Nq, k), indices (Nq, k))``, best first, -1 where fewer than k were found.

        ``query_mean``: the mean of the space the queries come from (:func:`sample_mean` of it),
        removed before they are assigned to cells; default the database's own (queries from the
        same space). Cross-modal searches pass the other modality's mean: the queries' own batch
        mean would make the answer depend on the batch (shards, arrivals).

        ``exclude_self``: the queries are database rows ``offset + i`` (``offset`` defaults to 0);
        each query's own row is dropped from its neighbours.

        ``full``: ``(query vectors (Nq, D), database vectors)`` in the full space (arrays, float16
        memory maps fine, or for the database a callable ``rows -> (len(rows), D)``): the
        candidates found here are re-scored with them and sorted by the exact similarity, as
        :func:`mmcurate.index.rescore` would, but each candidate row is read and converted once per
        query group rather than once per query that found it (at 1M pairs: about a quarter of
        the float16 rows).
        """
        clock = time.perf_counter()
        q = queries if _is_f32c(queries) else as_float32(queries)
        extra = 1 if exclude_self else 0
        sims = np.full((len(q), k + extra), -np.inf, dtype=np.float32)
        idx = np.full((len(q), k + extra), -1, dtype=np.int64)
        # the database searched against itself (density's joint neighbours): its rows' cells are known
        same = q is self.vectors and len(self.added) == 0 and query_mean is None
        groups = self._cell_of_rows() if same else self._assign(q, query_mean)
        phases = {"assign_s": time.perf_counter() - clock, "top_k_s": 0.0, "rescore_s": 0.0}
        compared = 0
        order = np.argsort(groups, kind="stable")
        bounds = np.searchsorted(groups[order], np.arange(self.nlist + 1))
        probe = min(nprobe, self.nlist)
        near = self._near_cells(probe)
        if full is not None:
            full_q, full_db = full
            # rows of memory maps are read, not faulted in (see read_rows): at 1M pairs one
            # search's peak memory went from 3.3 to 1.9 GiB, at the same speed
            take = full_db if callable(full_db) else functools.partial(read_rows, full_db)
        for g in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[g] : bounds[g + 1]]
            cells = np.union1d(near[g][near[g] >= 0], [g])
            cand = np.concatenate([self.order[self.starts[c] : self.starts[c + 1]] for c in cells])
            kk = min(k + extra, len(cand))
            if kk == 0:
                continue
            clock = time.perf_counter()
            s, i = top_k_inner_product(q[rows], self.rows(cand), kk)
            compared += len(rows) * len(cand)
            phases["top_k_s"] += time.perf_counter() - clock
            if full is not None:
                clock = time.perf_counter()
                used, where = np.unique(i, return_inverse=True)
                vectors = np.asarray(take(cand[used]), dtype=np.float32)
                vals = gathered_dots(read_rows(full_q, rows), vectors, where.reshape(i.shape))
                best = np.argsort(-vals, axis=1, kind="stable")  # as exact_sorted orders them
                s, i = np.take_along_axis(vals, best, 1), np.take_along_axis(i, best, 1)
                phases["rescore_s"] += time.perf_counter() - clock
            sims[rows, :kk], idx[rows, :kk] = s, cand[i]
        if exclude_self:
            own = (offset or 0) + np.arange(len(q))[:, None]
            sims, idx = _compact(sims, idx, idx != own, k)
        self.stats = self._search_stats(groups, compared, phases)
        return sims, idx

    def _search_stats(self, groups: np.ndarray, compared: int, phases: dict[str, float]) -> dict[str, float]:
        """What a search cost: candidates compared per query, cell and query-group sizes, seconds."""
        sizes = np.diff(self.starts)
        per_group = np.bincount(groups, minlength=self.nlist)
        return {"queries": float(len(groups)), "candidates_per_query": compared / max(len(groups), 1),
                "cell_max": float(sizes.max()), "cell_p99": float(np.percentile(sizes, 99)),
                "cell_mean": float(sizes.mean()), "query_group_max": float(per_group.max()), **phases}
