"""Decisions: record one, import a file of them (all or nothing), the latest per pair, history."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcurate.labels.connection import LedgerConnection, _check_round, _frame, utc_now
from mmcurate.labels.decision_files import (
    LabelsFileError,
    Problem,
    clean_decision,
    describe_problems,
    parse_decisions,
)
from mmcurate.labels.schema import _DECISION_COLUMNS, _LATEST, _LATEST_OF_IDS, _WRITE_IDS, VIA


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
        to the pair's latest (decision, caption, reviewer, source, round) is not appended again; the
        same decision in a later round (a second opinion or an audit that agrees) is.
        Raises ``ValueError`` for a bad decision, a fix without caption, an unknown round or a bad
        timestamp.
        """
        row = clean_decision(str(pair_id), decision, caption, reviewer, timestamp)
        with self._write() as conn:
            added, _ = self._append(conn, [row], source=source, round_id=round_id)
        return added == 1

    def record_many(self, rows: Sequence[Mapping[str, Any]], *, source: str,
                    round_id: int | None = None) -> int:
        """Record decisions of many pairs in one transaction (a decision applied to a group, every
        undecided card of a review page accepted at once); returns the number of rows appended.
        Each row: ``pair_id``, ``decision``, optional ``caption``, ``reviewer``, ``timestamp``; rows
        identical to a pair's latest are skipped, as in :meth:`record`. ``source`` names where they
        came from (e.g. ``via:<representative id>``, ``web``); ``round_id`` as in :meth:`record`.
        """
        cleaned = [clean_decision(str(r["pair_id"]), r["decision"], r.get("caption"), r.get("reviewer"),
                                  r.get("timestamp")) for r in rows]
        if not cleaned:
            return 0
        with self._write() as conn:
            added, _ = self._append(conn, cleaned, source=source, round_id=round_id)
        return added

    def undo(self, pair_ids: Collection[str], *, round_id: int | None = None,
             reviewer: str | None = None, source: str = "api") -> list[str]:
        """Take decisions back: each pair becomes undecided (in ``round_id`` only, when given).

        Nothing is deleted: one ``withdrawals`` row per decision taken back (who, when, from where),
        and every reader (:meth:`decisions`, :meth:`resolved`, :meth:`batch`, training, export)
        leaves withdrawn decisions out. With ``round_id`` only the opinion given in that round is
        taken back, so a second opinion undone leaves the first round's decision standing; without
        it every decision of the pair. Decisions recorded for group members ``via:`` a pair after
        a decision taken back go with it. Returns the pair ids that had a decision to take back, in
        the order given. Raises ``ValueError`` for an unknown round.

        Examples
        --------
        Usage (not run as a doctest: it needs data of your own)::

            ledger.record("p1", "accept", round_id=1)
            ledger.undo(["p1"], round_id=1)
            # ['p1']
        """
        ids = list(dict.fromkeys(str(p) for p in pair_ids))
        if not ids:
            return []
        in_round = "" if round_id is None else "AND d.round = ?"
        with self._write() as conn:
            _check_round(conn, round_id)
            self._stage_ids(conn, ids)
            direct = conn.execute(
                f"SELECT d.id, d.pair_id, d.round FROM {_WRITE_IDS} t CROSS JOIN live_decisions d "
                f"ON d.pair_id = t.pair_id WHERE 1 {in_round}",
                () if round_id is None else (int(round_id),)).fetchall()
            first: dict[str, int] = {}
            for row in direct:
                first[row["pair_id"]] = min(first.get(row["pair_id"], row["id"]), row["id"])
            # decisions passed on via these pairs, one lookup each in the (source, id) index
            via = [r for r in conn.execute(
                f"SELECT d.id, d.pair_id, d.round, t.pair_id AS via FROM {_WRITE_IDS} t CROSS JOIN "
                f"live_decisions d ON d.source = '{VIA}' || t.pair_id")
                if r["via"] in first and r["id"] > first[r["via"]]]
            now = utc_now()
            conn.executemany("INSERT INTO withdrawals (decision_id, pair_id, round, reviewer, timestamp, "
                             "source) VALUES (?, ?, ?, ?, ?, ?)",
                             [(i, pid, rnd, reviewer, now, source) for i, (pid, rnd) in
                              {r["id"]: (r["pair_id"], r["round"]) for r in [*direct, *via]}.items()])
        return [p for p in ids if p in first]

    def withdrawals(self) -> pd.DataFrame:
        """Every decision taken back (:meth:`undo`), oldest first: the decision's columns (as in
        ``decisions(history=True)``) plus ``withdrawn_at``, ``withdrawn_by``, ``withdrawn_from``."""
        rows = self._query("""SELECT d.*, w.timestamp AS withdrawn_at, w.reviewer AS withdrawn_by,
            w.source AS withdrawn_from FROM withdrawals w JOIN decisions d ON d.id = w.decision_id
            ORDER BY w.timestamp, w.decision_id""")
        columns = [*_DECISION_COLUMNS, "withdrawn_at", "withdrawn_by", "withdrawn_from"]
        return _frame([dict(r) for r in rows], columns, {"round": "Int64"})

    def _append(self, conn: sqlite3.Connection, rows: Sequence[dict[str, Any]], *, source: str,
                round_id: int | None) -> tuple[int, int]:
        """Append ``rows`` not identical to their pair's latest; returns (n_added, n_conflicts)."""
        _check_round(conn, round_id)
        self._stage_ids(conn, {r["pair_id"] for r in rows})
        latest = self._staged_latest(conn)
        # a decision answers the latest round the pair is queued in (a second opinion's, if any)
        queued = {p: r[-1] for p, r in self._staged_rounds(conn).items()} if round_id is None else {}
        n_conflicts = 0
        added: list[tuple] = []
        for row in rows:
            answers = round_id if round_id is not None else queued.get(row["pair_id"])
            # the same opinion again in the same round is a repeat; in another round (a second
            # opinion, an audit) it is a new opinion, agreeing or not (audits count agreements)
            key = (row["decision"], row["caption"], row["reviewer"], source, answers)
            before = latest.get(row["pair_id"])
            if before == key:
                continue
            if before is not None and before[:2] != key[:2]:
                n_conflicts += 1
            added.append((row["pair_id"], answers, row["decision"], row["caption"], row["reviewer"],
                          row["timestamp"] or utc_now(), source))
            latest[row["pair_id"]] = key
        conn.executemany("INSERT INTO decisions (pair_id, round, decision, caption, reviewer, timestamp, "
                         "source) VALUES (?, ?, ?, ?, ?, ?, ?)", added)
        n_added = len(added)
        return n_added, n_conflicts

    @staticmethod
    def _staged_latest(conn: sqlite3.Connection) -> dict[str, tuple]:
        """Latest ``(decision, caption, reviewer, source, round)`` of each staged pair id that has one.

        Each is one lookup in the ``(pair_id, id)`` index: linear in the number of staged ids.
        """
        return {r["pair_id"]: (r["decision"], r["caption"], r["reviewer"], r["source"], r["round"])
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
        Usage (not run as a doctest: it needs data of your own)::

            report = ledger.import_decisions("round1.csv", known_pair_ids=pairs["pair_id"])
            report.n_added, report.n_conflicts
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
                self._stage_ids(conn, {r["pair_id"] for r in known_rows})
                problems.extend(_batch_problems(known_rows, self._staged_rounds(conn), round_id))
            if problems:
                problems.sort(key=lambda p: p[0] or 0)
                raise LabelsFileError(describe_problems(label, problems), problems)
            n_added, n_conflicts = self._append(conn, rows, source=name, round_id=round_id)
        return ImportReport(n_rows=parsed.n_records, n_added=n_added, n_unchanged=len(rows) - n_added,
                            n_conflicts=n_conflicts, n_skipped=parsed.n_skipped)

    def decisions(self, *, history: bool = False) -> pd.DataFrame:
        """Latest decision per pair (``history=False``) or every decision in recording order.

        Decisions taken back (:meth:`undo`) are left out of both (:meth:`withdrawals` lists them).
        Columns ``pair_id, round, decision, caption, reviewer, timestamp, source``.
        """
        sql = "SELECT * FROM live_decisions ORDER BY id" if history else f"{_LATEST} ORDER BY d.id"
        rows = self._query(sql)
        return _frame([dict(r) for r in rows], _DECISION_COLUMNS, {"round": "Int64"})

    def resolved(self) -> pd.DataFrame:
        """One decision per pair after resolving repeated opinions (:func:`resolve_opinions`).

        Columns of :meth:`decisions` plus ``n_opinions`` and ``agreement`` (share of opinions on the
        resolved side).
        """
        return resolve_opinions(self.decisions(history=True))

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


def _batch_problems(rows: list[dict[str, Any]], queued: Mapping[str, list[int]],
                    round_id: int | None) -> list[Problem]:
    """A decision answers a review batch: its pair must be queued, in ``round_id`` when given."""
    problems: list[Problem] = []
    for row in rows:
        pid, got = row["pair_id"], queued.get(row["pair_id"])
        if not got:
            problems.append((row["row"], "pair_id", f"pair {pid!r} is in no review batch; decisions "
                             f"answer a round (queue pairs with `mmcurate select`, then label them)"))
        elif round_id is not None and int(round_id) not in got:
            shown = " and ".join(map(str, got))
            problems.append((row["row"], "pair_id", f"pair {pid!r} was queued in round {shown}, not "
                             f"round {round_id}; import with --round {got[-1]} or without --round"))
    return problems


def round_opinions(history: pd.DataFrame) -> pd.DataFrame:
    """The opinions in a decision ``history`` (rows in recording order): each pair's last decision
    in each round it was decided in (a changed decision within a round is a correction), in
    recording order; decisions recorded outside a round count as one opinion."""
    key = history["round"].astype("Int64").fillna(-1)
    return history.groupby([history["pair_id"], key], sort=False).tail(1)


def resolve_opinions(history: pd.DataFrame) -> pd.DataFrame:
    """The documented rule for a pair decided more than once.

    Each round a pair was shown in gives one *opinion*: the last decision recorded for it in that
    round (a changed decision within a round is a correction, not a second opinion). The pair's
    decision is the majority of its opinions, where ``reject`` and ``fix`` both say "misaligned";
    the latest opinion on the majority side is kept (so a fix keeps its caption). A tie goes to the
    latest opinion: a second opinion is asked when the first looks doubtful, and the pair stays
    eligible for another. Returns one row per pair (columns of ``history`` plus ``n_opinions`` and
    ``agreement``), in recording order of the kept decision.

    Examples
    --------
    >>> h = pd.DataFrame({"pair_id": ["a", "a", "a", "b", "b"], "round": [1, 3, 5, 1, 2],
    ...                   "decision": ["accept", "reject", "reject", "accept", "reject"],
    ...                   "caption": None, "reviewer": None, "timestamp": "", "source": ""})
    >>> r = resolve_opinions(h).set_index("pair_id")
    >>> r.loc["a", "decision"], int(r.loc["a", "n_opinions"]), r.loc["b", "decision"]
    ('reject', 3, 'reject')
    """
    columns = [*history.columns, "n_opinions", "agreement"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    hist = history.reset_index(drop=True).assign(_order=np.arange(len(history)))
    opinions = round_opinions(hist)
    opinions = opinions.assign(_mis=(opinions["decision"] != "accept").to_numpy())
    counts = opinions.groupby("pair_id")["_mis"].agg(["sum", "count"])
    last = opinions.sort_values("_order").groupby("pair_id").tail(1).set_index("pair_id")
    n_mis, n = counts["sum"].reindex(last.index), counts["count"].reindex(last.index)
    side = np.where(2 * n_mis > n, True, np.where(2 * n_mis < n, False, last["_mis"].to_numpy(bool)))
    side_of = pd.Series(side, index=last.index)
    on_side = opinions[opinions["_mis"].to_numpy() == opinions["pair_id"].map(side_of).to_numpy(bool)]
    kept = on_side.sort_values("_order").groupby("pair_id").tail(1).sort_values("_order")
    ids = kept["pair_id"]
    agreement = np.where(side_of.reindex(ids).to_numpy(bool), n_mis.reindex(ids).to_numpy(),
                         (n - n_mis).reindex(ids).to_numpy())
    out = kept.drop(columns=["_order", "_mis"]).assign(
        n_opinions=n.reindex(kept["pair_id"]).to_numpy(np.int64),
        agreement=agreement / n.reindex(kept["pair_id"]).to_numpy())
    return out.reset_index(drop=True)[columns]
