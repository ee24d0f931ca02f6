"""Projection head: residual low-rank adapters on frozen CLIP image and caption vectors.

Each side maps ``x ↦ normalize(x + B·A·x)`` with ``A`` ``(r, D)`` random and ``B`` ``(D, r)`` zero at
initialisation, so an untrained head (round 0) reproduces plain CLIP cosine exactly. Training on
the ledger's decisions (``train_head``) minimises, per step,

``L = InfoNCE_τ(positives vs in-batch + mined negatives)
+ w₊·BCE(σ(s·cos₊ + b), 1) + w₋·BCE(σ(s·cos₋ + b), 0)
+ margin_weight · mean relu(margin + cos₋ − cos₊) + identity_decay · (||B_img·A_img||² + ||B_txt·A_txt||²)``

Positives are accepted pairs and (image, corrected caption) pairs; negatives are rejected pairs and
the original caption of fixed pairs; ``w₊, w₋`` are the labelled class shares. The mined negatives
are each positive's nearest other captions (images) in the pool under plain CLIP, found once with
chunked ``torch.topk``. Cosines are computed through the rank-``r`` factors, so no ``(n, D)`` tensor
carries a gradient. ``s, b`` turn cosine into P(aligned) (``ProjectionHead.predict_proba``); after
cross-validation they are refitted on the held-out cosines (Platt scaling). The residual-adapter
form follows CLIP-Adapter (Gao et al., 2021) and LoRA (Hu et al., 2021); InfoNCE is from CLIP
(Radford et al., 2021).

Assumptions: inputs are ``(N, D)`` arrays (float16 and memory maps are fine, read in chunks);
outputs are float32 and L2-normalised. Randomness comes only from ``HeadConfig.random_state``
through a ``torch.Generator`` (no global seeding).


Layout: :mod:`~mmcurate.head.model` (``HeadConfig``, the adapters, ``ProjectionHead`` and its
safetensors persistence), :mod:`~mmcurate.head.data` (labelled pairs gathered for training, mined
negatives), :mod:`~mmcurate.head.fit` (the loss and the optimisation loop),
:mod:`~mmcurate.head.evaluate` (cross-validation against plain CLIP, Platt calibration) and
:mod:`~mmcurate.head.train` (``train_head``).
"""

from __future__ import annotations

from mmcurate.head.evaluate import cross_validate_head
from mmcurate.head.model import FORMAT, FORMAT_VERSION, HeadConfig, ProjectionHead, TransformedView
from mmcurate.head.train import train_head

__all__ = ["FORMAT", "FORMAT_VERSION", "HeadConfig", "ProjectionHead", "TransformedView",
           "cross_validate_head", "train_head"]
