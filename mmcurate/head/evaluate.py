"""Evaluating and calibrating the projection head: stratified cross-validation against plain CLIP
(accuracy at a threshold chosen on the training folds, AUROC of the pooled held-out cosines) and
Platt scaling of P(aligned) on the held-out cosines."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from mmcurate._util import sigmoid
from mmcurate.head.data import _Pairs, _prepare
from mmcurate.head.fit import _fit, _one_thread, _pair_cos
from mmcurate.head.model import HeadConfig, _Head
from mmcurate.learn import stratified_folds
from mmcurate.signals.metrics import auroc

__all__ = ["cross_validate_head"]

def _best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The cosine threshold (predict aligned when ``score >= t``) with the best accuracy."""
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    correct = np.concatenate([[0], np.cumsum(y == 0)]) + (y.sum() - np.concatenate([[0], np.cumsum(y)]))
    valid = np.concatenate([[True], s[1:] > s[:-1], [True]])  # cut only between distinct values
    j = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
    if j == 0:
        return float(s[0]) - 1.0
    return float(s[-1]) + 1.0 if j == len(s) else float((s[j - 1] + s[j]) / 2)


def _folds(labels: np.ndarray, k: int, random_state: int) -> np.ndarray:
    """Stratified fold id of each labelled pair (the shared rule of :mod:`mmcurate.learn`)."""
    return stratified_folds(labels, k, random_state)


def _cross_validate(data: _Pairs, config: HeadConfig, n_folds: int
                    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, list[_Head], dict[int, int]]:
    """Metrics of :func:`cross_validate_head`, the held-out cosines and labels (empty if k < 2), the
    head fitted without each fold and the fold of each labelled row."""
    pairs = torch.cat([data.pos[: data.n_accepted], data.neg])
    labels = np.r_[np.ones(data.n_accepted, np.int64), np.zeros(len(data.neg), np.int64)]
    k = min(n_folds, data.n_accepted, len(data.neg))
    out: dict[str, Any] = {"cv_folds": k, "cv_accuracy": float("nan"), "cv_accuracy_identity": float("nan"),
                           "cv_auroc": float("nan"), "cv_auroc_identity": float("nan")}
    if k < 2:  # needs >= 2 accepted and >= 2 misaligned labelled pairs
        return out, np.zeros(0), np.zeros(0, np.int64), [], {}
    fold = _folds(labels, k, config.random_state)
    fold_of_row = dict(zip(np.r_[data.pos_row[: data.n_accepted], data.neg_row].tolist(), fold.tolist()))
    pos_fold = np.array([fold_of_row[r] for r in data.pos_row.tolist()], np.int64)
    neg_fold = fold[data.n_accepted :]
    with torch.no_grad():
        raw = _pair_cos(_Head(data.dim, 1, 0), data, pairs).numpy().astype(np.float64)
    held_out_cos = np.empty(len(labels))
    right = right_identity = 0
    models = []
    for f in range(k):
        model, _, _ = _fit(data, np.flatnonzero(pos_fold != f), np.flatnonzero(neg_fold != f), config)
        models.append(model)
        with torch.no_grad():
            cos = _pair_cos(model, data, pairs).numpy().astype(np.float64)
        train, test = fold != f, fold == f
        right += int(((cos[test] >= _best_threshold(cos[train], labels[train])) == labels[test]).sum())
        right_identity += int(((raw[test] >= _best_threshold(raw[train], labels[train]))
                               == labels[test]).sum())
        held_out_cos[test] = cos[test]
    out.update(cv_accuracy=right / len(labels), cv_accuracy_identity=right_identity / len(labels),
               cv_auroc=auroc(held_out_cos, labels == 1), cv_auroc_identity=auroc(raw, labels == 1))
    return out, held_out_cos, labels, models, fold_of_row


def _platt(scores: np.ndarray, labels: np.ndarray, n_iter: int = 50) -> tuple[float, float]:
    """Logistic fit ``P(y=1) = σ(a·score + b)`` with Platt's smoothed targets (Newton's method).

    Reference: Platt (1999), "Probabilistic outputs for support vector machines"; the targets
    ``(n₊+1)/(n₊+2)`` and ``1/(n₋+2)`` keep ``a`` finite on separable scores.
    """
    n_pos = labels.sum()
    target = np.where(labels == 1, (n_pos + 1) / (n_pos + 2), 1 / (len(labels) - n_pos + 2))
    design = np.c_[scores, np.ones(len(scores))]

    def loss(w: np.ndarray) -> float:
        z = design @ w
        return float(np.sum(np.logaddexp(0, z) - target * z))

    params = np.array([10.0, -10.0 * float(np.median(scores))])
    for _ in range(n_iter):
        p = sigmoid(np.clip(design @ params, -50, 50))
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        step, size, before = np.linalg.solve(hessian, design.T @ (p - target)), 1.0, loss(params)
        while size > 1e-6 and loss(params - size * step) > before:  # backtracking line search
            size /= 2
        params = params - size * step
        if np.abs(size * step).max() < 1e-8:
            break
    return float(params[0]), float(params[1])


# -- public entry points --------------------------------------------------------------------------------


def cross_validate_head(image_embeddings: npt.ArrayLike, text_embeddings: npt.ArrayLike, *,
                        positives: npt.ArrayLike, negatives: npt.ArrayLike,
                        fixed_texts: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
                        config: HeadConfig = HeadConfig(), n_folds: int = 5) -> dict[str, Any]:
    """Held-out accuracy of aligned/misaligned on labelled pairs, head vs plain CLIP (identity head).

    Labelled pairs are split into ``k = min(n_folds, n_accepted, n_misaligned)`` stratified folds;
    for each, a head is trained on the other folds, a cosine threshold is chosen by accuracy on the
    training folds' pairs and applied to the held-out pairs; the identity head (plain cosine) goes
    through the same procedure. Corrected captions follow their pair's fold.

    Returns
    -------
    dict
        ``cv_accuracy``, ``cv_accuracy_identity``, ``cv_auroc`` (pooled held-out cosines),
        ``cv_auroc_identity`` and ``cv_folds``; accuracies are NaN when ``k < 2``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        cross_validate_head(img, txt, positives=accepted, negatives=rejected)
        # {'cv_folds': 5, 'cv_accuracy': 0.93, 'cv_accuracy_identity': 0.71, ...}
    """
    data = _prepare(image_embeddings, text_embeddings, positives, negatives, fixed_texts, config)
    with _one_thread():
        return _cross_validate(data, config, n_folds)[0]
