"""img2dataset output folders: WebDataset shards with the Parquet table beside each one.

img2dataset (``--output_format webdataset``) writes ``00000.tar`` (``<key>.jpg``, ``<key>.txt``,
``<key>.json`` per downloaded sample), ``00000.parquet`` (one row per input URL: ``key``,
``caption``, ``url``, ``status``, ``error_message``, sizes, ...) and ``00000_stats.json``. The
Parquet is the index: a ``success`` row is a pair whose image is the shard member
``00000.tar::<key>.jpg``; any other row is a reject naming the Parquet file, its 1-based row and
img2dataset's error message (so failed downloads are accounted for, not silently missing).
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from mmcurate.data.columns import rename_reserved
from mmcurate.exceptions import DataError

__all__ = ["is_img2dataset_folder", "read_img2dataset"]

_DROP = ("status", "error_message", "exif")


def _tables(folder: Path) -> list[tuple[Path, Path]]:
    return [(p, p.with_suffix(".tar")) for p in sorted(folder.glob("*.parquet"))
            if p.with_suffix(".tar").is_file()]


def is_img2dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` holds shards with img2dataset's Parquet (``key`` and ``status``) beside."""
    pairs = _tables(folder) if folder.is_dir() else []
    if not pairs:
        return False
    try:
        names = pq.read_schema(pairs[0][0]).names
    except OSError:
        return False
    return "key" in names and "status" in names


def _members(shard: Path) -> dict[str, str]:
    """``key -> member name`` of the image members of one shard."""
    try:
        with tarfile.open(shard) as tar:
            names = [m.name for m in tar.getmembers() if m.isfile()]
    except tarfile.TarError as err:
        raise DataError(f"{shard} is not a readable tar file: {err}") from err
    found: dict[str, str] = {}
    for name in names:
        key, _, ext = name.partition(".")  # WebDataset: the key ends at the first dot
        if ext.lower() in ("jpg", "jpeg", "png", "webp"):
            found.setdefault(key, name)
    return found


def _shard_rows(table: Path, shard: Path, image_root: Path) -> tuple[list[dict], dict[str, str]]:
    df = pd.read_parquet(table)
    members = _members(shard)
    rel = Path(os.path.relpath(shard.resolve(), image_root.resolve())).as_posix()
    renames = rename_reserved(df.columns, consumed={*_DROP, "key", "caption"})
    rows = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        key = str(rec.get("key"))
        row = {"_source": str(table), "_row": i, "_ref": f"{shard.name}::{key}", "id": key,
               **{renames.get(k, k): v for k, v in rec.items() if k not in (*_DROP, "key")}}
        status = rec.get("status")
        if status != "success":
            row["image"] = None
            row["_error"] = (f"img2dataset did not fetch {rec.get('url')}: status {status}, "
                             f"{rec.get('error_message') or 'no message'}")
        elif key not in members:
            row["image"] = None
            row["_error"] = f"{table.name} says key {key} succeeded, but {shard.name} has no image for it"
        else:
            row["image"] = f"{rel}::{members[key]}"
        rows.append(row)
    return rows, renames


def read_img2dataset(folder: Path, *, image_root: Path) -> pd.DataFrame:
    """The raw table of an img2dataset output folder (see module docstring).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        raw = read_img2dataset(Path("laion_shards"), image_root=Path("laion_shards"))
    """
    pairs = _tables(folder)
    if not pairs:
        raise DataError(f"{folder} has no img2dataset shards (NNNNN.tar with NNNNN.parquet beside)")
    rows: list[dict] = []
    renames: dict[str, str] = {}
    for table, shard in pairs:
        shard_rows, shard_renames = _shard_rows(table, shard, image_root)
        rows += shard_rows
        renames.update(shard_renames)
    df = pd.DataFrame(rows)
    df.attrs["renamed_columns"] = renames
    return df
