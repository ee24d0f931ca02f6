"""The model that ranks the next round: fit on the labels, prove it on held-back labels, or refuse it.

The labelled pairs are a biased sample of the pool: the queue chose most of them (mostly
suspects). Three things keep learning from making the ranking worse:

1. **Exploration.** Each batch reserves a share (``explore``, default 10%) drawn uniformly at
   random from the pool the queue did not take, recorded in the ledger with its inclusion
   probability ``π = n_explore / n_rest``; the queue's own picks are recorded with ``π = 1``.
   Weights ``1/π`` (Horvitz–Thompson) make sums over the labels estimate sums over the pool.
2. **An unbalanced fit.** The queue selects on the features, which leaves ``P(y | features)``
   unchanged, so the calibrator is a plain MAP logistic fit shrunk toward the zero-label prior
   (:func:`mmcurate.signals.alignment.fit_calibrator`), not reweighted by class (class balancing
   shifted the boundary toward the suspects and made 100 labels cost 0.1–0.45 pool AUROC in the
   measurements behind this module).
3. **A gate.** Every new model is compared, on labels it was not fitted on, with the zero-label
   prior (on every label, by ``n_folds``-fold cross-fitting) and with the model it would replace
   (on the labels added since that one was fitted). The comparison is the AUROC of
   P(misaligned) weighted by ``1/π`` (an estimate of the AUROC over the pool). A model that loses
   either comparison by more than ``tolerance`` is recorded but not used; ranking goes on with
   the previous model (or the prior), and ``mmcurate status`` says so.

Pure functions over arrays; no I/O (``mmcurate.rounds`` reads and writes the project).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate._util import check_random_state
from mmcurate.signals.alignment import AlignmentFeatures, Calibrator, fit_calibrator, prior_calibrator
from mmcurate.signals.metrics import auroc

__all__ = ["EXPLORE", "TARGET_NOISE", "Validation", "calibrator_from_dict", "calibrator_to_dict",
           "choose_threshold", "cross_fitted_logits", "explored_noise", "fit_validated", "paired_auroc_se",
           "prior_logits", "split_budget", "stratified_folds", "validate_model", "wilson_interval"]

EXPLORE = 0.1
"""Default share of each batch drawn uniformly at random (the exploration stratum)."""


def split_budget(budget: int, explore: float) -> tuple[int, int]:
    """``(n_exploit, n_explore)`` for a batch of ``budget`` with exploration share ``explore``.

    A positive share explores at least one pair when the batch has two or more.

    Examples
    --------
    >>> split_budget(100, 0.1), split_budget(5, 0.1), split_budget(1, 0.1), split_budget(40, 0.0)
    ((90, 10), (4, 1), (1, 0), (40, 0))
    """
    if not 0.0 <= explore < 1.0:
        raise ValueError(f"explore is the share of a batch drawn at random, in [0, 1); got {explore}")
    n_explore = round(budget * explore)
    if explore > 0 and budget >= 2:
        n_explore = max(n_explore, 1)
    return budget - n_explore, n_explore


def stratified_folds(y: np.ndarray, n_folds: int, random_state: int) -> np.ndarray:
    """Fold id ``(L,)`` of each label, stratified by class (seeded permutation per class)."""
    rng = check_random_state(random_state)
    fold = np.empty(len(y), np.int64)
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(y == value))
        fold[members] = np.arange(len(members)) % n_folds
    return fold


def cross_fitted_logits(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
                        n_folds: int = 5, random_state: int = 0, fold: npt.ArrayLike | None = None,
                        fold_features: Sequence[AlignmentFeatures] | None = None) -> npt.NDArray[np.float64]:
    """Logit of P(aligned) of each labelled pair from a calibrator fitted without its fold.

    Folds are stratified by label, or given (``fold``, ``(L,)``). ``fold_features[f]`` are the
    features to fit and predict fold ``f`` with (features after a projection head trained without
    fold ``f``: a head trained on every label would leak them). Returns ``(len(indices_labeled),)``.

    Examples
    --------
    >>> held = cross_fitted_logits(ctx.features, rows, y)  # doctest: +SKIP
    """
    idx = np.asarray(indices_labeled, np.int64)
    y = np.asarray(y, np.int64)
    if fold is None:
        fold = stratified_folds(y, max(2, min(int(n_folds), len(idx))), random_state)
    fold = np.asarray(fold, np.int64)
    out = np.zeros(len(idx), np.float64)
    for f in np.unique(fold):
        test = fold == f
        feats = features if fold_features is None else fold_features[int(f)]
        cal = fit_calibrator(feats, idx[~test], y[~test])
        out[test] = cal.decision_function(feats.matrix()[idx[test]])
    return out


@dataclass(frozen=True)
class Validation:
    """The gate's verdict on a new model (AUROCs of P(misaligned), weighted by ``1/π``)."""

    accepted: bool
    reason: str
    auroc_new: float
    auroc_prior: float
    n_labels: int
    n_recent: int = 0
    auroc_new_recent: float = float("nan")
    auroc_previous_recent: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _weighted(logits: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return auroc(-np.asarray(logits, np.float64), y == 0, sample_weight=w)


def paired_auroc_se(a: npt.ArrayLike, b: npt.ArrayLike, y: npt.ArrayLike, w: npt.ArrayLike | None = None, *,
                    n_boot: int = 200, random_state: int = 0) -> float:
    """Bootstrap standard error of ``AUROC(a) − AUROC(b)`` over the same labels (resampled by class).

    ``a``/``b`` are logits of P(aligned); ``y`` 1 aligned, 0 misaligned; ``w`` label weights.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    y = np.asarray(y, np.int64)
    w = np.ones(len(y)) if w is None else np.asarray(w, np.float64)
    rng = check_random_state(random_state)
    groups = [np.flatnonzero(y == c) for c in (0, 1)]
    if min(len(g) for g in groups) == 0:
        return float("nan")
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        pick = np.concatenate([rng.choice(g, len(g)) for g in groups])
        diffs[i] = _weighted(a[pick], y[pick], w[pick]) - _weighted(b[pick], y[pick], w[pick])
    return float(np.nanstd(diffs))


def validate_model(held_out_logits: npt.ArrayLike, prior_logits: npt.ArrayLike, y: npt.ArrayLike, *,
                   weights: npt.ArrayLike | None = None, previous_logits: npt.ArrayLike | None = None,
                   recent: npt.ArrayLike | None = None, tolerance: float = 0.0,
                   z: float = 0.0) -> Validation:
    """Accept a first model only if it beats the prior; a later one only if it does not lose.

    Parameters
    ----------
    held_out_logits : (L,)
        The new model's logits on the labelled pairs, each from a fit that did not see it
        (:func:`cross_fitted_logits`).
    prior_logits : (L,)
        The zero-label prior's logits on the same pairs.
    y : (L,)
        1 aligned, 0 misaligned.
    weights : (L,), optional
        ``1/π`` of each label (default 1).
    previous_logits : (L,), optional
        The model in use now; compared on ``recent`` only (labels it was not fitted on).
    recent : bool (L,), optional
        Labels added since the previous model was fitted.
    tolerance : float
        How much AUROC the new model may lose and still be used (default 0: it may not lose).
    z : float
        The first model must beat the prior by more than ``z`` paired-bootstrap standard errors
        of the AUROC difference (:func:`paired_auroc_se`; default 0: strictly). A tie (both rank
        the labels perfectly, as on easy data) keeps the prior: the labels show no gain, and on
        random swaps accepting such ties cost up to 0.02 pool AUROC in late rounds.

    Examples
    --------
    >>> v = validate_model([2.0, -1.0, 1.5, 1.2], [1.0, 0.5, -0.2, 0.8], [1, 0, 1, 1])
    >>> v.accepted, v.auroc_new, v.auroc_prior
    (True, 1.0, 0.6666666666666666)
    """
    y = np.asarray(y, np.int64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    held, prior_l = np.asarray(held_out_logits, np.float64), np.asarray(prior_logits, np.float64)
    new, prior = _weighted(held, y, w), _weighted(prior_l, y, w)
    base: dict[str, Any] = {"auroc_new": new, "auroc_prior": prior, "n_labels": len(y)}
    if not np.isfinite(new) or not np.isfinite(prior):
        return Validation(False, "the labels hold only one class: nothing to validate against", **base)
    if new < prior - tolerance:
        return Validation(False, f"held-out AUROC {new:.4f} below the zero-label prior's {prior:.4f}", **base)
    if previous_logits is None or recent is None:  # a first model must beat the prior
        margin = z * paired_auroc_se(held, prior_l, y, w) if z > 0 else 0.0
        if new - prior <= margin:
            by = f" by more than {z:g} standard errors ({margin:.4f})" if z > 0 else ""
            return Validation(False, f"held-out AUROC {new:.4f} does not beat the zero-label prior's "
                                     f"{prior:.4f}{by}: the prior stays", **base)
        return Validation(True, f"held-out AUROC {new:.4f} vs prior {prior:.4f}", **base)
    mask = np.asarray(recent, bool)
    if not mask.any():
        return Validation(False, "no labels since the model in use was fitted", **base)
    new_r = _weighted(held[mask], y[mask], w[mask])
    prev_r = _weighted(np.asarray(previous_logits, np.float64)[mask], y[mask], w[mask])
    recent_info: dict[str, Any] = {"n_recent": int(mask.sum()), "auroc_new_recent": new_r,
                                   "auroc_previous_recent": prev_r}
    if np.isfinite(new_r) and np.isfinite(prev_r) and new_r < prev_r - tolerance:
        return Validation(False, f"on the {int(mask.sum())} new labels its AUROC {new_r:.4f} is below the "
                                 f"model in use's {prev_r:.4f}", **base, **recent_info)
    return Validation(True, f"held-out AUROC {new:.4f} vs prior {prior:.4f}"
                      + (f"; new labels {new_r:.4f} vs model in use {prev_r:.4f}" if np.isfinite(prev_r)
                         else ""), **base, **recent_info)


def fit_validated(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
                  prior_features: AlignmentFeatures | None = None, weights: npt.ArrayLike | None = None,
                  previous_logits: npt.ArrayLike | None = None, recent: npt.ArrayLike | None = None,
                  tolerance: float = 0.0, random_state: int = 0, fold: npt.ArrayLike | None = None,
                  fold_features: Sequence[AlignmentFeatures] | None = None) -> tuple[Calibrator, Validation]:
    """Fit a calibrator on the labels and judge it with :func:`validate_model`.

    ``prior_features`` are the features the zero-label prior is read from (default ``features``;
    differ when the new model ranks after a projection head); ``fold``/``fold_features`` as in
    :func:`cross_fitted_logits` (for a model on a head). Returns the fitted calibrator and the
    verdict; whoever ranks uses the calibrator only if ``verdict.accepted``.

    Examples
    --------
    >>> cal, verdict = fit_validated(ctx.features, rows, y)  # doctest: +SKIP
    """
    idx = np.asarray(indices_labeled, np.int64)
    y = np.asarray(y, np.int64)
    calibrator = fit_calibrator(features, idx, y)
    held = cross_fitted_logits(features, idx, y, random_state=random_state, fold=fold,
                               fold_features=fold_features)
    prior = prior_logits(features if prior_features is None else prior_features, idx)
    verdict = validate_model(held, prior, y, weights=weights, previous_logits=previous_logits, recent=recent,
                             tolerance=tolerance)
    return calibrator, verdict


def calibrator_to_dict(cal: Calibrator) -> dict[str, Any]:
    """A JSON-ready record of a calibrator."""
    return {"mean": cal.mean.tolist(), "scale": cal.scale.tolist(), "weights": cal.weights.tolist(),
            "n_labels": int(cal.n_labels)}


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """The calibrator recorded by :func:`calibrator_to_dict`."""
    return Calibrator(np.asarray(data["mean"], np.float64), np.asarray(data["scale"], np.float64),
                      np.asarray(data["weights"], np.float64), int(data.get("n_labels", 0)))


def prior_logits(features: AlignmentFeatures, indices: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The zero-label prior's logits at ``indices``."""
    idx = np.asarray(indices, np.int64)
    return prior_calibrator(features).decision_function(features.matrix()[idx])


TARGET_NOISE = 0.03
"""Default target of :func:`choose_threshold`: the estimated share of misaligned pairs among the
unreviewed pairs the model keeps."""


def choose_threshold(p_aligned: npt.ArrayLike, *, target_noise: float = TARGET_NOISE) -> dict[str, float]:
    """The lowest P(aligned) threshold whose kept pairs have an estimated noise rate <= target.

    Rule (documented in the README): among the unreviewed pairs, keeping those with
    ``P(aligned) >= t`` leaves an expected ``mean(1 - P)`` misaligned share in the kept set; ``t`` is
    the smallest value where that share is at most ``target_noise`` (the model's probabilities are
    taken as calibrated: they come from a calibrator fitted and validated on the labels). Returns
    ``threshold``, ``est_noise_kept`` (that share), ``est_clean_kept`` (the expected share of
    clean unreviewed pairs kept: ``sum_{kept} P / sum P``) and ``n_kept``.

    Examples
    --------
    >>> out = choose_threshold([0.99, 0.98, 0.9, 0.6, 0.1], target_noise=0.05)
    >>> out["threshold"], out["n_kept"]
    (0.9, 3)
    """
    p = np.sort(np.asarray(p_aligned, np.float64))[::-1]
    if not 0.0 < target_noise < 1.0:
        raise ValueError(f"target_noise is a share of the kept pairs in (0, 1); got {target_noise}")
    if len(p) == 0:
        return {"threshold": 0.5, "est_noise_kept": float("nan"), "est_clean_kept": float("nan"),
                "n_kept": 0}
    noise = np.cumsum(1.0 - p) / np.arange(1, len(p) + 1)
    ok = np.flatnonzero(noise <= target_noise)
    m = int(ok[-1]) + 1 if len(ok) else 0
    if m == 0:
        return {"threshold": float(np.nextafter(p[0], np.inf)), "est_noise_kept": float("nan"),
                "est_clean_kept": 0.0, "n_kept": 0}
    while m < len(p) and p[m] == p[m - 1]:  # ties: a threshold keeps all or none of them
        m -= 1
    m = max(m, 1)
    return {"threshold": float(p[m - 1]), "est_noise_kept": float(noise[m - 1]),
            "est_clean_kept": float(p[:m].sum() / p.sum()), "n_kept": m}


def wilson_interval(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``n`` may be an effective sample size)."""
    if n <= 0:
        return float("nan"), float("nan")
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def explored_noise(kept: npt.ArrayLike, misaligned: npt.ArrayLike,
                   weights: npt.ArrayLike) -> dict[str, float]:
    """Unbiased check from the exploration labels: misaligned share among those the rule keeps.

    ``kept``, ``misaligned`` (bool) and ``weights`` (``1/π``) describe the labelled pairs of the
    ``explore`` stratum: each was drawn uniformly from the pool the queue left. The share is a
    ratio estimate ``Σ w·kept·mis / Σ w·kept`` with a Wilson interval at Kish's effective size.
    """
    kept = np.asarray(kept, bool)
    mis = np.asarray(misaligned, bool)
    w = np.asarray(weights, np.float64)[kept]
    if not kept.any():
        return {"n": 0, "noise": float("nan"), "low": float("nan"), "high": float("nan")}
    share = float((w * mis[kept]).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w * w).sum())
    low, high = wilson_interval(share * n_eff, n_eff)
    return {"n": int(kept.sum()), "noise": share, "low": low, "high": high}
