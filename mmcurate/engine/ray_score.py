"""Distributed scoring on Ray: the neighbour-based signals over shards of the pool.

No process holds the whole pool in full precision. The driver fits the reduced projection on a
sample (:func:`mmcurate.index.fit_projection`); one Ray task per modality reads that modality's
float16 ``.npy`` file in chunks, projects it and builds a :class:`mmcurate.index.ClusteredIndex`
that goes to Ray's shared object store; then one task per shard of rows reads its own rows,
searches both indexes (image→text, text→image; the agreements reuse those neighbours) and returns
only per-pair numbers: the exact cosine, the alignment features, neighbourhood agreement and (if
asked) the density term. The driver gathers those ``O(N)`` arrays into a :class:`mmcurate.rank.RankContext`
made of them alone (:meth:`~mmcurate.rank.RankContext.from_arrays`; copied in as each shard
finishes, its object then freed) and every strategy scores as in the local engine (the pool-level
steps, calibrator fit and percentiles, are cheap). Results equal the local engine's approximate
path (``approximate=True``): same projection, same index, same per-query answers whatever the
sharding (a cross-modal search centres its queries with the query modality's index ``mean``,
which travels with that index, never with the shard's own mean). :data:`RAY_ENGINE` declares
those arrays: a strategy that reads another (the retrieval softmaxes of ``on="i2t"`` …) is refused
before any work.

Fault tolerance: every task is retried by Ray when its worker process dies (``max_retries``) and,
for an ``OSError`` (a file read that failed, e.g. on a shared filesystem), also on that exception
(``retry_exceptions``); other exceptions are bugs and fail at once. The two indexes are task
outputs, not ``ray.put`` objects, so Ray can rebuild one from its lineage if its copy is lost (a
node gone); the driver owns every object and stays alive until the result is gathered.
``fault_marker`` makes the first index task and the first shard task kill their own worker
(SIGKILL) once, which is how the retries are tested.

A project's head (if trained) is applied inside the tasks, chunk by chunk. Workers must see the
embedding files (same machine, or a shared filesystem on a cluster); with no ``address`` a local
Ray starts, ``address="auto"`` or ``"ray://HOST:PORT"`` joins a cluster and nothing else changes.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate import index as ix
from mmcurate.engine.ray_embed import require_ray
from mmcurate.index import best_candidates, project, rowwise_cosine, set_threads
from mmcurate.rank import RankContext, compute_from_context, density_candidates, joint_vectors, without_own
from mmcurate.rank.registry import Engine
from mmcurate.signals import alignment, crossmodal, density

__all__ = ["RAY_ENGINE", "rank_with_ray", "shard_stats"]

RAY_ENGINE = Engine("ray engine", provides=frozenset({"cosine", "features", "agree_v", "agree_t",
                                                      "representativeness"}), fix="use --engine local")
"""The arrays the shard tasks compute (``representativeness`` only when a strategy reads it)."""

_CHUNK = 65536


def _load(path: str, head: str | None, side: str):
    """Memory-map a float16 ``.npy`` file; with a head, a lazy adapted view of it."""
    arr = np.load(path, mmap_mode="r")
    if head is None:
        return arr
    from mmcurate.head import ProjectionHead  # heavy: torch

    return ProjectionHead.load(head).view(arr, side)


def _crash_once(fault_marker: str | None, stage: str) -> None:
    """Kill this worker process the first time a task of ``stage`` runs (marker file absent)."""
    if fault_marker is None:
        return
    try:
        fd = os.open(f"{fault_marker}.{stage}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _build_index(path: str, head: str | None, side: str, basis: np.ndarray, random_state: int,
                 fault_marker: str | None = None):
    _crash_once(fault_marker, "index")

    return ix.ClusteredIndex(ix.project(_load(path, head, side), basis), random_state=random_state)


def shard_stats(image_path: str, text_path: str, start: int, stop: int, *, image_index, text_index,
                basis: np.ndarray, k: int, nprobe: int, temperature: float, head: str | None = None,
                labeled_mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-pair numbers for rows ``start:stop`` (what one Ray task computes; plain function).

    Returns ``cosine``, the seven alignment features' inputs as an
    :class:`~mmcurate.signals.alignment.AlignmentFeatures` field dict, ``agree_v``, ``agree_t`` and,
    with ``labeled_mask``, ``representativeness`` (density's joint-space neighbours among the two
    searches' candidates, as the local engine takes them). As in :class:`mmcurate.rank.RankContext`,
    neighbours found in the reduced space are re-scored with the full vectors
    (``ClusteredIndex.search(full=)``); the agreements are taken in the reduced space.
    """
    full_img, full_txt = _load(image_path, head, "image"), _load(text_path, head, "text")
    img = np.asarray(full_img[start:stop], np.float32)
    txt = np.asarray(full_txt[start:stop], np.float32)
    cosine = rowwise_cosine(img, txt)
    ri, rt = project(img, basis), project(txt, basis)
    i2t = text_index.search(ri, k + 1, nprobe=nprobe, full=(img, full_txt), query_mean=image_index.mean)
    t2i = image_index.search(rt, k + 1, nprobe=nprobe, full=(txt, full_img), query_mean=text_index.mean)
    feats = alignment.alignment_features(cosine, *_global_rows(i2t, start, stop),
                                         *_global_rows(t2i, start, stop), temperature=temperature,
                                         own=cosine)
    out = {name: getattr(feats, name) for name in alignment.FEATURE_NAMES}
    # neighbourhood agreement from the same two searches (RankContext's agreement="cross")
    out["agree_v"] = crossmodal.neighbourhood_agreement(
        rt, without_own(i2t[1], k, offset=start), text_index.rows, own=rt)
    out["agree_t"] = crossmodal.neighbourhood_agreement(
        ri, without_own(t2i[1], k, offset=start), image_index.rows, own=ri)
    if labeled_mask is not None:  # density: joint-space neighbours among the cross-modal candidates
        sims, idx = best_candidates(joint_vectors(ri, rt), lambda rows: joint_vectors(image_index.rows(rows),
                                                                                       text_index.rows(rows)),
                                    density_candidates(i2t[1], t2i[1], k, offset=start), k)
        out["representativeness"] = density.representativeness(sims, idx, labeled_mask=labeled_mask)
    return out


