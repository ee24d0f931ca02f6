"""The projection head's model: ``HeadConfig``, the residual adapters, :class:`ProjectionHead` and its
persistence (safetensors weights + a JSON sidecar with format, config, metrics and checksum).

An untrained head is the identity on both sides, so round 0 is plain CLIP cosine.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
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

from mmcurate._fileio import atomic_write_bytes, atomic_write_text, read_rows, to_jsonable
from mmcurate._util import sigmoid
from mmcurate.exceptions import ProjectError

__all__ = ["FORMAT", "FORMAT_VERSION", "HeadConfig", "ProjectionHead", "TransformedView"]

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

    def __init__(self, base: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.base, self.fn = base, fn
        self.shape = tuple(base.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, np.ndarray) and key.ndim == 1 and key.dtype.kind in "iu":
            rows = read_rows(self.base, key)  # memory-mapped rows read by offset, not faulted in
        else:
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
    Usage (not run as a doctest: it needs data of your own)::

        head = ProjectionHead(512)
        z = head.transform_images(image_embeddings)
        norms = np.linalg.norm(image_embeddings, axis=1, keepdims=True)
        np.allclose(z, image_embeddings / norms)  # round 0 is plain CLIP
        # True
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

    def view(self, x: np.ndarray, side: str) -> TransformedView:
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
        return sigmoid(scale * self.cosine(image_embeddings, text_embeddings) + bias)

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
                "config": asdict(self.config), "metrics": to_jsonable(self.metrics),
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
