"""Trained heads: record one with its metrics, list them, the latest."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from mmcurate.labels.connection import LedgerConnection, _frame, _to_json, utc_now


class HeadsMixin(LedgerConnection):
    """The trained-heads part of :class:`~mmcurate.labels.Ledger`."""

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
