"""Query-by-committee (Seung et al. 1992; Settles 2009 §3.2) with a committee of calibrators.

With labels of both classes the members are the alignment calibrator refitted on bootstrap
resamples of the labelled pairs (each with its own seed), all on the same features (after the
current projection head).

Before that (no labels, or one class only) the members are *views* of the alignment features,
so they disagree where the evidence is mixed instead of all voting like the prior:

1. ``prior``: the no-label prior itself, σ(γ·((z_i2t + z_t2i)/2 + c)) (see
   :mod:`mmcurate.signals.alignment`);
2. ``i2t``: z_i2t only (the own caption among the image's nearest captions);
3. ``t2i``: z_t2i only (the own image among the caption's nearest images);
4. ``cosine``: the raw pair cosine;
5. ``logp``: (logp_i2t + logp_t2i)/2, the retrieval log-softmaxes.

Each view's score u (on the prior's standardised features) is calibrated against the prior:
its threshold is the quantile of u at the fraction q of pairs the prior calls misaligned
(P < 0.5; the prior's expected noise rate mean(1 − P) when it calls none or all), and its
slope gives its logit the same standard deviation as the prior's. So every member flags the
same number of pairs, and a pair gets high vote entropy when some views flag it and others do
not. More than five members repeat the views with their slope jittered by ±50%.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mmcurate._util import check_random_state
from mmcurate.signals.alignment import (
    FEATURE_NAMES,
    AlignmentFeatures,
    Calibrator,
    fit_calibrator,
    prior_calibrator,
)

__all__ = ["VIEWS", "fit_committee", "kl_divergence", "vote_entropy"]

VIEWS: dict[str, tuple[str, ...]] = {
    "prior": ("z_i2t", "z_t2i"),
    "i2t": ("z_i2t",),
    "t2i": ("z_t2i",),
    "cosine": ("cosine",),
    "logp": ("logp_i2t", "logp_t2i"),
}


def fit_committee(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
                  n_members: int = 5, random_state: int | None = 0) -> npt.NDArray[np.float64]:
    """P(aligned) of each member for each pair: ``(M, N)`` (members: see module docstring).

    Examples
    --------
    >>> from mmcurate.signals.alignment import alignment_features
    >>> rng = np.random.default_rng(0)
    >>> sims = rng.uniform(0.2, 0.6, (50, 5))
    >>> f = alignment_features(rng.uniform(0.2, 0.8, 50), sims, np.tile(np.arange(1, 6), (50, 1)),
    ...                        sims[::-1], np.tile(np.arange(1, 6), (50, 1)))
    >>> fit_committee(f, [], []).shape
    (5, 50)
    """
    rng = check_random_state(random_state)
    idx = np.asarray(indices_labeled, np.int64)
    y = np.asarray(y, np.float64)
    if not (len(idx) >= 2 and len(np.unique(y)) == 2):
        return np.stack([cal.predict_proba(features) for cal in _view_members(features, n_members, rng)])
    out = np.empty((n_members, len(features)))
    for m in range(n_members):
        pick = rng.integers(0, len(idx), len(idx))
        while len(np.unique(y[pick])) < 2:
            pick = rng.integers(0, len(idx), len(idx))
        out[m] = fit_calibrator(features, idx[pick], y[pick]).predict_proba(features)
    return out


def _view_members(features: AlignmentFeatures, n_members: int,
                 rng: np.random.Generator) -> list[Calibrator]:
    """The no-label committee: one calibrator per view (repeated with jitter beyond five)."""
    prior = prior_calibrator(features)
    design = prior.design(features)  # (N, F + 1): standardised features, then 1
    logit = design @ prior.weights
    p = 0.5 * (1.0 + np.tanh(0.5 * logit))
    q = float(np.mean(p < 0.5))
    if q in (0.0, 1.0):
        q = float(np.clip(np.mean(1.0 - p), 1.0 / len(p), 1.0 - 1.0 / len(p)))
    spread = float(logit.std())
    base = [_view(prior, design, names, q, spread) for names in VIEWS.values()]
    members = []
    for m in range(n_members):
        cal = base[m % len(base)]
        if m >= len(base):
            cal = Calibrator(cal.mean, cal.scale, cal.weights * rng.uniform(0.5, 1.5), 0)
        members.append(cal)
    return members


def _view(prior: Calibrator, design: np.ndarray, names: tuple[str, ...], q: float,
          spread: float) -> Calibrator:
    """A calibrator on ``names`` only, flagging the same fraction ``q`` as the prior."""
    direction = np.zeros(design.shape[1])
    direction[[FEATURE_NAMES.index(n) for n in names]] = 1.0
    u = design @ direction
    if u.std() < 1e-12 or spread < 1e-12:  # a constant view carries no vote of its own
        return prior
    slope = spread / u.std()
    weights = slope * direction
    weights[-1] = -slope * np.quantile(u, q)
    return Calibrator(prior.mean, prior.scale, weights, 0)


def _binary(p: npt.ArrayLike) -> np.ndarray:
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

