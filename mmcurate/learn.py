"""The model that ranks the next round: fit on the labels, prove it on held-back labels, or refuse it.

The labelled pairs are a biased sample of the pool: the queue chose most of them (mostly
suspects). Six things keep learning from making the ranking worse:

1. **Exploration.** Each batch reserves a share (``explore``, default 10%) drawn at random from
   the pool the queue did not take, each pair with a known inclusion probability ``π``: a quarter
   of the probability mass uniform (:data:`EXPLORE_UNIFORM`), the rest proportional to the model's
   P(misaligned) (so the random share also finds noise; +0.011 recall against half uniform on a
   tune seed of the benchmark's clip_gap world), drawn by systematic sampling (:func:`pps_inclusion`,
   :func:`systematic_sample`). The ledger records each pair's ``π``; the queue's own picks are
   recorded with ``π = 1``. Weights ``1/π`` (Horvitz–Thompson) make sums over the labels
   estimate sums over the pool.
2. **An unbalanced fit.** The queue selects on the features, which leaves ``P(y | features)``
   unchanged, so the calibrator is a plain MAP logistic fit shrunk toward the zero-label prior
   (:func:`mmcurate.signals.alignment.fit_calibrator`), not reweighted by class (class balancing
   shifted the boundary toward the suspects and made 100 labels cost 0.1–0.45 pool AUROC in the
   measurements behind this module).
3. **Shrinkage chosen by the labels.** The calibrator is pulled toward the prior with a strength
   chosen by cross-validation (:func:`choose_l2`): few or uninformative labels keep it near the
   prior, many let them speak. Learning cannot swing on a handful of labels. The fit allows for a
   reviewer who errs (each label wrong with at least :data:`LABEL_NOISE_FLOOR`, more when the
   audits say so), so one wrong decision on a pair the features are sure about cannot drag it.
4. **A fair, steady gate.** A new model is compared with the model in use on *every* label, each
   label scored by fits that did not see it: the new recipe cross-fitted on all labels; the model
   in use by the held-out logits recorded when it was trained (on its labels) and its predictions
   (on the labels added since; the prior needs no fit). So neither is judged on labels it was
   fitted on, and the labels the model in use chose for itself
   count the same for both. AUROCs are weighted by ``1/π``. The new model is refused only when
   it loses by more than :data:`GATE_Z` paired-bootstrap standard errors (:func:`compare_models`):
   a tie is not a loss. Leaving the label-free prior needs :data:`MIN_RANDOM_LABELS` random labels
   and a win by more than :data:`PRIOR_Z` standard errors. A refused model leaves the model in use
   ranking; only its probabilities are recalibrated on every label. The labels cannot see the
   pool beyond them, so a model must also not rank the pool *against* the zero-label prior
   (:func:`prior_implied_auroc` below :data:`PRIOR_AGREEMENT`, chance): fitted on the queue's
   suspects, a model can separate them well and invert the rest of the pool. Nor may a model
   leave the prior when the pool is estimated to lose by it (:func:`estimated_pool_change` below
   ``-``:data:`PRIOR_LOSS_TOLERANCE`: the prior's predicted change over the pool, corrected by its
   prediction error on the labels), unless the labels show it better by at least
   :data:`STRONG_EVIDENCE_Z` standard errors.
5. **Calibrated on the pool, not the queue.** The probabilities that decide verdicts are the
   model's logits recalibrated (:func:`platt_ipw`) on held-out logits of every label weighted by
   ``1/π`` (the random share stands for the pairs it was drawn from) and corrected for the
   reviewer's estimated error rate; the recalibration is monotone, so the ranking is unchanged.

6. **A reviewer who errs.** Each batch gives :data:`SECOND_OPINION_FLOOR` to the decisions a
   confident model contradicts most (held-out P of the other verdict >= :data:`CONTRADICTION`;
   asked while second opinions still change decisions, :data:`MIN_FLIP_RATE`), more up to
   :data:`SECOND_OPINION_SHARE` only where a second opinion sets more decisions right than the
   queue pick it replaces would find (:func:`second_opinion_gain`, :func:`worth_second_opinions`:
   while the queue still finds noise with almost every label they wait), and
   :data:`AUDIT_SHARE` (half while second looks change nothing) to decided pairs drawn at random;
   repeated opinions are resolved by :func:`mmcurate.labels.resolve_opinions` (majority, ties to
   the latest); the error rate is estimated from every pair seen twice (audits and second
   opinions), weighed against the model's held-out probabilities of every decided pair, which it
   recalibrates jointly (:func:`reviewer_error_rate`), and enters the
   fit and the recalibration, and ``export`` holds back accepted pairs that the model and that
   error rate together say are more likely misaligned than aligned (``disputed``,
   :mod:`mmcurate.export`).

Pure functions over arrays; no I/O (``mmcurate.rounds`` reads and writes the project).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mmcurate._util import RandomState, check_random_state, sigmoid
from mmcurate.signals.alignment import (
    AlignmentFeatures,
    Calibrator,
    fit_calibrator,
    noisy_log_loss,
    prior_calibrator,
)
from mmcurate.signals.metrics import auroc

__all__ = [
    "AUDIT_SHARE",
    "CLEAN_KEPT",
    "CONTRADICTION",
    "DEFAULT_STRATEGY",
    "EXPLORE",
    "FLOOR_Z",
    "GATE_Z",
    "L2_GRID",
    "LABEL_NOISE_FLOOR",
    "MIN_RANDOM_LABELS",
    "MODEL_TRUST",
    "PRIOR_Z",
    "SECOND_OPINION_FLOOR",
    "SECOND_OPINION_SHARE",
    "TARGET_NOISE",
    "Validation",
    "apply_calibration",
    "calibrate_on_labels",
    "calibrator_from_dict",
    "calibrator_to_dict",
    "choose_l2",
    "choose_threshold",
    "clean_below",
    "clean_floor",
    "compare_models",
    "cross_fitted_logits",
    "exploration_draw",
    "explored_noise",
    "fit_validated",
    "paired_auroc_se",
    "platt_ipw",
    "pps_inclusion",
    "prior_implied_auroc",
    "prior_logits",
    "recalibrated",
    "reviewer_error_rate",
    "second_opinion_gain",
    "split_budget",
    "stratified_folds",
    "systematic_sample",
    "wilson_interval",
    "worth_second_opinions",
]

DEFAULT_STRATEGY = "p_misaligned"
"""The one default ranking of the loop (``rank``, ``proj.rank()``, ``rank_project``, ``select``): the
model in use's P(misaligned), which learns from every round (chosen by the benchmark, see README)."""


EXPLORE = 0.1
"""Default share of each batch drawn uniformly at random (the exploration stratum)."""


EXPLORE_UNIFORM = 0.25
"""Share of the exploration's probability mass spread uniformly (the rest follows P(misaligned)):
every pair keeps a probability of at least ``EXPLORE_UNIFORM · n_explore / n_rest``."""

SECOND_OPINION_SHARE = 0.1
"""Most of a batch given to second opinions on decisions a confident model contradicts."""
SECOND_OPINION_FLOOR = 0.01
"""Share of each batch always given to the strongest contradicted decisions (while second opinions
pay); more, up to :data:`SECOND_OPINION_SHARE`, only where each sets more decisions right than the
queue pick it replaces would find (:func:`worth_second_opinions`)."""
AUDIT_SHARE = 0.02
"""Share of a batch given to decided pairs drawn at random and shown again (the reviewer's error
rate is estimated from them; contradicted pairs are a biased sample of errors). Halved while the
pairs seen twice say second looks change nothing (flip rate below :data:`MIN_FLIP_RATE`): an
audit never finds new noise (an exploration pick often does), and a reviewer who never errs
gains nothing from it but the watch (learning benchmark, perfect reviewer: recall minus the
reference's -0.0032 -> -0.0011 on the tune seeds, -0.0015 -> -0.0009 on seeds 10-14, each against
the code before this and the estimated-pool-change rule; the 10%-wrong reviewer's runs unchanged)."""
CONTRADICTION = 0.9
"""A decision is contradicted when the model gives the other verdict at least this probability."""
MIN_FLIP_RATE = 0.1
"""Second opinions on contradicted decisions are asked while at least this share of the second
opinions so far changed the decision (Beta(1, 1) posterior mean; audits count too)."""


