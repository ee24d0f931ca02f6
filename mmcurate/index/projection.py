"""Large pools, first step: a seeded sample stable under appending rows, and the uncentred-PCA projection."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate._fileio import iter_chunks, row_source, take_rows

REDUCED_DIM = 128
"""Dimensions of the space a large pool's candidates are searched in (then re-scored in full)."""


def _sample_keys(n: int, random_state: int) -> npt.NDArray[np.float64]:
    """One seeded uniform key per row; the keys of rows 0..n-1 do not depend on ``n``."""
    return np.random.default_rng(random_state).random(n)


def stable_sample(n: int, size: int, *, random_state: int = 0) -> npt.NDArray[np.int64]:
    """Sorted rows of a seeded sample of ``size`` of ``n`` rows, stable under appending rows.

    Row i gets the i-th draw of a seeded uniform stream as its key (the same for any ``n`` > i)
    and the ``size`` smallest keys are kept, so the sample of ``n + m`` rows is that of ``n`` rows
    with about ``size·m/(n+m)`` rows exchanged: fits on it (a projection, k-means cells) barely move
    when a batch arrives. All rows when ``size >= n``.
    """
    if size >= n:
        return np.arange(n, dtype=np.int64)
    keys = _sample_keys(n, random_state)
    return np.sort(np.argpartition(keys, size - 1)[:size]).astype(np.int64)


def fit_projection(*samples: npt.ArrayLike, dim: int = 64, n_sample: int = 50_000,
                   random_state: int = 0) -> npt.NDArray[np.float32]:
    """Uncentred PCA basis ``(D, dim)`` fitted on a seeded sample of each array in ``samples``.

    Uncentred (the top eigenvectors of E[x xᵀ], not of the covariance) because it best preserves
    inner products x·y in the least-squares sense, which is what the searches rank by. Fitting on
    both modalities at once gives one basis for image→text and text→image queries. The sample is
    :func:`stable_sample`'s, so appending a few rows changes the basis only slightly.
    """
    gram: npt.NDArray[np.float64] | None = None
    for arr in map(row_source, samples):  # one modality at a time, pages released block by block
        x = take_rows(arr, stable_sample(len(arr), n_sample, random_state=random_state))
        gram = (x.T @ x).astype(np.float64) + (0.0 if gram is None else gram)
        del x
    if gram is None:
        raise ValueError("fit_projection needs at least one array of vectors")
    if dim >= gram.shape[1]:
        return np.eye(gram.shape[1], dtype=np.float32)
    _, vecs = np.linalg.eigh(gram)  # ascending eigenvalues
    return np.ascontiguousarray(vecs[:, ::-1][:, :dim], dtype=np.float32)


def project_pairs(image: Any, text: Any, basis: npt.NDArray[np.float32], *, chunk: int = 65536
                  ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """``(project(image), project(text), rowwise_cosine(image, text))`` in one pass over both.

    A ranking of a large pool needs all three; read together, each float16 row is read and
    converted once instead of twice (at 1,000,000 × 512-d pairs, 2 GB of rows). The same numbers
    as the three separate calls (the same float32 chunks, the same per-row operations).
    """
    image, text = row_source(image), row_source(text)
    if np.shape(image) != np.shape(text):
        raise ValueError(f"image and text must have the same shape (row i of each is one pair); got "
                         f"{np.shape(image)} and {np.shape(text)}")
    n = len(image)
    identity = basis.shape[0] == basis.shape[1] and np.array_equal(basis, np.eye(len(basis)))
    out_i = np.empty((n, basis.shape[1]), dtype=np.float32)
    out_t = np.empty((n, basis.shape[1]), dtype=np.float32)
    cosine = np.empty(n, dtype=np.float64)
    for (s, x), (_, y) in zip(iter_chunks(image, chunk), iter_chunks(text, chunk)):
        cosine[s : s + len(x)] = (x * y).sum(1)
        out_i[s : s + len(x)] = x if identity else x @ basis
        out_t[s : s + len(x)] = y if identity else y @ basis
    return out_i, out_t, cosine


def project(vectors: npt.ArrayLike, basis: npt.NDArray[np.float32], *, chunk: int = 65536
            ) -> npt.NDArray[np.float32]:
    """``vectors @ basis`` in float32 chunks (inputs may be float16 memory maps): ``(N, dim)``.

    An identity basis (nothing to reduce) returns a float32 copy without the product.
    """
    rows: Any = row_source(vectors)
    n = len(rows)
    identity = basis.shape[0] == basis.shape[1] and np.array_equal(basis, np.eye(len(basis)))
    out = np.empty((n, basis.shape[1]), dtype=np.float32)
    for s, x in iter_chunks(rows, chunk):
        out[s : s + len(x)] = x if identity else x @ basis
    return out
