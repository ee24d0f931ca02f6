"""A reviewer who errs, and the greedy logistic reference loop the learning benchmark compares with.

:class:`Reviewer` answers from the truth and flips each answer with probability ``error``. Its
flips are drawn up front per (pair, showing), so two loops that show the same pair for the k-th
time get the same answer: the CLI loop and the reference see the same reviewer.

:func:`reference_loop` is the ~30-line baseline of issue 22: mmcurate's alignment features
(``RankContext(...).features``), round 0 = the pairs the zero-label prior trusts least, then each
round a scikit-learn ``LogisticRegression`` on standardised features refitted on every decision so
far, queue = the highest P(misaligned) among pairs never shown. scikit-learn is a dev dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from mmcurate.learn import exploration_draw, split_budget
from mmcurate.rank import RankContext
from mmcurate.signals.alignment import prior_calibrator

__all__ = ["ReferenceRun", "Reviewer", "reference_loop"]

_MAX_SHOWINGS = 8


class Reviewer:
    """Oracle decisions with independent errors: ``decide(rows)`` → True = reject (misaligned).

    Examples
    --------
    >>> r = Reviewer(np.array([True, False]), error=0.0, random_state=0)
    >>> r.decide(np.array([0, 1])).tolist()
    [True, False]
    """

    def __init__(self, noisy: npt.ArrayLike, *, error: float, random_state: int) -> None:
        self.noisy = np.asarray(noisy, bool)
        rng = np.random.default_rng(random_state)
        self.flips = rng.random((len(self.noisy), _MAX_SHOWINGS)) < error
        self.showings = np.zeros(len(self.noisy), np.int64)

    def decide(self, rows: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """One answer per row in order; a pair shown again gets its next (independent) draw."""
        out = np.empty(len(np.asarray(rows)), bool)
        for i, row in enumerate(np.asarray(rows, np.int64)):
            flip = self.flips[row, self.showings[row] % _MAX_SHOWINGS]
            self.showings[row] += 1
            out[i] = self.noisy[row] != flip
        return out


@dataclass
class ReferenceRun:
    """Per round 0..R: rows shown in that round, and P(misaligned) of the model after it."""

    shown: list[npt.NDArray[np.int64]] = field(default_factory=list)
    scores: list[npt.NDArray[np.float64]] = field(default_factory=list)


def alignment_features(image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mmcurate's zero-label features ``(N, F)`` and the prior's P(aligned) ``(N,)``."""
    ctx = RankContext(image, text, indices_labeled=None, labels=None, k=10, random_state=0)
    return ctx.features.matrix(), prior_calibrator(ctx.features).predict_proba(ctx.features)


def reference_loop(features: np.ndarray, prior_aligned: np.ndarray, reviewer: Reviewer, *, rounds: int,
                   budget: int, exclude: np.ndarray | None = None, explore: float = 0.0,
                   plan: Sequence[tuple[int, int]] | None = None, random_state: int = 0) -> ReferenceRun:
    """Greedy logistic loop: ``rounds`` batches of ``budget`` pairs, refitted on all decisions;
    rows in ``exclude`` (bool ``(N,)``, a held-out evaluation set) are never queued.

    ``explore``: the share of each batch drawn at random from the pairs the queue left
    (:func:`mmcurate.learn.split_budget`) the way mmcurate's loop draws its exploration
    (:func:`mmcurate.learn.exploration_draw`: a quarter uniform, the rest in proportion to this
    loop's P(misaligned)); 0 (the issue's reference) queues the whole batch. ``plan``: per round
    ``(queued, drawn at random)`` instead (e.g. what another loop spent), overriding ``rounds``,
    ``budget`` and ``explore``. Both measure what labels spent off the queue cost a greedy loop
    (``scripts/reference_share.py``)."""
    from sklearn.linear_model import LogisticRegression  # heavy: sklearn
    from sklearn.pipeline import make_pipeline  # heavy: sklearn
    from sklearn.preprocessing import StandardScaler  # heavy: sklearn

    rng = np.random.default_rng(random_state)
    run = ReferenceRun()
    p_mis = 1.0 - np.asarray(prior_aligned, float)
    run.scores.append(p_mis)
    seen = np.zeros(len(features), bool)
    blocked = seen.copy() if exclude is None else np.asarray(exclude, bool).copy()
    rows_all: list[int] = []
    y_all: list[bool] = []
    split = split_budget(budget, explore)
    for n_queue, n_random in (plan if plan is not None else [split] * rounds):
        candidates = np.flatnonzero(~seen & ~blocked)
        queue = candidates[np.argsort(-p_mis[candidates], kind="stable")[:n_queue]]
        shown = queue.astype(np.int64)
        if n_random:  # drawn from the pairs the queue left, as mmcurate's loop explores
            rest = np.setdiff1d(candidates, queue)
            shown = np.r_[shown, rest[exploration_draw(p_mis[rest], n_random, rng)[0]]]
        seen[shown] = True
        rows_all += shown.tolist()
        y_all += reviewer.decide(shown).tolist()
        y = np.asarray(y_all)
        if 0 < y.sum() < len(y):  # both classes decided: refit, else keep the last model
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            model.fit(features[rows_all], y)
            p_mis = model.predict_proba(features)[:, 1]
        run.shown.append(shown)
        run.scores.append(p_mis)
    return run
