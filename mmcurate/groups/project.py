"""A project's groups: ``duplicates.parquet`` computed, fingerprinted, split, counted.

Files (in the project directory): ``duplicates.parquet`` (``pair_id``, ``group_id``, ``kind``,
``similarity``; one row per grouped pair and kind), ``duplicates.json`` (the parameters, the
fingerprint of the vectors they were found on, counts by kind) and ``duplicate_splits.json`` (pairs
a person took out of their group; they stay out when groups are recomputed).

Groups are never silently stale: :func:`load_duplicates` compares the recorded fingerprint with
the vectors' (:func:`vectors_fingerprint`) and recomputes with the recorded parameters (or raises
:class:`StaleGroupsError`, ``stale="raise"``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_frame, atomic_write_json
from mmcurate.data.images import read_image_bytes
from mmcurate.exceptions import ProjectError
from mmcurate.groups.compute import DUPLICATE_KINDS, KINDS, GroupParams, find_groups
from mmcurate.groups.pixels import project_signature_reader

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["DuplicatesResult", "StaleGroupsError", "compute_duplicates", "duplicates_status",
           "load_duplicates", "split_group", "vectors_fingerprint"]

COLUMNS = ["pair_id", "group_id", "kind", "similarity"]


class StaleGroupsError(ProjectError):
    """``duplicates.parquet`` was computed on other vectors than the project's now."""


@dataclass
class DuplicatesResult:
    """What :func:`compute_duplicates` found: ``groups`` (the ``duplicates.parquet`` table),
    ``counts`` (groups and pairs by kind), the parameters, the fingerprint and the seconds taken."""

    groups: pd.DataFrame
    counts: dict[str, dict[str, int]]
    params: dict[str, Any]
    fingerprint: str
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def vectors_fingerprint(proj: Project) -> str:
    """A hash of the project's vectors as the groups see them: the pair ids in order, the shapes,
    the store's own fingerprint and up to 2,048 evenly spaced rows of each modality."""
    image, text = proj.image_embeddings(), proj.text_embeddings()
    h = hashlib.sha1()
    h.update(proj.embeddings_fingerprint().encode())
    h.update("\n".join(proj.pairs["pair_id"].astype(str)).encode())
    for x in (image, text):
        h.update(repr(x.shape).encode())
        rows = np.unique(np.linspace(0, max(len(x) - 1, 0), min(len(x), 2048)).astype(np.int64))
        h.update(np.ascontiguousarray(np.asarray(x[rows], np.float16)).tobytes())
    return h.hexdigest()


def image_keys(proj: ProjectFiles, *, progress: bool = False) -> list[str | None] | None:
    """sha1 of each pair's image file bytes (None: unreadable); None for imported embeddings."""
    if proj.kind == "external" or proj.image_root is None:
        return None
    from tqdm.auto import tqdm  # heavy: tqdm

    keys: list[str | None] = []
    refs = proj.pairs["image"].astype(str)
    for ref in tqdm(refs, total=len(refs), desc="hash images", disable=not progress, unit="img"):
        try:
            keys.append(hashlib.sha1(read_image_bytes(ref, image_root=proj.image_root)).hexdigest())
        except (OSError, ValueError):
            keys.append(None)
    return keys


def _splits(proj: ProjectFiles) -> set[str]:
    path = proj.duplicate_splits_path
    return set(json.loads(path.read_text())["pair_ids"]) if path.is_file() else set()


def _apply_splits(table: pd.DataFrame, split: set[str]) -> pd.DataFrame:
    """Split pairs leave their duplicate groups (boilerplate groups keep them); groups left with one
    member dissolve."""
    if not split or table.empty:
        return table
    out = table[~(table["pair_id"].isin(split) & table["kind"].isin(DUPLICATE_KINDS))]
    sizes = out.groupby("group_id")["pair_id"].transform("size")
    return out[sizes >= 2].reset_index(drop=True)


