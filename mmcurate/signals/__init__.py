"""Per-pair signals: every query strategy as a pure function over numpy arrays.

Scores are ``(N,)`` float64, higher = review first. No signal imports :mod:`mmcurate.rank`:
the registry of strategies by name, :data:`mmcurate.rank.STRATEGIES`, lives beside the
:class:`~mmcurate.rank.RankContext` its entries read, and :func:`mmcurate.rank.compute_ranking`
computes the arrays they need once.
"""

from __future__ import annotations

from mmcurate.signals.alignment import (
    AlignmentFeatures,
    Calibrator,
    alignment_features,
    fit_calibrator,
    prior_calibrator,
)
from mmcurate.signals.change import egl
from mmcurate.signals.committee import fit_committee, kl_divergence, vote_entropy
from mmcurate.signals.crossmodal import disagreement, neighbourhood_agreement
from mmcurate.signals.density import information_density, representativeness
from mmcurate.signals.error_reduction import eer
from mmcurate.signals.metrics import auroc, average_precision, precision_at_k
from mmcurate.signals.uncertainty import entropy, least_confidence, margin

__all__ = [
    "AlignmentFeatures", "Calibrator", "alignment_features",
    "auroc", "average_precision", "disagreement", "eer", "egl", "entropy", "fit_calibrator",
    "fit_committee", "information_density", "kl_divergence", "least_confidence", "margin",
    "neighbourhood_agreement", "precision_at_k", "prior_calibrator", "representativeness",
    "vote_entropy",
]

