"""Rounds and their batches: queue a batch as a round, list rounds, one round's pairs and design."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mmcurate.labels.connection import LedgerConnection, _frame, _to_json, utc_now
from mmcurate.labels.schema import _LATEST, SECOND_OPINION, STRATA


class BatchesMixin(LedgerConnection):
    """The rounds and batches part of :class:`~mmcurate.labels.Ledger`."""

    def create_round(self, pair_ids: Sequence[str], *, strategy: str, params: Mapping[str, Any],
                     model: Mapping[str, Any], head_round: int | None = None,
                     scores: Sequence[float] | None = None, reasons: Sequence[str] | None = None,
                     strata: Sequence[str] | None = None,
                     inclusion: Sequence[float] | None = None,
                     second_opinions: Sequence[tuple[str, float, str]] = ()) -> int:
        """Queue a batch as a new round (ids 1, 2, ...) in one transaction; returns the round id.

        ``pair_ids`` are stored in order (``position`` 0, 1, ...), with optional ``scores`` and
        ``reasons`` of the same length. ``params``/``model`` record how the batch was chosen.
        ``strata`` (``exploit``/``explore``) and ``inclusion`` (each pair's probability of being
        chosen, in (0, 1]) record the sampling design; without them every pair counts as
        ``exploit`` with probability 1. ``second_opinions``: ``(pair_id, score, reason)`` of
        decided pairs shown again in this round (stratum ``second_opinion``; each must have been
        queued before, and not be in ``pair_ids``).
        Raises ``ValueError`` when a pair id repeats or was queued in an earlier round.
        """
        ids = [str(p) for p in pair_ids]
        again = [(str(p), float(sc), str(why)) for p, sc, why in second_opinions]
        if not ids and not again:
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
            if again:
                again_ids = {p for p, _, _ in again}
                self._stage_ids(conn, again_ids)
                unknown = sorted((again_ids - set(self._staged_queued(conn))) | (again_ids & set(ids)))
                if unknown or len(again_ids) < len(again):
                    raise ValueError(f"second opinions must be pairs queued in an earlier round and not in "
                                     f"this batch: {unknown[:10]}")
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
            conn.executemany("INSERT INTO second_opinions VALUES (?, ?, ?, ?, ?)", [
                (round_id, len(ids) + pos, pid, why, sc) for pos, (pid, sc, why) in enumerate(again)])
        return int(round_id)

    def second_opinions(self) -> pd.DataFrame:
        """Decided pairs shown again: ``round, position, pair_id, reason, score``."""
        rows = self._query("SELECT * FROM second_opinions ORDER BY round, position")
        return _frame([dict(r) for r in rows], ["round", "position", "pair_id", "reason", "score"],
                      {"round": "int64", "position": "int64", "score": "float64"})

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
    def rounds(self) -> pd.DataFrame:
        """One row per round: ``round, created_at, strategy, params, model, head_round, n_items,
        n_decided`` (``params``/``model`` as dicts; ``n_decided`` = batch pairs with a decision)."""
        rows = self._query("""
            SELECT r.*, COUNT(b.pair_id) AS n_items,
                   COUNT(b.pair_id) FILTER (WHERE EXISTS (
                       SELECT 1 FROM live_decisions d WHERE d.pair_id = b.pair_id
                       AND (b.again = 0 OR d.round = b.round))) AS n_decided
            FROM rounds r LEFT JOIN (SELECT round, pair_id, 0 AS again FROM batch_items UNION ALL
                                     SELECT round, pair_id, 1 FROM second_opinions) b ON b.round = r.round
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

        Second opinions (stratum ``second_opinion``) come after the batch's own pairs and show the
        decision given in this round only (undecided until the second opinion is given).

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
            WHERE b.round = ?
            UNION ALL
            SELECT s.round, s.position, s.pair_id, s.score, s.reason, l.decision,
                   l.caption AS caption_fixed, '{SECOND_OPINION}' AS stratum
            FROM second_opinions s LEFT JOIN (
                SELECT d.* FROM live_decisions d JOIN (SELECT pair_id, MAX(id) AS id FROM live_decisions
                    WHERE round = ? GROUP BY pair_id) m ON d.id = m.id) l ON l.pair_id = s.pair_id
            WHERE s.round = ? ORDER BY 2""", (int(round_id), int(round_id), int(round_id)))
        columns = ["round", "position", "pair_id", "score", "reason", "decision", "caption_fixed",
                   "stratum"]
        return _frame([dict(r) for r in rows], columns,
                      {"round": "int64", "position": "int64", "score": "float64"})

    def _round_ids(self) -> list[int]:
        return [int(r[0]) for r in self._query("SELECT round FROM rounds ORDER BY round")]

    def queued_pair_ids(self) -> set[str]:
        """Every pair id queued in any round."""
        return {r[0] for r in self._query("SELECT pair_id FROM batch_items")}
