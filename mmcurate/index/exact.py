"""The faiss boundary: exact inner-product kNN, spherical k-means, persisted (flat or IVF) indexes.

Every array crosses into faiss through :func:`as_float32` (a C-contiguous float32 copy).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmcurate._fileio import atomic_path


def _faiss():
    import faiss  # heavy: faiss

    return faiss


def set_threads(n: int) -> None:
    """Threads faiss may use in this process (e.g. 1 inside a task that owns one CPU)."""
    _faiss().omp_set_num_threads(int(n))


def as_float32(x: npt.ArrayLike, *, normalize: bool = False) -> npt.NDArray[np.float32]:
    """Return a C-contiguous float32 copy of ``x`` (2-D), optionally L2-normalised."""
    arr = np.array(x, dtype=np.float32, order="C", copy=True)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {arr.shape}")
    if normalize:
        _faiss().normalize_L2(arr)
    return arr


def knn(
    queries: npt.ArrayLike,
    database: npt.ArrayLike,
    k: int,
    *,
    exclude_self: bool = False,
    batch_size: int = 16384,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """k nearest neighbours by inner product of each query row in ``database``.

    Always exact (a flat index); large pools use :class:`ClusteredIndex` or a persisted
    :func:`build_index` instead (both above ``EXACT_MAX`` rows).

    Parameters
    ----------
    queries : array (Nq, D)
    database : array (Nd, D)
    k : int
        Neighbours per query (clipped to the database size).
    exclude_self : bool
        Queries and database are the same rows; drop row i from query i's neighbours.

    Returns
    -------
    sims : float32 (Nq, k), best first
    indices : int64 (Nq, k); -1 where fewer than k neighbours exist.

    Examples
    --------
    >>> x = np.eye(3, dtype=np.float32)
    >>> sims, idx = knn(x, x, 1)
    >>> idx[:, 0].tolist()
    [0, 1, 2]
    """
    database = np.asarray(database)
    n_db = len(database)
    extra = 1 if exclude_self else 0
    k_eff = min(k + extra, n_db)
    index = build_index(database, kind="flat")
    sims, idx = search(index, queries, k_eff, batch_size=batch_size)
    if exclude_self:
        rows = np.arange(len(idx))[:, None]
        sims, idx = _compact(sims, idx, idx != rows, k_eff - 1)
    sims_out = np.full((len(idx), k), -np.inf, dtype=np.float32)
    idx_out = np.full((len(idx), k), -1, dtype=np.int64)
    kk = min(k, sims.shape[1])
    sims_out[:, :kk], idx_out[:, :kk] = sims[:, :kk], idx[:, :kk]
    return sims_out, idx_out


def _compact(sims, idx, keep, width):
    """Drop masked entries row-wise, keeping order, and cut rows to ``width`` columns."""
    order = np.argsort(~keep, axis=1, kind="stable")
    sims = np.take_along_axis(sims, order, axis=1)[:, :width]
    idx = np.take_along_axis(idx, order, axis=1)[:, :width]
    return sims, idx


def kmeans(
    vectors: npt.ArrayLike,
    n_clusters: int,
    *,
    n_iter: int = 20,
    random_state: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Spherical k-means with faiss; returns ``(centroids (K, D), assignments (N,))``."""
    faiss = _faiss()
    x = as_float32(vectors)
    km = faiss.Kmeans(x.shape[1], n_clusters, niter=n_iter, seed=int(random_state),
                      spherical=True, verbose=False, min_points_per_centroid=1,
                      max_points_per_centroid=256)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return km.centroids.copy(), assign[:, 0].astype(np.int64)


EXACT_MAX = 20_000
"""The one size threshold: above this many vectors ``build_index(kind="auto")`` builds an IVF index
instead of an exact one, and a ranking (:mod:`mmcurate.rank`) uses its reduced, clustered search."""


def build_index(vectors: npt.ArrayLike, *, kind: str = "auto", random_state: int = 0,
                chunk: int = 65536):
    """Inner-product index over (normalised) vectors, added in float32 chunks.

    ``kind``: ``flat`` (exact), ``ivf`` (``IndexIVFFlat`` with ~4·sqrt(N) lists, trained on a
    seeded sample, ``nprobe`` 8), or ``auto`` (flat up to ``EXACT_MAX`` vectors, IVF above).
    """
    faiss = _faiss()
    vectors = np.asarray(vectors)  # a memory map stays one (a view, nothing read)
    n = len(vectors)
    dim = int(vectors.shape[1])
    if kind == "auto":
        kind = "flat" if n <= EXACT_MAX else "ivf"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(random_state)
        sample = np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))
        index.train(as_float32(np.asarray(vectors[sample])))
        index.nprobe = 8
    else:
        raise ValueError(f"unknown index kind {kind!r}; expected auto, flat or ivf")
    for start in range(0, n, chunk):
        index.add(as_float32(vectors[start : start + chunk]))
    return index


def search(index, queries: npt.ArrayLike, k: int, *, batch_size: int = 16384
           ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Batched ``index.search``: ``(sims (N, k), indices (N, k))``, best first, -1 where missing."""
    queries = np.asarray(queries)
    n = len(queries)
    sims = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        s, i = index.search(as_float32(queries[start : start + batch_size]), k)
        sims[start : start + len(s)], idx[start : start + len(s)] = s, i
    return sims, idx


def save_index(index, path) -> None:
    """Write a faiss index atomically."""
    with atomic_path(path) as tmp:
        _faiss().write_index(index, str(tmp))


def load_index(path):
    """Read a faiss index written by :func:`save_index`."""
    return _faiss().read_index(str(path))
