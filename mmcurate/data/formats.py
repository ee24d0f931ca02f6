"""Input formats by name: the one table the reader dispatch, format detection and the CLI's
``--format`` choices come from (:data:`FORMATS`, a :class:`mmcurate._registry.Registry`).

A :class:`Format` is a name, a one-line description, a reader and how it is recognised (file
suffixes, and optionally a ``claims(source)`` test). :func:`read_source` reads any source with its
format's reader; :func:`detect_format` names the format of a source when none is given: a format
added with :func:`register_format` whose ``claims`` accepts the source (newest first), else the
built-in folder rules (a ``save_to_disk`` folder, an img2dataset folder, a folder of ``.tar``
shards, an image folder), a glob or brace list (WebDataset), else the file suffix.

The raw table a reader returns is described in :mod:`mmcurate.data.sources`; validation
(:mod:`mmcurate.data.validate`) turns it into pairs and rejects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._registry import Registry, checked_name, entry_description, parameters_of
from mmcurate.data import sources as src
from mmcurate.data.img2dataset import is_img2dataset_folder
from mmcurate.data.sources import Columns
from mmcurate.exceptions import DataError

__all__ = ["FORMATS", "Format", "detect_format", "format_names", "read_source", "register_format",
           "unregister_format"]

Reader = Callable[..., pd.DataFrame]
"""``read(source, *, image_root, columns) -> raw table`` (see :func:`register_format`)."""


@dataclass(frozen=True)
class Format:
    """A named input format: ``read(source, *, image_root, columns) -> raw table``.

    ``suffixes`` (lower case, with the dot) pick it by a file's suffix; ``claims(source) -> bool``,
    when given, lets it claim a source first (a folder of its own layout); ``empty_ok``: a source
    with no rows is not an error (validation reports zero pairs).
    """

    name: str
    description: str
    read: Reader
    suffixes: tuple[str, ...] = ()
    claims: Callable[[str], bool] | None = None
    empty_ok: bool = False


FORMATS: Registry[Format] = Registry("format", [
    Format("csv", "CSV with a header row (image paths relative to the image root)", src.read_csv, (".csv",)),
    Format("tsv", "tab-separated, with a header row", src.read_tsv, (".tsv",)),
    Format("jsonl", "JSON lines: one object per pair", src.read_jsonl, (".jsonl", ".ndjson")),
    Format("parquet", "Parquet: image paths, or image bytes in the image column", src.read_parquet,
           (".parquet",), empty_ok=True),  # read_parquet refuses an empty table of image paths itself
    Format("folder", "image folder with a .txt caption beside each image", src.read_folder),
    Format("webdataset", "WebDataset .tar shard(s): a file, a folder, a glob or a brace list",
           src.read_webdataset, (".tar",)),
    Format("parquet-images", "Parquet with image bytes in the image column", src.read_parquet_images,
           empty_ok=True),
    Format("hf-disk", "Hugging Face save_to_disk folder with image bytes", src.read_hf_disk, empty_ok=True),
    Format("img2dataset", "img2dataset output folder (shards with Parquet beside)", src.read_img2dataset,
           empty_ok=True),
])
"""Every input format by name (``mmcurate init --format NAME``); :func:`register_format` adds one."""

_BUILT_IN = frozenset(f.name for f in FORMATS)


def format_names() -> list[str]:
    """The formats' names, in registration order (the CLI's ``--format`` choices)."""
    return FORMATS.names()


def register_format(name: str, read: Reader, *, suffixes: tuple[str, ...] | list[str] = (),
                    claims: Callable[[str], bool] | None = None, description: str | None = None,
                    replace: bool = False) -> Format:
    """Add an input format: ``init``, ``add`` and :func:`mmcurate.data.load_pairs` then read it by
    name (``fmt=name``, ``--format name``) or by its suffixes / ``claims``.

    Parameters
    ----------
    name : str
        Letters, digits and underscores (hyphens read as underscores; case ignored); a name already
        taken raises ``ValueError`` unless ``replace=True``.
    read : callable
        ``read(source, *, image_root, columns) -> pandas.DataFrame``: ``source`` the path (or text)
        given, ``image_root`` the folder image paths are relative to (a ``Path``), ``columns`` the
        :class:`~mmcurate.data.Columns` the user named. One row per pair with columns ``image``
        (text: a path relative to ``image_root``, or absolute inside it; the path rule of
        :func:`mmcurate.data.images.resolve_image_ref` is applied to it), ``caption`` (text) and
        ``id`` (text, or None for a hashed id), plus ``_row`` (1-based position in the source, for
        reject messages); optional ``_source`` (default: the source), ``_error`` (non-empty text:
        the row is rejected as ``malformed_row`` with it) and any extra columns, which are kept.
        A problem with the whole source raises :class:`~mmcurate.exceptions.DataError`; a table
        with no rows raises it for you. Bad rows are returned, not dropped: validation rejects
        them with a reason.
    suffixes : sequence of str
        File suffixes (``".xml"``) detected as this format when no format is given.
    claims : callable, optional
        ``claims(source: str) -> bool``: whether a source (e.g. a folder with your manifest) is of
        this format; asked before the built-in rules, newest format first.
    description : str, optional
        One line for listings (default: the first line of ``read``'s docstring).
    replace : bool
        Replace a format of the same name.

    Returns
    -------
    Format
        The entry added; :func:`unregister_format` removes it.

    Examples
    --------
    >>> def read_lines(source, *, image_root, columns):
    ...     "image<TAB>caption lines, no header."
    ...     rows = [line.split("\\t", 1) for line in Path(source).read_text().splitlines()]
    ...     return pd.DataFrame({"_row": range(1, len(rows) + 1), "id": None,
    ...                          "image": [r[0] for r in rows], "caption": [r[-1] for r in rows]})
    >>> register_format("lines", read_lines, suffixes=[".lines"]).description
    'image<TAB>caption lines, no header.'
    >>> detect_format("pairs.lines"), "lines" in format_names()
    ('lines', True)
    >>> unregister_format("lines").name
    'lines'
    """
    key = checked_name(name, "format")
    params = {p.name: p for p in parameters_of(read, f"format {name!r}: read",
                                               signature="read(source, *, image_root, columns)")}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    missing = [a for a in ("image_root", "columns") if a not in params and not takes_any]
    if not params or missing:
        raise ValueError(f"format {name!r}: read must take read(source, *, image_root, columns); "
                         f"it lacks {', '.join(missing) or 'the source parameter'}")
    if isinstance(suffixes, str) or not all(isinstance(s, str) and s.startswith(".") for s in suffixes):
        raise ValueError(f"format {name!r}: suffixes must be a list of suffixes with the dot, e.g. "
                         f"[\".xml\"], got {suffixes!r}")
    if claims is not None and not callable(claims):
        raise ValueError(f"format {name!r}: claims must be a function claims(source) -> bool")
    entry = Format(key, entry_description(description, read, f"format {name!r}"), read,
                   tuple(s.lower() for s in suffixes), claims)
    FORMATS.register(entry, replace=replace)
    return entry


def unregister_format(name: str) -> Format:
    """Remove the format registered as ``name`` from :data:`FORMATS`; returns it."""
    return FORMATS.unregister(name)


def _by_suffix() -> dict[str, str]:
    """Suffix -> format name; a later format wins a suffix (a registered one over a built-in)."""
    return {suffix: f.name for f in FORMATS for suffix in f.suffixes}


def detect_format(source: str | os.PathLike, fmt: str | None = None) -> str:
    """``fmt`` if given (checked), else the format of ``source`` (see the module docstring)."""
    if fmt:
        if fmt not in FORMATS:
            raise DataError(f"unknown format {fmt!r}; known formats: {', '.join(format_names())}")
        return FORMATS.get(fmt).name
    text = str(source)
    for entry in reversed(list(FORMATS)):
        if entry.claims is not None and entry.claims(text):
            return entry.name
    path = Path(text)
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return "hf-disk"
        if is_img2dataset_folder(path):
            return "img2dataset"
        return "webdataset" if any(path.glob("*.tar")) else "folder"
    if any(ch in text for ch in "*{"):
        return "webdataset"
    suffixes = _by_suffix()
    if path.suffix.lower() in suffixes:
        return suffixes[path.suffix.lower()]
    raise DataError(f"cannot tell the format of {source} from its suffix; use fmt= / --format with "
                    f"one of {', '.join(format_names())}")


def read_source(source: str | os.PathLike, *, image_root: Path, columns: Columns,
                fmt: str | None = None) -> pd.DataFrame:
    """Read any source with its format's reader into the raw table (:mod:`mmcurate.data.sources`)."""
    entry = FORMATS.get(detect_format(source, fmt))
    df: Any = entry.read(source, image_root=image_root, columns=columns)
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"the {entry.name} reader returned {type(df).__name__}, not a DataFrame")
    if entry.name not in _BUILT_IN:
        _check_columns(df, entry.name, source)
    if df.empty and not entry.empty_ok:
        raise src.no_pairs(source, _folder_hint(source, entry))
    if "_source" not in df.columns:
        df["_source"] = str(source)
    return src.sanitize(df.reset_index(drop=True))


def _check_columns(df: pd.DataFrame, name: str, source: str | os.PathLike) -> None:
    """A registered reader's table has the columns validation reads."""
    missing = [c for c in ("_row", "id", "image", "caption") if c not in df.columns]
    if missing:
        raise DataError(f"the {name} reader gave {source} without column(s) {missing} (it gave "
                        f"{list(map(str, df.columns))}); a reader returns _row, id, image, caption")


def _folder_hint(source: str | os.PathLike, entry: Format) -> str:
    path = Path(source)
    if entry.name != "folder" or not path.is_dir():
        return ""
    suffixes = _by_suffix()
    tables = sorted(p.name for p in path.iterdir() if p.suffix.lower() in suffixes)
    if not tables:
        return ""
    return f"; it holds {', '.join(tables[:5])}: pass that file (--pairs {path / tables[0]})"
