"""Embedding on Ray Data: the same float16 parts and manifest as the local engine, so every later
stage reads them unchanged, and the same resume rule (only pairs without vectors are embedded).

The pair table (only the rows still missing) becomes a Ray Dataset; ``map_batches`` with a callable
class runs one open_clip model per actor (``ActorPoolStrategy``). Each actor opens and preprocesses
its batch's images, encodes them and their captions, and writes one atomic part file into the
project's ``embeddings/parts/`` (actors need the project directory and the weights on a shared
path: same machine, or a shared filesystem on a cluster). The driver only counts what finished.

Without ``address`` a local Ray starts on this machine; ``address="auto"`` or ``"ray://HOST:PORT"``
joins an existing cluster and nothing else changes. With ``gpus_per_worker`` (CLI
``--gpus-per-worker``) each actor reserves that share of a GPU (``num_gpus``) and loads the model on
it (Ray points ``CUDA_VISIBLE_DEVICES`` at the actor's GPU); a cluster without enough GPUs is an
error at once, not a wait for resources that never come.

On a 2-core machine give actors fractional CPUs (default 0.5): an actor pool that asks for every
core starves Ray's read tasks and hangs.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mmcurate.data import open_image
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.run import EmbedReport
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import DeviceError, MissingDependencyError

if TYPE_CHECKING:
    from mmcurate.embed.run import EmbedReport
    from mmcurate.project import Project

__all__ = ["RayEncoder", "embed_with_ray", "require_ray"]


def require_ray():
    """Import ray, or raise with the pip command that installs it."""
    try:
        import ray  # heavy: ray
    except ImportError as err:
        raise MissingDependencyError(
            "the Ray engine needs Ray Data: pip install 'mmcurate[ray]' (or pip install 'ray[data]')"
        ) from err
    return ray


class RayEncoder:
    """Ray Data callable class: one encoder per actor; encodes a batch and writes one part file."""

    def __init__(self, model: str, pretrained: str | None, weights_sha256: str | None,
                 store_root: str, image_root: str | None, threads: int = 1, device: str = "cpu",
                 precision: str = "auto") -> None:
        import torch  # heavy: torch

        # the actor is a worker process Ray started for this pool: its thread count is its own
        torch.set_num_threads(threads)
        # On a GPU actor Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, so "cuda" is that GPU.
        self.encoder = load_encoder(ModelSpec(model, pretrained), weights_sha256=weights_sha256,
                                    device=device, precision=precision)
        self.store = EmbeddingStore(store_root)
        self.image_root = image_root

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch  # heavy: torch

        ids, images, keep, errors = [], [], [], []
        for pid, ref in zip(batch["pair_id"], batch["image"]):
            try:
                im = open_image(str(ref), image_root=self.image_root, min_size=self.encoder.image_size)
                images.append(self.encoder.preprocess(im))
                keep.append(True)
                ids.append(str(pid))
                errors.append("")
            except Exception as err:  # one unreadable image must not stop the job
                keep.append(False)
                errors.append(f"{type(err).__name__}: {err}")
        captions = [str(c) for c, k in zip(batch["caption"], keep) if k]
        if ids:
            with torch.inference_mode():
                img = self.encoder.encode_image_tensors(torch.stack(images))
                txt = self.encoder.encode_token_tensors(self.encoder.tokenizer(captions))
            self.store.write_part(ids, img, txt)
        n = len(keep)
        return {"pair_id": np.asarray(batch["pair_id"], dtype=str), "ok": np.asarray(keep),
                "error": np.asarray(errors, dtype=str),
                "device": np.asarray([self.encoder.device.name] * n, dtype=str),
                "precision": np.asarray([self.encoder.device.precision] * n, dtype=str)}


def _dataset(ray, todo, n_blocks: int):
    """The missing pairs as a Ray Dataset of ``n_blocks`` Arrow blocks (so every actor gets work)."""
    table = pa.Table.from_pandas(todo[["pair_id", "image", "caption"]].astype(str),
                                 preserve_index=False)
    step = -(-len(table) // n_blocks)
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, len(table), step)])


def _init_ray(ray, address: str | None, num_cpus: int | None) -> None:
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "ignore_reinit_error": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)


def _actor_device(device: str, gpus_per_worker: float) -> str:
    """The device actors load the model on: ``cuda`` when they are given GPUs, else ``cpu``."""
    name = str(device).strip().lower()
    if gpus_per_worker > 0:
        if name in ("cpu", "mps"):
            raise ValueError(f"--gpus-per-worker {gpus_per_worker} gives actors GPUs, but device is "
                             f"{device!r}; use --device auto or cuda")
        return "cuda"
    if name.startswith("cuda"):
        raise ValueError(f"device {device!r} on Ray needs GPUs for the actors: give --gpus-per-worker "
                         f"(e.g. 1), or use --device cpu")
    return "cpu" if name == "auto" else name


def _check_gpus(ray, gpus_per_worker: float, num_workers: int) -> None:
    """Fail at once (instead of waiting forever for resources) when the cluster has too few GPUs."""
    have = float(ray.cluster_resources().get("GPU", 0.0))
    if gpus_per_worker > 0 and have < gpus_per_worker:
        raise DeviceError(f"--gpus-per-worker {gpus_per_worker} asks for GPUs, but the Ray cluster has "
                          f"{have:g}; run on a cluster with GPUs or drop --gpus-per-worker")
    if gpus_per_worker > 0 and have < gpus_per_worker * num_workers:
        logging.getLogger(__name__).warning("%d actors x %g GPU exceed the cluster's %g GPUs; "
                                            "fewer actors will run at a time",
                                            num_workers, gpus_per_worker, have)


def embed_with_ray(proj: Project, *, address: str | None = None, num_workers: int = 2,
                   batch_size: int | None = None, cpus_per_worker: float = 0.5,
                   gpus_per_worker: float = 0.0, device: str = "auto", precision: str = "auto",
                   reembed: bool = False, shutdown: bool = True) -> EmbedReport:
    """Embed the project's missing pairs with a Ray actor pool; returns the same
    :class:`~mmcurate.embed.run.EmbedReport` as the local engine (``devices`` filled in).

    With ``gpus_per_worker > 0`` each actor is given that share of a GPU and loads the model on it
    (``device`` ``auto`` or ``cuda``); the precision the actors used is recorded in the manifest.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        report = embed_with_ray(open_project("proj"), num_workers=2)
        report.n_embedded, report.devices
        # (400, ['cpu'])
    """
    ray = require_ray()
    from ray.data import ActorPoolStrategy  # heavy: ray

    actor_device = _actor_device(device, gpus_per_worker)
    batch_size = batch_size or (256 if actor_device == "cuda" else 32)
    spec = proj.model_spec or ModelSpec()  # as load_encoder and the local engine: the default model
    with proj.lock():
        encoder = load_encoder(spec, weights_sha256=proj.weights_sha256, device="cpu")
        # device and precision are the actors' (a GPU's bf16 support is known only there): recorded
        # from what they report once the run is done
        info = {k: v for k, v in encoder.info.items() if k not in ("device", "precision")}
        store = proj.store
        store.bind(info, reembed=reembed)
        sha = encoder.info["weights_sha256"]
        del encoder
        pairs = proj.pairs
        todo = pairs[pairs["pair_id"].isin(set(store.missing(pairs["pair_id"].tolist())))]
        result = EmbedReport(n_total=len(pairs), n_already=len(pairs) - len(todo))
        if todo.empty:
            return result
        start = time.perf_counter()
        _init_ray(ray, address, None)
        used: set[tuple[str, str]] = set()
        try:
            _check_gpus(ray, gpus_per_worker, num_workers)
            ds = _dataset(ray, todo, max(1, min(len(todo) // batch_size, num_workers * 8)))
            out = ds.map_batches(
                RayEncoder, batch_size=batch_size, batch_format="numpy",
                fn_constructor_kwargs={"model": spec.model, "pretrained": spec.pretrained,
                                       "weights_sha256": sha, "store_root": str(store.root),
                                       "image_root": str(proj.image_root) if proj.image_root else None,
                                       "device": actor_device, "precision": precision},
                compute=ActorPoolStrategy(size=num_workers), num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker or None,
            )
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                ok = batch["ok"].astype(bool)
                result.n_embedded += int(ok.sum())
                used.update(zip(batch["device"].tolist(), batch["precision"].tolist()))
                result.failures += [{"pair_id": p, "reason": "unreadable_image", "detail": e}
                                       for p, e in zip(batch["pair_id"][~ok], batch["error"][~ok])]
        finally:
            if shutdown:
                ray.shutdown()
        result.devices = sorted(d for d, _ in used)
        for dev, prec in sorted(used):
            store.bind({**info, "device": dev.split(":")[0], "precision": prec})
        result.n_failed = len(result.failures)
        result.seconds = time.perf_counter() - start
        proj._record_failures(result.failures)
        proj._set_aside_failures(store)
        pairs = proj.pairs
        if not store.missing(pairs["pair_id"].tolist()):
            store.compact(pairs["pair_id"].tolist())
    return result
