"""The alignment model: per-pair features and a calibrated P(aligned | pair).

For pair i with image vector u_i and caption vector v_i (after the projection head, if any):

- ``cosine`` s_i = u_i · v_i.
- Image→text: the image's k nearest captions other than its own, with similarities a_ij.
  ``z_i2t`` = (s_i − mean_j a_ij) / (std_j a_ij + ε): how far the own caption stands above the
  captions most similar to the image. ``rank_i2t`` = #{j: a_ij > s_i} (0 = own caption best).
  ``logp_i2t`` = log softmax over {s_i} ∪ {a_ij} with temperature τ, at the own caption.
- The same three from the caption's side (text→image): ``z_t2i``, ``rank_t2i``, ``logp_t2i``.

These contrastive features are what makes the score comparable across domains: an absolute
cosine means different things for different image types (CLIP scores shift by domain), while the
standing of the own caption among the image's nearest alternatives does not.

P(aligned) is a logistic model on the standardised features (:class:`Calibrator`). Before any
label it is a fixed prior, P = σ(γ·((z_i2t + z_t2i)/2 + c)) with γ = 2, c = 1 (a pair tied with
its neighbours' mean gets 0.88; one standard deviation below, 0.5). With labels the weights are
fitted by Newton's method on the log loss, every label weighing the same: the fit is *not*
class-balanced (``fit_calibrator(balanced=False)``, the default every caller keeps: the queue picks
pairs by their features, which leaves P(y | features) unchanged, and reweighting the classes would
shift the probabilities). A reviewer's error rate, when given (``label_noise``), enters the
likelihood (forward noise correction); an L2 penalty pulls the weights toward the prior weights (a
MAP estimate), so a few labels adjust the prior instead of replacing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FEATURE_NAMES", "AlignmentFeatures", "Calibrator", "alignment_features", "fit_calibrator",
           "noisy_log_loss", "prior_calibrator"]

FEATURE_NAMES = ("cosine", "z_i2t", "z_t2i", "logp_i2t", "logp_t2i", "rank_i2t", "rank_t2i")
_EPS = 1e-6
PRIOR_GAMMA, PRIOR_SHIFT = 2.0, 1.0


@dataclass
class AlignmentFeatures:
    """Per-pair feature arrays, each ``(N,)`` float64; ``matrix()`` stacks them ``(N, F)``."""

    cosine: np.ndarray
    z_i2t: np.ndarray
    z_t2i: np.ndarray
    logp_i2t: np.ndarray
    logp_t2i: np.ndarray
    rank_i2t: np.ndarray
    rank_t2i: np.ndarray
    k: int

    def matrix(self) -> npt.NDArray[np.float64]:
        return np.column_stack([getattr(self, n) for n in FEATURE_NAMES])

    def __len__(self) -> int:
        return len(self.cosine)


def _side(own: np.ndarray, alt_sims: np.ndarray, alt_idx: np.ndarray, temperature: float):
    """z-score, rank and log-softmax of ``own`` against each row's alternatives."""
    rows = np.arange(len(own))[:, None]
    valid = (alt_idx >= 0) & (alt_idx != rows)
    alt = np.where(valid, alt_sims, np.nan)
    n_alt = valid.sum(1)
    mean = np.where(n_alt > 0, np.nansum(np.where(valid, alt, 0.0), 1) / np.maximum(n_alt, 1), own)
    var = np.nansum(np.where(valid, (alt - mean[:, None]) ** 2, 0.0), 1) / np.maximum(n_alt, 1)
    z = (own - mean) / (np.sqrt(var) + 0.02)
    rank = np.where(valid, alt > own[:, None], False).sum(1).astype(np.float64)
    logits = np.where(valid, alt, -np.inf) / temperature
    top = np.maximum(own / temperature, np.max(logits, axis=1))
    lse = top + np.log(np.exp(own / temperature - top) + np.exp(logits - top[:, None]).sum(1))
    return z, rank, own / temperature - lse


