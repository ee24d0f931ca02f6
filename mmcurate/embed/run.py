"""Batched, streamed, resumable embedding of a pairs table.

Images are opened, composited onto white, resized and normalised in DataLoader worker processes
sized to the machine (so the model does not wait on decoding); JPEGs are decoded at the smallest
DCT scale that still covers the model input (PIL ``draft``), or, with ``decode="gpu"``, by nvJPEG on
the encoder's GPU. Captions are tokenized in the workers too; batches reach a CUDA model through
pinned memory with non-blocking copies. The main process runs
the model under ``torch.inference_mode`` and writes each batch as one atomic part file, so an
interrupted run (Ctrl-C, SIGKILL) resumes where it stopped and loses at most the batch in flight.
An image that became unreadable since validation is reported, not fatal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mmcurate.data.images import read_image_bytes
from mmcurate.embed.decode import decode_jpegs, is_jpeg, tensor_transform
from mmcurate.embed.device import default_batch_size
from mmcurate.embed.encoder import Encoder, torch_threads
from mmcurate.embed.store import EmbeddingStore

__all__ = ["EmbedReport", "embed_pairs", "model_threads"]


@dataclass
class EmbedReport:
    """What one embedding run did (the local engine's and the Ray engine's report).

    ``failures``: ``{pair_id, reason, detail}`` per pair that could not be embedded; ``devices``:
    the devices the Ray engine's actors ran on (empty for the local engine).
    """

    n_total: int
    n_already: int
    n_embedded: int = 0
    n_failed: int = 0
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    @property
    def pairs_per_second(self) -> float:
        return self.n_embedded / self.seconds if self.seconds > 0 else 0.0


class _PairDataset:
    """Map-style dataset returning (position, image tensor | JPEG bytes | None, tokens, error).

    With ``raw_jpeg`` a JPEG comes back as its bytes (decoded later on the GPU); everything else is
    opened at reduced size (``min_size``) and preprocessed here, in the worker.
    """

    def __init__(self, refs, captions, image_root, preprocess, tokenizer, open_image,
                 min_size: int | None = None, raw_jpeg: bool = False):
        self.refs, self.captions = refs, captions
        self.image_root, self.preprocess = image_root, preprocess
        self.tokenizer, self.open_image = tokenizer, open_image
        self.min_size, self.raw_jpeg = min_size, raw_jpeg

    def __len__(self) -> int:
        return len(self.refs)

    def _image(self, ref: str):
        if self.raw_jpeg:
            data = read_image_bytes(ref, image_root=self.image_root)
            if is_jpeg(data):
                return data
        kwargs = {"min_size": self.min_size} if self.min_size else {}
        return self.preprocess(self.open_image(ref, image_root=self.image_root, **kwargs))

    def __getitem__(self, i: int):
        tokens = self.tokenizer([self.captions[i]])[0]
        try:
            return i, self._image(self.refs[i]), tokens, ""
        except Exception as err:  # reported per pair; one bad file must not stop the job
            return i, None, tokens, f"{type(err).__name__}: {err}"


def _collate(batch):
    import torch  # heavy: torch

    positions = [b[0] for b in batch]
    ok = [b[1] is not None for b in batch]
    images = [b[1] for b in batch if b[1] is not None]
    decoded: list[Any] | torch.Tensor = images  # raw bytes stay a list; decoded tensors are stacked
    if images and all(not isinstance(im, bytes) for im in images):
        decoded = torch.stack(images)
    return (positions, ok, decoded if len(decoded) else None,
            torch.stack([b[2] for b in batch]), [b[3] for b in batch])


def _worker_init(_worker_id: int) -> None:
    """Runs in a DataLoader worker process, which this module's loader created and which only
    decodes: one thread there is that process's own setting, nothing to restore."""
    import torch  # heavy: torch

    torch.set_num_threads(1)


