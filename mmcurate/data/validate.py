"""Validation of the raw table: one reject record per bad row, the valid rows go on.

Checks, in order: malformed rows, image or caption values that are not text (a JSON list or
number, a Parquet integer), missing image value, paths escaping the image root (absolute paths
outside it, ``..``, symlinks resolving outside, the shard of a ``shard.tar::member``; one rule,
:func:`mmcurate.data.images.resolve_image_ref`), missing files (or directories), empty or
non-UTF-8 captions, duplicate ids (first kept; also ids already taken when adding to a project;
a null id, e.g. JSON ``null`` or a Parquet NaN, counts as missing and gets a hashed id), then
(optionally) a check of every image in a thread pool: by default its header and structure only
(``check_images=True`` or ``"header"``: unreadable files, truncated PNGs, decompression bombs), or
a full decode (``"full"``: also JPEGs cut short), which costs as much as embedding's own decode.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate._util import has_visible_text
from mmcurate.data.images import (
    ImageRefError,
    ImageRoot,
    check_image,
    check_image_header,
    read_image_bytes,
    resolve_image_ref,
)

__all__ = ["REJECT_COLUMNS", "given_id", "is_null", "validate"]

REJECT_COLUMNS = ["source", "row", "pair_id", "column", "reason", "detail"]


def is_null(value) -> bool:
    """None, NaN, ``pd.NA``/``NaT``: a missing cell whatever the source's type."""
    return value is None or (not isinstance(value, (str, list, dict, tuple, np.ndarray))
                             and bool(pd.isna(value)))


def _type_name(value) -> str:
    return "list" if isinstance(value, (np.ndarray, tuple)) else type(value).__name__


def _shown(value) -> str:
    return repr(value.tolist() if isinstance(value, np.ndarray) else value)


