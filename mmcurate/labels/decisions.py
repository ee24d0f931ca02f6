"""Decisions: record one, import a file of them (all or nothing), the latest per pair, history."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate.labels.connection import LedgerConnection, _check_round, _frame, utc_now
from mmcurate.labels.schema import _DECISION_COLUMNS, _LATEST, _LATEST_OF_IDS
from mmcurate.review.decisions import (
    LabelsFileError,
    Problem,
    clean_decision,
    describe_problems,
    parse_decisions,
)


@dataclass(frozen=True)
class ImportReport:
    """What :meth:`Ledger.import_decisions` did.

    ``n_rows`` = ``n_added + n_unchanged + n_skipped``; ``n_conflicts`` counts the added rows that
    changed a pair's earlier decision. ``n_skipped`` rows had an empty ``decision`` (not reviewed).
    """

    n_rows: int
    n_added: int
    n_unchanged: int
    n_conflicts: int
    n_skipped: int = 0


class DecisionsMixin(LedgerConnection):
    """The decisions part of :class:`~mmcurate.labels.Ledger`."""

    def record(self, pair_id: str, decision: str, *, caption: str | None = None,
               round_id: int | None = None, reviewer: str | None = None, source: str = "api",
               timestamp: str | None = None) -> bool:
        """Record one decision and commit at once; returns whether a row was appended.

        ``decision`` is one of :data:`DECISIONS` (case-insensitive); ``fix`` needs a non-empty
        ``caption``. ``round_id`` defaults to the round the pair was queued in. A decision identical
        to the pair's latest (decision, caption, reviewer, source) is not appended again.
        Raises ``ValueError`` for a bad decision, a fix without caption, an unknown round or a bad
        timestamp.
        """
        row = clean_decision(str(pair_id), decision, caption, reviewer, timestamp)
        with self._write() as conn:
            added, _ = self._append(conn, [row], source=source, round_id=round_id)
        return added == 1

    def record_many(self, rows: Sequence[Mapping[str, Any]], *, source: str) -> int:
        """Record decisions of many pairs in one transaction (a decision applied to a group);
        returns the number of rows appended. Each row: ``pair_id``, ``decision``, optional
        ``caption``, ``reviewer``, ``timestamp``; rows identical to a pair's latest are skipped, as
        in :meth:`record`. ``source`` names where they came from (e.g. ``via:<representative id>``).
        """
        cleaned = [clean_decision(str(r["pair_id"]), r["decision"], r.get("caption"), r.get("reviewer"),
                                  r.get("timestamp")) for r in rows]
        if not cleaned:
            return 0
        with self._write() as conn:
            added, _ = self._append(conn, cleaned, source=source, round_id=None)
        return added

    def _append(self, conn: sqlite3.Connection, rows: Sequence[dict[str, Any]], *, source: str,
                round_id: int | None) -> tuple[int, int]:
        """Append ``rows`` not identical to their pair's latest; returns (n_added, n_conflicts)."""
        _check_round(conn, round_id)
        self._stage_ids(conn, {r["pair_id"] for r in rows})
        latest = self._staged_latest(conn)
        queued = self._staged_queued(conn) if round_id is None else {}
        n_conflicts = 0
        added: list[tuple] = []
        for row in rows:
            key = (row["decision"], row["caption"], row["reviewer"], source)
            before = latest.get(row["pair_id"])
            if before == key:
                continue
            if before is not None and before[:2] != key[:2]:
                n_conflicts += 1
            added.append((row["pair_id"], round_id if round_id is not None else queued.get(row["pair_id"]),
                          row["decision"], row["caption"], row["reviewer"], row["timestamp"] or utc_now(),
                          source))
            latest[row["pair_id"]] = key
        conn.executemany("INSERT INTO decisions (pair_id, round, decision, caption, reviewer, timestamp, "
                         "source) VALUES (?, ?, ?, ?, ?, ?, ?)", added)
        n_added = len(added)
        return n_added, n_conflicts

    @staticmethod
    def _staged_latest(conn: sqlite3.Connection) -> dict[str, tuple]:
        """Latest ``(decision, caption, reviewer, source)`` of each staged pair id that has one.

        Each is one lookup in the ``(pair_id, id)`` index: linear in the number of staged ids.
        """
        return {r["pair_id"]: (r["decision"], r["caption"], r["reviewer"], r["source"])
                for r in conn.execute(_LATEST_OF_IDS)}

    def import_decisions(self, source: str | os.PathLike | pd.DataFrame, *, known_pair_ids: Collection[str],
                         source_name: str | None = None, round_id: int | None = None,
                         queued_only: bool = False) -> ImportReport:
        """Validate a decisions file (CSV/JSONL by suffix) or DataFrame, then write it in one transaction.

        Columns ``pair_id``, ``decision`` (accept|reject|fix, case-insensitive), ``caption`` (the
        corrected caption, required for fix), optional ``reviewer`` and ``timestamp``. Rows with an
        empty decision, or a missing value as pandas writes it back (``NaN``, ``<NA>``, ``None``),
        are skipped (not reviewed yet) and counted in ``n_skipped``. Every problem (unknown pair
        id or decision, missing column, fix without caption, non-UTF-8 bytes, bad timestamp; with
        ``queued_only`` (what a project's import uses) also a pair in no review batch or one queued
        in another round than ``round_id``) is collected first and raised as one
        :class:`LabelsFileError`; then nothing is written. Re-importing a file is idempotent; a
        changed decision is appended (history kept, latest wins).

        Examples
        --------
        >>> report = ledger.import_decisions("round1.csv", known_pair_ids=pairs["pair_id"])  # doctest: +SKIP
        >>> report.n_added, report.n_conflicts  # doctest: +SKIP
        """
        if isinstance(source, pd.DataFrame):
            name = source_name or "<DataFrame>"
        else:
            name = source_name or Path(source).name
        label = str(source) if not isinstance(source, pd.DataFrame) else name
        known = known_pair_ids if isinstance(known_pair_ids, (set, frozenset, dict)) else set(known_pair_ids)
        parsed = parse_decisions(source, known_pair_ids=known, label=label)
        rows, problems = parsed.rows, parsed.problems
        with self._write() as conn:
            _check_round(conn, round_id)
            if queued_only:
                known_rows = [r for r in rows if r["pair_id"] in known]
                queued = self._queued_in(conn, {r["pair_id"] for r in known_rows})
                problems.extend(_batch_problems(known_rows, queued, round_id))
            if problems:
                problems.sort(key=lambda p: p[0] or 0)
                raise LabelsFileError(describe_problems(label, problems), problems)
            n_added, n_conflicts = self._append(conn, rows, source=name, round_id=round_id)
        return ImportReport(n_rows=parsed.n_records, n_added=n_added, n_unchanged=len(rows) - n_added,
                            n_conflicts=n_conflicts, n_skipped=parsed.n_skipped)

    def decisions(self, *, history: bool = False) -> pd.DataFrame:
        """Latest decision per pair (``history=False``) or every decision in recording order.

        Columns ``pair_id, round, decision, caption, reviewer, timestamp, source``.
        """
        sql = "SELECT * FROM decisions ORDER BY id" if history else f"{_LATEST} ORDER BY d.id"
        rows = self._query(sql)
        return _frame([dict(r) for r in rows], _DECISION_COLUMNS, {"round": "Int64"})

    def conflicts(self) -> pd.DataFrame:
        """Pairs whose decisions disagree over time (different decision or fixed caption).

        Columns ``pair_id, n_decisions, decisions`` (list, oldest first) and ``latest``.
        """
        hist = self.decisions(history=True)
        records = []
        for pair_id, group in hist.groupby("pair_id", sort=True):
            keys = list(zip(group["decision"], group["caption"]))
            if len(set(keys)) > 1:
                records.append({"pair_id": pair_id, "n_decisions": len(group),
                                "decisions": list(group["decision"]), "latest": keys[-1][0]})
        return _frame(records, ["pair_id", "n_decisions", "decisions", "latest"], {"n_decisions": "int64"})


def _batch_problems(rows: list[dict[str, Any]], queued: Mapping[str, int],
                    round_id: int | None) -> list[Problem]:
    """A decision answers a review batch: its pair must be queued, in ``round_id`` when given."""
    problems: list[Problem] = []
    for row in rows:
        pid, got = row["pair_id"], queued.get(row["pair_id"])
        if got is None:
            problems.append((row["row"], "pair_id", f"pair {pid!r} is in no review batch; decisions "
                             f"answer a round (queue pairs with `mmcurate select`, then label them)"))
        elif round_id is not None and got != int(round_id):
            problems.append((row["row"], "pair_id", f"pair {pid!r} was queued in round {got}, not "
                             f"round {round_id}; import with --round {got} or without --round"))
    return problems
