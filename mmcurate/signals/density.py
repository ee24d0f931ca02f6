"""Information density (Settles & Craven 2008): uncertainty weighted by representativeness.

    ID(i) = φ(i) · (mean_{j ∈ kNN_U(i)} sim(i, j))^β

with φ an uncertainty score, kNN_U(i) the pair's k nearest *unlabelled* neighbours in the joint
space (normalised image + caption vector) and β ≥ 0 the trade-off. Similarities are clipped at 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["information_density", "representativeness"]


def representativeness(neighbour_sims: npt.ArrayLike, neighbour_idx: npt.ArrayLike, *,
                       labeled_mask: npt.ArrayLike | None = None) -> npt.NDArray[np.float64]:
    """Mean similarity to the k nearest unlabelled neighbours, ``(N,)`` in [0, 1]."""
    sims = np.clip(np.asarray(neighbour_sims, np.float64), 0.0, 1.0)
    idx = np.asarray(neighbour_idx, np.int64)
    valid = idx >= 0
    if labeled_mask is not None:
        lab = np.asarray(labeled_mask, bool)
        valid &= ~lab[np.where(idx >= 0, idx, 0)]
    return np.where(valid, sims, 0).sum(1) / np.maximum(valid.sum(1), 1)


def information_density(uncertainty: npt.ArrayLike, representativeness_: npt.ArrayLike, *,
                        beta: float = 1.0) -> npt.NDArray[np.float64]:
    """φ · rep^β.

    Examples
    --------
    >>> information_density([0.5, 0.5], [0.9, 0.1]).round(2).tolist()
    [0.45, 0.05]
    """
    return np.asarray(uncertainty, np.float64) * np.asarray(representativeness_, np.float64) ** beta
