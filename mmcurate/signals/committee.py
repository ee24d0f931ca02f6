"""Query-by-committee (Seung et al. 1992; Settles 2009 §3.2) with a committee of calibrators.

Members are the alignment calibrator refitted on bootstrap resamples of the labelled pairs (each
with its own seed), all on the same features (after the current projection head). With fewer than
two labelled classes the members are the prior with its temperature γ jittered by ±50%, so the
committee still disagrees where the prior is least sure.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmcurate.signals.alignment import AlignmentFeatures, fit_calibrator, prior_calibrator

__all__ = ["fit_committee", "kl_divergence", "vote_entropy"]


def fit_committee(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
                  n_members: int = 5, random_state: int | None = 0) -> npt.NDArray[np.float64]:
    """P(aligned) of each member for each pair: ``(M, N)``."""
    rng = np.random.default_rng(random_state)
    idx = np.asarray(indices_labeled, np.int64)
    y = np.asarray(y, np.float64)
    out = np.empty((n_members, len(features)))
    for m in range(n_members):
        if len(idx) >= 2 and len(np.unique(y)) == 2:
            pick = rng.integers(0, len(idx), len(idx))
            while len(np.unique(y[pick])) < 2:
                pick = rng.integers(0, len(idx), len(idx))
            out[m] = fit_calibrator(features, idx[pick], y[pick]).predict_proba(features)
        else:
            cal = prior_calibrator(features)
            cal.weights = cal.weights * rng.uniform(0.5, 1.5)
            out[m] = cal.predict_proba(features)
    return out


def _binary(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    return np.stack([p, 1 - p], axis=-1)


def vote_entropy(proba_committee: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Entropy of the members' hard votes: −Σ_c (V_c/M) log(V_c/M), ``(N,)``.

    Examples
    --------
    >>> vote_entropy([[0.9, 0.9], [0.9, 0.1]]).round(3).tolist()
    [0.0, 0.693]
    """
    P = np.asarray(proba_committee, np.float64)
    frac = (P > 0.5).mean(axis=0)
    d = np.clip(np.stack([frac, 1 - frac], -1), 1e-12, 1)
    return np.where((frac > 0) & (frac < 1), -(d * np.log(d)).sum(-1), 0.0)


def kl_divergence(proba_committee: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Mean KL divergence of each member to the consensus (McCallum & Nigam 1998), ``(N,)``."""
    members = _binary(proba_committee)  # (M, N, 2)
    consensus = members.mean(axis=0, keepdims=True)
    kl = (members * (np.log(members) - np.log(consensus))).sum(-1)
    return np.maximum(kl.mean(axis=0), 0.0)
