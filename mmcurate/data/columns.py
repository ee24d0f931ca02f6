"""The one rule for a source column whose name mmcurate uses itself.

mmcurate adds its own columns beside a source's extra columns: in the pairs table (``pair_id``,
``image``, ``caption``), in the export (``status``, ``original_caption``, ``p_aligned``; dropped
rows' ``stage``, ``reason``, ``detail``), while curating (``decision``, ``fixed_caption``,
``decision_round``, ``reviewer``, ``alignment``), and internally while reading (every name that
starts with ``_``). A source column with one of these names (clip-retrieval / img2dataset metadata
holds ``status``) is **renamed** ``source_<name>`` when it is read (``status`` -> ``source_status``;
more ``source_`` prefixes if that name is taken too), never dropped or mixed with ours. The columns
mapped as the id, image and caption (``Columns``, ``--id-column`` ...) are exempt: they are consumed.
The renames are reported (:class:`mmcurate.data.LoadResult` ``renamed_columns``, ``project.json``,
the ``init`` output).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

__all__ = ["PREFIX", "RESERVED_COLUMNS", "is_reserved", "rename_reserved", "text_if_mixed"]

PREFIX = "source_"
RESERVED_COLUMNS = frozenset({
    "pair_id", "id", "image", "caption",  # the pairs table (id: the raw id before pair_id)
    "status", "original_caption", "p_aligned",  # the curated table
    "stage", "reason", "detail",  # the dropped table
    "decision", "fixed_caption", "decision_round", "reviewer", "alignment",  # curation
})


def is_reserved(name: str) -> bool:
    """True for a column name mmcurate uses itself (see the module docstring)."""
    return name in RESERVED_COLUMNS or name.startswith("_")


def rename_reserved(names: Iterable, *, consumed: Collection[str] = ()) -> dict[str, str]:
    """``{old: new}`` for the source columns in ``names`` that collide with mmcurate's own.

    Examples
    --------
    >>> rename_reserved(["url", "caption", "status", "_row"], consumed={"caption"})
    {'status': 'source_status', '_row': 'source__row'}
    >>> rename_reserved(["status", "source_status"])
    {'status': 'source_source_status'}
    """
    names = [str(n) for n in names]
    taken = set(names)
    out: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name in consumed or not is_reserved(name):
            continue
        new = PREFIX + name
        while new in taken or is_reserved(new):
            new = PREFIX + new
        taken.add(new)
        out[name] = new
    return out


def text_if_mixed(df: pd.DataFrame, *,
                  skip: Collection[str] = ("pair_id", "image", "caption")) -> pd.DataFrame:
    """``df`` with each extra column whose cells mix kinds of value (a JSONL key holding a number
    in one line and text or a list in another) turned into text (lists and objects as JSON), so
    the column can be stored; columns of one kind are kept as they are. The changed columns are
    listed in ``attrs["text_columns"]``.

    Examples
    --------
    >>> out = text_if_mixed(pd.DataFrame({"extra": [1, "a", [2]]}))
    >>> out["extra"].tolist(), out.attrs["text_columns"]
    (['1', 'a', '[2]'], ['extra'])
    """
    changed = []
    out = df
    for column in df.columns:
        if column in skip or df[column].dtype != object:
            continue
        kinds = {_kind(v) for v in df[column] if v is not None and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1:
            if out is df:
                out = df.copy()
            out[column] = [v if v is None or (isinstance(v, float) and v != v) else _text(v)
                           for v in df[column]]
            changed.append(str(column))
    out.attrs = {**df.attrs, "text_columns": [*df.attrs.get("text_columns", []), *changed]}
    return out


def _kind(value) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.number)):
        return "number"
    return type(value).__name__


def _text(value) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
