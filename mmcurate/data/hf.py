"""Hugging Face style sources: images stored as bytes inside the table.

Two layouts, both as Hugging Face ``datasets`` writes an ``Image`` column (a struct of ``bytes``
and ``path``; a plain binary column is accepted too):

* ``parquet-images``: one Parquet file (``Dataset.to_parquet``, the hub's ``data/*.parquet``);
* ``hf-disk``: a folder from ``Dataset.save_to_disk`` (``state.json`` + ``data-*.arrow`` files).

An image is referenced as ``<file>::<row>`` (1-based row in that file); :func:`read_table_image`
reads its bytes back, caching the file's image column, so embedding reads each file once per
worker. A row without bytes but with a ``path`` refers to that file (relative to the image root);
a row with neither is a reject naming the file and row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mmcurate.data.columns import rename_reserved
from mmcurate.exceptions import DataError

__all__ = ["TABLE_IMAGE_SUFFIXES", "has_image_bytes", "hf_disk_files", "is_image_bytes_column",
           "read_bytes_table", "read_table_image"]

TABLE_IMAGE_SUFFIXES = (".parquet", ".arrow")


def _read_arrow(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def _read_any(path: Path) -> pa.Table:
    return pq.read_table(path) if path.suffix == ".parquet" else _read_arrow(path)


def is_image_bytes_column(field_type: pa.DataType) -> bool:
    """A binary column, or a struct with a binary ``bytes`` field (``datasets.Image``)."""
    if pa.types.is_binary(field_type) or pa.types.is_large_binary(field_type):
        return True
    return pa.types.is_struct(field_type) and any(
        field_type.field(i).name == "bytes" for i in range(field_type.num_fields))


def hf_disk_files(folder: Path) -> list[Path]:
    """The ``data-*.arrow`` files of a ``save_to_disk`` folder, in order."""
    if (folder / "dataset_dict.json").is_file():
        splits = json.loads((folder / "dataset_dict.json").read_text()).get("splits", [])
        raise DataError(f"{folder} holds a DatasetDict with splits {splits}; give one split's folder, "
                        f"e.g. {folder / (splits[0] if splits else 'train')}")
    state = folder / "state.json"
    if not state.is_file():
        raise DataError(f"{folder} is not a Hugging Face save_to_disk folder (no state.json)")
    names = [f["filename"] for f in json.loads(state.read_text()).get("_data_files", [])]
    files = [folder / n for n in names] or sorted(folder.glob("data-*.arrow"))
    if not files:
        raise DataError(f"{folder}/state.json lists no data files")
    return files


def _image_cells(column: pa.ChunkedArray) -> list[tuple[bytes | None, str | None]]:
    if pa.types.is_struct(column.type):
        rows = column.to_pylist()
        return [((r or {}).get("bytes"), (r or {}).get("path")) for r in rows]
    return [(b, None) for b in column.to_pylist()]


def _rows(path: Path, table: pa.Table, image_col: str, image_root: Path,
          consumed: Collection[str]) -> tuple[list[dict], dict[str, str]]:
    rel = Path(os.path.relpath(path.resolve(), image_root.resolve())).as_posix()
    cells = _image_cells(table.column(image_col))
    others = table.drop_columns([image_col])
    renames = rename_reserved(others.column_names, consumed=consumed)
    rows = []
    for i, ((data, ipath), rest) in enumerate(zip(cells, others.to_pylist()), start=1):
        row = {"_source": str(path), "_ref": f"{path.name}::{i}",
               **{renames.get(k, k): v for k, v in rest.items()}}
        if data:
            row[image_col] = f"{rel}::{i}"
        elif ipath:
            row[image_col] = ipath
        else:
            row[image_col] = None
            row["_error"] = f"row {i} of {path.name} has neither image bytes nor an image path"
        rows.append(row)
    return rows, renames


def read_bytes_table(files: list[Path], *, image_col: str, image_root: Path,
                     consumed: Collection[str] = ("id", "caption")) -> pd.DataFrame:
    """The raw rows of Parquet/Arrow files whose ``image_col`` holds image bytes.

    ``_row`` counts rows across the files (1-based); ``_source`` and ``_ref`` name file and row.
    Columns named like mmcurate's own (other than ``consumed``: the id and caption columns) are
    renamed (:mod:`mmcurate.data.columns`), listed in ``attrs["renamed_columns"]``.
    """
    rows: list[dict] = []
    renames: dict[str, str] = {}
    for path in files:
        try:
            table = _read_any(path)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"{path} is not a readable {path.suffix[1:]} file: {err}") from err
        if image_col not in table.column_names:
            raise DataError(f"{path}: no image column {image_col!r}; the file has columns "
                            f"{table.column_names}. Map yours with --image-column.")
        file_rows, file_renames = _rows(path, table, image_col, image_root, consumed)
        rows += file_rows
        renames.update(file_renames)
    df = pd.DataFrame(rows)
    df.insert(0, "_row", range(1, len(df) + 1))
    df.attrs["renamed_columns"] = renames
    return df


def _bytes_column_name(schema: pa.Schema, path: Path) -> str:
    names = [f.name for f in schema if is_image_bytes_column(f.type)]
    if not names:
        raise FileNotFoundError(f"{path} has no column of image bytes")
    return names[0]


@lru_cache(maxsize=4)
def _image_column(path: str, mtime: float) -> list[bytes | None]:
    file = Path(path)
    table = pq.read_table(file) if file.suffix == ".parquet" else _read_arrow(file)
    name = _bytes_column_name(table.schema, file)
    return [data for data, _ in _image_cells(table.column(name))]


def read_table_image(path: Path, row: int) -> bytes:
    """The bytes of the image in 1-based ``row`` of a Parquet/Arrow file (first image-bytes column)."""
    column = _image_column(str(path), path.stat().st_mtime)
    data = column[row - 1] if 1 <= row <= len(column) else None
    if not data:
        raise FileNotFoundError(f"row {row} of {path} holds no image bytes")
    return data


def has_image_bytes(path: Path, image_col: str) -> bool:
    """Whether Parquet file ``path`` stores images as bytes in ``image_col``."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return False  # not readable as Parquet: the plain Parquet reader reports it
    return image_col in schema.names and is_image_bytes_column(schema.field(image_col).type)
