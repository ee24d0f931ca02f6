"""The open_clip encoder: images and captions to L2-normalised vectors in one joint space."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate._util import temporarily
from mmcurate.embed.device import DeviceChoice, autocast, resolve_device
from mmcurate.embed.model import (
    ModelSpec,
    ResolvedModel,
    file_sha256,
    hub_offline,
    import_open_clip,
    resolve_model,
)
from mmcurate.exceptions import ModelNotAvailableError

__all__ = ["Encoder", "load_encoder", "torch_threads"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(n_threads: int | None = None) -> Iterator[int]:
    """Use ``n_threads`` torch intra-op threads (default: all cores) for the block, then restore
    the previous count; yields the number set.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        with torch_threads() as n:
            encoder.encode_texts(captions)
    """
    import torch  # heavy: torch

    n = n_threads or os.cpu_count() or 1
    with temporarily(torch.get_num_threads, torch.set_num_threads, n):
        yield n


@dataclass
class Encoder:
    """A loaded open_clip model with its image transform and tokenizer.

    ``info`` is what the embedding manifest records: model name, pretrained tag or path, weights
    sha256, preprocessing, dimension, and the device type and precision the vectors were made in.
    The model lives on ``device``; batches given on the CPU are copied there (non-blocking from
    pinned memory) and run under autocast in ``device.precision``.
    """

    model: Any
    preprocess: Any
    tokenizer: Any
    resolved: ResolvedModel
    info: dict[str, Any] = field(default_factory=dict)
    device: DeviceChoice = field(default_factory=lambda: DeviceChoice("cpu", "fp32"))

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def image_size(self) -> int:
        """The side of the square model input in pixels (the larger side if not square)."""
        size = self.model.visual.image_size
        return int(max(size) if isinstance(size, (tuple, list)) else size)

    def _run(self, fn, batch) -> npt.NDArray[np.float32]:
        import torch  # heavy: torch

        with torch.inference_mode(), autocast(self.device):
            feats = fn(batch.to(self.device.name, non_blocking=True))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy()

    def encode_image_tensors(self, images) -> npt.NDArray[np.float32]:
        """Encode a preprocessed batch ``(B, 3, H, W)``; returns normalised float32 ``(B, D)``."""
        return self._run(self.model.encode_image, images)

    def encode_token_tensors(self, tokens) -> npt.NDArray[np.float32]:
        """Encode a tokenized batch ``(B, L)``; returns normalised float32 ``(B, D)``."""
        return self._run(self.model.encode_text, tokens)

    def encode_texts(self, texts: Sequence[str], *, batch_size: int = 64) -> npt.NDArray[np.float32]:
        """Encode captions; returns normalised float32 ``(len(texts), D)``."""
        out = [self.encode_token_tensors(self.tokenizer(list(texts[i : i + batch_size])))
               for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def encode_images(self, images: Sequence[Any], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Encode PIL images; returns normalised float32 ``(len(images), D)``."""
        import torch  # heavy: torch

        out = []
        for i in range(0, len(images), batch_size):
            batch = torch.stack([self.preprocess(im) for im in images[i : i + batch_size]])
            out.append(self.encode_image_tensors(batch))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def _preprocess_info(model) -> dict[str, Any]:
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def _create_model(open_clip, resolved):
    """The open_clip model and preprocessing; a weights file holding pickled Python objects (which
    ``torch.load(weights_only=True)`` refuses to run) is a clear error naming the file."""
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            resolved.open_clip_name, pretrained=resolved.open_clip_pretrained)
    except pickle.UnpicklingError as err:
        raise ModelNotAvailableError(
            f"{resolved.weights_path or resolved.open_clip_pretrained} holds pickled Python objects "
            f"besides tensors; mmcurate loads weights only and never runs code from a weights file. "
            f"Use a .safetensors file, or a checkpoint holding only a state dict of tensors") from err
    return model, preprocess


def load_encoder(
    spec: ModelSpec | None = None,
    *,
    allow_download: bool = False,
    allow_random: bool = False,
    weights_sha256: str | None = None,
    device: str | DeviceChoice = "auto",
    precision: str = "auto",
) -> Encoder:
    """Resolve weights locally and build the open_clip model in eval mode.

    Parameters
    ----------
    spec : ModelSpec
        Model name and pretrained tag or weights path (default ``ViT-B-32``/``laion2b_s34b_b79k``).
    allow_download : bool
        Permit fetching weights from the Hugging Face hub (off by default).
    allow_random : bool
        Permit a model with no pretrained weights (benchmarks only).
    weights_sha256 : str, optional
        Known digest of the weights file (skips re-hashing).
    device : str or DeviceChoice
        ``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``; checked before
        the model is built, so an absent device fails fast with :class:`DeviceError`.
    precision : str
        ``auto`` (bf16/fp16 autocast on CUDA, fp32 elsewhere), ``fp32``, ``fp16``, ``bf16``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        enc = load_encoder(ModelSpec("local-dir:/path/to/tiny-clip"))
        enc.encode_texts(["a red circle"]).shape
        # (1, 128)
    """
    spec = spec or ModelSpec()
    choice = device if isinstance(device, DeviceChoice) else resolve_device(device, precision=precision)
    resolved = resolve_model(spec, allow_download=allow_download, allow_random=allow_random)
    open_clip = import_open_clip(allow_download=allow_download)
    with hub_offline(not allow_download):  # the weights are local; a tokenizer must not go online
        model, preprocess = _create_model(open_clip, resolved)
        tokenizer = open_clip.get_tokenizer(resolved.open_clip_name)
    model.eval()
    sha = weights_sha256
    if sha is None and resolved.weights_path:
        sha = file_sha256(resolved.weights_path)
    import torch  # heavy: torch

    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["a photo"])).shape[1])
    stamp = None
    if resolved.weights_path:
        st = os.stat(resolved.weights_path)
        stamp = [st.st_size, int(st.st_mtime)]
    info = {
        "kind": "open_clip",
        "model": spec.model,
        "pretrained": spec.pretrained if not spec.model.startswith(("local-dir:", "hf-hub:")) else None,
        "weights_path": resolved.weights_path,
        "weights_sha256": sha,
        "weights_stamp": stamp,
        "preprocess": _preprocess_info(model),
        "dim": dim,
        "open_clip_version": getattr(open_clip, "__version__", "unknown"),
        "device": choice.type,
        "precision": choice.precision,
    }
    model.to(choice.name)
    return Encoder(model=model, preprocess=preprocess, tokenizer=tokenizer, resolved=resolved,
                   info=info, device=choice)
