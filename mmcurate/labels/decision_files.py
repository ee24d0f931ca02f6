"""Decisions in: read a filled-in batch file (CSV / JSON lines) or DataFrame into checked decision rows.

This is the review stage's input side; :meth:`mmcurate.labels.Ledger.import_decisions` writes what
:func:`parse_decisions` returns, and :meth:`~mmcurate.labels.Ledger.record` checks one decision with
:func:`clean_decision`.

Assumptions
-----------
- Columns ``pair_id``, ``decision`` (accept|reject|fix, case-insensitive), ``caption`` (the
  corrected caption, kept only for ``fix``), optional ``reviewer`` and ``timestamp``; header names
  are matched case-insensitively.
- Rows with an empty decision, or a missing value as pandas writes it back (``NaN``, ``<NA>``,
  ``None``), are not reviewed yet: they are skipped and counted.
- Bytes that are not UTF-8 are decoded with ``surrogateescape`` so the row and column holding them
  can be named. Timestamps are normalised to UTC ISO-8601 (naive input is taken as UTC).
- Every problem names the 1-based data row (``None`` for the file) and the column.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._fileio import unescape_cell
from mmcurate._util import has_visible_text
from mmcurate.data.sources import numbered_rows
from mmcurate.exceptions import DataError

__all__ = ["DECISIONS", "DecisionError", "LabelsFileError", "ParsedDecisions", "clean_decision",
           "describe_problems", "normalize_timestamp", "parse_decisions"]

DECISIONS = ("accept", "reject", "fix")
_REQUIRED = ("pair_id", "decision")
_OPTIONAL = ("caption", "reviewer", "timestamp")
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
Problem = tuple[int | None, str, str]  # (1-based data row or None for the file, column, message)
Records = list[tuple[int, dict[str, str]]]


class LabelsFileError(DataError):
    """A decisions file has problems; nothing was written.

    ``problems`` lists every ``(row, column, message)``: ``row`` is the 1-based data row (``None``
    for the file as a whole, e.g. a missing column).
    """

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)


def normalize_timestamp(value: str) -> str:
    """Parse an ISO-8601-like timestamp and return it in UTC (naive input is taken as UTC).

    Raises ``ValueError`` when ``value`` is not a timestamp.
    """
    try:
        stamp = pd.Timestamp(value.strip())
    except (ValueError, TypeError, OverflowError) as err:
        raise ValueError(f"timestamp {value!r} is not ISO-8601 (e.g. 2025-01-31T12:00:00Z)") from err
    if pd.isna(stamp):
        raise ValueError(f"timestamp {value!r} is not ISO-8601 (e.g. 2025-01-31T12:00:00Z)")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

class DecisionError(ValueError):
    """One decision is not valid; ``column`` names the field at fault."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def clean_decision(pair_id: str, decision: Any, caption: Any, reviewer: Any,
                   timestamp: Any) -> dict[str, Any]:
    """Normalise one decision into a ledger row (``pair_id, decision, caption, reviewer, timestamp``).

    Raises :class:`DecisionError` (a ``ValueError``) for a decision not in :data:`DECISIONS`, a
    ``fix`` without caption or a bad timestamp.

    Examples
    --------
    >>> clean_decision("p1", " Accept ", "a dog", "ann", None)["decision"]
    'accept'
    >>> try:
    ...     clean_decision("p1", "fix", "", None, None)
    ... except DecisionError as err:
    ...     print(type(err).__name__, err)
    DecisionError decision 'fix' needs the corrected caption in column 'caption'
    """
    value = str(decision).strip().lower() if decision is not None else ""
    if value not in DECISIONS:
        raise DecisionError("decision", f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    text = str(caption).strip() if caption is not None else ""
    if value == "fix" and not text:
        raise DecisionError("caption", "decision 'fix' needs the corrected caption in column 'caption'")
    if value == "fix" and not has_visible_text(text):
        raise DecisionError("caption", "the corrected caption holds only invisible characters "
                                       "(zero-width spaces, control characters)")
    who = str(reviewer).strip() if reviewer is not None else ""
    stamp = None
    if timestamp is not None and str(timestamp).strip():
        try:
            stamp = normalize_timestamp(str(timestamp))
        except ValueError as err:
            raise DecisionError("timestamp", str(err)) from err
    return {"pair_id": pair_id, "decision": value, "caption": text if value == "fix" else None,
            "reviewer": who or None, "timestamp": stamp}


@dataclass
class ParsedDecisions:
    """What :func:`parse_decisions` read: checked ``rows`` (each with its 1-based ``row``), the
    ``problems`` found, and the counts of data rows and of rows skipped as not reviewed yet."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    n_records: int = 0
    n_skipped: int = 0


def parse_decisions(source: str | os.PathLike | pd.DataFrame, *, known_pair_ids: Collection[str],
                    label: str) -> ParsedDecisions:
    """Read and check a decisions file (CSV/JSONL by suffix) or DataFrame; nothing is written.

    Every problem (unknown pair id or decision, missing column, fix without caption, non-UTF-8
    bytes, bad timestamp, a pair listed twice with different decisions) is collected in
    ``problems``; ``label`` names the source in messages. Raises :class:`LabelsFileError` only when
    the file cannot be read at all.

    Examples
    --------
    >>> df = pd.DataFrame({"pair_id": ["a", "b"], "decision": ["accept", ""]})
    >>> parsed = parse_decisions(df, known_pair_ids={"a", "b"}, label="df")
    >>> [r["pair_id"] for r in parsed.rows], parsed.n_skipped, parsed.problems
    (['a'], 1, [])
    """
    records, problems = _read_records(source, label=label)
    known = known_pair_ids if isinstance(known_pair_ids, (set, frozenset, dict)) else set(known_pair_ids)
    out = ParsedDecisions(problems=problems, n_records=len(records))
    for number, rec in records:
        if _blank(rec.get("decision")):
            out.n_skipped += 1
            continue
        if _blank(rec.get("reviewer")):
            rec = {**rec, "reviewer": ""}
        pair_id = rec["pair_id"].strip()
        if pair_id not in known:
            out.problems.append((number, "pair_id", f"unknown pair_id {pair_id!r}"))
        try:
            cleaned = clean_decision(pair_id, rec["decision"], rec.get("caption"),
                                     rec.get("reviewer"), rec.get("timestamp"))
        except DecisionError as err:
            out.problems.append((number, err.column, str(err)))
        else:
            out.rows.append({**cleaned, "row": number})
    out.problems.extend(_contradictions(out.rows))
    return out


def _contradictions(rows: list[dict[str, Any]]) -> list[Problem]:
    """Problems for pairs listed twice in one file with different decisions."""
    first: dict[str, dict[str, Any]] = {}
    out: list[Problem] = []
    for row in rows:
        seen = first.setdefault(row["pair_id"], row)
        if (seen["decision"], seen["caption"]) != (row["decision"], row["caption"]):
            out.append((row["row"], "pair_id", f"pair_id {row['pair_id']!r} already has decision "
                        f"{seen['decision']!r} in row {seen['row']}; keep one row per pair"))
    return out


def describe_problems(label: str, problems: Sequence[Problem], limit: int = 20, *,
                      row_names: Sequence[str] | None = None) -> str:
    """The message of a :class:`LabelsFileError`: the file, the count, and up to ``limit`` problems.

    ``row_names[row - 1]`` names a row where the source has its own (``"task 3 (Label Studio id
    57)"``); otherwise rows are ``row N``.
    """
    lines = [f"{label}: {len(problems)} problem(s); nothing was imported. Fix them and import again:"]
    for row, column, message in problems[:limit]:
        named = row_names is not None and row is not None and 0 < row <= len(row_names)
        where = "file" if row is None else row_names[row - 1] if named else f"row {row}"  # type: ignore[index]
        lines.append(f"  {where}, column {column!r}: {message}")
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more (all in the error's .problems)")
    return "\n".join(lines)


# -- reading decisions files --------------------------------------------------------------------
def _read_records(source: str | os.PathLike | pd.DataFrame, *, label: str) -> tuple[Records, list[Problem]]:
    """Rows of a decisions file as ``(data_row, {column: text})`` plus the problems found.

    Bytes that are not UTF-8 are decoded with ``surrogateescape`` so the row and column holding
    them can be named. Raises :class:`LabelsFileError` when the file cannot be read at all.
    """
    if isinstance(source, pd.DataFrame):
        header = [str(c) for c in source.columns]
        rows = [[_cell(v) for v in values] for values in source.itertuples(index=False)]
        records, problems = _table_records(header, rows)
    else:
        path = Path(source)
        fmt = _FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise LabelsFileError(f"{label}: unsupported file type {path.suffix!r}; expected one of "
                                  f"{', '.join(_FORMATS)} (CSV or JSON lines)")
        try:
            text = path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
        except OSError as err:
            raise LabelsFileError(f"{label}: cannot read the decisions file ({err})") from err
        records, problems = _csv_records(text, label) if fmt == "csv" else _jsonl_records(text)
    for number, rec in records:
        problems.extend((number, column, "holds bytes that are not UTF-8; re-save the file as UTF-8")
                        for column, value in rec.items() if any("\udc80" <= ch <= "\udcff" for ch in value))
    return records, problems


def _missing_columns(found: Sequence[str]) -> Problem:
    missing = [c for c in _REQUIRED if c not in [f.strip().lower() for f in found]]
    return (None, ", ".join(missing), f"missing required column(s) {missing}; found {list(found)}, "
            f"expected {list(_REQUIRED)} (+ optional {list(_OPTIONAL)})")


_NO_DECISION = frozenset({"", "nan", "<na>", "none", "null", "nat"})


def _blank(value: str | None) -> bool:
    """No decision yet: empty, or the way pandas writes a missing value back (NaN, <NA>, None)."""
    return value is None or value.strip().lower() in _NO_DECISION


def _cell(value: Any) -> str:
    """A cell as text; missing values (None, NaN, pandas.NA, NaT) are empty."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):  # array-likes: pd.isna is element-wise
        pass
    return str(value)


def _table_records(header: list[str], rows: list[list[str]],
                   numbers: Sequence[int] | None = None) -> tuple[Records, list[Problem]]:
    """Records of a table's data rows; ``numbers`` are their 1-based row numbers (default 1..n;
    a CSV's count the blank lines it skipped, as a source's rejects do)."""
    names = [h.strip().lower() for h in header]
    if any(c not in names for c in _REQUIRED):
        return [], [_missing_columns(header)]
    records: Records = []
    problems: list[Problem] = []
    for number, values in zip(numbers or range(1, len(rows) + 1), rows):
        if len(values) != len(names):
            problems.append((number, "*", f"has {len(values)} fields, the header has {len(names)}"))
        else:
            records.append((number, dict(zip(names, values))))
    return records, problems


def _csv_records(text: str, label: str) -> tuple[Records, list[Problem]]:
    empty = LabelsFileError(f"{label}: the file is empty; expected a header with {list(_REQUIRED)} "
                            f"(+ optional {list(_OPTIONAL)}) and one row per pair")
    try:
        header, body = numbered_rows(label, text, ",", strict=False)
    except DataError as err:
        raise (empty if "is empty" in str(err) else LabelsFileError(str(err))) from err
    rows = [(number, [unescape_cell(cell) for cell in r]) for number, r in body
            if any(cell.strip() for cell in r)]
    if not any(cell.strip() for cell in header):  # blank lines before the header
        if not rows:
            raise empty
        at, header = rows[0]
        rows = [(n - at, r) for n, r in rows[1:]]
    return _table_records([unescape_cell(h) for h in header], [r for _, r in rows], [n for n, _ in rows])


def _jsonl_records(text: str) -> tuple[Records, list[Problem]]:
    records: Records = []
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append((number, "*", f"not valid JSON ({err.msg} at character {err.pos})"))
            continue
        if not isinstance(obj, dict):
            problems.append((number, "*", f"expected a JSON object per line, got {type(obj).__name__}"))
            continue
        records.append((number, {str(k).strip().lower(): _cell(v) for k, v in obj.items()}))
    found = list(dict.fromkeys(c for _, rec in records for c in rec))
    if any(c not in found for c in _REQUIRED):
        return [], [*problems, _missing_columns(found)]
    for number, rec in records:
        problems.extend((number, c, f"missing key {c!r}") for c in _REQUIRED if c not in rec)
    return [(n, rec) for n, rec in records if all(c in rec for c in _REQUIRED)], problems
