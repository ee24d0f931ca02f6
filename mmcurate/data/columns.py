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

from collections.abc import Collection, Iterable

__all__ = ["PREFIX", "RESERVED_COLUMNS", "is_reserved", "rename_reserved"]

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