def given_id(value) -> str | None:
    """A source id as text; a null or blank id counts as missing (the pair gets a hashed id)."""
    if is_null(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _text(column: pd.Series) -> pd.Series:
    """A column of text cells (nulls become ``""``) as object dtype, even when empty."""
    return pd.Series(["" if is_null(v) else v for v in column], index=column.index, dtype=object)


def _pair_ids(df: pd.DataFrame) -> pd.Series:
    given = pd.Series([given_id(v) for v in df["id"]], index=df.index, dtype=object)
    hashed = [hashlib.sha1(f"{i}\n{c}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
              for i, c in zip(df["image"].astype(str), df["caption"].astype(str))]
    return given.where(given.notna(), pd.Series(hashed, index=df.index))


def _path_problem(ref: str, root: ImageRoot) -> tuple[str, str] | None:
    try:
        target, _ = resolve_image_ref(ref, root)
    except ImageRefError as err:
        return err.reason, err.detail
    try:
        mode = os.stat(target).st_mode  # one stat for "a folder?" and "a file?"
    except (OSError, ValueError):
        mode = 0
    if stat.S_ISDIR(mode):
        return "missing_file", f"{target} is a directory, not an image file"
    if not stat.S_ISREG(mode):
        return "missing_file", f"{target} does not exist"
    return None


class _Rejects:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def add(self, df: pd.DataFrame, mask, column: str, reason: str, detail) -> pd.DataFrame:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            bad = df[mask]
            details = detail if isinstance(detail, (list, np.ndarray)) else [detail] * len(bad)
            for (_, row), d in zip(bad.iterrows(), details):
                self.records.append({"source": row["_source"], "row": int(row["_row"]),
                                     "pair_id": row.get("pair_id"), "column": column,
                                     "reason": reason, "detail": d})
        return df[~mask]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records, columns=REJECT_COLUMNS).sort_values(["row"], kind="stable") \
            if self.records else pd.DataFrame(columns=REJECT_COLUMNS)


def _text_checks(df: pd.DataFrame, rej: _Rejects, root: ImageRoot) -> pd.DataFrame:
    if "_error" in df.columns:
        err = df["_error"].notna() & (df["_error"].astype(str) != "")
        df = rej.add(df, err, "row", "malformed_row", df.loc[err, "_error"].astype(str).tolist())
    for column in ("image", "caption"):
        wrong = [not is_null(v) and not isinstance(v, str) for v in df[column]]
        detail = [f"expected text, got {_type_name(v)} {_shown(v):.60}; quote the value in the source"
                  for v, w in zip(df[column], wrong) if w]
        df = rej.add(df, wrong, column, f"non_string_{column}", detail)
    df = df.assign(image=_text(df["image"]))
    df = rej.add(df, df["image"].str.strip() == "", "image", "missing_value", "no image path")
    df = df.assign(caption=_text(df["caption"]).str.strip())
    bad_utf8 = df["_nonutf8"].to_numpy(bool) if "_nonutf8" in df.columns else np.zeros(len(df), bool)
    df = rej.add(df, bad_utf8, "caption", "non_utf8_caption", "caption bytes are not valid UTF-8")
    df = rej.add(df, df["caption"] == "", "caption", "empty_caption", "caption is empty")
    invisible = [not has_visible_text(c) for c in df["caption"]]
    df = rej.add(df, invisible, "caption", "empty_caption",
                 "caption holds only invisible characters (zero-width spaces, control characters)")
    problems = [_path_problem(ref, root) for ref in df["image"]]
    for reason in ("outside_root", "missing_value", "missing_file"):
        mask = [p is not None and p[0] == reason for p in problems]
        details = [p[1] for p in problems if p is not None and p[0] == reason]
        keep = ~np.asarray(mask, dtype=bool)
        df = rej.add(df, mask, "image", reason, details)
        problems = [p for p, k in zip(problems, keep) if k]
    return df


def _normalise_refs(df: pd.DataFrame, root: ImageRoot) -> pd.DataFrame:
    def rel(ref: str) -> str:
        return ref if "::" in ref else root.relative(ref)

    return df.assign(image=df["image"].map(rel))


def _image_checks(df: pd.DataFrame, rej: _Rejects, root: ImageRoot, progress: bool,
                  full: bool = False) -> pd.DataFrame:
    from tqdm.auto import tqdm  # heavy: tqdm

    checker = check_image if full else check_image_header

    def check(ref: str):
        try:
            return checker(read_image_bytes(ref, image_root=root))
        except (OSError, ImageRefError) as err:
            return "missing_file", str(err)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        results = list(tqdm(pool.map(check, df["image"].tolist()), total=len(df), desc="check images",
                            unit="img", disable=not progress, file=sys.stderr))
    for reason in ("corrupt_image", "decompression_bomb", "missing_file"):
        mask = np.array([r is not None and r[0] == reason for r in results], dtype=bool)
        details = [r[1] for r in results if r is not None and r[0] == reason]
        df = rej.add(df, mask, "image", reason, details)
        results = [r for r, m in zip(results, mask) if not m]
    return df


def validate(raw: pd.DataFrame, *, image_root: Path, check_images: bool | str = True,
             progress: bool = False, existing_ids: Collection[str] = frozenset(),
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the raw table into valid pairs and rejects (see module docstring).

    ``existing_ids`` are pair_ids already taken (a project's, when adding pairs to it): rows with
    one of them are rejected as ``duplicate_id``. ``check_images``: ``True``/``"header"``,
    ``"full"`` or ``False`` (see module docstring).
    """
    if check_images not in (True, False, "header", "full"):
        raise ValueError(f"check_images must be True, False, 'header' or 'full', not {check_images!r}")
    rej = _Rejects()
    root = ImageRoot(image_root)  # resolved once for every row
    df = raw.copy()
    df["pair_id"] = _pair_ids(df) if len(df) else pd.Series(dtype=str)
    df = _text_checks(df, rej, root) if len(df) else df
    df = _normalise_refs(df, root) if len(df) else df
    dup = df["pair_id"].duplicated(keep="first").to_numpy() if len(df) else np.zeros(0, bool)
    first_row = df.drop_duplicates("pair_id").set_index("pair_id")["_row"] if len(df) else None
    dup_detail = ([f"same id as row {int(first_row[p])}" for p in df.loc[dup, "pair_id"]]
                  if first_row is not None and dup.any() else [])
    df = rej.add(df, dup, "id", "duplicate_id", dup_detail)
    if existing_ids and len(df):
        taken = df["pair_id"].isin(existing_ids if isinstance(existing_ids, (set, frozenset))
                                   else set(existing_ids)).to_numpy()
        df = rej.add(df, taken, "id", "duplicate_id", "pair_id already in the project")
    if check_images and len(df):
        df = _image_checks(df, rej, root, progress, full=check_images == "full")
    core = ("pair_id", "image", "caption", "id")
    extras = [c for c in df.columns if c not in core and not str(c).startswith("_")]
    pairs = df[["pair_id", "image", "caption", *extras]].reset_index(drop=True)
    pairs["pair_id"] = pairs["pair_id"].astype(str)
    return pairs, rej.frame()
