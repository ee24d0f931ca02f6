"""Readers: every pair source becomes one raw table before validation.

The raw table has ``_source`` (file), ``_row`` (1-based data row, or the position of a folder
file / tar sample), ``_ref`` (a member or file name for messages), the three mapped columns
``id``, ``image``, ``caption`` (strings or missing) and every extra column of the source.
Text is decoded per row with ``surrogateescape`` so one row with non-UTF-8 bytes is rejected
alone instead of failing the whole file.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._util import temporarily
from mmcurate.data.columns import rename_reserved
from mmcurate.data.hf import has_image_bytes, hf_disk_files, read_bytes_table
from mmcurate.data.images import IMAGE_SUFFIXES, member_bytes
from mmcurate.data.img2dataset import read_img2dataset as _img2dataset_table
from mmcurate.exceptions import DataError

__all__ = ["Columns", "no_pairs", "read_csv", "read_folder", "read_hf_disk", "read_img2dataset", "read_jsonl",
           "read_parquet", "read_parquet_images", "read_tsv", "read_webdataset", "sanitize",
           "split_member_name"]


@dataclass(frozen=True)
class Columns:
    """Names of the id, image and caption columns in a tabular source."""

    id: str = "id"
    image: str = "image"
    caption: str = "caption"

    def names(self) -> set[str]:
        return {self.id, self.image, self.caption}


def _renamed(df: pd.DataFrame, renames: dict[str, str]) -> pd.DataFrame:
    """Record the source columns renamed by :func:`mmcurate.data.columns.rename_reserved`."""
    df.attrs["renamed_columns"] = {**df.attrs.get("renamed_columns", {}), **renames}
    return df


def _map_columns(df: pd.DataFrame, columns: Columns, source: Path,
                 renames: dict[str, str] | None = None) -> pd.DataFrame:
    missing = [c for c in (columns.image, columns.caption) if c not in df.columns]
    if missing:
        original = {new: old for old, new in (renames or {}).items()}  # as the file names them
        found = [original.get(c, c) for c in df.columns if not str(c).startswith("_")
                 or c in original]
        raise DataError(
            f"{source}: missing column(s) {missing}; the file has columns {found}. "
            f"Map yours with Columns(image=..., caption=..., id=...) or the CLI's --image-column, "
            f"--caption-column, --id-column."
        )
    rename = {columns.image: "image", columns.caption: "caption"}
    if columns.id in df.columns:
        rename[columns.id] = "id"
    clash = [c for c in ("id", "image", "caption") if c in df.columns and c not in rename
             and c not in rename.values()]
    out = df.drop(columns=clash).rename(columns=rename)
    if "id" not in out.columns:
        out["id"] = None
    return out


def numbered_rows(path: Path | str, text: str, sep: str, *,
                  strict: bool = True) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and ``(row, fields)`` of each non-blank record; ``row`` counts the lines after
    the header (blank lines included), so it matches the file as an editor shows it. A field may
    be of any length (the csv module's default limit, 128 KiB, refused long captions). Raises
    ``DataError`` naming ``path`` and the line for broken quoting (``strict``) or a duplicated
    header column."""
    with temporarily(csv.field_size_limit, csv.field_size_limit, _FIELD_LIMIT):
        return _numbered_rows(path, text, sep, strict)


_FIELD_LIMIT = 2**31 - 1  # the largest a C long holds everywhere