def _counts(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    by_kind = table.groupby("kind") if len(table) else None
    return {kind: {"groups": int(by_kind.get_group(kind)["group_id"].nunique())
                   if by_kind is not None and kind in by_kind.groups else 0,
                   "pairs": int((table["kind"] == kind).sum()) if len(table) else 0} for kind in KINDS}


def compute_duplicates(proj: Project, *, params: GroupParams | None = None, random_state: int = 0,
                       write: bool = True, progress: bool = False) -> DuplicatesResult:
    """Find the project's groups (:func:`mmcurate.groups.find_groups`) and write them.

    Image projects hash every image file for the exact kind and, with ``params.verify`` ``auto`` or
    ``pixels``, confirm each vector-near pair by its images' pixels (only the images of candidate
    pairs are read, :mod:`mmcurate.groups.pixels`); imported-embedding projects get the vector-based
    kinds. Pairs split earlier (:func:`split_group`) stay out of duplicate groups.
    The caller holds the project lock when ``write`` (``Project.duplicates`` does).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        result = compute_duplicates(proj)
        result.groups.groupby("kind")["group_id"].nunique()
    """
    params = params or GroupParams()
    t0 = time.perf_counter()
    image, text = proj.image_embeddings(), proj.text_embeddings()
    if len(image) != len(proj.pairs):
        raise ProjectError(f"{proj.root}: {len(image)} embedded of {len(proj.pairs)} pairs; "
                           f"run `mmcurate embed {proj.root}` first")
    fingerprint = vectors_fingerprint(proj)
    reader = project_signature_reader(proj, progress=progress)
    if params.verify == "pixels" and reader is None:
        raise ProjectError(f"{proj.root} has no image files (imported embeddings): verify='pixels' cannot "
                           f"read any; use --verify auto or none")
    keys = image_keys(proj, progress=progress) if params.exact else None
    t1 = time.perf_counter()
    found = find_groups(image, text, proj.pairs["caption"].tolist(), image_keys=keys, params=params,
                        pixel_signatures=reader, random_state=random_state)
    t2 = time.perf_counter()
    table = _table(proj, found)
    table = _apply_splits(table, _splits(proj))
    result = DuplicatesResult(table, _counts(table), params.as_dict(), fingerprint,
                              timings={"hash_and_fingerprint": t1 - t0, "groups": t2 - t1})
    if write:
        atomic_write_frame(table, proj.duplicates_path)
        atomic_write_json(proj.duplicates_meta_path, {"params": result.params, "fingerprint": fingerprint,
                                             "random_state": random_state, "counts": result.counts,
                                             "created": time.strftime("%FT%TZ", time.gmtime())})
    result.seconds = time.perf_counter() - t0
    return result


def _table(proj: ProjectFiles, found: pd.DataFrame) -> pd.DataFrame:
    """``find_groups``' rows as pair ids, groups numbered 0.. by kind then smallest row."""
    ids = proj.pairs["pair_id"].astype(str).to_numpy()
    if found.empty:
        return pd.DataFrame({"pair_id": pd.Series(dtype=object), "group_id": pd.Series(dtype=np.int64),
                             "kind": pd.Series(dtype=object), "similarity": pd.Series(dtype=np.float64)})
    order = {k: i for i, k in enumerate(KINDS)}
    keys = pd.DataFrame({"k": found["kind"].map(order), "g": found["group"]}).drop_duplicates()
    keys = keys.sort_values(["k", "g"]).reset_index(drop=True)
    number = {(k, g): i for i, (k, g) in enumerate(zip(keys["k"], keys["g"]))}
    group_id = [number[(order[k], g)] for k, g in zip(found["kind"], found["group"])]
    out = pd.DataFrame({"pair_id": ids[found["row"].to_numpy()], "group_id": np.asarray(group_id, np.int64),
                        "kind": found["kind"].to_numpy(), "similarity": found["similarity"].to_numpy()})
    return out.sort_values(["group_id", "pair_id"]).reset_index(drop=True)


def load_duplicates(proj: Project, *, stale: str = "recompute", write: bool = True) -> pd.DataFrame | None:
    """The project's groups (None: ``duplicates`` never ran), split pairs taken out.

    ``stale``: what to do when the vectors changed since they were computed: ``recompute`` (with
    the recorded parameters; written when ``write``) or ``raise`` (:class:`StaleGroupsError`).
    """
    meta_path = proj.duplicates_meta_path
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("fingerprint") != vectors_fingerprint(proj):
        if stale == "raise":
            raise StaleGroupsError(f"{proj.duplicates_path} was computed on other vectors than the "
                                   f"project's now; run `mmcurate duplicates {proj.root}` again")
        if stale != "recompute":
            raise ValueError(f"stale must be 'recompute' or 'raise'; got {stale!r}")
        return compute_duplicates(proj, params=GroupParams(**meta["params"]),
                                  random_state=int(meta.get("random_state", 0)), write=write).groups
    return _apply_splits(pd.read_parquet(proj.duplicates_path), _splits(proj))


def split_group(proj: Project, pair_ids: str | Iterable[str]) -> pd.DataFrame:
    """Take pairs out of their duplicate groups (a member that differs from the rest), for good:
    recomputed groups leave them out too. A decision on the group no longer reaches them (one they
    already received stays until someone decides them directly). Returns the groups after.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        split_group(proj, ["a1b2c3d4e5f60718"])
    """
    ids = {str(p) for p in ([pair_ids] if isinstance(pair_ids, str) else pair_ids)}
    unknown = sorted(ids - set(proj.pairs["pair_id"].astype(str)))
    if unknown:
        raise ValueError(f"unknown pair ids {unknown[:5]}; pair ids are in {proj.pairs_path}")
    groups = load_duplicates(proj, stale="raise")
    if groups is None:
        raise ProjectError(f"{proj.root} has no groups yet; run `mmcurate duplicates {proj.root}` first")
    atomic_write_json(proj.duplicate_splits_path, {"pair_ids": sorted(_splits(proj) | ids)})
    table = _apply_splits(groups, ids)
    atomic_write_frame(table, proj.duplicates_path)
    meta = json.loads(proj.duplicates_meta_path.read_text())
    meta["counts"] = _counts(table)
    atomic_write_json(proj.duplicates_meta_path, meta)
    return table


def duplicates_status(proj: Project) -> dict[str, Any] | None:
    """Groups and pairs by kind and whether they are current (what ``status`` shows), or None."""
    meta_path = proj.duplicates_meta_path
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    try:
        current = meta.get("fingerprint") == vectors_fingerprint(proj)
    except (OSError, ValueError, ProjectError):
        current = False
    return {"counts": meta.get("counts", {}), "current": current, "created": meta.get("created"),
            "split_pairs": len(_splits(proj))}
