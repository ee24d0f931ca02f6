"""The labels ledger: rounds, their batches, and every review decision, in one SQLite file.

Assumptions
-----------
- One file per project (``labels.sqlite``), opened in WAL mode with foreign keys on and a busy
  timeout, so a review page, a CLI import and a notebook can write at the same time: a writer waits
  for the lock, and when another writer holds it past the timeout it raises
  :class:`~mmcurate.exceptions.LedgerLockedError` (never a bare "database is locked").
- Work per write is linear in the rows written: the pair ids of a write go into a temporary table
  once, and each pair's latest decision is one lookup in the ``(pair_id, id)`` index.
- ``decisions`` is append-only (triggers refuse UPDATE and DELETE). The *latest* decision of a pair
  is the one recorded last (highest row id), whatever its ``timestamp`` says; earlier ones stay as
  history and are listed by :meth:`Ledger.conflicts` when they disagree.
- ``caption`` is the corrected caption and is kept only for ``fix``; it is dropped for ``accept``
  and ``reject`` (review files often carry the original caption in that column).
- Timestamps are UTC ISO-8601 (``2025-01-31T12:00:00.000Z``); a supplied timestamp without a zone
  is taken as UTC.

Tables: ``rounds`` (one per selected batch), ``batch_items`` (pair queued once, in one round),
``batch_design`` (how each queued pair was chosen: the ``exploit`` part of a batch, taken by rank,
or the ``explore`` part, drawn uniformly at random, with its inclusion probability; pairs queued
by version 1 have no row and count as exploit with probability 1), ``decisions`` and ``heads``
(models trained on the ledger). ``PRAGMA user_version`` holds the schema version; version 1 files
are migrated in place (the new table is added).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._fileio import to_jsonable
from mmcurate.exceptions import LedgerLockedError, ProjectError
from mmcurate.review.decisions import (
    DECISIONS,
    LabelsFileError,
    Problem,
    clean_decision,
    describe_problems,
    parse_decisions,
)

__all__ = ["DECISIONS", "ImportReport", "LabelsFileError", "Ledger"]

SCHEMA_VERSION = 2
STRATA = ("exploit", "explore")
BUSY_TIMEOUT_S = 60.0

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY, created_at TEXT NOT NULL, strategy TEXT NOT NULL,
    params TEXT NOT NULL, model TEXT NOT NULL, head_round INTEGER);
CREATE TABLE IF NOT EXISTS batch_items (
    round INTEGER NOT NULL REFERENCES rounds(round), position INTEGER NOT NULL,
    pair_id TEXT NOT NULL UNIQUE, score REAL, reason TEXT, PRIMARY KEY (round, position));
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pair_id TEXT NOT NULL,
    round INTEGER REFERENCES rounds(round),
    decision TEXT NOT NULL CHECK (decision IN {DECISIONS!r}),
    caption TEXT, reviewer TEXT, timestamp TEXT NOT NULL, source TEXT NOT NULL,
    CHECK (decision != 'fix' OR length(trim(coalesce(caption, ''))) > 0));
CREATE INDEX IF NOT EXISTS decisions_by_pair ON decisions (pair_id, id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TABLE IF NOT EXISTS batch_design (
    pair_id TEXT PRIMARY KEY REFERENCES batch_items(pair_id), round INTEGER NOT NULL,
    stratum TEXT NOT NULL CHECK (stratum IN {STRATA!r}),
    inclusion REAL NOT NULL CHECK (inclusion > 0 AND inclusion <= 1));
CREATE TABLE IF NOT EXISTS heads (
    head_round INTEGER PRIMARY KEY, created_at TEXT NOT NULL, checkpoint TEXT NOT NULL,
    metrics TEXT NOT NULL, n_labels INTEGER NOT NULL);
"""

_LATEST = """SELECT d.* FROM decisions d
    JOIN (SELECT pair_id, MAX(id) AS id FROM decisions GROUP BY pair_id) m ON d.id = m.id"""
_WRITE_IDS = "temp.write_ids"  # the pair ids of the current write, one indexed row each
_LATEST_OF_IDS = f"""SELECT d.pair_id, d.decision, d.caption, d.reviewer, d.source
    FROM {_WRITE_IDS} t CROSS JOIN decisions d
    ON d.id = (SELECT MAX(id) FROM decisions WHERE pair_id = t.pair_id)"""
