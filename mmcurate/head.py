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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn
from torch.nn import functional as F

from mmcurate._fileio import atomic_write_bytes, atomic_write_text
from mmcurate.exceptions import ProjectError

__all__ = ["HeadConfig", "ProjectionHead", "cross_validate_head", "train_head"]

FORMAT = "mmcurate-projection-head"
FORMAT_VERSION = 1
_CHUNK = 65536


@dataclass(frozen=True)
class HeadConfig:
    """Options of the projection head and its training.

    Attributes
    ----------
    rank : adapter rank ``r`` (capped at ``D``).
    epochs : passes over the positives, clipped to ``[min_steps, max_steps]`` optimiser steps in
        total (a handful of labels still trains; thousands stay fast).
    min_steps, max_steps : bounds on the number of optimiser steps.
    lr : Adam learning rate.
    batch_size : positives per step (in-batch negatives come from the same batch).
    temperature : InfoNCE temperature τ.
    margin : margin between accepted and rejected cosines.
    margin_weight : weight of the margin term.
    identity_decay : weight of ``||B·A||²``, i.e. weight decay toward the identity map.
    hard_negatives : nearest other captions/images per positive mined from the pool (0: none).
    batch_hard_negatives : cap on the distinct mined negatives scored per step; every positive in
        the step is scored against all of them (its own nearest ones first).
    hard_negative_pool : mine among at most this many pool rows (a seeded sample of larger pools).
    n_folds : folds of ``cross_validate_head`` in ``train_head`` (0 skips cross-validation).
    random_state : seed of initialisation, shuffles, samples and folds.
    """

    rank: int = 32
    epochs: int = 20
    min_steps: int = 150
    max_steps: int = 200
    lr: float = 5e-3
    batch_size: int = 128
    temperature: float = 0.05
    margin: float = 0.2
    margin_weight: float = 1.0
    identity_decay: float = 1.0
    hard_negatives: int = 8
    batch_hard_negatives: int = 128
    hard_negative_pool: int = 10_000
    n_folds: int = 5
    random_state: int = 0

    def __post_init__(self) -> None:
        positive = ("rank", "epochs", "min_steps", "max_steps", "lr", "batch_size", "temperature")
        bad = [f"{name}={getattr(self, name)!r}" for name in positive if not getattr(self, name) > 0]
        bad += [f"{name}={getattr(self, name)!r}" for name in (
            "margin_weight", "identity_decay", "hard_negatives", "batch_hard_negatives",
            "hard_negative_pool", "n_folds") if getattr(self, name) < 0]
        if bad:
            raise ValueError(f"HeadConfig needs positive rank/epochs/steps/lr/batch_size/temperature and "
                             f"non-negative weights and counts; got {', '.join(bad)}")