def _numbered_rows(path, text: str, sep: str, strict: bool) -> tuple[list[str], list[tuple[int, list[str]]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=strict)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty (expected a header row)")
        header_end = previous_end = reader.line_num
        body = []
        for fields in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if fields:
                body.append((start - header_end, fields))
    except csv.Error as err:
        raise DataError(f"{path} is not valid {'TSV' if sep == chr(9) else 'CSV'} "
                        f"(line {reader.line_num}): {err}") from err
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise DataError(f"{path}: header names column(s) {dup} more than once; every column needs "
                        f"its own name (rename or drop the copies)")
    return header, body


_INTEGER = re.compile(r"^-?(?:0|[1-9][0-9]{0,17})$")


def _typed_integers(df: pd.DataFrame, skip: set[str]) -> pd.DataFrame:
    """Extra CSV/TSV columns whose every non-empty cell is a plain integer (no sign ``+``, no leading
    zero, so ``007`` stays text) become ``Int64``, so Parquet/JSONL exports keep them as numbers."""
    for column in df.columns:
        if column in skip or str(column).startswith("_"):
            continue
        cells = df[column].tolist()
        filled = [c for c in cells if c != ""]
        if filled and all(isinstance(c, str) and _INTEGER.match(c) for c in filled):
            df[column] = pd.array([int(c) if c != "" else None for c in cells], dtype="Int64")
    return df


def _read_table(path: Path, sep: str, columns: Columns) -> pd.DataFrame:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    header, body = numbered_rows(path, text, sep)
    renames = rename_reserved(header, consumed=columns.names())
    header = [renames.get(h, h) for h in header]
    width = len(header)
    good = [r for _, r in body if len(r) == width]
    df = _typed_integers(pd.DataFrame(good, columns=header, dtype=object), columns.names())
    df.insert(0, "_row", [i for i, r in body if len(r) == width])
    bad = [{"_row": i, "_error": f"{len(r)} fields, header has {width}"}
           for i, r in body if len(r) != width]
    df = _map_columns(df, columns, path, renames)
    if bad:
        df = pd.concat([df, pd.DataFrame(bad)], ignore_index=True).sort_values("_row", kind="stable")
    return _renamed(df, renames)


def _read_jsonl(path: Path, columns: Columns) -> pd.DataFrame:
    objects, bad = [], []
    for i, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8", errors="surrogateescape"))
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            bad.append({"_row": i, "_error": f"malformed JSON: {err}"})
            continue
        objects.append((i, obj))
    renames = rename_reserved({k: None for _, obj in objects for k in obj}, consumed=columns.names())
    records = [{"_row": i, **{renames.get(k, k): (str(v) if k == columns.id and isinstance(v, (int, float))
                                                  and not isinstance(v, bool) else v)
                              for k, v in obj.items()}} for i, obj in objects]
    df = pd.DataFrame(records, dtype=object)  # object: surrogate-escaped text is not valid UTF-8
    if df.empty:
        df = pd.DataFrame(columns=["_row", columns.image, columns.caption])
    df = _map_columns(df, columns, path, renames)
    if bad:
        df = pd.concat([df, pd.DataFrame(bad)], ignore_index=True).sort_values("_row", kind="stable")
    return _renamed(df, renames)


def _read_parquet(path: Path, columns: Columns) -> pd.DataFrame:
    try:
        table = pd.read_parquet(path)
    except (ValueError, OSError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path} is not a readable Parquet file ({err})") from err
    renames = rename_reserved(table.columns, consumed=columns.names())
    df = _map_columns(table.rename(columns=renames), columns, path, renames)
    df.insert(0, "_row", range(1, len(df) + 1))
    return _renamed(df, renames)


def _read_caption_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _read_folder(root: Path) -> pd.DataFrame:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    rows = []
    for i, p in enumerate(files, start=1):
        caption = _read_caption_file(p.with_suffix(".txt"))
        rows.append({"_row": i, "_ref": p.relative_to(root).as_posix(), "id": None,
                     "image": p.relative_to(root).as_posix(), "caption": caption,
                     **({"_error": f"no caption file {p.with_suffix('.txt').name}"} if caption is None
                        else {})})
    return pd.DataFrame(rows, columns=["_row", "_ref", "id", "image", "caption", "_error"], dtype=object)


def _shards(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        return sorted(path.glob("*.tar"))
    if "{" in source:  # brace list/range, e.g. shards-{000..009}.tar or {a,b}.tar
        head, rest = source.split("{", 1)
        body, tail = rest.split("}", 1)
        if ".." in body:
            lo, hi = body.split("..")
            names = [f"{head}{i:0{len(lo)}d}{tail}" for i in range(int(lo), int(hi) + 1)]
        else:
            names = [f"{head}{b}{tail}" for b in body.split(",")]
        return [Path(n) for n in names]
    if any(ch in source for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(source))
    return [path]


_KEY_EXT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def split_member_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a WebDataset member: the basename splits at its *first* dot, as the
    webdataset package does (``a/c.cls.txt`` -> ``("a/c", "cls.txt")``); None without a dot."""
    m = _KEY_EXT.match(name)
    return (m.group(1), m.group(2).lower()) if m else None


def _unsafe_key(key: str) -> bool:
    parts = key.split("/")
    return key.startswith("/") or ".." in parts or "\\" in key


def _tar_groups(tar: tarfile.TarFile) -> dict[str, dict[str, tarfile.TarInfo]]:
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    for m in tar.getmembers():
        split = split_member_name(m.name) if m.isfile() else None
        if split is not None:
            groups.setdefault(split[0], {})[split[1]] = m
    return groups


def _tar_samples(shard: Path, image_root: Path) -> list[dict]:
    with tarfile.open(shard) as tar:
        groups = _tar_groups(tar)
        rows = []
        rel = os.path.relpath(shard.resolve(), image_root.resolve())
        for key, parts in groups.items():
            img = next((parts[e] for e in ("jpg", "jpeg", "png", "webp") if e in parts), None)
            caption, meta = None, {}
            if "txt" in parts:
                text = member_bytes(tar, parts["txt"], where=str(shard))
                caption = text.decode("utf-8", "surrogateescape").strip()
            if "json" in parts:
                try:
                    meta = json.loads(member_bytes(tar, parts["json"], where=str(shard)).decode("utf-8"))
                except ValueError:
                    meta = {}
                if not isinstance(meta, dict):
                    meta = {}
                caption = caption if caption is not None else meta.get("caption")
            extras = {k: v for k, v in meta.items() if k != "caption"
                      and isinstance(v, (str, int, float, bool))}
            renames = rename_reserved(extras, consumed={"caption"})
            row: dict[str, Any] = {"_ref": f"{shard.name}::{key}", "id": key,
                   "image": f"{Path(rel).as_posix()}::{img.name}" if img else None,
                   "caption": caption, **{renames.get(k, k): v for k, v in extras.items()}}
            if renames:
                row["_renamed"] = renames
            if _unsafe_key(key):
                row.update(id=None, _error=f"member name {key!r} is not a plain relative name (it "
                                           f"is absolute or contains '..'); rename it in the shard")
            elif img is None:
                row["_error"] = f"sample {key} has no jpg/png/webp member"
            rows.append(row)
    return rows


def _read_webdataset(source: str, image_root: Path) -> pd.DataFrame:
    shards = _shards(source)
    if not shards:
        raise DataError(f"no WebDataset shards match {source}")
    rows = []
    for shard in shards:
        if not shard.is_file():
            raise DataError(f"WebDataset shard {shard} does not exist")
        try:
            part = _tar_samples(shard, image_root)
        except tarfile.TarError as err:
            raise DataError(f"{shard} is not a readable tar file: {err}") from err
        for r in part:
            r["_source"] = str(shard)
        rows += part
    renames: dict[str, str] = {}
    for r in rows:
        renames.update(r.pop("_renamed", {}))
    df = pd.DataFrame(rows, dtype=object)
    df.insert(0, "_row", range(1, len(df) + 1))
    return _renamed(df, renames)


# -- the built-in formats' readers: read(source, *, image_root, columns) -> raw table ------------
# (registered by name in mmcurate.data.formats.FORMATS, which dispatches to them)

def _pairs_file(source: str | os.PathLike) -> Path:
    path = Path(source)
    if not path.is_file():
        raise DataError(f"pairs file {path} does not exist")
    return path


def read_csv(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """A CSV file with a header row."""
    return _read_table(_pairs_file(source), ",", columns)


def read_tsv(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """A tab-separated file with a header row."""
    return _read_table(_pairs_file(source), "\t", columns)


def read_jsonl(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """JSON lines: one object per line."""
    return _read_jsonl(_pairs_file(source), columns)


def read_parquet(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """A Parquet file: image paths, or image bytes in the image column (read as parquet-images)."""
    path = _pairs_file(source)
    if has_image_bytes(path, columns.image):  # may be empty: validation reports zero pairs
        return _read_stored_images(path, "parquet-images", image_root, columns)
    df = _read_parquet(path, columns)
    if df.empty:
        raise no_pairs(source)
    return df


def no_pairs(source: str | os.PathLike, hint: str = "") -> DataError:
    """The error for a source with no data rows (``hint``: what to pass instead)."""
    return DataError(f"{source} holds no pairs (a header or folder with no data rows); "
                     f"expected at least one row with an image and a caption{hint}")


def read_parquet_images(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """A Parquet file with image bytes in the image column."""
    return _read_stored_images(_pairs_file(source), "parquet-images", image_root, columns)


def read_folder(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """An image folder with a ``.txt`` caption beside each image."""
    path = Path(source)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist")
    return _read_folder(path)


def read_webdataset(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """WebDataset ``.tar`` shards: a file, a folder of shards, a glob or a brace list."""
    return _read_webdataset(str(source), image_root)


def read_hf_disk(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """A Hugging Face ``save_to_disk`` folder with image bytes."""
    return _read_stored_images(Path(source), "hf-disk", image_root, columns)


def read_img2dataset(source: str | os.PathLike, *, image_root: Path, columns: Columns) -> pd.DataFrame:
    """An img2dataset output folder (shards with Parquet beside)."""
    return _read_stored_images(Path(source), "img2dataset", image_root, columns)


def _read_stored_images(path: Path, kind: str, image_root: Path, columns: Columns) -> pd.DataFrame:
    """Sources whose images live inside the dataset files: an img2dataset folder
    (:mod:`mmcurate.data.img2dataset`), a Parquet file or ``save_to_disk`` folder with image bytes
    in a column (:mod:`mmcurate.data.hf`)."""
    if kind != "parquet-images" and not path.is_dir():
        raise DataError(f"{kind} folder {path} does not exist")
    if kind == "img2dataset":
        return _map_columns(_img2dataset_table(path, image_root=image_root), Columns(), path)
    files = [path] if kind == "parquet-images" else hf_disk_files(path)
    raw = read_bytes_table(files, image_col=columns.image, image_root=image_root,
                           consumed={columns.id, columns.caption})
    return _map_columns(raw, columns, path)


def _has_surrogates(value) -> bool:
    return isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value)


def sanitize(df: pd.DataFrame) -> pd.DataFrame:
    """Flag captions that were not valid UTF-8 (``_nonutf8``) and make every cell valid text."""
    df["_nonutf8"] = [_has_surrogates(v) for v in df["caption"]] if len(df) else []
    for col in df.columns:
        if df[col].dtype != object:
            continue
        values = df[col].tolist()
        if any(_has_surrogates(v) for v in values):
            df[col] = pd.Series([v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                                 if _has_surrogates(v) else v for v in values], dtype=object,
                                index=df.index)
    return df
