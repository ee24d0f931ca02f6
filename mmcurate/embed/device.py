"""Where the encoder runs: device names, half precision and batch sizes per device.

``auto`` means CUDA when torch sees a GPU, else CPU (MPS is used only when asked for by name, since
some open_clip ops fall back to CPU there). A device that is named but absent is an error raised
before any model is loaded, so ``--device cuda`` on a machine without CUDA fails within seconds.

Precision: on CUDA, autocast runs in bfloat16 where the GPU supports it, else float16; on CPU and
MPS the default is float32. ``bf16`` may be asked for on CPU too (autocast on CPU supports it); the
vectors then differ slightly from float32 ones, so the precision is recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from mmcurate.exceptions import DeviceError

__all__ = ["DEVICES", "PRECISIONS", "DeviceChoice", "autocast", "default_batch_size", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DEFAULT_BATCH = {"cpu": 32, "cuda": 256, "mps": 64}


@dataclass(frozen=True)
class DeviceChoice:
    """A resolved device (``cpu``, ``cuda:0``, ``mps``) and the precision the encoder runs in."""

    name: str
    precision: str

    @property
    def type(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def torch_dtype(self) -> Any:
        """The autocast dtype, or ``None`` for float32."""
        import torch  # heavy: torch

        return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[self.precision]


def _check_name(device: str) -> str:
    name = str(device).strip().lower()
    if name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", name):
        return name
    raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")


def _resolve_name(name: str) -> str:
    import torch  # heavy: torch

    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was asked for, but torch sees no CUDA GPU here (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}). Use --device cpu "
                f"(or auto), or run on a machine with an NVIDIA GPU and a CUDA build of torch.")
        index = int(name.split(":")[1]) if ":" in name else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {name!r} does not exist: torch sees {count} CUDA GPU(s), "
                              f"cuda:0..cuda:{count - 1}")
        return f"cuda:{index}"
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError("device 'mps' was asked for, but this torch build or machine has no Apple "
                          "MPS backend; use --device cpu or auto")
    return name


def _resolve_precision(device_type: str, precision: str) -> str:
    import torch  # heavy: torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device_type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp16" and device_type == "cpu":
        raise ValueError("fp16 autocast is for GPUs; on CPU use precision 'bf16' or 'fp32'")
    return precision


def resolve_device(device: str = "auto", *, precision: str = "auto") -> DeviceChoice:
    """Check a device name and precision against this machine.

    Parameters
    ----------
    device : str
        ``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    precision : str
        ``auto`` (CUDA: bf16 where supported, else fp16; elsewhere fp32), ``fp32``, ``fp16``, ``bf16``.

    Raises
    ------
    DeviceError
        The device is named but this machine does not have it.

    Examples
    --------
    >>> resolve_device("cpu")
    DeviceChoice(name='cpu', precision='fp32')
    """
    name = _resolve_name(_check_name(device))
    return DeviceChoice(name=name, precision=_resolve_precision(name.split(":")[0], precision))


def default_batch_size(device: DeviceChoice) -> int:
    """Images per batch when none is given: 32 on CPU, 256 on CUDA, 64 on MPS."""
    return _DEFAULT_BATCH.get(device.type, 32)


def autocast(device: DeviceChoice) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``device`` in its precision, or a no-op context for float32."""
    import torch  # heavy: torch

    dtype = device.torch_dtype
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