def _global_rows(result, start: int, stop: int):
    """Re-code global neighbour rows for :func:`alignment.alignment_features`, which skips -1 and
    the query's own row by *local* number: the own pair becomes -1, every other row is shifted past
    the shard's local numbers (only validity matters there, not identity)."""
    sims, idx = result
    own = idx == np.arange(start, stop)[:, None]
    return sims, np.where(own, -1, np.where(idx >= 0, idx + (stop - start), -1))


def _shards(n: int, n_shards: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, max(1, min(n_shards, n)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def rank_with_ray(
    image_path: str | os.PathLike,
    text_path: str | os.PathLike,
    *,
    strategies: Sequence[str] = ("disagreement",),
    indices_labeled: npt.ArrayLike | None = None,
    labels: npt.ArrayLike | None = None,
    k: int = 10,
    random_state: int = 0,
    head: str | os.PathLike | None = None,
    address: str | None = None,
    n_shards: int | None = None,
    num_cpus: float = 1.0,
    reduced_dim: int = ix.REDUCED_DIM,
    nprobe: int = ix.NPROBE,
    temperature: float = 0.05,
    options: dict[str, dict[str, Any]] | None = None,
    calibrator: Any = None,
    max_retries: int = 3,
    fault_marker: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Score every pair with Ray tasks over shards; the same table as :func:`mmcurate.rank.compute_ranking`.

    ``image_path``/``text_path`` are the float16 ``.npy`` files of a project's embeddings (rows =
    pairs); ``head`` a projection head checkpoint to apply first. ``n_shards`` defaults to four
    per CPU of the cluster. ``calibrator`` is passed to :class:`mmcurate.rank.RankContext` (a
    validated model's, ``"prior"``, or None to fit one on the labels behind the gate). A strategy
    reading an array the shards do not compute (the retrieval softmaxes of ``on="i2t"`` etc.)
    raises :class:`~mmcurate.exceptions.UnsupportedStrategyError` before Ray starts
    (:data:`RAY_ENGINE`).
    ``max_retries``: how often Ray reruns a task whose worker died (or that raised ``OSError``).
    ``fault_marker``: for testing recovery only; a path prefix whose ``.index`` / ``.shard`` files,
    created once, mark that the first task of that stage killed its own worker.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        table = rank_with_ray("emb/image.npy", "emb/text.npy", strategies=["disagreement"])
    """
    needed = RAY_ENGINE.check(strategies, options)  # before any work
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    image_path, text_path = str(image_path), str(text_path)
    head = str(head) if head is not None else None
    image, text = _load(image_path, head, "image"), _load(text_path, head, "text")
    n = len(image)
    if len(text) != n:
        raise ValueError(f"{image_path} has {n} rows but {text_path} has {len(text)}")
    basis = ix.fit_projection(image, text, dim=reduced_dim, random_state=random_state)
    del image, text
    retry = {"num_cpus": num_cpus, "max_retries": max_retries, "retry_exceptions": [OSError]}
    marker = None if fault_marker is None else str(fault_marker)
    build = ray.remote(**retry)(_build_index)
    basis_ref = ray.put(basis)  # owned by this driver, which outlives every task using it
    image_index = build.remote(image_path, head, "image", basis_ref, random_state, marker)
    text_index = build.remote(text_path, head, "text", basis_ref, random_state, marker)
    labeled = np.asarray(indices_labeled if indices_labeled is not None else [], np.int64)
    mask = np.zeros(n, bool)
    mask[labeled] = True
    task = ray.remote(**retry)(_shard_task)
    n_shards = n_shards or max(1, int(4 * ray.cluster_resources().get("CPU", 1)))
    shards = _shards(n, n_shards)
    refs = {task.remote(image_path, text_path, a, b, image_index, text_index, basis_ref, k, nprobe,
                        temperature, head, mask if "representativeness" in needed else None,
                        marker): (a, b)
            for a, b in shards}
    stats = _gather(ray, refs, n)
    feats = alignment.AlignmentFeatures(**{name: stats[name] for name in alignment.FEATURE_NAMES},
                                        k=k + 1)
    arrays = {"features": feats, **{key: stats[key] for key in RAY_ENGINE.provides if key in stats}}
    ctx = RankContext.from_arrays(n, arrays, indices_labeled=labeled, labels=labels, k=k,
                                  random_state=random_state, temperature=temperature, approximate=True,
                                  calibrator=calibrator)
    return compute_from_context(ctx, strategies, options=options)


def _gather(ray, refs: dict, n: int) -> dict[str, np.ndarray]:
    """Copy each shard's arrays into ``(n,)`` arrays as the shard finishes, then drop its object:
    the driver holds the result once, not the parts and their concatenation."""
    stats: dict[str, np.ndarray] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        a, b = refs.pop(done[0])  # the last reference: Ray frees the object once copied
        part = ray.get(done[0])
        for key, values in part.items():
            if key not in stats:
                stats[key] = np.empty(n, dtype=values.dtype)
            stats[key][a:b] = values
        del part, done
    return stats


def _shard_task(image_path, text_path, start, stop, image_index, text_index, basis, k, nprobe,
                temperature, head, labeled_mask, fault_marker=None):
    _crash_once(fault_marker, "shard")
    set_threads(1)  # one task per CPU: no oversubscription
    return shard_stats(image_path, text_path, start, stop, image_index=image_index,
                       text_index=text_index, basis=basis, k=k, nprobe=nprobe, temperature=temperature,
                       head=head, labeled_mask=labeled_mask)
