"""Stream-based selection: decide for each arriving pair whether to queue it for review or pass it.

The scenario (Settles 2009, §2.2 "stream-based selective sampling"): pairs arrive a batch at a
time and each must be queued or let through on arrival, at a target review rate (e.g. 5% of
arrivals). A fixed score threshold drifts off that rate as soon as the score distribution moves
(a new source, a retrained head). Here each arriving score is first standardised by an
exponentially weighted running mean and standard deviation (updated with the arriving batch
before deciding, so location and scale drift are absorbed at once), and the threshold is the
``1 - rate`` quantile of the standardised scores in a sliding window of recent arrivals, with a
feedback term that pulls the realised rate back to the target:

    z = (s - m_b) / sd_b,   t_b = quantile_{1 - r_b}(window of z),
    r_b = clip(r* + gain * (r* - realised_rate), r*/4, 4 r*)

Pure numpy; no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AdaptiveThreshold"]


@dataclass
class AdaptiveThreshold:
    """Queue roughly ``target_rate`` of arrivals: the highest-scoring ones relative to recent scores.

    Parameters
    ----------
    target_rate : float
        Fraction of arrivals to queue for review, in (0, 1).
    window : int
        Number of recent scores the quantile is taken over.
    gain : float
        Feedback strength correcting the realised rate toward the target.
    memory : int
        Arrivals over which the running mean/std forget (their EWMA weight is n / (n + memory)).

    Examples
    --------
    >>> th = AdaptiveThreshold(0.1)
    >>> mask = th.update(np.linspace(0, 1, 100))
    >>> int(mask.sum())
    10
    """

    target_rate: float
    window: int = 5000
    gain: float = 0.5
    memory: int = 100
    n_seen: int = 0
    n_queued: int = 0
    threshold: float = float("nan")
    _recent: deque = field(default_factory=deque, repr=False)
    _mean: float = float("nan")
    _var: float = float("nan")

    def __post_init__(self) -> None:
        if not 0.0 < self.target_rate < 1.0:
            raise ValueError(f"target_rate must be in (0, 1), got {self.target_rate}")
        self._recent = deque(maxlen=self.window)

    @property
    def realised_rate(self) -> float:
        return self.n_queued / self.n_seen if self.n_seen else self.target_rate

    @property
    def score_threshold(self) -> float:
        """The latest threshold in score units (``m + t * sd``); NaN before the first batch."""
        if np.isnan(self.threshold):
            return float("nan")
        return float(self._mean + self.threshold * max(np.sqrt(self._var), 1e-12))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (parameters, counts, running moments, the recent window); see ``from_dict``."""
        def num(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {"target_rate": self.target_rate, "window": self.window, "gain": self.gain,
                "memory": self.memory, "n_seen": self.n_seen, "n_queued": self.n_queued,
                "threshold": num(self.threshold), "mean": num(self._mean), "var": num(self._var),
                "recent": [float(z) for z in self._recent]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> AdaptiveThreshold:
        """Rebuild a threshold saved with :meth:`to_dict`, so adapting continues where it stopped.

        Examples
        --------
        >>> th = AdaptiveThreshold(0.1)
        >>> _ = th.update(np.linspace(0, 1, 100))
        >>> AdaptiveThreshold.from_dict(th.to_dict()).to_dict() == th.to_dict()
        True
        """
        def num(value: float | None) -> float:
            return float("nan") if value is None else float(value)

        out = cls(float(state["target_rate"]), window=int(state["window"]), gain=float(state["gain"]),
                  memory=int(state["memory"]), n_seen=int(state["n_seen"]),
                  n_queued=int(state["n_queued"]), threshold=num(state["threshold"]))
        out._mean, out._var = num(state["mean"]), num(state["var"])
        out._recent.extend(float(z) for z in state["recent"])
        return out

    def update(self, scores: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Decide one arriving batch; returns the mask of pairs to queue (scores: higher = review)."""
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1 or not np.isfinite(s).all():
            raise ValueError("scores must be a finite 1-D array")
        z = self._standardise(s)
        self._recent.extend(z.tolist())
        rate = self.target_rate + self.gain * (self.target_rate - self.realised_rate)
        rate = float(np.clip(rate, self.target_rate / 4, min(4 * self.target_rate, 1.0)))
        self.threshold = float(np.quantile(np.fromiter(self._recent, float), 1.0 - rate))
        mask = z > self.threshold
        want = round(rate * len(s))
        if mask.sum() < want and self.n_seen < self.window:  # warm-up: fill the quota exactly
            mask = np.zeros(len(s), bool)
            mask[np.argsort(-z, kind="stable")[:want]] = True
        self.n_seen += len(s)
        self.n_queued += int(mask.sum())
        return mask

    def _standardise(self, s: np.ndarray) -> np.ndarray:
        weight = len(s) / (len(s) + self.memory)
        mean, var = float(s.mean()), float(s.var())
        if np.isnan(self._mean):
            self._mean, self._var = mean, var
        else:
            self._mean += weight * (mean - self._mean)
            self._var += weight * (var - self._var)
        return (s - self._mean) / max(np.sqrt(self._var), 1e-12)
