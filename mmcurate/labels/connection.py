"""Opening a ledger file: WAL, foreign keys, the schema, the write lock and its timeout.

:class:`LedgerConnection` is the base of :class:`mmcurate.labels.Ledger`: one SQLite connection
shared by threads under a lock, write transactions (``BEGIN IMMEDIATE``) that raise
:class:`~mmcurate.exceptions.LedgerLockedError` when another writer holds the lock past the timeout,
and the temporary table of pair ids that keeps the work of a write linear in its rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Self

import pandas as pd

from mmcurate._fileio import to_jsonable
from mmcurate.exceptions import LedgerLockedError, ProjectError
from mmcurate.labels.schema import _QUEUED, _SCHEMA, _WRITE_IDS, SCHEMA_VERSION

BUSY_TIMEOUT_S = 60.0


def utc_now() -> str:
    """The current time as UTC ISO-8601 with milliseconds and a ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_json(obj: Mapping[str, Any]) -> str:
    """JSON text with numpy scalars/arrays as plain values and non-finite floats as null."""
    return json.dumps(to_jsonable(dict(obj)), sort_keys=True, default=str, allow_nan=False)


class LedgerConnection:
    """One ledger file's connection, schema and write lock (the base of :class:`~mmcurate.labels.Ledger`).

    ``timeout`` (default :data:`BUSY_TIMEOUT_S`) is how long a write waits for another writer.
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
            self.checkpoint()

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the write-ahead log into ``labels.sqlite`` (``PASSIVE``: as far as readers allow,
        never waiting), so a copy of that file alone holds every committed decision. A checkpoint
        that cannot run now is left to the next one."""
        with self._lock:
            try:
                self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            except (sqlite3.OperationalError, sqlite3.ProgrammingError):  # busy, locked or closed
                pass

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Checkpoint and close the connection (further calls raise ``sqlite3.ProgrammingError``)."""
        with self._lock:
            self.checkpoint("TRUNCATE")
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
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
        """Round each staged pair id was queued in (one index lookup per id): its first batch."""
        return dict(conn.execute(f"SELECT b.pair_id, b.round FROM {_WRITE_IDS} t CROSS "
                                 "JOIN batch_items b ON b.pair_id = t.pair_id").fetchall())

    @staticmethod
    def _staged_rounds(conn: sqlite3.Connection) -> dict[str, list[int]]:
        """Every round each staged pair id is queued in (its batch, then second opinions), in order."""
        out: dict[str, list[int]] = {}
        for pid, rnd in conn.execute(f"SELECT q.pair_id, q.round FROM {_WRITE_IDS} t CROSS JOIN "
                                     f"({_QUEUED}) q ON q.pair_id = t.pair_id ORDER BY q.round"):
            out.setdefault(pid, []).append(int(rnd))
        return out


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
