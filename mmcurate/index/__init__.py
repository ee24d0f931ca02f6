"""faiss boundary: inner-product kNN indexes and k-means over L2-normalised vectors.

This is the only package that imports faiss (in :mod:`~mmcurate.index.exact` alone). Every array
crosses the boundary through :func:`as_float32`, which makes a C-contiguous float32 copy (faiss
segfaults on float64 and misreads strided views; see faiss #4277).

Assumptions: vectors are L2-normalised, so inner product equals cosine similarity.

Modules: :mod:`~mmcurate.index.exact` (the faiss boundary: :func:`as_float32`, exact :func:`knn`,
:func:`kmeans`, persisted indexes :func:`build_index` / :func:`search` / :func:`save_index` /
:func:`load_index`, :data:`EXACT_MAX`); the large-pool path: :mod:`~mmcurate.index.projection`
(:func:`stable_sample`, :func:`fit_projection`, :func:`project`, :data:`REDUCED_DIM`),
:mod:`~mmcurate.index.clustered` (:class:`ClusteredIndex`, :func:`sample_mean`, :data:`NPROBE`),
:mod:`~mmcurate.index.inner_product` (numpy/BLAS, no faiss: :func:`top_k_inner_product`,
:func:`rescore`, :func:`rowwise_cosine`).
"""

from mmcurate.index.clustered import NPROBE as NPROBE
from mmcurate.index.clustered import ClusteredIndex, sample_mean
from mmcurate.index.exact import EXACT_MAX as EXACT_MAX
from mmcurate.index.exact import (
    as_float32,
    build_index,
    kmeans,
    knn,
    load_index,
    save_index,
    search,
    set_threads,
)
from mmcurate.index.inner_product import (
    best_candidates,
    rescore,
    rowwise_cosine,
    top_k_inner_product,
    unique_candidates,
)
from mmcurate.index.projection import REDUCED_DIM as REDUCED_DIM
from mmcurate.index.projection import fit_projection, project, project_pairs, stable_sample

__all__ = [
    "ClusteredIndex",
    "as_float32",
    "best_candidates",
    "build_index",
    "fit_projection",
    "kmeans",
    "knn",
    "load_index",
    "project",
    "project_pairs",
    "rescore",
    "rowwise_cosine",
    "sample_mean",
    "save_index",
    "search",
    "set_threads",
    "stable_sample",
    "top_k_inner_product",
    "unique_candidates",
]