class _Adapter(nn.Module):
    """``x ↦ normalize(x + B·A·x)``; ``B`` starts at zero (identity map)."""

    def __init__(self, dim: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.down = nn.Parameter(torch.randn(rank, dim, generator=generator) / math.sqrt(dim))
        self.up = nn.Parameter(torch.zeros(dim, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x + (x @ self.down.T) @ self.up.T, dim=-1)

    def decay(self) -> torch.Tensor:
        """``||B·A||_F² = Σ (BᵀB) ∘ (AAᵀ)``, the squared distance of the map from identity."""
        return ((self.up.T @ self.up) * (self.down @ self.down.T)).sum()


class _Head(nn.Module):
    def __init__(self, dim: int, rank: int, random_state: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(int(random_state))
        self.image = _Adapter(dim, rank, generator)
        self.text = _Adapter(dim, rank, generator)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.bias = nn.Parameter(torch.tensor(-2.0))

    def logits(self, cos: torch.Tensor) -> torch.Tensor:
        return self.log_scale.exp() * cos + self.bias


class TransformedView:
    """Rows of ``base`` passed through ``fn`` when read (``view[a:b]``, ``view[index_array]``)."""

    def __init__(self, base, fn) -> None:
        self.base, self.fn = base, fn
        self.shape = tuple(base.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key) -> np.ndarray:
        rows = np.asarray(self.base[key], dtype=np.float32)
        if rows.ndim == 1:
            return self.fn(rows[None])[0]
        return self.fn(rows)


class ProjectionHead:
    """Identity-initialised residual adapters on image and caption embeddings.

    Parameters
    ----------
    dim : int
        Embedding dimension ``D``.
    config : HeadConfig
        Rank and seed are used here; the rest is recorded for ``train_head``.

    Examples
    --------
    >>> head = ProjectionHead(512)
    >>> z = head.transform_images(image_embeddings)  # doctest: +SKIP
    >>> norms = np.linalg.norm(image_embeddings, axis=1, keepdims=True)  # doctest: +SKIP
    >>> np.allclose(z, image_embeddings / norms)  # round 0 is plain CLIP  # doctest: +SKIP
    True
    """

    def __init__(self, dim: int, *, config: HeadConfig = HeadConfig(),
                 metrics: dict[str, Any] | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim must be a positive embedding dimension, got {dim}")
        self.dim = int(dim)
        self.rank = max(1, min(int(config.rank), self.dim))
        self.config = config
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.module = _Head(self.dim, self.rank, config.random_state)
        # after train_head with cross-validation (not saved): the heads fitted without each fold,
        # and the fold of each labelled row, for leak-free validation of models built on the head
        self.fold_heads: list[ProjectionHead] = []
        self.fold_of_row: dict[int, int] = {}

    def transform_images(self, x: npt.ArrayLike, *, chunk_size: int = _CHUNK) -> npt.NDArray[np.float32]:
        """Image vectors ``(N, D)`` → adapted, L2-normalised float32 ``(N, D)``."""
        return self._apply(self.module.image, x, "image", chunk_size)

    def transform_texts(self, x: npt.ArrayLike, *, chunk_size: int = _CHUNK) -> npt.NDArray[np.float32]:
        """Caption vectors ``(N, D)`` → adapted, L2-normalised float32 ``(N, D)``."""
        return self._apply(self.module.text, x, "text", chunk_size)

    def view(self, x, side: str) -> TransformedView:
        """A lazy ``(N, D)`` view of ``x`` (``side`` image or text) adapted on access, chunk by chunk:
        for pools too large to hold a float32 copy (slices and index arrays are supported)."""
        fn = {"image": self.transform_images, "text": self.transform_texts}.get(side)
        if fn is None:
            raise ValueError(f"side must be 'image' or 'text', got {side!r}")
        return TransformedView(x, fn)

    def _apply(self, adapter: _Adapter, x: npt.ArrayLike, name: str, chunk_size: int) -> np.ndarray:
        array = x if isinstance(x, np.ndarray) else np.asarray(x)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"{name} embeddings must have shape (N, {self.dim}), got {array.shape}; "
                             "use the vectors of the model this head was trained on")
        out = np.empty(array.shape, dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(array), chunk_size):
                block = torch.from_numpy(np.asarray(array[start : start + chunk_size], dtype=np.float32))
                if not torch.isfinite(block).all():
                    bad = start + int(torch.nonzero(~torch.isfinite(block).all(dim=1))[0, 0])
                    raise ValueError(f"{name} embeddings row {bad} is not finite (NaN/inf); re-embed it")
                out[start : start + chunk_size] = adapter(block).numpy()
        return out

    def cosine(self, image_embeddings: npt.ArrayLike, text_embeddings: npt.ArrayLike) -> np.ndarray:
        """Row-wise cosine ``(N,)`` of pair ``i`` after the head."""
        return np.einsum("nd,nd->n", self.transform_images(image_embeddings),
                         self.transform_texts(text_embeddings)).astype(np.float64)

    def predict_proba(self, image_embeddings: npt.ArrayLike, text_embeddings: npt.ArrayLike) -> np.ndarray:
        """P(aligned) ``(N,)`` = ``σ(s·cos + b)`` with the scale ``s`` and bias ``b`` learned in training."""
        with torch.no_grad():
            scale, bias = float(self.module.log_scale.exp()), float(self.module.bias)
        return 1.0 / (1.0 + np.exp(-(scale * self.cosine(image_embeddings, text_embeddings) + bias)))

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.safetensors`` weights) and its ``.json`` sidecar, each atomically.

        The sidecar holds format, dims, config, metrics and the weights' SHA-256; returns the
        weights path.
        """
        weights, sidecar = _paths(path)
        tensors = {k: v.detach().contiguous() for k, v in self.module.state_dict().items()}
        blob = save_tensors(tensors)
        atomic_write_bytes(weights, blob)
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "dim": self.dim, "rank": self.rank,
                "config": asdict(self.config), "metrics": _jsonable(self.metrics),
                "weights": weights.name, "weights_sha256": hashlib.sha256(blob).hexdigest()}
        atomic_write_text(sidecar, json.dumps(meta, indent=2, sort_keys=True, allow_nan=False) + "\n")
        return weights

    @classmethod
    def load(cls, path: str | os.PathLike) -> ProjectionHead:
        """Read a head written by :meth:`save` (give the ``.safetensors`` or ``.json`` path)."""
        weights, sidecar = _paths(path)
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            blob = weights.read_bytes()
        except (OSError, json.JSONDecodeError) as err:
            raise ProjectError(f"cannot read projection head {weights} + {sidecar.name}: {err}; "
                               "retrain it with `mmcurate train`") from err
        if meta.get("format") != FORMAT or meta.get("version", 0) > FORMAT_VERSION:
            raise ProjectError(f"{sidecar} is not a {FORMAT} v<={FORMAT_VERSION} file "
                               f"(format={meta.get('format')!r}, version={meta.get('version')!r})")
        if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
            raise ProjectError(f"{weights} does not match the checksum in {sidecar.name} (a partial "
                               "save?); retrain the head with `mmcurate train`")
        known = {f.name for f in fields(HeadConfig)}
        config = HeadConfig(**{k: v for k, v in meta["config"].items() if k in known})
        head = cls(int(meta["dim"]), config=config, metrics=meta.get("metrics"))
        head.module.load_state_dict(load_tensors(blob))
        return head


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    path = Path(path)
    weights = path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")
    return weights, weights.with_suffix(".json")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- training data ------------------------------------------------------------------------------------
@dataclass
class _Pairs:
    """Labelled pairs gathered into small local banks (the pool itself is never loaded whole).

    ``pos``/``neg`` hold local ``(image, text)`` ids; ``pos[:n_accepted]`` are accepted pool pairs,
    the rest are (image, corrected caption); ``hard_text``/``hard_image`` ``(P, h)`` are local ids
    of each positive's mined negatives.
    """

    images: torch.Tensor
    texts: torch.Tensor
    pos: torch.Tensor
    pos_row: np.ndarray
    neg: torch.Tensor
    neg_row: np.ndarray
    hard_text: torch.Tensor
    hard_image: torch.Tensor
    n_accepted: int

    @property
    def dim(self) -> int:
        return int(self.images.shape[1])


def _rows(array: Any, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` as float32, L2-normalised (works on memory maps)."""
    block = np.asarray(array[rows], dtype=np.float32) if len(rows) else np.zeros((0, array.shape[1]),
                                                                                   np.float32)
    return block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)


def _indices(name: str, values: npt.ArrayLike, n: int) -> np.ndarray:
    idx = np.asarray(values)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TypeError(f"{name} must be a 1-D array of int64 row indices, got shape {idx.shape} "
                        f"dtype {idx.dtype}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"{name} must be row indices in [0, {n}), got values in [{idx.min()}, {idx.max()}]")
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{name} repeats row indices; pass each labelled pair once")
    return idx


def _check_inputs(image: Any, text: Any, positives: Any, negatives: Any,
                  fixed_texts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if getattr(image, "ndim", 0) != 2 or getattr(image, "shape", None) != getattr(text, "shape", None):
        raise ValueError(f"image and text embeddings must be (N, D) arrays of the same shape, got "
                         f"{getattr(image, 'shape', None)} and {getattr(text, 'shape', None)}")
    n, dim = image.shape
    pos, neg = _indices("positives", positives, n), _indices("negatives", negatives, n)
    fix_rows, fix_vecs = np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    if fixed_texts is not None:
        fix_rows = _indices("fixed_texts indices", fixed_texts[0], n)
        fix_vecs = np.asarray(fixed_texts[1], dtype=np.float32)
        if fix_vecs.shape != (len(fix_rows), dim):
            raise ValueError(f"fixed_texts vectors must have shape ({len(fix_rows)}, {dim}), "
                             f"got {fix_vecs.shape}")
        fix_vecs = fix_vecs / np.maximum(np.linalg.norm(fix_vecs, axis=1, keepdims=True), 1e-12)
    both = np.intersect1d(pos, np.union1d(neg, fix_rows))
    if both.size:
        raise ValueError(f"rows {both[:10].tolist()} are both positive and negative/fixed; keep only "
                         "each pair's latest decision")
    return pos, np.union1d(neg, fix_rows), fix_rows, fix_vecs


def _nearest(queries: np.ndarray, bank: Any, pool: np.ndarray, exclude: np.ndarray, k: int) -> np.ndarray:
    """``(P, k)`` rows of ``bank`` (among ``pool``) nearest each query by cosine, ``exclude[p]`` left out."""
    k = min(k, len(pool) - 1)
    if k <= 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.int64)
    q, own = torch.from_numpy(queries), torch.from_numpy(exclude)[:, None]
    best_s = torch.empty((len(q), 0))
    best_i = torch.empty((len(q), 0), dtype=torch.int64)
    chunk = max(1024, (1 << 24) // len(q))
    for start in range(0, len(pool), chunk):
        rows = torch.from_numpy(pool[start : start + chunk])
        sims = q @ torch.from_numpy(_rows(bank, rows.numpy())).T
        sims[own == rows[None, :]] = -torch.inf
        scores = torch.cat([best_s, sims], 1)
        ids = torch.cat([best_i, rows[None, :].expand(len(q), -1)], 1)
        best_s, top = scores.topk(min(k, scores.shape[1]), dim=1)
        best_i = ids.gather(1, top)
    return best_i.numpy()


def _prepare(image: Any, text: Any, positives: Any, negatives: Any, fixed_texts: Any,
             config: HeadConfig) -> _Pairs:
    image = image if isinstance(image, np.ndarray) else np.asarray(image)
    text = text if isinstance(text, np.ndarray) else np.asarray(text)
    pos, neg, fix_rows, fix_vecs = _check_inputs(image, text, positives, negatives, fixed_texts)
    n = image.shape[0]
    pool = np.arange(n, dtype=np.int64)
    if n > config.hard_negative_pool:
        rng = np.random.default_rng(config.random_state)
        pool = np.sort(rng.choice(n, size=config.hard_negative_pool, replace=False)).astype(np.int64)
    query_rows = np.concatenate([pos, fix_rows])
    hard_text = _nearest(_rows(image, query_rows), text, pool, query_rows, config.hard_negatives)
    hard_image = _nearest(np.concatenate([_rows(text, pos), fix_vecs]), image, pool, query_rows,
                          config.hard_negatives)
    img_rows = np.unique(np.concatenate([query_rows, neg, hard_image.ravel()]))
    txt_rows = np.unique(np.concatenate([pos, neg, hard_text.ravel()]))
    texts = np.concatenate([_rows(text, txt_rows), fix_vecs])
    pos_txt = np.concatenate([np.searchsorted(txt_rows, pos), len(txt_rows) + np.arange(len(fix_rows))])
    hard_text = np.searchsorted(txt_rows, hard_text)
    if hard_text.shape[1] and len(fix_rows):  # a fix's original caption is its hardest negative
        hard_text[len(pos):, -1] = np.searchsorted(txt_rows, fix_rows)
    images = _rows(image, img_rows)
    if not (np.isfinite(images).all() and np.isfinite(texts).all()):
        raise ValueError("image/text embeddings of the labelled pairs or their neighbours contain NaN or "
                         "inf; re-embed those pairs (or drop them) before training")
    as_long = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))  # noqa: E731
    return _Pairs(
        images=torch.from_numpy(images), texts=torch.from_numpy(texts),
        pos=as_long(np.stack([np.searchsorted(img_rows, query_rows), pos_txt], 1)), pos_row=query_rows,
        neg=as_long(np.stack([np.searchsorted(img_rows, neg), np.searchsorted(txt_rows, neg)], 1)),
        neg_row=neg, hard_text=as_long(hard_text),
        hard_image=as_long(np.searchsorted(img_rows, hard_image)), n_accepted=len(pos))


# -- training -------------------------------------------------------------------------------------------
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


# -- evaluation -----------------------------------------------------------------------------------------
def _auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for ``labels == 1`` (Mann–Whitney U, ties averaged)."""
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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
    from mmcurate.learn import stratified_folds

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
               cv_auroc=_auroc(held_out_cos, labels), cv_auroc_identity=_auroc(raw, labels))
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
        p = 1 / (1 + np.exp(-np.clip(design @ params, -50, 50)))
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-6 * np.eye(2)
        step, size, before = np.linalg.solve(hessian, design.T @ (p - target)), 1.0, loss(params)
        while size > 1e-6 and loss(params - size * step) > before:  # backtracking line search
            size /= 2
        params = params - size * step
        if np.abs(size * step).max() < 1e-8:
            break
    return float(params[0]), float(params[1])


# -- public entry points --------------------------------------------------------------------------------
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
    >>> head, metrics = train_head(img, txt, positives=accepted, negatives=rejected)  # doctest: +SKIP
    >>> metrics["cv_accuracy"], metrics["cv_accuracy_identity"]  # doctest: +SKIP
    (0.93, 0.71)
    >>> proba = head.predict_proba(img, txt)  # doctest: +SKIP
    """
    with _one_thread():
        return _train_head(image_embeddings, text_embeddings, positives, negatives, fixed_texts, config)


@contextlib.contextmanager
def _one_thread():
    """Train on one intra-op thread: the head's matrices are small (a batch of 128 × D × rank), so
    threads cost more than they give (measured 5.0 s vs 13.7 s for 150 steps on a busy 2-core
    machine); the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    >>> cross_validate_head(img, txt, positives=accepted, negatives=rejected)  # doctest: +SKIP
    {'cv_folds': 5, 'cv_accuracy': 0.93, 'cv_accuracy_identity': 0.71, ...}
    """
    data = _prepare(image_embeddings, text_embeddings, positives, negatives, fixed_texts, config)
    with _one_thread():
        return _cross_validate(data, config, n_folds)[0]
