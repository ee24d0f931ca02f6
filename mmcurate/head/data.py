"""Training data of the projection head: the labelled pairs gathered into small local banks, and each
positive's nearest other captions / images in the pool (mined negatives).

The mining is an exact search with chunked ``torch.topk`` rather than :func:`mmcurate.index.knn`:
each query must leave out one given row (its own pair), which ``index.knn`` cannot do (it only
drops ``exclude_self`` on identical query/database sets); the pool searched is capped at
``HeadConfig.hard_negative_pool`` rows, so exact search here is cheap; and the results feed a torch
training loop whose outcome depends on how ties are broken, so moving to faiss would change the
trained head. An ``exclude=`` argument on ``index.knn`` (one row id per query) would let this go
through the index module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from mmcurate.head.model import HeadConfig


@dataclass
class _Pairs:
    """Labelled pairs gathered into small local banks (the pool itself is never loaded whole).

    ``pos``/``neg`` hold local ``(image, text)`` ids; ``pos[:n_accepted]`` are accepted pool pairs,
    the rest are (image, corrected caption); ``hard_text``/``hard_image`` ``(P, h)`` are local ids
    of each positive's mined negatives.
    """

    images: torch.Tensor
    texts: torch.Tensor
    pos: torch.Tensor
    pos_row: np.ndarray
    neg: torch.Tensor
    neg_row: np.ndarray
    hard_text: torch.Tensor
    hard_image: torch.Tensor
    n_accepted: int

    @property
    def dim(self) -> int:
        return int(self.images.shape[1])


def _rows(array: Any, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` as float32, L2-normalised (works on memory maps)."""
    block = np.asarray(array[rows], dtype=np.float32) if len(rows) else np.zeros((0, array.shape[1]),
                                                                                   np.float32)
    return block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)


def _indices(name: str, values: npt.ArrayLike, n: int) -> np.ndarray:
    idx = np.asarray(values)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TypeError(f"{name} must be a 1-D array of int64 row indices, got shape {idx.shape} "
                        f"dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"{name} must be row indices in [0, {n}), got values in [{idx.min()}, {idx.max()}]")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{name} repeats row indices; pass each labelled pair once")
    return idx


def _check_inputs(image: Any, text: Any, positives: Any, negatives: Any,
                  fixed_texts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if getattr(image, "ndim", 0) != 2 or getattr(image, "shape", None) != getattr(text, "shape", None):
        raise ValueError(f"image and text embeddings must be (N, D) arrays of the same shape, got "
                         f"{getattr(image, 'shape', None)} and {getattr(text, 'shape', None)}")
    n, dim = image.shape
    pos, neg = _indices("positives", positives, n), _indices("negatives", negatives, n)
    fix_rows, fix_vecs = np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    if fixed_texts is not None:
        fix_rows = _indices("fixed_texts indices", fixed_texts[0], n)
        fix_vecs = np.asarray(fixed_texts[1], dtype=np.float32)
        if fix_vecs.shape != (len(fix_rows), dim):
            raise ValueError(f"fixed_texts vectors must have shape ({len(fix_rows)}, {dim}), "
                             f"got {fix_vecs.shape}")
        fix_vecs = fix_vecs / np.maximum(np.linalg.norm(fix_vecs, axis=1, keepdims=True), 1e-12)
    both = np.intersect1d(pos, np.union1d(neg, fix_rows))
    if both.size:
        raise ValueError(f"rows {both[:10].tolist()} are both positive and negative/fixed; keep only "
                         "each pair's latest decision")
    return pos, np.union1d(neg, fix_rows), fix_rows, fix_vecs


def _nearest(queries: np.ndarray, bank: Any, pool: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """``(P, k)`` rows of ``bank`` (among ``pool``) nearest each query by cosine, ``exclude[p]`` left out."""
    k = min(k, len(pool) - 1)
    if k <= 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.int64)
    q, own = torch.from_numpy(queries), torch.from_numpy(exclude)[:, None]
    best_s = torch.empty((len(q), 0))
    best_i = torch.empty((len(q), 0), dtype=torch.int64)
    chunk = max(1024, (1 << 24) // len(q))
    for start in range(0, len(pool), chunk):
        rows = torch.from_numpy(pool[start : start + chunk])
        sims = q @ torch.from_numpy(_rows(bank, rows.numpy())).T
        sims[own == rows[None, :]] = -torch.inf
        scores = torch.cat([best_s, sims], 1)
        ids = torch.cat([best_i, rows[None, :].expand(len(q), -1)], 1)
        best_s, top = scores.topk(min(k, scores.shape[1]), dim=1)
        best_i = ids.gather(1, top)
    return best_i.numpy()


def _prepare(image: Any, text: Any, positives: Any, negatives: Any, fixed_texts: Any,
             config: HeadConfig) -> _Pairs:
    image = image if isinstance(image, np.ndarray) else np.asarray(image)
    text = text if isinstance(text, np.ndarray) else np.asarray(text)
    pos, neg, fix_rows, fix_vecs = _check_inputs(image, text, positives, negatives, fixed_texts)
    n = image.shape[0]
    pool = np.arange(n, dtype=np.int64)
    if n > config.hard_negative_pool:
        rng = np.random.default_rng(config.random_state)
        pool = np.sort(rng.choice(n, size=config.hard_negative_pool, replace=False)).astype(np.int64)
    query_rows = np.concatenate([pos, fix_rows])
    hard_text = _nearest(_rows(image, query_rows), text, pool, query_rows, config.hard_negatives)
    hard_image = _nearest(np.concatenate([_rows(text, pos), fix_vecs]), image, pool, query_rows,
                          config.hard_negatives)
    img_rows = np.unique(np.concatenate([query_rows, neg, hard_image.ravel()]))
    txt_rows = np.unique(np.concatenate([pos, neg, hard_text.ravel()]))
    texts = np.concatenate([_rows(text, txt_rows), fix_vecs])
    pos_txt = np.concatenate([np.searchsorted(txt_rows, pos), len(txt_rows) + np.arange(len(fix_rows))])
    hard_text = np.searchsorted(txt_rows, hard_text)
    if hard_text.shape[1] and len(fix_rows):  # a fix's original caption is its hardest negative
        hard_text[len(pos):, -1] = np.searchsorted(txt_rows, fix_rows)
    images = _rows(image, img_rows)
    if not (np.isfinite(images).all() and np.isfinite(texts).all()):
        raise ValueError("image/text embeddings of the labelled pairs or their neighbours contain NaN or "
                         "inf; re-embed those pairs (or drop them) before training")
    as_long = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    return _Pairs(
        images=torch.from_numpy(images), texts=torch.from_numpy(texts),
        pos=as_long(np.stack([np.searchsorted(img_rows, query_rows), pos_txt], 1)), pos_row=query_rows,
        neg=as_long(np.stack([np.searchsorted(img_rows, neg), np.searchsorted(txt_rows, neg)], 1)),
        neg_row=neg, hard_text=as_long(hard_text),
        hard_image=as_long(np.searchsorted(img_rows, hard_image)), n_accepted=len(pos))
