"""Training the projection head on reviewed pairs: :func:`train_head`."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from mmcurate.head.data import _prepare
from mmcurate.head.evaluate import _cross_validate, _platt
from mmcurate.head.fit import _fit, _one_thread
from mmcurate.head.model import HeadConfig, ProjectionHead, _Head

__all__ = ["train_head"]


def train_head(image_embeddings: npt.ArrayLike, text_embeddings: npt.ArrayLike, *,
               positives: npt.ArrayLike, negatives: npt.ArrayLike,
               fixed_texts: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
               config: HeadConfig = HeadConfig()) -> tuple[ProjectionHead, dict[str, Any]]:
    """Fit a :class:`ProjectionHead` on reviewed pairs and cross-validate it against plain CLIP.

    Parameters
    ----------
    image_embeddings, text_embeddings : array ``(N, D)``
        Frozen CLIP vectors, row ``i`` = pair ``i`` (float16 and memory maps are fine).
    positives, negatives : int64 array
        Rows of accepted (aligned) and rejected (misaligned) pairs.
    fixed_texts : ``(indices (m,), vectors (m, D))``, optional
        Embedded corrected captions: ``(image[indices[j]], vectors[j])`` is a new positive and the
        original caption of ``indices[j]`` a negative (also its hardest InfoNCE negative).
    config : HeadConfig

    Returns
    -------
    head : ProjectionHead
    metrics : dict
        ``loss_curve`` (per epoch), ``n_pos``, ``n_neg``, ``n_fixed``, ``n_steps``,
        ``train_seconds``, the learned ``logit_scale``/``bias`` of P(aligned), and from
        :func:`cross_validate_head`: ``cv_accuracy`` vs ``cv_accuracy_identity`` (plain CLIP),
        ``cv_auroc`` vs ``cv_auroc_identity``, ``cv_folds`` (NaN when < 2 labels per class).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        head, metrics = train_head(img, txt, positives=accepted, negatives=rejected)
        metrics["cv_accuracy"], metrics["cv_accuracy_identity"]
        # (0.93, 0.71)
        proba = head.predict_proba(img, txt)
    """
    with _one_thread():
        return _train_head(image_embeddings, text_embeddings, positives, negatives, fixed_texts, config)


def _train_head(image_embeddings, text_embeddings, positives, negatives, fixed_texts,
                config: HeadConfig) -> tuple[ProjectionHead, dict[str, Any]]:
    start = time.perf_counter()
    data = _prepare(image_embeddings, text_embeddings, positives, negatives, fixed_texts, config)
    head = ProjectionHead(data.dim, config=config)
    head.module, curve, n_steps = _fit(data, np.arange(len(data.pos)), np.arange(len(data.neg)), config)
    metrics: dict[str, Any] = {
        "loss_curve": curve, "n_pos": data.n_accepted, "n_neg": len(data.neg),
        "n_fixed": len(data.pos) - data.n_accepted, "n_steps": n_steps,
        "logit_scale": head.module.log_scale.exp().item(), "bias": head.module.bias.item(),
        "calibration": "training",
        "train_seconds": time.perf_counter() - start}
    if config.n_folds >= 2:
        cv_metrics, held_out_cos, labels, fold_models, fold_of_row = _cross_validate(data, config,
                                                                                     config.n_folds)
        metrics.update(cv_metrics)
        head.fold_heads = [_wrap(model, config) for model in fold_models]
        head.fold_of_row = fold_of_row
        if len(labels):  # calibrate P(aligned) on held-out cosines: training cosines are optimistic
            scale, bias = _platt(held_out_cos, labels)
            with torch.no_grad():
                head.module.log_scale.fill_(math.log(max(scale, 1e-3)))
                head.module.bias.fill_(bias)
            metrics.update(logit_scale=max(scale, 1e-3), bias=bias, calibration="cross-validated")
    metrics["total_seconds"] = time.perf_counter() - start
    head.metrics = metrics
    return head, metrics


def _wrap(module: _Head, config: HeadConfig) -> ProjectionHead:
    head = ProjectionHead(module.image.down.shape[1], config=config)
    head.module = module
    return head