_DECISION_COLUMNS = ["pair_id", "round", "decision", "caption", "reviewer", "timestamp", "source"]


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


def utc_now() -> str:
    """The current time as UTC ISO-8601 with milliseconds and a ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_json(obj: Mapping[str, Any]) -> str:
    """JSON text with numpy scalars/arrays as plain values and non-finite floats as null."""
    return json.dumps(to_jsonable(dict(obj)), sort_keys=True, default=str, allow_nan=False)


class Ledger:
    """The SQLite ledger of rounds, batches, decisions and trained heads.

    Parameters
    ----------
    path : str or os.PathLike
        The database file; created with the current schema when missing.
    timeout : float, optional
        Seconds a write waits for another writer's lock before raising
        :class:`~mmcurate.exceptions.LedgerLockedError` (default :data:`BUSY_TIMEOUT_S`).

    Examples
    --------
    >>> with Ledger(tmp / "labels.sqlite") as ledger:  # doctest: +SKIP
    ...     r = ledger.create_round(["p1", "p2"], strategy="margin", params={"budget": 2}, model={})
    ...     ledger.record("p1", "accept", reviewer="ana")
    ...     ledger.record("p2", "fix", caption="a red cube", reviewer="ana")
    ...     ledger.batch(r)[["pair_id", "decision", "caption_fixed"]]
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = float(BUSY_TIMEOUT_S if timeout is None else timeout)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        with self._busy_as_locked():
            if self._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                self._conn.execute("PRAGMA journal_mode = WAL")
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        """Create (or, in later versions, migrate) the schema; refuse files from a newer mmcurate."""
        if self._query("PRAGMA user_version")[0][0] == SCHEMA_VERSION:
            return  # the common case takes no write lock
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ProjectError(
                    f"{self.path} has ledger schema version {version}, this mmcurate reads up to "
                    f"{SCHEMA_VERSION}; upgrade mmcurate to open it.")
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connection plumbing ------------------------------------------------------------------
    @contextmanager
    def _busy_as_locked(self) -> Iterator[None]:
        """Turn SQLite's "database is locked" (busy past the timeout) into :class:`LedgerLockedError`."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if getattr(err, "sqlite_errorcode", None) not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            raise LedgerLockedError(
                f"the labels ledger {self.path} is being written by another process (an import, a "
                f"review page or a notebook); waited {self.timeout:g} s for its write lock. Run "
                f"this again when that write has finished.") from err

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): commit on success, roll back on any error.

        Raises :class:`LedgerLockedError` when another writer holds the lock past ``timeout``.
        """
        with self._lock:
            with self._busy_as_locked():
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection (further calls raise ``sqlite3.ProgrammingError``)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- rounds and batches -------------------------------------------------------------------
    def create_round(self, pair_ids: Sequence[str], *, strategy: str, params: Mapping[str, Any],
                     model: Mapping[str, Any], head_round: int | None = None,
                     scores: Sequence[float] | None = None, reasons: Sequence[str] | None = None,
                     strata: Sequence[str] | None = None,
                     inclusion: Sequence[float] | None = None) -> int:
        """Queue a batch as a new round (ids 1, 2, ...) in one transaction; returns the round id.

        ``pair_ids`` are stored in order (``position`` 0, 1, ...), with optional ``scores`` and
        ``reasons`` of the same length. ``params``/``model`` record how the batch was chosen.
        ``strata`` (``exploit``/``explore``) and ``inclusion`` (each pair's probability of being
        chosen, in (0, 1]) record the sampling design; without them every pair counts as
        ``exploit`` with probability 1.
        Raises ``ValueError`` when a pair id repeats or was queued in an earlier round.
        """
        ids = [str(p) for p in pair_ids]
        if not ids:
            raise ValueError("a round needs at least one pair id; got an empty batch")
        strata = list(strata) if strata is not None else ["exploit"] * len(ids)
        inclusion = [float(v) for v in inclusion] if inclusion is not None else [1.0] * len(ids)
        bad = sorted({str(v) for v in strata if v not in STRATA})
        bad += [f"inclusion {v}" for v in inclusion if not 0.0 < v <= 1.0][:3]
        if bad:
            raise ValueError(f"strata must be {' or '.join(STRATA)} and inclusion probabilities in "
                             f"(0, 1]; got {', '.join(bad)}")
        for name, values in (("scores", scores), ("reasons", reasons), ("strata", strata),
                             ("inclusion", inclusion)):
            if values is not None and len(values) != len(ids):
                raise ValueError(f"{name} has {len(values)} entries, expected one per pair id ({len(ids)})")
        repeated = sorted({p for p in ids if ids.count(p) > 1}) if len(set(ids)) < len(ids) else []
        if repeated:
            raise ValueError(f"pair ids repeat within the batch: {repeated[:10]}; pass each once")
        with self._write() as conn:
            earlier = self._queued_in(conn, ids)
            if earlier:
                shown = ", ".join(f"{p} (round {r})" for p, r in list(earlier.items())[:10])
                raise ValueError(f"{len(earlier)} pair ids were queued in an earlier round: {shown}; "
                                 "exclude queued_pair_ids() when selecting")
            round_id = conn.execute("SELECT COALESCE(MAX(round), 0) + 1 FROM rounds").fetchone()[0]
            conn.execute("INSERT INTO rounds VALUES (?, ?, ?, ?, ?, ?)",
                         (round_id, utc_now(), strategy, _to_json(params), _to_json(model),
                          None if head_round is None else int(head_round)))
            conn.executemany("INSERT INTO batch_items VALUES (?, ?, ?, ?, ?)", [
                (round_id, pos, pid, None if scores is None else float(scores[pos]),
                 None if reasons is None else str(reasons[pos])) for pos, pid in enumerate(ids)])
            conn.executemany("INSERT INTO batch_design VALUES (?, ?, ?, ?)", [
                (pid, round_id, strata[pos], inclusion[pos]) for pos, pid in enumerate(ids)])
        return int(round_id)

    def design(self) -> pd.DataFrame:
        """How every queued pair was chosen: ``pair_id, round, stratum, inclusion``.

        Pairs queued before schema version 2 appear as ``exploit`` with inclusion 1.
        """
        rows = self._query("""
            SELECT b.pair_id, b.round, COALESCE(d.stratum, 'exploit') AS stratum,
                   COALESCE(d.inclusion, 1.0) AS inclusion
            FROM batch_items b LEFT JOIN batch_design d ON d.pair_id = b.pair_id
            ORDER BY b.round, b.position""")
        return _frame([dict(r) for r in rows], ["pair_id", "round", "stratum", "inclusion"],
                      {"round": "int64", "inclusion": "float64"})

    @staticmethod
    def _stage_ids(conn: sqlite3.Connection, pair_ids: Collection[str]) -> None:
        """Put ``pair_ids`` into the temporary table that this write's lookups join on."""
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_WRITE_IDS.split('.')[1]} "
                     "(pair_id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.execute(f"DELETE FROM {_WRITE_IDS}")
        conn.executemany(f"INSERT OR IGNORE INTO {_WRITE_IDS} VALUES (?)", ((p,) for p in pair_ids))

    @classmethod
    def _queued_in(cls, conn: sqlite3.Connection, pair_ids: Collection[str]) -> dict[str, int]:
        """Round of each of ``pair_ids`` that is already queued."""
        cls._stage_ids(conn, pair_ids)
        return cls._staged_queued(conn)

    @staticmethod
    def _staged_queued(conn: sqlite3.Connection) -> dict[str, int]:
        """Round of each staged pair id that is already queued (one index lookup per id)."""
        return dict(conn.execute(f"SELECT b.pair_id, b.round FROM {_WRITE_IDS} t CROSS "
                                 "JOIN batch_items b ON b.pair_id = t.pair_id").fetchall())

    def rounds(self) -> pd.DataFrame:
        """One row per round: ``round, created_at, strategy, params, model, head_round, n_items,
        n_decided`` (``params``/``model`` as dicts; ``n_decided`` = batch pairs with a decision)."""
        rows = self._query("""
            SELECT r.*, COUNT(b.pair_id) AS n_items,
                   COUNT(b.pair_id) FILTER (WHERE EXISTS (
                       SELECT 1 FROM decisions d WHERE d.pair_id = b.pair_id)) AS n_decided
            FROM rounds r LEFT JOIN batch_items b ON b.round = r.round
            GROUP BY r.round ORDER BY r.round""")
        columns = ["round", "created_at", "strategy", "params", "model", "head_round", "n_items",
                   "n_decided"]
        records = [{**dict(r), "params": json.loads(r["params"]), "model": json.loads(r["model"])}
                   for r in rows]
        return _frame(records, columns, {"round": "int64", "head_round": "Int64", "n_items": "int64",
                                         "n_decided": "int64"})

    def latest_round(self) -> int | None:
        """The highest round id, or ``None`` before the first round."""
        value = self._query("SELECT MAX(round) FROM rounds")[0][0]
        return None if value is None else int(value)

    def batch(self, round_id: int | None = None) -> pd.DataFrame:
        """The pairs of one round (latest when ``None``) in order, with their latest decision.

        Columns ``round, position, pair_id, score, reason, decision, caption_fixed, stratum``;
        ``decision``/``caption_fixed`` are ``None`` while undecided (``caption_fixed`` only for fix).
        Raises ``ValueError`` for a round that does not exist.
        """
        if round_id is None:
            round_id = self.latest_round()
            if round_id is None:
                raise ValueError("the ledger has no rounds yet; select a batch first (create_round)")
        if not self._query("SELECT 1 FROM rounds WHERE round = ?", (int(round_id),)):
            raise ValueError(f"round {round_id} does not exist; rounds are {self._round_ids()}")
        rows = self._query(f"""
            SELECT b.round, b.position, b.pair_id, b.score, b.reason, l.decision,
                   l.caption AS caption_fixed, COALESCE(d.stratum, 'exploit') AS stratum
            FROM batch_items b LEFT JOIN ({_LATEST}) l ON l.pair_id = b.pair_id
            LEFT JOIN batch_design d ON d.pair_id = b.pair_id
            WHERE b.round = ? ORDER BY b.position""", (int(round_id),))
        columns = ["round", "position", "pair_id", "score", "reason", "decision", "caption_fixed",
                   "stratum"]
        return _frame([dict(r) for r in rows], columns,
                      {"round": "int64", "position": "int64", "score": "float64"})

    def _round_ids(self) -> list[int]:
        return [int(r[0]) for r in self._query("SELECT round FROM rounds ORDER BY round")]

    def queued_pair_ids(self) -> set[str]:
        """Every pair id queued in any round."""
        return {r[0] for r in self._query("SELECT pair_id FROM batch_items")}

    # -- decisions ------------------------------------------------------------------------------
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

    # -- heads ------------------------------------------------------------------------------------
    def record_head(self, *, checkpoint: str, metrics: Mapping[str, Any], n_labels: int) -> int:
        """Record a trained head; returns its head round (1, 2, ...). Non-finite metrics become null."""
        with self._write() as conn:
            head_round = conn.execute("SELECT COALESCE(MAX(head_round), 0) + 1 FROM heads").fetchone()[0]
            conn.execute("INSERT INTO heads VALUES (?, ?, ?, ?, ?)",
                         (head_round, utc_now(), str(checkpoint), _to_json(metrics), int(n_labels)))
        return int(head_round)

    def heads(self) -> pd.DataFrame:
        """Every trained head: ``head_round, created_at, checkpoint, n_labels, metrics`` (dict)."""
        rows = self._query("SELECT * FROM heads ORDER BY head_round")
        records = [{**dict(r), "metrics": json.loads(r["metrics"])} for r in rows]
        return _frame(records, ["head_round", "created_at", "checkpoint", "n_labels", "metrics"],
                      {"head_round": "int64", "n_labels": "int64"})

    def latest_head(self) -> dict[str, Any] | None:
        """The last recorded head as a dict (keys as :meth:`heads`), or ``None``."""
        rows = self._query("SELECT * FROM heads ORDER BY head_round DESC LIMIT 1")
        return {**dict(rows[0]), "metrics": json.loads(rows[0]["metrics"])} if rows else None


def _frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str],
           dtypes: Mapping[str, str]) -> pd.DataFrame:
    """A DataFrame with the given columns; columns not in ``dtypes`` are ``object`` (``None`` stays)."""
    return pd.DataFrame({c: pd.Series([r[c] for r in records], dtype=dtypes.get(c, object))
                         for c in columns}, columns=list(columns))


def _check_round(conn: sqlite3.Connection, round_id: int | None) -> None:
    if round_id is not None and not conn.execute("SELECT 1 FROM rounds WHERE round = ?",
                                                 (int(round_id),)).fetchone():
        raise ValueError(f"round {round_id} does not exist; rounds are "
                         f"{[r[0] for r in conn.execute('SELECT round FROM rounds')]}")


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

