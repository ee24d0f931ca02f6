"""Expected error reduction (Roy & McCallum 2001) with a one-step Newton update of the calibrator.

For a candidate c and each label y ∈ {0, 1}: the calibrator's weights move by one Newton step
with the candidate added, Δw_y = −(H + p_c(1−p_c) x̃_c x̃_cᵀ)⁻¹ (p_c − y) x̃_c, where H is the
Hessian of the penalised loss on the labels so far (at the optimum the old gradient is ~0). The
updated model's expected log loss on an evaluation sample E of the pool is its mean predictive
entropy (self-labelling, as in Roy & McCallum); the score is

    EER(c) = L_now − Σ_y P(y | c)·L_y(c),

the expected reduction. Approximations (documented): only the ``n_candidates`` most uncertain
pairs are scored exactly, the rest get the minimum; E is a seeded sample of ``n_eval`` pairs; one
Newton step instead of a refit. Cost: O(n_candidates · n_eval · F).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmcurate._util import check_random_state, sigmoid

__all__ = ["eer"]


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def eer(
    design: npt.ArrayLike,
    weights: npt.ArrayLike,
    hessian: npt.ArrayLike,
    *,
    exclude: npt.ArrayLike | None = None,
    n_candidates: int = 200,
    n_eval: int = 1000,
    random_state: int | None = 0,
) -> npt.NDArray[np.float64]:
    """Expected error reduction ``(N,)`` (higher = labelling the pair helps more).

    Parameters
    ----------
    design : (N, F+1)
        Calibrator design rows (standardised features + bias).
    weights : (F+1,)
        Current calibrator weights; ``hessian`` its ``(F+1, F+1)`` penalised Hessian.
    exclude : indices never scored (already labelled); they get the minimum.
    """
    X = np.asarray(design, np.float64)
    w = np.asarray(weights, np.float64)
    H = np.asarray(hessian, np.float64)
    rng = check_random_state(random_state)
    n = len(X)
    p = sigmoid(X @ w)
    pool = np.setdiff1d(np.arange(n), np.asarray(exclude if exclude is not None else [], np.int64))
    evals = rng.choice(pool, size=min(n_eval, len(pool)), replace=False) if len(pool) else pool
    Xe = X[evals]
    base = _entropy(sigmoid(Xe @ w)).mean() if len(evals) else 0.0
    unc = np.abs(p[pool] - 0.5)
    cands = pool[np.argsort(unc, kind="stable")[:n_candidates]]
    scores = np.full(n, -np.inf)
    for c in cands:
        x = X[c]
        Hc = H + p[c] * (1 - p[c]) * np.outer(x, x)
        direction = np.linalg.solve(Hc, x)
        expected = 0.0
        for y, py in ((1.0, p[c]), (0.0, 1.0 - p[c])):
            w_new = w - (p[c] - y) * direction
            expected += py * _entropy(sigmoid(Xe @ w_new)).mean()
        scores[c] = base - expected
    finite = np.isfinite(scores)
    floor = scores[finite].min() - 1e-9 if finite.any() else 0.0
    return np.where(finite, scores, floor)
