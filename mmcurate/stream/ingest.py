"""Arriving batches for :mod:`mmcurate.stream`: validate and embed them without touching the project.

Image projects: the batch is read like ``init`` reads a source, its image paths re-expressed
relative to the project's image root (arriving images must lie under it: the review page and
export read images only from there), validated by :func:`mmcurate.data.validate.validate` with the
project's pair_ids taken, and embedded with the project's model into a staging store.
``external`` projects: the batch is a clip-retrieval embedding folder imported into a staging
store. Either way the result is ``(pairs, image (M, D) float16, text (M, D) float16)`` plus the
rejects (``source``, 1-based ``row``, ``pair_id``, ``column``, ``reason``, ``detail``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mmcurate._fileio import atomic_write_json
from mmcurate.data import open_image
from mmcurate.data.formats import detect_format, read_source
from mmcurate.data.sources import Columns
from mmcurate.data.validate import validate
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.importer import import_embedding_folder
from mmcurate.embed.run import embed_pairs
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import DataError, ModelMismatchError

if TYPE_CHECKING:
    from mmcurate.embed.encoder import Encoder
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["append_pairs", "ingest_embedding_folder", "ingest_pairs"]

_ROW = "mmcurate_stream_row"  # carries the source row through validation (dropped after)
_OUTSIDE_HINT = ("; arriving images must lie under the project's image root (the review page and "
                 "export read images only from there): put them there and pass --image-root")


def _rebase(ref: Any, old_root: Path, new_root: Path) -> Any:
    """``ref`` (relative to ``old_root`` or absolute) as a POSIX path relative to ``new_root``."""
    if not isinstance(ref, str) or not ref.strip():
        return ref
    if "::" in ref:
        shard, member = ref.split("::", 1)
        return f"{_rebase(shard, old_root, new_root)}::{member}"
    full = ref if os.path.isabs(ref) else os.path.join(old_root, ref)
    return Path(os.path.relpath(os.path.abspath(full), os.path.abspath(new_root))).as_posix()


def _empty_vectors(proj: ProjectFiles) -> tuple[np.ndarray, np.ndarray]:
    dim = int((proj.store.manifest() or {}).get("dim") or 0)
    return np.zeros((0, dim), np.float16), np.zeros((0, dim), np.float16)


def ingest_pairs(proj: Project, source: Path, staging: Path, *, image_root: str | os.PathLike | None = None,
                 columns: dict[str, str] | None = None, fmt: str | None = None,
                 check_images: bool = True, encoder: Encoder | None = None, batch_size: int = 32,
                 progress: bool = False) -> tuple[tuple[pd.DataFrame, np.ndarray, np.ndarray], pd.DataFrame]:
    """Validate and embed an arriving pairs source of an image project (see module docstring)."""
    if proj.image_root is None:
        raise DataError(f"{proj.root} has no image root; it cannot take pairs files")
    root = proj.image_root
    cols = Columns(**(columns or proj.config.get("columns") or {}))
    arrival_root = Path(image_root) if image_root else (source if source.is_dir() else source.parent)
    raw = read_source(source, image_root=root, columns=cols, fmt=fmt)
    if detect_format(source, fmt) != "webdataset":  # tar readers already give root-relative refs
        raw["image"] = raw["image"].map(lambda ref: _rebase(ref, arrival_root, root))
    raw[_ROW] = raw["_row"]
    pairs, rejects = validate(raw, image_root=root, check_images=check_images, progress=progress,
                              existing_ids=set(proj.pairs["pair_id"]))
    outside = rejects["reason"] == "outside_root"
    rejects.loc[outside, "detail"] = rejects.loc[outside, "detail"].astype(str) + _OUTSIDE_HINT
    rows = dict(zip(pairs["pair_id"], pairs.pop(_ROW)))
    if pairs.empty:
        return (pairs, *_empty_vectors(proj)), rejects
    image, text, failures = _embed(proj, pairs, staging, encoder=encoder, batch_size=batch_size,
                                   progress=progress)
    if failures:
        failed = pd.DataFrame([{"source": str(source), "row": int(rows[f["pair_id"]]),
                                "pair_id": f["pair_id"], "column": "image",
                                "reason": "unreadable_image", "detail": f["detail"]} for f in failures])
        rejects = pd.concat([rejects, failed], ignore_index=True)
        pairs = pairs[~pairs["pair_id"].isin(failed["pair_id"])].reset_index(drop=True)
    return (pairs, image, text), rejects


def _embed(proj: Project, pairs: pd.DataFrame, staging: Path, *, encoder, batch_size: int, progress: bool):
    """Embed ``pairs`` with the project's model into a staging store; (image, text, failures)."""
    if encoder is None:
        encoder = load_encoder(proj.model_spec, weights_sha256=proj.weights_sha256)
    store = EmbeddingStore(staging / "embeddings")
    atomic_write_json(store.manifest_path, proj.store.manifest())
    try:
        store.bind(encoder.info)
    except ModelMismatchError as err:
        raise ModelMismatchError(f"the encoder given is not the model {proj.root} was embedded "
                                 f"with; pass encoder=None to load the project's own. ({err})") from err
    report = embed_pairs(pairs, store, encoder, image_root=proj.image_root, open_image=open_image,
                         batch_size=batch_size, num_workers=0, progress=progress)
    failed = {f["pair_id"] for f in report.failures}
    ok = [p for p in pairs["pair_id"] if p not in failed]
    if not ok:
        return (*_empty_vectors(proj), report.failures)
    store.compact(ok)
    return np.asarray(store.load("image")), np.asarray(store.load("text")), report.failures


