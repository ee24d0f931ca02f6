"""Uncertainty sampling (Lewis & Gale 1994; Settles 2009 §3.1) on P(aligned) or retrieval rows.

Binary versions take ``proba`` = P(aligned) ``(N,)``; distribution versions take rows ``(N, C)``
that sum to one (e.g. the softmax over an image's own caption and its k nearest captions).
Every function returns ``(N,)`` float64, higher = more uncertain = review first.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["entropy", "least_confidence", "margin"]


def _as_dist(p: npt.ArrayLike) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim == 1:
        a = np.clip(a, 0.0, 1.0)
        return np.column_stack([a, 1.0 - a])
    return a


def least_confidence(proba: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """1 − max_c p_c. For binary P: 1 − max(p, 1 − p).

    Examples
    --------
    >>> least_confidence([0.5, 0.9, 0.1]).round(2).tolist()
    [0.5, 0.1, 0.1]
    """
    return 1.0 - _as_dist(proba).max(axis=1)


def margin(proba: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """1 − (p_(1) − p_(2)), the gap between the two most likely outcomes, flipped so high = unsure.

    For binary P: 1 − |2p − 1|.
    """
    d = np.sort(_as_dist(proba), axis=1)
    return 1.0 - (d[:, -1] - d[:, -2])


def entropy(proba: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Shannon entropy −Σ_c p_c log p_c (nats)."""
    d = np.clip(_as_dist(proba), 1e-12, 1.0)
    return -(d * np.log(d)).sum(axis=1)