def default_workers(device_type: str = "cpu", n_cores: int | None = None) -> int:
    """DataLoader workers sized to the machine.

    On CPU the model shares the cores with decoding: half the cores (at least 2, at most 8). With
    an accelerator the cores only decode: all of them, at most 16.
    """
    cores = n_cores or os.cpu_count() or 1
    if device_type == "cpu":
        return min(cores, max(2, min(8, cores // 2)))
    return min(cores, 16)


def model_threads(device_type: str = "cpu", workers: int = 0, n_cores: int | None = None) -> int:
    """Torch threads for the model while ``workers`` processes decode.

    On CPU the model gets the cores the workers leave (at least 1): more threads than cores stall
    every parallel region on a descheduled thread (on 2 cores with 2 workers, a tiny model ran 8×
    slower with 2 threads than with 1). Decoding nothing inline or on an accelerator: every core.
    """
    cores = n_cores or os.cpu_count() or 1
    if device_type == "cpu" and workers:
        return max(1, cores - workers)
    return cores


def _loader(dataset, *, batch_size: int, workers: int, pin: bool):
    from torch.utils.data import DataLoader  # heavy: torch

    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=_collate, worker_init_fn=_worker_init if workers else None,
                      prefetch_factor=4 if workers else None, persistent_workers=False,
                      pin_memory=pin)


def embed_pairs(
    pairs: pd.DataFrame,
    store: EmbeddingStore,
    encoder: Encoder,
    *,
    image_root: str | os.PathLike | None,
    open_image: Callable[..., Any],
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    reduced_decode: bool = True,
    decode: str = "cpu",
) -> EmbedReport:
    """Embed every pair of ``pairs`` that ``store`` does not hold yet.

    Parameters
    ----------
    pairs : DataFrame
        Columns ``pair_id``, ``image``, ``caption``.
    store : EmbeddingStore
        Bound to ``encoder.info`` by the caller.
    image_root : path or None
        Root that relative ``image`` paths are resolved against.
    open_image : callable
        ``open_image(ref, image_root=..., min_size=...) -> PIL.Image`` (``mmcurate.data.open_image``).
    batch_size : int, optional
        Pairs per batch (default: 32 on CPU, 256 on CUDA).
    num_workers : int, optional
        Decoding worker processes (default :func:`default_workers`; 0 decodes inline).
    reduced_decode : bool
        Decode JPEGs at the smallest DCT scale that still covers the model input (``min_size``).
    decode : {"cpu", "gpu"}
        ``gpu``: JPEGs are decoded with nvJPEG (``torchvision.io.decode_jpeg``) on the encoder's
        device and transformed there; other formats still decode in the workers.

    Returns
    -------
    EmbedReport

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        report = embed_pairs(pairs, store, encoder, image_root="images/",
                             open_image=open_image)
    """
    import torch  # heavy: torch

    if decode not in ("cpu", "gpu"):
        raise ValueError(f"unknown decode {decode!r}; use 'cpu' or 'gpu'")
    todo_ids = set(store.missing(pairs["pair_id"].tolist()))
    todo = pairs[pairs["pair_id"].isin(todo_ids)]
    report = EmbedReport(n_total=len(pairs), n_already=len(pairs) - len(todo))
    if todo.empty:
        return report
    dev = encoder.device
    dataset = _PairDataset(todo["image"].tolist(), todo["caption"].tolist(),
                           str(image_root) if image_root else None, encoder.preprocess,
                           encoder.tokenizer, open_image,
                           min_size=encoder.image_size if reduced_decode else None,
                           raw_jpeg=decode == "gpu")
    workers = default_workers(dev.type) if num_workers is None else num_workers
    loader = _loader(dataset, batch_size=batch_size or default_batch_size(dev), workers=workers,
                     pin=dev.type == "cuda")
    bar = _progress(len(todo), progress)
    ids = todo["pair_id"].tolist()
    start = time.perf_counter()
    # the cores the decoding workers leave for the model (see model_threads); restored after
    with torch_threads(model_threads(dev.type, workers)), torch.inference_mode():
        for positions, ok, images, tokens, errors in loader:
            if isinstance(images, list):
                ok, images, errors = _device_images(encoder, ok, images, errors)
            _embed_batch(encoder, store, ids, positions, ok, images, tokens, errors, report, todo)
            bar.update(len(positions))
    bar.close()
    report.seconds = time.perf_counter() - start
    return report


def _device_images(encoder: Encoder, ok: list[bool], images: list, errors: list[str]):
    """Decode the batch's JPEG bytes on the encoder's device; stack with the worker-made tensors."""
    import torch  # heavy: torch

    jpeg_at = [i for i, im in enumerate(images) if isinstance(im, bytes)]
    decoded = decode_jpegs([images[i] for i in jpeg_at], device=encoder.device.name)
    cfg = encoder.info.get("preprocess") or {}
    good = [d for d in decoded if not isinstance(d, str)]
    made = iter(tensor_transform(good, size=encoder.image_size, cfg=cfg)) if good else iter(())
    result = {i: (d if isinstance(d, str) else next(made)) for i, d in zip(jpeg_at, decoded)}
    ok, errors = list(ok), list(errors)
    out, slot = [], 0
    for b, good_b in enumerate(ok):
        if not good_b:
            continue
        im = result.get(slot, images[slot])
        slot += 1
        if isinstance(im, str):
            ok[b], errors[b] = False, im
            continue
        out.append(im.to(encoder.device.name, non_blocking=True))
    return ok, (torch.stack(out) if out else None), errors


def _embed_batch(encoder, store, ids, positions, ok, images, tokens, errors, report, todo):
    ok_arr = np.asarray(ok, dtype=bool)
    for pos, good, err in zip(positions, ok, errors):
        if not good:
            report.failures.append({"pair_id": ids[pos], "image": todo["image"].iloc[pos],
                                    "reason": "unreadable_image", "detail": err})
    report.n_failed += int((~ok_arr).sum())
    if images is None:
        return
    text = np.asarray(encoder.encode_token_tensors(tokens[torch_index(ok_arr)]), dtype=np.float32)
    image = np.asarray(encoder.encode_image_tensors(images), dtype=np.float32)
    done = [p for p, g in zip(positions, ok) if g]
    finite = np.asarray(np.isfinite(image).all(1) & np.isfinite(text).all(1))  # (N,) bool, typed as an array
    for pos in np.asarray(done)[~finite]:
        report.failures.append({"pair_id": ids[pos], "image": todo["image"].iloc[pos],
                                "reason": "non_finite_vector",
                                "detail": "the model returned NaN/inf for this pair"})
    report.n_failed += int((~finite).sum())
    if finite.any():
        store.write_part([ids[p] for p, f in zip(done, finite) if f], image[finite], text[finite])
    report.n_embedded += int(finite.sum())


def torch_index(mask: np.ndarray):
    """A torch bool index from a numpy mask."""
    import torch  # heavy: torch

    return torch.from_numpy(mask)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm  # heavy: tqdm

    return tqdm(total=total, desc="embed", unit="pair", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)