def ingest_embedding_folder(proj: ProjectFiles, folder: Path, staging: Path
                            ) -> tuple[tuple[pd.DataFrame, np.ndarray, np.ndarray], pd.DataFrame]:
    """Import an arriving clip-retrieval folder of an ``external`` project into a staging store."""
    if not folder.is_dir():
        raise DataError(f"{proj.root} was built from imported embeddings: an arriving batch must be an "
                        f"embedding folder (img_emb/, text_emb/, metadata/), got the file {folder}")
    for meta in sorted((folder / "metadata").glob("metadata*.parquet")):
        names = pq.read_schema(meta).names
        if "key" not in names and "image_path" not in names:
            raise DataError(f"{meta} has neither a 'key' nor an 'image_path' column (columns: {names}); "
                            f"arriving rows need one of them for a pair_id that is unique across batches")
    store = EmbeddingStore(staging / "embeddings")
    result = import_embedding_folder(folder, store, existing_ids=set(proj.pairs["pair_id"]))
    dim = int((proj.store.manifest() or {}).get("dim") or 0)
    got = int((store.manifest() or {}).get("dim") or 0)
    if len(result.pairs) and got != dim:
        raise DataError(f"{folder} holds {got}-d vectors, the project {proj.root} holds {dim}-d ones; "
                        f"arriving vectors must come from the same model")
    if not len(result.pairs):
        return (result.pairs, *_empty_vectors(proj)), result.rejects
    image, text = np.asarray(store.load("image")), np.asarray(store.load("text"))
    return (result.pairs.reset_index(drop=True), image, text), result.rejects


def append_pairs(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``old`` then ``new`` rows; shared columns of differing types are cast to ``old``'s type, or
    both to text when that fails, so the table still writes as Parquet."""
    new = new.copy()
    old = old.copy()
    for col in set(old.columns) & set(new.columns):
        if old[col].dtype == new[col].dtype:
            continue
        try:
            new[col] = new[col].astype(old[col].dtype)
        except (ValueError, TypeError):
            old[col] = old[col].astype("string")
            new[col] = new[col].astype("string")
    return pd.concat([old, new], ignore_index=True)
