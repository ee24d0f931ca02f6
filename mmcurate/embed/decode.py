"""JPEG decoding with torchvision (nvJPEG on CUDA) and the open_clip image transform on tensors.

The tensor transform mirrors open_clip's default one (resize the shorter side to the model input
with bicubic interpolation and antialiasing, centre crop, scale to [0, 1], normalise with the
model's mean and std); results differ from the PIL path by interpolation rounding only. It runs on
whichever device the decoded tensors are on, so CPU tests exercise the same code as the GPU path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["decode_jpegs", "is_jpeg", "tensor_transform"]


def is_jpeg(data: bytes) -> bool:
    """Whether ``data`` starts with a JPEG start-of-image marker."""
    return data[:3] == b"\xff\xd8\xff"


def _check_cfg(cfg: dict[str, Any]) -> None:
    mode = cfg.get("resize_mode", "shortest")
    interp = cfg.get("interpolation", "bicubic")
    if mode != "shortest" or interp not in ("bicubic", "bilinear"):
        raise ValueError(f"GPU decoding supports open_clip's 'shortest' resize with bicubic/bilinear "
                         f"interpolation; this model uses resize_mode={mode!r}, interpolation="
                         f"{interp!r}. Use decode='cpu'.")


def tensor_transform(images: Sequence[Any], *, size: int, cfg: dict[str, Any]) -> Any:
    """Resize, crop and normalise decoded ``uint8 (3, H, W)`` tensors into ``(B, 3, size, size)``.

    ``cfg`` is the model's ``preprocess_cfg`` (``mean``, ``std``, ``interpolation``, ``resize_mode``).
    """
    import torch  # heavy: torch
    from torchvision.transforms.v2 import InterpolationMode  # heavy: torchvision
    from torchvision.transforms.v2 import functional as F  # heavy: torchvision

    _check_cfg(cfg)
    interp = InterpolationMode.BICUBIC if cfg.get("interpolation", "bicubic") == "bicubic" \
        else InterpolationMode.BILINEAR
    out = []
    for im in images:
        x = F.resize(im.float(), [size], interpolation=interp, antialias=True)
        out.append(F.center_crop(x.clamp_(0, 255).round_(), [size, size]))
    batch = torch.stack(out) / 255.0
    mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), device=batch.device)
    std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), device=batch.device)
    return (batch - mean[:, None, None]) / std[:, None, None]


def decode_jpegs(datas: Sequence[bytes], *, device: str) -> list[Any | str]:
    """Decode JPEG bytes to RGB ``uint8 (3, H, W)`` tensors on ``device`` (nvJPEG on CUDA).

    Returns one entry per input: a tensor, or an error string for a file that did not decode (a
    failing batch is retried one image at a time so one bad file only fails itself).
    """
    import torch  # heavy: torch
    from torchvision.io import ImageReadMode, decode_jpeg  # heavy: torchvision

    raw = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    try:
        return list(decode_jpeg(raw, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        pass
    out: list[Any | str] = []
    for r in raw:
        try:
            out.append(decode_jpeg(r, mode=ImageReadMode.RGB, device=device))
        except RuntimeError as err:
            out.append(f"{type(err).__name__}: {err}")
    return out
