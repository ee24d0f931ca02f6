"""Cross-modal retrieval disagreement: does the pair stand out among its neighbours, in both
directions, and do the neighbourhoods agree?

Components for pair i (all from kNN results, k neighbours):

- ``rank_i2t``: rank of the own caption among the image's nearest captions (0 = first);
  ``rank_t2i``: rank of the own image among the caption's nearest images.
- retrieval disagreement |rank_i2t − rank_t2i| (the two directions tell different stories).
- mutual kNN: the own caption is in the image's top-k *and* the own image in the caption's top-k.
- neighbourhood agreement: ``agree_v`` = mean cosine between the caption and the captions of the
  image's k visual neighbours; ``agree_t`` = mean cosine between the image and the images of the
  caption's k textual neighbours. A caption that belongs elsewhere disagrees with what similar
  images are described as.
- the contrastive z-scores ``z_i2t``/``z_t2i`` of the alignment features.

``disagreement`` converts each component to its percentile over the pool (oriented so high =
suspicious) and takes a weighted average. Percentiles are scale-free, so the score does not
depend on the absolute cosine level, which shifts by domain. The two z-scores carry most weight
(2 each): they are the continuous form of the retrieval ranks, which saturate at k; ranks and
neighbourhood agreement 0.5 each, rank disagreement and mutual-kNN 0.25 each. Neighbourhood
agreement cannot tell a caption swapped within the same category (similar images share similar
captions), which is why it is a minor term.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmcurate.signals.metrics import _rankdata

__all__ = ["disagreement", "neighbourhood_agreement"]


def _pct(x: np.ndarray) -> np.ndarray:
    """Percentile of each value in the pool (ties share their average rank)."""
    return (_rankdata(np.asarray(x, np.float64)) - 0.5) / max(len(x), 1)


def neighbourhood_agreement(vectors: np.ndarray, neighbour_idx: np.ndarray, other,
                            *, own: npt.ArrayLike | None = None, chunk: int = 16384
                            ) -> npt.NDArray[np.float64]:
    """Mean cosine between ``other[i]`` and ``other[j]`` for j in ``neighbour_idx[i]`` (-1: none).

    E.g. ``other`` = caption vectors and ``neighbour_idx`` = each image's visual neighbours:
    how much the pair's caption agrees with the captions of similar images. ``vectors`` is unused
    except for its length N (kept for a uniform signature); ``other`` may hold more rows than N
    (rows past N are only neighbours) and may be a callable ``rows -> vectors`` (only the rows
    needed are read). ``own``: the vectors compared with the neighbours' when they are not
    ``other[:N]`` (a shard of a pool, or arrivals).

    Examples
    --------
    >>> other = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    >>> neighbourhood_agreement(other, np.array([[1], [2], [-1]]), other).tolist()
    [1.0, 0.0, 0.0]
    """
    if own is None and callable(other):
        raise ValueError("neighbourhood_agreement: pass own= with a callable other")
    take = other if callable(other) else other.__getitem__
    mine = other if own is None else np.asarray(own)
    n = len(vectors)
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        idx = neighbour_idx[s : min(s + chunk, n)]
        own_rows = np.asarray(mine[s : min(s + chunk, n)], dtype=np.float32)
        valid = idx >= 0
        neigh = np.asarray(take(np.where(valid, idx, 0).ravel()), dtype=np.float32).reshape(
            idx.shape[0], idx.shape[1], -1)
        sims = np.matmul(neigh, own_rows[:, :, None])[:, :, 0]
        out[s : s + chunk] = np.where(valid, sims, 0).sum(1) / np.maximum(valid.sum(1), 1)
    return out


def disagreement(
    rank_i2t: npt.ArrayLike,
    rank_t2i: npt.ArrayLike,
    z_i2t: npt.ArrayLike,
    z_t2i: npt.ArrayLike,
    agree_v: npt.ArrayLike,
    agree_t: npt.ArrayLike,
    *,
    k: int,
) -> npt.NDArray[np.float64]:
    """Cross-modal disagreement score ``(N,)``, higher = more likely misaligned (see module doc).

    Examples
    --------
    >>> s = disagreement([0, 0, 9], [0, 1, 9], [2, 2, -3], [2, 1, -3], [.5, .5, .1], [.5, .4, .1], k=10)
    >>> int(np.argmax(s))
    2
    """
    r1, r2 = np.asarray(rank_i2t, np.float64), np.asarray(rank_t2i, np.float64)
    mutual = ((r1 < k) & (r2 < k)).astype(np.float64)
    parts = [r1, r2, np.abs(r1 - r2), 1.0 - mutual, -np.asarray(z_i2t, np.float64),
             -np.asarray(z_t2i, np.float64), -np.asarray(agree_v, np.float64),
             -np.asarray(agree_t, np.float64)]
    weights = np.array([0.5, 0.5, 0.25, 0.25, 2.0, 2.0, 0.5, 0.5])
    return sum(w * _pct(p) for w, p in zip(weights, parts)) / weights.sum()