def alignment_features(
    cosine: npt.ArrayLike,
    i2t_sims: npt.ArrayLike,
    i2t_idx: npt.ArrayLike,
    t2i_sims: npt.ArrayLike,
    t2i_idx: npt.ArrayLike,
    *,
    temperature: float = 0.05,
    own: npt.ArrayLike | None = None,
) -> AlignmentFeatures:
    """Contrastive alignment features from the pair cosines and cross-modal kNN results.

    Parameters
    ----------
    cosine : (N,)
        Cosine of each pair's own image and caption.
    i2t_sims, i2t_idx : (N, k)
        Each image's nearest captions (rows into the pairs table); the own caption, if present,
        is skipped.
    t2i_sims, t2i_idx : (N, k)
        Each caption's nearest images.
    temperature : float
        Softmax temperature τ of the retrieval distributions.
    own : (N,), optional
        The pair's own similarity in the space the neighbour similarities were computed in
        (e.g. a reduced projection for large pools); defaults to ``cosine``. The z-scores, ranks
        and log-softmaxes compare ``own`` with the alternatives; the ``cosine`` feature stays exact.

    Examples
    --------
    >>> f = alignment_features([0.9], [[0.9, 0.5]], [[0, 1]], [[0.9, 0.4]], [[0, 2]])
    >>> float(f.rank_i2t[0]), bool(f.z_i2t[0] > 0)
    (0.0, True)
    """
    cos = np.asarray(cosine, dtype=np.float64)
    own = cos if own is None else np.asarray(own, dtype=np.float64)
    ai, ii = np.asarray(i2t_sims, np.float64), np.asarray(i2t_idx, np.int64)
    at, it = np.asarray(t2i_sims, np.float64), np.asarray(t2i_idx, np.int64)
    z1, r1, l1 = _side(own, ai, ii, temperature)
    z2, r2, l2 = _side(own, at, it, temperature)
    return AlignmentFeatures(cos, z1, z2, l1, l2, r1, r2, k=int(ai.shape[1]))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Not mmcurate._util.sigmoid: this form fixes the calibrator's pinned numbers; the exact form moves
    # small P(aligned) by up to ~1e10 ulp (more accurate in the tail), so swapping is a numbers change.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass
