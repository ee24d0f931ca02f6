"""Expected model change: expected gradient length (Settles, Craven & Ray 2008).

For the logistic calibrator with design row x̃ and P = σ(w·x̃), the log-loss gradient for label y
is (p − y)·x̃, so EGL = Σ_y P(y)·‖(p − y)·x̃‖ = p(1 − p)·‖x̃‖ + (1 − p)·p·‖x̃‖ = 2p(1 − p)‖x̃‖.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["egl"]


def egl(proba: npt.ArrayLike, design: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Expected gradient length ``(N,)`` from P(aligned) ``(N,)`` and design rows ``(N, F)``.

    Examples
    --------
    >>> egl([0.5, 0.9], [[1.0, 0.0], [1.0, 0.0]]).round(2).tolist()
    [0.5, 0.18]
    """
    p = np.asarray(proba, np.float64)
    norms = np.linalg.norm(np.asarray(design, np.float64), axis=1)
    return 2.0 * p * (1.0 - p) * norms
