"""Pair sources, validation and the rejects report.

Sources: CSV/TSV, JSONL, Parquet (configurable column names; extra columns kept), an image folder
with sidecar ``.txt`` captions, WebDataset ``.tar`` shards (a file, a folder of shards, a glob or
a brace list), and images stored as bytes in a column (a Parquet file or a Hugging Face
``save_to_disk`` folder, :mod:`mmcurate.data.hf`). Every bad row becomes a reject record (file,
1-based row, column, reason, detail) and the load goes on; only whole-file problems (missing
columns, unknown format, unreadable file) raise :class:`mmcurate.exceptions.DataError`. Formats
are a table by name (:mod:`mmcurate.data.formats`); :func:`register_format` adds your own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmcurate.data.columns import text_if_mixed
from mmcurate.data.formats import (
    FORMATS,
    Format,
    detect_format,
    format_names,
    read_source,
    register_format,
    unregister_format,
)
from mmcurate.data.images import open_image
from mmcurate.data.sources import Columns
from mmcurate.data.validate import REJECT_COLUMNS, validate

__all__ = ["FORMATS", "REJECT_COLUMNS", "Columns", "Format", "LoadResult", "detect_format", "format_names",
           "load_pairs", "open_image", "register_format", "unregister_format"]


@dataclass
class LoadResult:
    """Valid pairs (``pair_id``, ``image``, ``caption``, extras), the rejects report, and the source
    columns renamed because mmcurate uses their names itself (``{"status": "source_status"}``,
    :mod:`mmcurate.data.columns`)."""

    pairs: pd.DataFrame
    rejects: pd.DataFrame
    renamed_columns: dict[str, str] = field(default_factory=dict)


def load_pairs(source: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
               columns: Columns | None = None, fmt: str | None = None, check_images: bool | str = True,
               progress: bool = False) -> LoadResult:
    """Read and validate a pair source.

    Parameters
    ----------
    source : path
        File, image folder, or WebDataset shard(s).
    image_root : path, optional
        Folder image paths are relative to (default: the source's folder, or the folder itself).
    columns : Columns
        Names of the id/image/caption columns in tabular sources.
    check_images : bool or {"header", "full"}
        ``True``/``"header"``: read every image's header and structure without decoding pixels
        (unreadable files, truncated PNGs, decompression bombs); ``"full"``: decode every image
        fully (also JPEGs cut short; as slow as embedding's decode); ``False``: no check.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        result = load_pairs("captions.csv", image_root="images/")
        result.pairs.columns[:3].tolist(), len(result.rejects)
        # (['pair_id', 'image', 'caption'], 2)
    """
    columns = columns or Columns()
    src = Path(source)
    root = Path(image_root) if image_root is not None else (src if src.is_dir() else src.parent)
    raw = read_source(source, image_root=root, columns=columns, fmt=fmt)
    renamed = dict(raw.attrs.get("renamed_columns", {}))
    pairs, rejects = validate(raw, image_root=root, check_images=check_images, progress=progress)
    pairs = text_if_mixed(pairs)
    return LoadResult(pairs=pairs, rejects=rejects, renamed_columns=renamed)