class Calibrator:
    """Logistic model on standardised features: P(aligned) = σ(w·x̃ + b)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (F + 1,): feature weights then bias
    n_labels: int = 0
    l2: float = 1.0  # the shrinkage toward the prior it was fitted with

    def design(self, features: AlignmentFeatures | np.ndarray) -> np.ndarray:
        x = features.matrix() if isinstance(features, AlignmentFeatures) else np.asarray(features)
        xs = (x - self.mean) / self.scale
        return np.column_stack([xs, np.ones(len(xs))])

    def decision_function(self, features: AlignmentFeatures | np.ndarray) -> np.ndarray:
        return self.design(features) @ self.weights

    def predict_proba(self, features: AlignmentFeatures | np.ndarray) -> npt.NDArray[np.float64]:
        """P(aligned) for every pair, ``(N,)``."""
        return _sigmoid(self.decision_function(features))


def prior_calibrator(features: AlignmentFeatures) -> Calibrator:
    """The no-label prior as a :class:`Calibrator` (see module docstring)."""
    x = features.matrix()
    mean = x.mean(0)
    scale = np.maximum(x.std(0), _EPS)
    w = np.zeros(x.shape[1] + 1)
    zi, zt = FEATURE_NAMES.index("z_i2t"), FEATURE_NAMES.index("z_t2i")
    w[zi] = PRIOR_GAMMA / 2 * scale[zi]
    w[zt] = PRIOR_GAMMA / 2 * scale[zt]
    w[-1] = PRIOR_GAMMA * (PRIOR_SHIFT + (mean[zi] + mean[zt]) / 2)
    return Calibrator(mean, scale, w, 0)


def fit_calibrator(
    features: AlignmentFeatures,
    indices_labeled: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    l2: float = 1.0,
    n_iter: int = 25,
    sample_weight: npt.ArrayLike | None = None,
    balanced: bool = False,
    label_noise: float = 0.0,
) -> Calibrator:
    """MAP logistic regression on the labelled pairs, shrunk toward the prior weights.

    ``y`` is 1 for aligned (accepted) and 0 for misaligned pairs. Each label weighs
    ``sample_weight`` (default 1); the classes are not reweighted (the default, what mmcurate's
    callers use) unless ``balanced``, which scales each class to half the total weight.
    ``label_noise`` ``e``: the chance a recorded decision is wrong; the likelihood of a label is
    then ``e + (1 − 2e)·σ(m)`` (forward noise correction, Natarajan et al. 2013), so one wrong
    decision on a pair the features are sure about costs at most ``−log e`` instead of pulling the
    weights without bound. With one class or no labels the prior is returned unchanged.

    Examples
    --------
    >>> f = alignment_features([0.9, 0.2, 0.8, 0.1], [[0.3]] * 4, [[1], [0], [3], [2]],
    ...                        [[0.3]] * 4, [[1], [0], [3], [2]])
    >>> cal = fit_calibrator(f, [0, 1, 2, 3], [1, 0, 1, 0], label_noise=0.05)
    >>> bool(cal.predict_proba(f)[0] > cal.predict_proba(f)[1])
    True
    """
    prior = prior_calibrator(features)
    idx = np.asarray(indices_labeled, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    if len(idx) == 0 or len(np.unique(y)) < 2:
        return Calibrator(prior.mean, prior.scale, prior.weights, len(idx))
    X = prior.design(features.matrix()[idx])
    sw = np.ones(len(idx)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if balanced:
        for cls in (0.0, 1.0):
            sw = np.where(y == cls, sw * len(y) / (2.0 * max((y == cls).sum(), 1)), sw)
    e = float(np.clip(label_noise, 0.0, 0.49))
    w = prior.weights.copy()

    def objective(v: np.ndarray) -> float:
        return float((sw * noisy_log_loss(X @ v, y, e)).sum() + 0.5 * l2 * ((v - prior.weights) ** 2).sum())

    current = objective(w)
    for _ in range(n_iter):
        s = _sigmoid(X @ w)
        q = e + (1 - 2 * e) * s                       # P(recorded aligned)
        ds = (1 - 2 * e) * s * (1 - s)                # dq/dm
        qq = np.clip(q * (1 - q), 1e-300, None)
        grad = X.T @ (sw * ds * (q - y) / qq) + l2 * (w - prior.weights)
        fisher = sw * ds**2 / qq                      # = s(1-s) when e = 0 (Newton's method)
        hess = (X * fisher[:, None]).T @ X + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-4 and objective(w - t * step) > current:  # backtracking: never go uphill
            t *= 0.5
        w = w - t * step
        new = objective(w)
        if current - new < 1e-9 * max(1.0, abs(current)):
            break
        current = new
    return Calibrator(prior.mean, prior.scale, w, len(idx), l2)


def noisy_log_loss(logits: npt.ArrayLike, y: npt.ArrayLike,
                   label_noise: float = 0.0) -> npt.NDArray[np.float64]:
    """Per-label log loss of P(aligned) = σ(logits) when each recorded label ``y`` is wrong with
    chance ``label_noise`` (``0``: the plain log loss, computed stably)."""
    m, y = np.asarray(logits, np.float64), np.asarray(y, np.float64)
    if label_noise <= 0:
        return np.logaddexp(0.0, m) - y * m
    q = label_noise + (1 - 2 * label_noise) * _sigmoid(m)
    return -(y * np.log(q) + (1 - y) * np.log1p(-q))


def hessian(calibrator: Calibrator, features: AlignmentFeatures, indices_labeled: npt.ArrayLike, *,
            l2: float = 1.0) -> np.ndarray:
    """Hessian of the penalised log loss at the calibrator's weights (for incremental updates): the
    plain log loss, unweighted, without the label-noise correction a fit may have used."""
    idx = np.asarray(indices_labeled, dtype=np.int64)
    X = calibrator.design(features.matrix()[idx]) if len(idx) else np.zeros((0, len(calibrator.weights)))
    p = _sigmoid(X @ calibrator.weights)
    return (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(calibrator.weights))
