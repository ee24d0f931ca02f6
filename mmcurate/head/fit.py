"""Fitting the projection head: the per-step loss (InfoNCE + weighted BCE + margin + identity decay)
and the optimisation loop; see :mod:`mmcurate.head` for the formula."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from torch.nn import functional as F

from mmcurate._util import temporarily
from mmcurate.head.data import _Pairs
from mmcurate.head.model import HeadConfig, _Head


def _pair_cos(model: _Head, data: _Pairs, pairs: torch.Tensor) -> torch.Tensor:
    return (model.image(data.images[pairs[:, 0]]) * model.text(data.texts[pairs[:, 1]])).sum(-1)


def _batch_negatives(hard: torch.Tensor, own: torch.Tensor, cap: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct mined negatives of a batch (each positive's nearest first), capped at ``cap``.

    ``hard`` ``(b, h)`` local ids, ``own`` ``(b,)`` the positives' own ids. Returns the ids ``(M,)``
    and a ``(b, M)`` mask of entries that are a positive's own vector (excluded from its softmax).
    """
    flat = hard.T.reshape(-1)
    unique, inverse = torch.unique(flat, return_inverse=True)
    first = torch.full((len(unique),), len(flat)).scatter_reduce(0, inverse, torch.arange(len(flat)), "amin")
    ids = unique[first.argsort()][:cap]
    return ids, own[:, None] == ids[None, :]


def _cos_matrix(model: _Head, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Cosines ``(n, m)`` between adapted image vectors ``x`` ``(n, D)`` and captions ``t`` ``(m, D)``.

    Computed through the rank-``r`` factors so that no ``(n, D)`` tensor carries a gradient: with
    ``u = A x`` and ``y = x + B u`` on each side, ``y_x·y_t = x·t + (B_tᵀx)·u_t + u_x·(B_xᵀt) +
    u_xᵀ(B_xᵀB_t)u_t`` and ``|y|² = |x|² + 2(Bᵀx)·u + uᵀ(BᵀB)u``.
    """
    img, txt = model.image, model.text
    ux, ut = x @ img.down.T, t @ txt.down.T
    dot = x @ t.T + (x @ txt.up) @ ut.T + ux @ (t @ img.up).T + ux @ (img.up.T @ txt.up) @ ut.T

    def inv_norm(v: torch.Tensor, u: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        sq = (v * v).sum(-1) + 2 * ((v @ up) * u).sum(-1) + ((u @ (up.T @ up)) * u).sum(-1)
        return torch.rsqrt(sq.clamp_min(1e-24))

    return dot * inv_norm(x, ux, img.up)[:, None] * inv_norm(t, ut, txt.up)[None, :]


def _step_loss(model: _Head, data: _Pairs, batch: torch.Tensor, neg_batch: torch.Tensor,
               neg_share: float, config: HeadConfig) -> torch.Tensor:
    """InfoNCE (in-batch + mined negatives) + weighted BCE + margin hinge + identity decay."""
    pairs, negs = data.pos[batch], data.neg[neg_batch]
    b, q = len(pairs), len(negs)
    text_ids, text_own = _batch_negatives(data.hard_text[batch], pairs[:, 1], config.batch_hard_negatives)
    image_ids, image_own = _batch_negatives(data.hard_image[batch], pairs[:, 0], config.batch_hard_negatives)
    cos = _cos_matrix(model, data.images[torch.cat([pairs[:, 0], negs[:, 0], image_ids])],
                      data.texts[torch.cat([pairs[:, 1], negs[:, 1], text_ids])])
    logits_i = torch.cat([cos[:b, :b], cos[:b, b + q :].masked_fill(text_own, -torch.inf)], 1)
    logits_t = torch.cat([cos[:b, :b].T, cos[b + q :, :b].T.masked_fill(image_own, -torch.inf)], 1)
    target = torch.arange(b)
    loss = (F.cross_entropy(logits_i / config.temperature, target)
            + F.cross_entropy(logits_t / config.temperature, target)) / 2
    loss = loss + config.identity_decay * (model.image.decay() + model.text.decay())
    if q:
        cos_pos, cos_neg = cos[:b, :b].diagonal(), cos[b : b + q, b : b + q].diagonal()
        loss = loss + (1 - neg_share) * F.softplus(-model.logits(cos_pos)).mean()
        loss = loss + neg_share * F.softplus(model.logits(cos_neg)).mean()
        hinge = F.relu(config.margin + cos_neg[:, None] - cos_pos[None, :]).mean()
        loss = loss + config.margin_weight * hinge
    return loss


def _fit(data: _Pairs, pos_sel: np.ndarray, neg_sel: np.ndarray,
         config: HeadConfig) -> tuple[_Head, list[float], int]:
    """Train a fresh head on positives ``pos_sel`` and negatives ``neg_sel`` (indices into data)."""
    model = _Head(data.dim, max(1, min(config.rank, data.dim)), config.random_state)
    if len(pos_sel) == 0:  # nothing to align: stay the identity
        return model, [], 0
    generator = torch.Generator().manual_seed(int(config.random_state) + 1)
    pos_t, neg_t = torch.from_numpy(pos_sel), torch.from_numpy(neg_sel)
    with torch.no_grad():
        cos_p, cos_n = _pair_cos(model, data, data.pos[pos_t]), _pair_cos(model, data, data.neg[neg_t])
        middle = (cos_p.mean() + cos_n.mean()) / 2 if len(neg_t) else cos_p.mean() - 0.1
        model.bias.fill_(float(-model.log_scale.exp() * middle))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    per_epoch = math.ceil(len(pos_t) / config.batch_size)
    n_steps = min(max(config.epochs * per_epoch, config.min_steps), max(config.max_steps, config.min_steps))
    neg_share = len(neg_t) / (len(neg_t) + len(pos_t))
    curve: list[float] = []
    for step in range(n_steps):
        if step % per_epoch == 0:
            order = pos_t[torch.randperm(len(pos_t), generator=generator)]
            curve.append(0.0)
        start = (step % per_epoch) * config.batch_size
        picks = (torch.randint(len(neg_t), (min(config.batch_size, len(neg_t)),), generator=generator)
                 if len(neg_t) else neg_t)
        loss = _step_loss(model, data, order[start : start + config.batch_size], neg_t[picks],
                          neg_share, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve[-1] += loss.item() / per_epoch
    return model, curve, n_steps


def _one_thread() -> contextlib.AbstractContextManager[int]:
    """Train on one intra-op thread: the head's matrices are small (a batch of 128 × D × rank), so
    threads cost more than they give (measured 5.0 s vs 13.7 s for 150 steps on a busy 2-core
    machine); the previous setting is restored."""
    return temporarily(torch.get_num_threads, torch.set_num_threads, 1)