def pps_inclusion(weights: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    """Inclusion probabilities proportional to ``weights`` for a sample of ``n`` (capped at 1).

    Rows whose share would exceed 1 are taken with certainty and the rest re-shared (the usual
    iterative capping), so ``sum = min(n, len(weights))``.

    Examples
    --------
    >>> pps_inclusion([1, 1, 1, 7], 2).round(3).tolist()
    [0.333, 0.333, 0.333, 1.0]
    """
    w = np.asarray(weights, np.float64)
    n = min(int(n), len(w))
    pi = np.zeros(len(w))
    if n <= 0:
        return pi
    certain = np.zeros(len(w), bool)
    for _ in range(len(w)):
        rest = n - certain.sum()
        share = np.where(certain, 0.0, w)
        total = share.sum()
        pi = np.where(certain, 1.0, rest * share / total if total > 0 else rest / max((~certain).sum(), 1))
        over = ~certain & (pi >= 1.0)
        if not over.any():
            break
        certain |= over
    return np.clip(pi, 0.0, 1.0)


def exploration_draw(suspicion: npt.ArrayLike, n: int, rng: np.random.Generator
                     ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Positions of ``n`` pairs drawn for exploration among ``len(suspicion)`` candidates, and
    their inclusion probabilities.

    :data:`EXPLORE_UNIFORM` of the probability mass is uniform, the rest proportional to
    ``suspicion`` (the model's P(misaligned), NaN read as 0.5; all uniform when all equal or all
    zero), drawn by systematic sampling (:func:`pps_inclusion`, :func:`systematic_sample`), so
    every candidate has a known probability of at least ``EXPLORE_UNIFORM · n / len(suspicion)``.

    Examples
    --------
    >>> pos, pi = exploration_draw(np.r_[np.zeros(90), np.ones(10)], 5, np.random.default_rng(0))
    >>> len(pos), bool(pi.min() >= 0.25 * 5 / 100), int((pos >= 90).sum()) >= 3
    (5, True, True)
    """
    s = np.clip(np.nan_to_num(np.asarray(suspicion, np.float64), nan=0.5), 0.0, 1.0)
    m = min(int(n), len(s))
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros(0)
    u = EXPLORE_UNIFORM
    weight = u / len(s) + ((1 - u) * s / s.sum() if s.sum() > 0 else (1 - u) / len(s))
    pi = pps_inclusion(weight, m)
    chosen = systematic_sample(pi, rng)
    return chosen.astype(np.int64), pi[chosen]


def systematic_sample(pi: npt.ArrayLike, random_state: RandomState = None) -> npt.NDArray[np.int64]:
    """Rows drawn with exactly the inclusion probabilities ``pi`` (systematic sampling in a random
    order; the sample size is ``round(sum(pi))``)."""
    pi = np.asarray(pi, np.float64)
    rng = check_random_state(random_state)
    order = rng.permutation(len(pi))
    edges = np.cumsum(pi[order])
    points = rng.random() + np.arange(round(edges[-1]) if len(pi) else 0)
    hits = np.searchsorted(edges, points, side="right")
    return np.sort(order[np.unique(hits[hits < len(pi)])]).astype(np.int64)


MODEL_TRUST = 0.98
"""The most the export's disputes believe the model's P(aligned) (clipped to ``[1 − MODEL_TRUST,
MODEL_TRUST]``, :mod:`mmcurate.export`): an overconfident model must not overrule a reviewer who is
right against it."""


def reviewer_error_rate(opinions: Sequence[Sequence[str] | str],
                        p_aligned: npt.ArrayLike | None = None) -> dict[str, Any]:
    """The reviewer's error rate from pairs judged more than once, weighed against the model.

    ``opinions``: the verdicts (``accept`` or anything else = misaligned) of each decided pair in
    the order given, one or more (a plain string is one verdict); the pairs judged once count only
    with ``p_aligned``. ``p_aligned``: the model's held-out P(aligned) of each pair (from fits that
    did not see its decisions; NaN: none, the pair is weighed at the labelled pairs' base rate).
    Each opinion is right with probability ``1 − e``, independently.

    Without ``p_aligned`` (the audits' case) every pair counts at ``P(aligned) = 1/2``; for pairs
    seen twice that is ``d = 2e(1 − e)``, ``e = (1 − sqrt(1 − 2d)) / 2``. With it, ``e`` is fitted
    *jointly* with a recalibration ``q = σ(a·logit(p) + b)`` of the model's probabilities, on every
    pair: ``P(opinions) = q·Π P(o | aligned) + (1 − q)·Π P(o | misaligned)`` (ridge ``((a − 1)² +
    b²)/2``). Pairs shown again *because* the model contradicted an opinion (second opinions) keep
    this valid when every opinion of the pair is given, as the choice depended on those opinions
    and the model. Fitting ``q`` here, not taking the model's probabilities as they are, is what
    makes the estimate hold when the model is overconfident: weighed against fixed
    probabilities, a too-steep model reads its own errors as the reviewer's (a 10%-wrong reviewer
    was estimated at 39% in the learning benchmark, and the estimates of 49 tune runs were
    uncorrelated with the reviewer's realised rate: mean absolute error 0.027; jointly 0.006,
    correlation 0.73).

    Limits: the pairs judged once inform ``e`` too, through the logistic shape of the
    recalibration, so a model whose errors do not follow it (confidently wrong on a few percent
    of pairs) is read partly as a reviewer who errs, more so the fewer pairs were seen twice
    (simulated: 0.13 for a true 0.10 with 20 pairs seen twice, 0.10 with 300). And the
    probabilities are those of one model, while earlier second opinions were chosen by earlier
    models. ``low``/``high``: the 95% profile-likelihood interval; ``n``: the pairs judged more
    than once; ``n_labels``: all pairs used; ``slope``/``shift``: ``(a, b)``.

    Examples
    --------
    >>> out = reviewer_error_rate([("accept", "accept")] * 82 + [("accept", "reject")] * 18)
    >>> round(out["error_rate"], 3), out["n"]
    (0.1, 100)
    >>> rng = np.random.default_rng(0)
    >>> p = rng.beta(0.5, 0.5, 2000)  # the model's held-out P(aligned)
    >>> truth = rng.random(2000) < p
    >>> said = lambda ok: "accept" if ok else "reject"
    >>> ops = [[said(t ^ (rng.random() < 0.1))] for t in truth]
    >>> for i in range(300):  # 300 pairs seen again
    ...     ops[i].append(said(truth[i] ^ (rng.random() < 0.1)))
    >>> steep = 1 / (1 + ((1 - p) / p) ** 3)  # the same model, three times too confident
    >>> round(reviewer_error_rate(ops, steep)["error_rate"], 2)
    0.1
    """
    ops = [[o] if isinstance(o, str) else list(o) for o in opinions]
    if p_aligned is None:
        p = np.full(len(ops), np.nan)
    else:
        p = np.asarray(p_aligned, np.float64)
        if len(p) != len(ops):
            raise ValueError(f"p_aligned has {len(p)} values for {len(ops)} pairs")
    repeated = np.array([len(o) >= 2 for o in ops], bool)
    weighed = np.isfinite(p) & np.array([len(o) > 0 for o in ops], bool)
    use = repeated if p_aligned is None else repeated | weighed
    n = int(repeated.sum())
    nan = float("nan")
    if n == 0:
        return {"error_rate": nan, "low": nan, "high": nan, "n": 0, "disagreement": nan,
                "n_labels": int(use.sum()), "slope": nan, "shift": nan}
    said = [[v == "accept" for v in o] for o, r in zip(ops, repeated) if r]
    disagreement = float(np.mean([o[0] != o[1] for o in said]))
    accepts = np.array([sum(v == "accept" for v in o) for o in ops], np.float64)[use]
    others = np.array([len(o) for o in ops], np.float64)[use] - accepts
    p = np.clip(p[use], 1e-6, 1 - 1e-6)
    x = np.where(np.isfinite(p), np.log(p / (1 - p)), 0.0)
    # finer where reviewers usually are: steps of ~9% below 0.02, then 0.002
    grid = np.unique(np.r_[np.geomspace(1e-4, 0.02, 60), np.linspace(0.02, 0.5, 241)])
    if p_aligned is None:  # q = 1/2 for every pair
        log_a = accepts * np.log(1 - grid[:, None]) + others * np.log(grid[:, None])
        log_m = accepts * np.log(grid[:, None]) + others * np.log(1 - grid[:, None])
        profile = (np.logaddexp(log_a, log_m) + np.log(0.5)).sum(axis=1)
        ab = np.tile([0.0, 0.0], (len(grid), 1))
    else:
        profile, ab = _error_rate_profile(grid, x, accepts, others)
    best = int(np.argmax(profile))
    low, high = _interval_ends(grid, profile, best)
    return {"error_rate": float(grid[best]), "low": low, "high": high,
            "n": n, "disagreement": disagreement, "n_labels": int(use.sum()),
            "slope": float(ab[best, 0]), "shift": float(ab[best, 1])}


def _interval_ends(grid: np.ndarray, profile: np.ndarray, best: int) -> tuple[float, float]:
    """The 95% profile-likelihood interval (chi-square(1) / 2 = 1.92 below the maximum) around
    ``grid[best]``, its ends interpolated linearly between grid points."""
    cut = profile[best] - 1.92
    ends = []
    for step in (-1, 1):
        k = best
        while 0 <= k + step < len(grid) and profile[k + step] >= cut:
            k += step
        if 0 <= k + step < len(grid):  # the crossing lies between k and k + step
            f = (profile[k] - cut) / (profile[k] - profile[k + step])
            ends.append(float(grid[k] + f * (grid[k + step] - grid[k])))
        else:
            ends.append(float(grid[k]))
    return ends[0], ends[1]


def _error_rate_profile(grid: np.ndarray, x: np.ndarray, accepts: np.ndarray, others: np.ndarray,
                        ridge: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Log likelihood of the opinions at each error rate of ``grid``, maximised over the
    recalibration ``(a, b)`` (warm-started Newton steps; analytic derivatives: with ``w`` the
    posterior P(aligned | opinions, q), ``dℓ/dz = w − q`` and ``d²ℓ/dz² = w(1 − w) − q(1 − q)``)."""
    design = np.column_stack([x, np.ones_like(x)])
    profile, params = np.empty(len(grid)), np.empty((len(grid), 2))
    theta = np.array([1.0, 0.0])
    low, high = np.array([0.05, -30.0]), np.array([20.0, 30.0])

    def value(t: np.ndarray, r: np.ndarray, log_m: np.ndarray) -> float:
        z = design @ t
        ll = np.logaddexp(-np.logaddexp(0, -z) + r, -np.logaddexp(0, z)) + log_m
        return float(ll.sum() - ridge * ((t[0] - 1) ** 2 + t[1] ** 2))

    for k, e in enumerate(grid):
        r = (accepts - others) * np.log((1 - e) / e)  # log P(opinions | aligned) / P(opinions | misaligned)
        log_m = accepts * np.log(e) + others * np.log(1 - e)
        current = value(theta, r, log_m)
        for _ in range(50):
            z = design @ theta
            q, w = sigmoid(z), sigmoid(z + r)
            grad = design.T @ (w - q) - 2 * ridge * (theta - [1.0, 0.0])
            curv = w * (1 - w) - q * (1 - q)
            hess = (design * curv[:, None]).T @ design - 2 * ridge * np.eye(2)
            damping = 0.0
            while True:  # Levenberg: the log likelihood need not be concave in (a, b)
                try:
                    step = np.linalg.solve(hess - damping * np.eye(2), -grad)
                except np.linalg.LinAlgError:
                    step = grad
                candidate = np.clip(theta + step, low, high)
                for i in (0, 1):  # a bound reached: a Newton step in the other parameter alone
                    if candidate[i] != theta[i] + step[i]:
                        j = 1 - i
                        curve = hess[j, j] - damping
                        moved = theta[j] - grad[j] / curve if curve < 0 else theta[j] + grad[j]
                        candidate[j] = np.clip(moved, low[j], high[j])
                new = value(candidate, r, log_m)
                if new >= current or damping > 1e8:
                    break
                damping = max(1.0, damping * 10)
            improved = new - current
            if new >= current:
                theta, current = candidate, new
            if improved < 1e-9:
                break
        profile[k], params[k] = current, theta
    return profile, params


def calibrate_on_labels(p_aligned: npt.ArrayLike, aligned: npt.ArrayLike, *,
                        error_rate: float = 0.0) -> tuple[float, float]:
    """``(a, b)`` so that ``σ(a·logit(p) + b)`` is calibrated *on the labelled pairs*.

    The held-out probabilities of the labelled pairs are what a second opinion and a dispute weigh
    against a person's decision, so they are calibrated on those same pairs: an unweighted fit of
    slope and shift, allowing for the reviewer's error rate (:func:`platt_ipw`). (The pool's
    recalibration fits a shift only, weighted by ``1/π``: on a seeded domain-shift world, 2,000
    pairs with random swaps and a 15%-wrong reviewer, after 7 rounds the labelled pairs' held-out P
    in [0.02, 0.14) were 48% clean at a mean P of 0.075; this fit's slope was 0.43.) ``(1, 0)`` with
    fewer than 20 labels or one class.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(0, 2, 3000)
    >>> y = rng.random(3000) < 1 / (1 + np.exp(-true))
    >>> a, b = calibrate_on_labels(1 / (1 + np.exp(-2 * true)), y)  # twice too confident
    >>> bool(abs(a - 0.5) < 0.05 and abs(b) < 0.1)
    True
    """
    p = np.clip(np.asarray(p_aligned, np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(aligned, bool)
    ok = np.isfinite(p)
    if ok.sum() < 20 or len(np.unique(y[ok])) < 2:
        return 1.0, 0.0
    return platt_ipw(np.log(p[ok] / (1 - p[ok])), y[ok].astype(np.int64), error_rate=error_rate, slope=True)


def apply_calibration(p_aligned: npt.ArrayLike, calibration: tuple[float, float]) -> npt.NDArray[np.float64]:
    """``σ(a·logit(p) + b)`` (NaN kept) for ``calibration = (a, b)`` of :func:`calibrate_on_labels`."""
    a, b = calibration
    p = np.clip(np.asarray(p_aligned, np.float64), 1e-12, 1 - 1e-12)
    return np.asarray(sigmoid(a * np.log(p / (1 - p)) + b), np.float64)


def second_opinion_gain(p_other: npt.ArrayLike, error_rate: float) -> npt.NDArray[np.float64]:
    """Expected decisions set right by showing each contradicted decision once more.

    ``p_other``: the model's held-out probability of the verdict the reviewer did *not* give;
    ``error_rate``: the reviewer's. The decision is wrong with posterior probability
    ``w = q·e / (q·e + (1 − q)(1 − e))``; a second opinion decides it (two opinions that disagree
    go to the latest, :func:`mmcurate.labels.resolve_opinions`), right with probability ``1 − e``,
    so it sets ``w − e`` decisions right on average (negative: it would do harm).

    Examples
    --------
    >>> second_opinion_gain([0.5, 0.9, 0.99], 0.1).round(3).tolist()
    [0.0, 0.4, 0.817]
    """
    q = np.clip(np.asarray(p_other, np.float64), 0.0, 1.0)
    e = float(np.clip(error_rate, 1e-6, 0.5))
    wrong = q * e / np.maximum(q * e + (1.0 - q) * (1.0 - e), 1e-300)
    return wrong - e


def worth_second_opinions(gains: npt.ArrayLike, queue_p_misaligned: npt.ArrayLike, cap: int) -> int:
    """How many second opinions a batch should take from its queue: each label where it finds most.

    ``gains``: :func:`second_opinion_gain` of the candidates; ``queue_p_misaligned``: P(misaligned)
    of the pairs the queue would pick, in its order. The ``k``-th best second opinion takes the
    place of the queue's ``k``-th last pick and is asked while it sets more decisions right than
    that pick would find misaligned pairs (both count misaligned pairs a person gets right, per
    label), at most ``cap``. Where the queue still finds noise with almost every label, second
    opinions wait for it to thin out; where it has thinned, they take their whole share.

    Examples
    --------
    >>> worth_second_opinions([0.8, 0.6, 0.3], [0.99, 0.9, 0.7, 0.5, 0.4], cap=3)
    2
    >>> worth_second_opinions([0.8, 0.6], [0.99, 0.98, 0.97], cap=2)
    0
    """
    g = np.sort(np.asarray(gains, np.float64))[::-1]
    v = np.asarray(queue_p_misaligned, np.float64)
    n = 0
    for k in range(min(int(cap), len(g), len(v))):
        if not g[k] > v[len(v) - 1 - k]:
            break
        n = k + 1
    return n


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


L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
"""Shrinkage strengths toward the zero-label prior tried by :func:`choose_l2` (more = closer to it)."""

LABEL_NOISE_FLOOR = 0.02
"""The reviewer error rate the model's fit allows for at least (more when audits estimate more):
people err, and before audits can say how often, one wrong decision on a pair the features are
sure about must not pull the model (a fit without the floor let a 10%-wrong reviewer's model
replace the prior and cost 0.16 pool AUROC in a benchmark run)."""

PRIOR_Z = 1.0
"""Leaving the zero-label prior needs a held-out AUROC above the prior's by more than ``PRIOR_Z``
paired-bootstrap standard errors. With a strict win alone, a 10%-wrong reviewer's labels let a
model replace a prior that ranked the pool at AUROC 0.998 and cost 0.16-0.20 of it in report
seeds of the learning benchmark (clip_gap, random swaps); on the hard worlds, where labels teach
something, learned models still win by far more (+0.05-0.10)."""

MIN_RANDOM_LABELS = 15
"""Randomly drawn (explore) labels needed before the labels may speak for the pool: to leave the
zero-label prior (:func:`compare_models`) and to let the export drop pairs by the model's
probabilities. The gate's weights are capped (:data:`MAX_WEIGHT_SHARE`), so with fewer random
labels its AUROC describes the queue's top suspects, not the pool: in round 1 (10 random labels)
of the learning benchmark, a model that won there by 0.15 (1.6 standard errors) lost 0.15 of pool
AUROC."""

GATE_Z = 1.0
"""A new model is refused only when its held-out AUROC is below the model in use's by more than
``GATE_Z`` paired-bootstrap standard errors of the difference (:func:`compare_models`)."""


def cross_fitted_logits(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
                        n_folds: int = 5, random_state: int = 0, fold: npt.ArrayLike | None = None,
                        fold_features: Sequence[AlignmentFeatures] | None = None,
                        l2: float = 1.0, label_noise: float = 0.0) -> npt.NDArray[np.float64]:
    """Logit of P(aligned) of each labelled pair from a calibrator fitted without its fold.

    Folds are stratified by label, or given (``fold``, ``(L,)``). ``fold_features[f]`` are the
    features to fit and predict fold ``f`` with (features after a projection head trained without
    fold ``f``: a head trained on every label would leak them); ``l2`` is the shrinkage toward the
    prior; ``label_noise`` the reviewer's error rate the fit allows for
    (:func:`~mmcurate.signals.alignment.fit_calibrator`). Returns ``(len(indices_labeled),)``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        held = cross_fitted_logits(ctx.features, rows, y)
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
        cal = fit_calibrator(feats, idx[~test], y[~test], l2=l2, label_noise=label_noise)
        out[test] = cal.decision_function(feats.matrix()[idx[test]])
    return out


def _log_loss(logits: np.ndarray, y: np.ndarray, label_noise: float = 0.0) -> float:
    return float(np.mean(noisy_log_loss(logits, y, label_noise)))


def choose_l2(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
              grid: Sequence[float] = L2_GRID, fold: npt.ArrayLike | None = None,
              fold_features: Sequence[AlignmentFeatures] | None = None,
              random_state: int = 0, label_noise: float = 0.0) -> tuple[float, npt.NDArray[np.float64]]:
    """The shrinkage toward the prior with the lowest cross-fitted log loss, and its held-out logits.

    Shrinkage whose strength the labels choose: with few or uninformative labels strong
    shrinkage wins and the model stays near the prior; with many the labels speak. (The
    one-standard-error rule, which prefers stronger shrinkage, was tried and lost pool AUROC in
    later rounds on the seeded test world.) With ``label_noise`` the fits and the loss allow for
    a reviewer who errs at that rate. Returns ``(l2, logits (L,))``.
    """
    idx = np.asarray(indices_labeled, np.int64)
    y = np.asarray(y, np.int64)
    if fold is None:
        fold = stratified_folds(y, max(2, min(5, len(idx))), random_state)
    best: tuple[float, float, np.ndarray] | None = None
    for l2 in grid:
        held = cross_fitted_logits(features, idx, y, fold=fold, fold_features=fold_features, l2=l2,
                                   label_noise=label_noise)
        loss = _log_loss(held, y, label_noise)
        if best is None or loss < best[0] - 1e-12:
            best = (loss, float(l2), held)
    if best is None:
        raise ValueError("grid of shrinkage strengths is empty")
    return best[1], best[2]


@dataclass(frozen=True)
class Validation:
    """The gate's verdict on a new model: AUROCs of P(misaligned) on every label, each label
    scored by a fit that did not see it, weighted by ``1/π``."""

    accepted: bool
    reason: str
    auroc_new: float
    auroc_prior: float
    n_labels: int
    auroc_incumbent: float = float("nan")
    incumbent: str = "prior"
    margin: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_WEIGHT_SHARE = 0.01
"""No label may carry more than this share of the total weight in the gate (weights 1/π
truncated). Untruncated, one reviewer error on a randomly drawn pair of weight ~1,600
set the prior's weighted AUROC to 0.13 in a benchmark run and let a worse model in."""


def truncate_weights(weights: npt.ArrayLike, max_share: float = MAX_WEIGHT_SHARE) -> npt.NDArray[np.float64]:
    """``weights`` capped so that none exceeds ``max_share`` of the (capped) total (at least
    ``2 / len(weights)``, so the cap can always be met).

    Examples
    --------
    >>> round(float(truncate_weights([1.0] * 99 + [1000.0]).max()), 2)
    2.02
    """
    w = np.asarray(weights, np.float64).copy()
    if len(w) == 0:
        return w
    max_share = max(max_share, 2.0 / len(w))
    for _ in range(200):
        cap = max_share * w.sum()
        if (w <= cap * (1 + 1e-12)).all():
            break
        w = np.minimum(w, cap)
    return w


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


def compare_models(new_logits: npt.ArrayLike, incumbent_logits: npt.ArrayLike, y: npt.ArrayLike, *,
                   prior_logits: npt.ArrayLike | None = None, weights: npt.ArrayLike | None = None,
                   incumbent: str = "prior", z: float = GATE_Z, tolerance: float = 0.0,
                   prior_z: float = PRIOR_Z, n_random: int | None = None) -> Validation:
    """Use the new model unless it ranks the labels worse than the model in use, beyond noise.

    Both logit arrays score every labelled pair from fits that did not see it (the new model's
    recipe cross-fitted on every label; the model in use's held-out logits from its own training
    on its labels, its predictions on the labels added since; the prior needs no fit). So
    neither is judged on labels it was fitted on, and the labels the model in use chose for
    itself (its top suspects) weigh the same for both. The
    AUROC is weighted by ``1/π`` (an estimate over the pool), truncated so that no label carries
    more than :data:`MAX_WEIGHT_SHARE` of the total. The new model is refused only when
    its AUROC is below the model in use's by more than ``max(tolerance, z · SE)`` (paired
    bootstrap standard error of the difference): a tie is not a loss, and a difference inside the
    noise never flips the model. The zero-label prior is the exception: it was fitted on no
    label, so leaving it needs evidence, an AUROC higher by more than ``prior_z`` standard errors
    (:data:`PRIOR_Z`; when labels cannot tell the two apart, as when both rank every label right or
    a reviewer's errors blur both, the first model costs pool AUROC in expectation: 0.07 in round 1
    of the seeded test world, 0.16-0.20 with a 10%-wrong reviewer in the benchmark), judged on at
    least :data:`MIN_RANDOM_LABELS` randomly drawn labels when ``n_random`` is given.

    Examples
    --------
    >>> y = [1, 0, 1, 1, 0, 1]
    >>> v = compare_models([2.0, -1.0, 1.5, 1.2, -0.4, 0.9], [1.0, 0.5, -0.2, 0.8, 0.1, 0.2], y)
    >>> v.accepted, round(v.auroc_new, 3), round(v.auroc_incumbent, 3)
    (True, 1.0, 0.625)
    >>> same = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    >>> compare_models(same, same, y, incumbent="model 3").accepted  # a tie is not a loss
    True
    """
    y = np.asarray(y, np.int64)
    w = np.ones(len(y)) if weights is None else truncate_weights(weights)
    new_l, inc_l = np.asarray(new_logits, np.float64), np.asarray(incumbent_logits, np.float64)
    new, inc = _weighted(new_l, y, w), _weighted(inc_l, y, w)
    prior = _weighted(np.asarray(prior_logits, np.float64), y, w) if prior_logits is not None else (
        inc if incumbent == "prior" else float("nan"))
    base: dict[str, Any] = {"auroc_new": new, "auroc_prior": prior, "n_labels": len(y),
                            "auroc_incumbent": inc, "incumbent": incumbent}
    if not np.isfinite(new) or not np.isfinite(inc):
        return Validation(False, "the labels hold only one class: nothing to validate against", **base)
    se = paired_auroc_se(new_l, inc_l, y, w) if max(z, prior_z) > 0 else 0.0
    margin = max(float(tolerance), z * (se if np.isfinite(se) else 0.0))
    what = "the zero-label prior" if incumbent == "prior" else f"the model in use ({incumbent})"
    if incumbent == "prior":
        # leaving the label-free prior needs evidence: the labels must rank better with the model
        need = prior_z * (se if np.isfinite(se) else 0.0)
        if n_random is not None and n_random < MIN_RANDOM_LABELS:
            return Validation(False, f"held-out AUROC {new:.4f} vs {what}'s {inc:.4f} on {len(y)} labels, "
                                     f"{n_random} of them drawn at random (< {MIN_RANDOM_LABELS}): "
                                     f"too few to judge the pool, the prior stays", margin=need, **base)
        if new <= inc + need:
            return Validation(False, f"held-out AUROC {new:.4f} does not beat {what}'s {inc:.4f} by more "
                                     f"than {need:.4f} ({prior_z:g} standard errors): the labels show no "
                                     f"gain yet, the prior stays", margin=need, **base)
        return Validation(True, f"held-out AUROC {new:.4f} beats {what}'s {inc:.4f} by more than {need:.4f} "
                                f"({prior_z:g} standard errors)", margin=need, **base)
    if new < inc - margin:
        return Validation(False, f"held-out AUROC {new:.4f} is below {what}'s {inc:.4f} by more than "
                                 f"{margin:.4f} ({z:g} standard errors): it stays", margin=margin, **base)
    word = "ties" if abs(new - inc) <= margin else "beats"
    return Validation(True, f"held-out AUROC {new:.4f} {word} {what}'s {inc:.4f} (a model is refused only "
                            f"when below by more than {margin:.4f})", margin=margin, **base)


PRIOR_AGREEMENT = 0.5
"""A new model is refused when its ranking of the whole pool, scored against the zero-label
prior's own probabilities (:func:`prior_implied_auroc`), is no better than chance. In the learning
benchmark's extra tune runs (clip_hard and mixed, seeds 5-9), three models fitted on 200-300
labels from a 10%-wrong reviewer won the gate on the labels yet ranked the holdout 0.10-0.28 AUROC
below the prior; their prior-implied AUROCs were 0.31, 0.31 and 0.497 (close to the line). Every
other model used in those runs, in every round, scored 0.67 or more, those that gained (up to
+0.08) included."""


def prior_implied_auroc(p_misaligned_model: npt.ArrayLike, p_aligned_prior: npt.ArrayLike,
                        weights: npt.ArrayLike | None = None) -> float:
    """AUROC of a model's P(misaligned) over the pool if the prior's probabilities were the truth.

    Each pair counts as misaligned with weight ``1 − p`` and as aligned with weight ``p`` (``p``
    the prior's P(aligned)), times its ``weights`` (default 1; e.g. the gate's label weights, for
    a set of labelled pairs). 0.5 means the model's order is unrelated to the prior's beliefs;
    below, it ranks the pairs the prior trusts above those it doubts. No labels needed.

    Examples
    --------
    >>> p = [0.9, 0.8, 0.2, 0.1]
    >>> with_prior, against = [0.1, 0.2, 0.8, 0.9], [0.9, 0.8, 0.2, 0.1]
    >>> round(prior_implied_auroc(with_prior, p), 3), round(prior_implied_auroc(against, p), 3)
    (0.875, 0.125)
    >>> round(prior_implied_auroc(with_prior, p, weights=[1, 0, 0, 1]), 3)  # pairs 0 and 3 only
    0.9
    """
    score = np.asarray(p_misaligned_model, np.float64)
    p = np.clip(np.asarray(p_aligned_prior, np.float64), 0.0, 1.0)
    n = len(score)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    return auroc(np.r_[score, score], np.r_[np.ones(n, bool), np.zeros(n, bool)],
                 sample_weight=np.r_[w * (1 - p), w * p])


PRIOR_LOSS_TOLERANCE = 0.05
"""A model may not leave the zero-label prior when :func:`estimated_pool_change` says it would
cost the pool more than this much AUROC. The estimate leans on the prior's probabilities and is
pessimistic (on the learning benchmark's tune runs, 29 departures that changed the holdout by
less than 0.002 were estimated at -0.24 to +0.07, 3 of them below -0.05), hence a tolerance
rather than zero. Replaying every departure from the prior in those runs (seeds 0-1 and 5-9, 82
models), it refuses 11 of the 14 that cost the holdout more than 0.005 AUROC (up to 0.084) and 4
of the 31 that gained more than 0.005. Through the loop, with :data:`STRONG_EVIDENCE_Z`, the runs
that lose more than 0.005 in some round fell from 17 to 10 of 98 (recall minus the reference's
-0.0039 -> -0.0043 on average), and on five fresh seeds run for the first time to judge it
(10-14, 70 runs) from 18 to 11 (-0.0052 -> -0.0055)."""


STRONG_EVIDENCE_Z = 3.0
"""A model whose win over the prior on the labels is at least this many standard errors leaves the
prior whatever :func:`estimated_pool_change` says: where the prior's probabilities are
overconfident, its predicted loss is no evidence against labels that clearly disagree. Chosen
from a report-seed run of the learning benchmark (clip_hard, random swaps: without it, the prior
stayed nine rounds while the labels showed the model better by up to 3.5 standard errors, and
recall fell 0.028 further behind the reference) and then judged on fresh seeds (10-14)."""


def estimated_pool_change(mis_score_pool: npt.ArrayLike, p_aligned_prior: npt.ArrayLike,
                          labelled: npt.ArrayLike, held_mis_score: npt.ArrayLike,
                          prior_mis_score: npt.ArrayLike, observed_gain: float,
                          weights: npt.ArrayLike | None = None) -> float:
    """Pool AUROC change of leaving the prior for a model: the prior's prediction, corrected by
    how wrong the same prediction is on the labels (a difference estimator).

    The prior predicts the change over the pool (:func:`prior_implied_auroc` of the model minus
    the prior's own) and over the labelled pairs (``labelled`` rows, the model's held-out scores
    ``held_mis_score`` against the prior's ``prior_mis_score``, ``weights`` as in the gate); the
    labels show ``observed_gain`` (held-out AUROC, model minus prior). Returns
    ``pool prediction + (observed_gain − labels prediction)``: where the labels show the prior
    wrong about the move, its pool prediction is corrected by as much.

    Examples
    --------
    A model that reverses the prior's order, on pairs 0 and 3 labelled: if the labels show it
    losing there as much as the prior predicts (-0.8), the pool estimate is the prior's (-0.75);
    if they show it no worse than the prior, the prior's prediction is discredited by as much.

    >>> p = np.array([0.9, 0.8, 0.2, 0.1])
    >>> prior, reverse, rows = 1 - p, p, [0, 3]
    >>> round(estimated_pool_change(reverse, p, rows, reverse[rows], prior[rows], -0.8), 3)
    -0.75
    >>> round(estimated_pool_change(reverse, p, rows, reverse[rows], prior[rows], 0.0), 3)
    0.05
    """
    p = np.clip(np.asarray(p_aligned_prior, np.float64), 0.0, 1.0)
    rows = np.asarray(labelled, np.int64)
    pred_pool = prior_implied_auroc(mis_score_pool, p) - prior_implied_auroc(1 - p, p)
    pred_labels = (prior_implied_auroc(held_mis_score, p[rows], weights)
                   - prior_implied_auroc(prior_mis_score, p[rows], weights))
    return float(pred_pool + observed_gain - pred_labels)


def fit_validated(features: AlignmentFeatures, indices_labeled: npt.ArrayLike, y: npt.ArrayLike, *,
                  prior_features: AlignmentFeatures | None = None, weights: npt.ArrayLike | None = None,
                  incumbent_logits: npt.ArrayLike | None = None, incumbent: str = "prior",
                  random_state: int = 0, fold: npt.ArrayLike | None = None,
                  fold_features: Sequence[AlignmentFeatures] | None = None, z: float = GATE_Z,
                  tolerance: float = 0.0, label_noise: float = LABEL_NOISE_FLOOR,
                  n_random: int | None = None) -> tuple[Calibrator, Validation, npt.NDArray[np.float64]]:
    """Fit a calibrator on the labels (shrinkage chosen by :func:`choose_l2`) and judge it.

    ``incumbent_logits`` are the model in use's held-out logits on the labels (default: the
    prior's, read from ``prior_features`` or ``features``); ``fold``/``fold_features`` as in
    :func:`cross_fitted_logits` (for a model on a head); ``label_noise`` the reviewer error rate
    the fit allows for (at least :data:`LABEL_NOISE_FLOOR` is advised). Returns the calibrator, the verdict of
    :func:`compare_models` and the new model's held-out logits; whoever ranks uses the calibrator
    only if ``verdict.accepted``. The verdict is also a refusal when the model ranks the pool
    against the prior (:data:`PRIOR_AGREEMENT`) or, leaving the prior, when
    :func:`estimated_pool_change` is below ``-``:data:`PRIOR_LOSS_TOLERANCE` and the labels' win
    is under :data:`STRONG_EVIDENCE_Z` standard errors.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        cal, verdict, held = fit_validated(ctx.features, rows, y)
    """
    idx = np.asarray(indices_labeled, np.int64)
    y = np.asarray(y, np.int64)
    if fold is None:
        fold = stratified_folds(y, max(2, min(5, len(idx))), random_state)
    l2, held = choose_l2(features, idx, y, fold=fold, fold_features=fold_features, label_noise=label_noise)
    calibrator = fit_calibrator(features, idx, y, l2=l2, label_noise=label_noise)
    prior = prior_logits(features if prior_features is None else prior_features, idx)
    inc = prior if incumbent_logits is None else np.asarray(incumbent_logits, np.float64)
    verdict = compare_models(held, inc, y, prior_logits=prior, weights=weights,
                             incumbent="prior" if incumbent_logits is None else incumbent, z=z,
                             tolerance=tolerance, n_random=n_random, prior_z=PRIOR_Z)
    if verdict.accepted:
        pool = prior_features if prior_features is not None else features
        p_prior = prior_calibrator(pool).predict_proba(pool)
        mis_score = -calibrator.decision_function(features.matrix())
        agreement = prior_implied_auroc(mis_score, p_prior)
        if agreement < PRIOR_AGREEMENT:
            verdict = replace(verdict, accepted=False, reason=(
                f"{verdict.reason}, but it ranks the pool against the zero-label prior (AUROC "
                f"{agreement:.3f} with the prior's probabilities as truth, < {PRIOR_AGREEMENT:g}): "
                f"what it learned on the labelled pairs does not carry to the rest, it is not used"))
        elif incumbent_logits is None:
            change = estimated_pool_change(
                mis_score, p_prior, idx, -held, -prior, verdict.auroc_new - verdict.auroc_incumbent,
                None if weights is None else truncate_weights(weights))
            se = verdict.margin / PRIOR_Z if PRIOR_Z > 0 else 0.0
            # no standard error, no override
            z_win = (verdict.auroc_new - verdict.auroc_incumbent) / se if se > 0 else float("nan")
            if not np.isfinite(change):  # e.g. the prior sure of every labelled pair: no estimate
                verdict = replace(verdict, reason=f"{verdict.reason} (no estimate of its pool change)")
            elif change < -PRIOR_LOSS_TOLERANCE and z_win >= STRONG_EVIDENCE_Z:
                verdict = replace(verdict, reason=(
                    f"{verdict.reason}; the pool AUROC it would change is estimated at {change:+.3f}, "
                    f"but a win of {z_win:.1f} standard errors on the labels (>= {STRONG_EVIDENCE_Z:g}) "
                    f"outweighs the prior's prediction"))
            elif change < -PRIOR_LOSS_TOLERANCE:
                verdict = replace(verdict, accepted=False, reason=(
                    f"{verdict.reason}, but the pool AUROC it would change is estimated at "
                    f"{change:+.3f} (the prior's prediction corrected by its error on the labels; "
                    f"below -{PRIOR_LOSS_TOLERANCE:g}): a win under {STRONG_EVIDENCE_Z:g} standard "
                    f"errors on the labels for a large move away from the prior, the prior stays"))
    return calibrator, verdict, held


def platt_ipw(held_logits: npt.ArrayLike, y: npt.ArrayLike, *, weights: npt.ArrayLike | None = None,
              error_rate: float = 0.0, slope: bool = False, l2: float = 1.0) -> tuple[float, float]:
    """Recalibration ``σ(a·logit + b)`` fitted on held-out logits, weighted by ``1/π``.

    The weights make the fit describe the pool, not the queue's suspects (the random share
    carries the weight of the pairs it stands for). By default only the shift ``b`` is fitted
    (``a = 1``): the queue's labels are mostly suspects, which biases a fit's intercept, and a
    shift is what ~100 random labels can pin down; a free slope fitted on 20 random labels
    steepened the logits (``a`` 1.8) and made the clean end overconfident (measured on the
    seeded test world), so ``slope=True`` is opt-in. ``error_rate`` ``e``: the chance a recorded
    decision is wrong; the observed label is modelled as ``e + (1 − 2e)·σ(a·l + b)``, so a
    reviewer's mistakes do not pull every probability toward 0.5. ``l2`` keeps ``(a, b)`` near
    ``(1, 0)`` when the labels say little. Returns ``(a, b)``; ``a > 0`` (the ranking's order
    is unchanged).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> logit = rng.normal(0, 3, 4000)
    >>> y = (rng.random(4000) < 1 / (1 + np.exp(-(logit + 1)))).astype(int)
    >>> a, b = platt_ipw(logit, y)
    >>> a, bool(abs(b - 1.0) < 0.2)
    (1.0, True)
    >>> a, b = platt_ipw(logit * 2, y, slope=True)  # the logits twice too steep: a ≈ 0.5
    >>> bool(abs(a - 0.5) < 0.05 and abs(b - 1.0) < 0.2)
    True
    """
    lg = np.asarray(held_logits, np.float64)
    y = np.asarray(y, np.float64)
    # untruncated: truncating here leaned the shift on the queue's suspects (too pessimistic; clean
    # pairs kept fell to 0.907 in the benchmark's worst seeds)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    if len(y) == 0 or len(np.unique(y)) < 2:
        return 1.0, 0.0
    w = w * len(w) / w.sum()
    e = float(np.clip(error_rate, 0.0, 0.45))

    def nll(v: np.ndarray) -> float:
        a = v[0] if slope else 1.0
        # the noisy link e + (1 - 2e)·σ(z) in one division, not (1 - 2e) * _util.sigmoid(z): that rounds
        # differently and could move the fit (and the label-dependent scores pinned on it) in the last bits
        p = e + (1 - 2 * e) / (1 + np.exp(-np.clip(a * lg + v[-1], -40, 40)))
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum()
                     + 0.5 * l2 * ((a - 1) ** 2 + v[-1] ** 2))

    start = np.array([1.0, 0.0]) if slope else np.array([0.0])
    low, high = (np.array([0.05, -30.0]), np.array([20.0, 30.0])) if slope else (np.array([-30.0]),
                                                                                np.array([30.0]))
    x = _newton_small(nll, start, low, high)
    return (float(x[0]) if slope else 1.0), float(x[-1])


def _newton_small(f, x0: np.ndarray, low: np.ndarray, high: np.ndarray, *, n_iter: int = 60,
                  h: float = 1e-4) -> np.ndarray:
    """Minimise a smooth function of one or two parameters inside a box: Newton steps with a
    central-difference gradient and Hessian, a backtracking line search, and a gradient step
    when the Hessian is not positive definite (numpy only)."""
    x = np.clip(np.asarray(x0, np.float64), low, high)
    fx = f(x)
    eye = np.eye(len(x))
    for _ in range(n_iter):
        grad = np.array([(f(x + h * d) - f(x - h * d)) / (2 * h) for d in eye])
        hess = np.array([[(f(x + h * a + h * b) - f(x + h * a - h * b) - f(x - h * a + h * b)
                           + f(x - h * a - h * b)) / (4 * h * h) for b in eye] for a in eye])
        try:
            step = np.linalg.solve(hess, grad) if np.all(np.linalg.eigvalsh(hess) > 1e-12) else grad
        except np.linalg.LinAlgError:
            step = grad
        t = 1.0
        while t > 1e-8:
            candidate = np.clip(x - t * step, low, high)
            fc = f(candidate)
            if fc <= fx:
                break
            t *= 0.5
        else:
            break
        if fx - fc < 1e-10 * max(1.0, abs(fx)):
            x, fx = candidate, fc
            break
        x, fx = candidate, fc
    return x


def recalibrated(cal: Calibrator, a: float, b: float) -> Calibrator:
    """``cal`` with its logit mapped to ``a·logit + b`` (same ranking for ``a > 0``)."""
    weights = np.asarray(cal.weights, np.float64) * a
    weights[-1] += b
    return Calibrator(cal.mean, cal.scale, weights, cal.n_labels, cal.l2)


def calibrator_to_dict(cal: Calibrator) -> dict[str, Any]:
    """A JSON-ready record of a calibrator."""
    return {"mean": cal.mean.tolist(), "scale": cal.scale.tolist(), "weights": cal.weights.tolist(),
            "n_labels": int(cal.n_labels), "l2": float(cal.l2)}


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """The calibrator recorded by :func:`calibrator_to_dict`."""
    return Calibrator(np.asarray(data["mean"], np.float64), np.asarray(data["scale"], np.float64),
                      np.asarray(data["weights"], np.float64), int(data.get("n_labels", 0)),
                      float(data.get("l2", 1.0)))


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


CLEAN_KEPT = 0.95
"""Share of the clean pairs the automatic export threshold must keep (:func:`clean_floor`)."""

FLOOR_Z = 1.96
"""Margin of :func:`clean_floor`, in standard errors of its estimate: the threshold keeps
:data:`CLEAN_KEPT` of the clean pairs with about 97.5% confidence (one-sided)."""


def clean_floor(p_aligned: npt.ArrayLike, undecided: npt.ArrayLike, clean: npt.ArrayLike,
                shown_round: npt.ArrayLike, queued_round: npt.ArrayLike, draw_rows: npt.ArrayLike,
                draw_round: npt.ArrayLike, draw_inclusion: npt.ArrayLike, *, held_back: float = 0.0,
                keep: float = CLEAN_KEPT, z: float = FLOOR_Z) -> dict[str, Any]:
    """The highest threshold on P(aligned) that keeps ``keep`` of the clean pairs, with a margin.

    The clean pairs still undecided below ``t`` are estimated round by round from that round's
    random draws (difference estimator): the model's expected count over the pairs the round's
    draw could reach, plus the Horvitz-Thompson total of the draws' residuals (decision − P), minus
    the clean pairs of that population decided since; the rounds' estimates are averaged and their
    variances give the standard error: each round's the larger of its Hansen-Hurwitz variance and
    a model-assisted one (the draws' ``p(1 − p)(1 − π)/π²`` summed below ``t``). The first holds
    whatever the model's calibration but comes out near zero when a round's few draws miss the
    rare clean pairs at low P: on the learning benchmark's kept runs (175, perfect reviewer; ``t``
    0.3, 0.5, 0.7) it alone left the truth above estimate + 1.96 SE in 9.7%, 6.9% and 2.3% of them
    (nominal 2.5%), the larger of the two in 0.6%, 0.6% and 1.1%.
    The estimate is unbiased by the sampling design whatever the model's calibration, and the
    decided pairs need no reweighting for the queue that thinned the pool after a draw (the
    weighted 5th percentile of the random accepts did, and kept far more
    clean pairs, and noise, than asked). ``t`` is the highest P(aligned) of an undecided pair up to
    which every candidate meets ``estimate + z·SE + held_back <= (1 − keep) · clean pairs`` (the
    lowest when none does: every undecided pair kept). Pairs the draws could not reach (excluded
    from selection, or kept out of batches as group members) count by their P(aligned) alone.

    Parameters
    ----------
    p_aligned : (N,) array
        P(aligned) of every pair (the threshold's scale); NaN: never below a threshold.
    undecided : (N,) bool
        Pairs without a decision: those the threshold keeps or drops.
    clean : (N,) array
        1 for a decided pair reviewers accepted, else 0 (ignored where undecided).
    shown_round, queued_round : (N,) arrays
        Round a pair was first shown or decided (inf: never; a decision without a round: 0), and
        the round its queue picked it (inf: never). The draw of round ``r`` reached the pairs shown
        in round ``r`` or later, less those the queue picked in round ``r``.
    draw_rows, draw_round, draw_inclusion : (n,) arrays
        The decided random draws: row, round and inclusion probability π (a round with undecided
        draws must be left out whole: its total would lose their residuals).
    held_back : float
        Clean decided pairs the export does not keep (accepted, but disputed).
    keep, z : float
        The share of clean pairs to keep, and the margin in standard errors.

    Returns
    -------
    dict
        ``threshold`` (None with fewer than 10 draws in rounds of two or more), ``n`` (draws used),
        ``rounds``, ``est_clean`` (clean pairs), ``est_clean_undecided``, ``est_clean_dropped``
        (clean undecided pairs below the threshold), ``se`` (its standard error), ``keep``, ``z``
        and ``est_clean_kept`` (share of the clean pairs kept, margin not counted).

    Examples
    --------
    Two rounds each draw 10 of 100 pairs (π = 0.1), half of them among the 50 pairs at P(aligned)
    0.3. When 2 of those 10 are clean, dropping the pairs at 0.3 would drop about 8 of about 60
    clean pairs, so the floor keeps them. When none is, the estimate is about 0 but 10 draws leave
    a margin of about 7 pairs: only without the margin (``z=0``) are they dropped:

    >>> p = np.r_[np.full(50, 0.3), np.full(50, 0.9)]
    >>> drawn, rounds = np.r_[0:5, 50:55, 5:10, 55:60], np.repeat([1, 2], 10)
    >>> undecided = np.ones(100, bool); undecided[drawn] = False
    >>> shown = np.full(100, np.inf); shown[drawn] = rounds
    >>> clean = np.zeros(100); clean[50:60] = 1
    >>> args = (shown, np.full(100, np.inf), drawn, rounds, np.full(20, 0.1))
    >>> clean_floor(p, undecided, np.where(np.arange(100) % 5 == 0, 1.0, clean), *args)["threshold"]
    0.3
    >>> [clean_floor(p, undecided, clean, *args, z=z)["threshold"] for z in (FLOOR_Z, 0.0)]
    [0.3, 0.9]
    """
    p = np.asarray(p_aligned, np.float64)
    open_ = np.asarray(undecided, bool)
    out: dict[str, Any] = {"threshold": None, "keep": float(keep), "z": float(z)}
    cand = np.unique(p[open_ & np.isfinite(p)])
    curve = clean_below(p, open_, clean, shown_round, queued_round, draw_rows, draw_round, draw_inclusion,
                        cand)
    out.update(n=curve["n"], rounds=curve["rounds"])
    if curve["clean"] is None or len(cand) == 0:
        return out
    dropped, se, clean_total = curve["dropped"], curve["se"], curve["clean"]
    # the estimate is noisy, not monotone: stop below the first threshold that breaks the rule
    fails = np.flatnonzero(dropped + z * se + held_back > (1.0 - keep) * clean_total)
    i = max(int(fails[0]) - 1, 0) if len(fails) else len(cand) - 1
    kept = 1.0 - (dropped[i] + held_back) / clean_total if clean_total > 0 else float("nan")
    out.update(threshold=float(cand[i]), est_clean=clean_total, est_clean_undecided=curve["clean_undecided"],
               est_clean_dropped=float(dropped[i]), se=float(se[i]), est_clean_kept=float(kept))
    return out


def clean_below(p_aligned: npt.ArrayLike, undecided: npt.ArrayLike, clean: npt.ArrayLike,
                shown_round: npt.ArrayLike, queued_round: npt.ArrayLike, draw_rows: npt.ArrayLike,
                draw_round: npt.ArrayLike, draw_inclusion: npt.ArrayLike, thresholds: npt.ArrayLike,
                *, variance: Literal["larger", "design", "assisted"] = "larger") -> dict[str, Any]:
    """The clean undecided pairs with P(aligned) below each threshold, estimated from the random
    draws, with standard errors (the estimator of :func:`clean_floor`, whose parameters these are).

    ``variance``: each round's variance is the ``larger`` of the Hansen-Hurwitz (``design``) and
    the model-assisted (``assisted``) one, as the floor uses it; the other two are for checking
    it (``scripts/check_floor_se.py``).

    Returns
    -------
    dict
        ``n`` and ``rounds`` (draws and rounds used: rounds of two or more draws); with at least
        10 draws also ``dropped`` and ``se`` (arrays over ``thresholds``, ascending), ``clean``
        (clean pairs, decided and undecided) and ``clean_undecided``; else ``clean`` is None.
    """
    if variance not in ("larger", "design", "assisted"):
        raise ValueError(f"variance must be larger, design or assisted, not {variance!r}")
    p = np.asarray(p_aligned, np.float64)
    open_ = np.asarray(undecided, bool)
    y = np.where(open_, 0.0, np.asarray(clean, np.float64))
    shown = np.asarray(shown_round, np.float64)
    queued = np.asarray(queued_round, np.float64)
    rows = np.asarray(draw_rows, np.int64)
    d_round = np.asarray(draw_round, np.float64)
    d_pi = np.asarray(draw_inclusion, np.float64)
    t = np.asarray(thresholds, np.float64)
    finite = np.isfinite(p)
    used = np.isfinite(p[rows]) & (d_pi > 0)
    counts = {r: int((d_round[used] == r).sum()) for r in np.unique(d_round[used])}
    rounds = [r for r, n in counts.items() if n >= 2]
    out: dict[str, Any] = {"n": sum(counts[r] for r in rounds), "rounds": len(rounds), "clean": None}
    if out["n"] < 10:
        return out
    k = len(t)
    # each pair counts for the thresholds above its p: those from this position on
    at_pos = np.searchsorted(t, np.where(finite, p, np.inf), side="right")

    def below(mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Per threshold: the sum of ``weights`` over ``mask`` with p below it."""
        m = mask & finite
        return np.cumsum(np.bincount(at_pos[m], weights=weights[m], minlength=k + 1))[:k]

    est, var, totals = np.zeros(k), np.zeros(k), []
    for r in rounds:
        pool = (shown >= r) & (queued != r)  # what this round's draw could reach
        at = used & (d_round == r)
        u = (y[rows[at]] - p[rows[at]]) / d_pi[at]  # the draws' residuals, expanded
        n = int(at.sum())
        pos = at_pos[rows[at]]
        b = np.cumsum(np.bincount(pos, weights=u, minlength=k + 1))[:k]
        b2 = np.cumsum(np.bincount(pos, weights=u * u, minlength=k + 1))[:k]
        est += below(pool, p) + b - below(pool & ~open_, y) + below(open_ & ~pool, p)
        design = np.maximum(n * b2 - b * b, 0.0) / (n - 1)  # Hansen-Hurwitz
        # model-assisted: each draw's Bernoulli variance p(1 - p) at its P, expanded (Poisson sampling);
        # it does not vanish when a round's few draws happen to miss the rare clean pairs at low P
        q, pi = p[rows[at]], d_pi[at]
        assisted = np.cumsum(np.bincount(pos, weights=q * (1 - q) * (1 - pi) / pi ** 2, minlength=k + 1))[:k]
        var += {"larger": np.maximum(design, assisted), "design": design, "assisted": assisted}[variance]
        totals.append(float(p[pool & finite].sum() + u.sum() - y[pool & ~open_].sum()
                            + p[open_ & ~pool & finite].sum()))
    m = len(rounds)
    clean_undecided = max(float(np.mean(totals)), 0.0)
    out.update(dropped=est / m, se=np.sqrt(var) / m, clean=float(y[~open_].sum()) + clean_undecided,
               clean_undecided=clean_undecided)
    return out


def reliability(p_aligned: npt.ArrayLike, aligned: npt.ArrayLike, weights: npt.ArrayLike, *,
                edges: Sequence[float] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 1.0)) -> list[dict[str, Any]]:
    """A reliability table: per bin of P(aligned), the labels' weighted mean prediction and the
    observed aligned share (weights ``1/π``), with a Wilson interval at Kish's effective size.

    Examples
    --------
    >>> rows = reliability([0.1, 0.2, 0.9, 0.99], [0, 0, 1, 1], [1, 1, 1, 1], edges=(0, 0.5, 1))
    >>> [(r["n"], round(r["predicted"], 3), r["observed"]) for r in rows]
    [(2, 0.15, 0.0), (2, 0.945, 1.0)]
    """
    p = np.asarray(p_aligned, np.float64)
    a = np.asarray(aligned, np.float64)
    w = np.asarray(weights, np.float64)
    out = []
    for lo, hi in itertools.pairwise(edges):
        m = (p >= lo) & ((p < hi) | (hi >= 1.0)) & np.isfinite(p)
        if not m.any():
            continue
        ww = w[m]
        observed = float((ww * a[m]).sum() / ww.sum())
        n_eff = float(ww.sum() ** 2 / (ww * ww).sum())
        low, high = wilson_interval(observed * n_eff, n_eff)
        out.append({"bin": f"{lo:g}-{hi:g}", "n": int(m.sum()),
                    "predicted": float((ww * p[m]).sum() / ww.sum()), "observed": observed, "low": low,
                    "high": high})
    return out


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
