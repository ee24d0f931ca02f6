"""The ledger's tables, its schema version and the SQL its parts share.

``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`; :mod:`mmcurate.labels.connection` creates or
migrates the tables from :data:`_SCHEMA` when a file is opened (every statement is ``IF NOT
EXISTS``: a migration adds what an older file lacks).

Undo (schema 4): ``decisions`` stays append-only; taking a decision back appends one row per
withdrawn decision to ``withdrawals`` (append-only too). Every reader of decisions reads the view
``live_decisions`` (decisions not withdrawn), so a withdrawn decision is as if never made for the
latest decision, resolved opinions, training and export, and stays on file for the audit.
"""

from __future__ import annotations

from mmcurate.labels.decision_files import DECISIONS

SCHEMA_VERSION = 4
STRATA = ("exploit", "explore")
VIA = "via:"
"""Prefix of the ``source`` of a decision recorded for a group member: ``via:<representative id>``
(:mod:`mmcurate.groups.hooks`); taking back a representative's decision takes these back too."""
SECOND_OPINION = "second_opinion"
"""The stratum of a decided pair shown again (``second_opinions`` table, schema version 3)."""
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
CREATE INDEX IF NOT EXISTS decisions_by_source ON decisions (source, id);
CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TABLE IF NOT EXISTS batch_design (
    pair_id TEXT PRIMARY KEY REFERENCES batch_items(pair_id), round INTEGER NOT NULL,
    stratum TEXT NOT NULL CHECK (stratum IN {STRATA!r}),
    inclusion REAL NOT NULL CHECK (inclusion > 0 AND inclusion <= 1));
CREATE TABLE IF NOT EXISTS second_opinions (
    round INTEGER NOT NULL REFERENCES rounds(round), position INTEGER NOT NULL,
    pair_id TEXT NOT NULL REFERENCES batch_items(pair_id), reason TEXT, score REAL,
    PRIMARY KEY (round, pair_id));
CREATE INDEX IF NOT EXISTS second_opinions_by_pair ON second_opinions (pair_id, round);
CREATE TABLE IF NOT EXISTS withdrawals (
    decision_id INTEGER PRIMARY KEY REFERENCES decisions(id), pair_id TEXT NOT NULL,
    round INTEGER, reviewer TEXT, timestamp TEXT NOT NULL, source TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS withdrawals_no_update BEFORE UPDATE ON withdrawals
    BEGIN SELECT RAISE(ABORT, 'withdrawals are append-only'); END;
CREATE TRIGGER IF NOT EXISTS withdrawals_no_delete BEFORE DELETE ON withdrawals
    BEGIN SELECT RAISE(ABORT, 'withdrawals are append-only'); END;
CREATE VIEW IF NOT EXISTS live_decisions AS SELECT * FROM decisions d
    WHERE NOT EXISTS (SELECT 1 FROM withdrawals w WHERE w.decision_id = d.id);
CREATE TABLE IF NOT EXISTS heads (
    head_round INTEGER PRIMARY KEY, created_at TEXT NOT NULL, checkpoint TEXT NOT NULL,
    metrics TEXT NOT NULL, n_labels INTEGER NOT NULL);
"""

_QUEUED = """SELECT pair_id, round FROM batch_items UNION ALL SELECT pair_id, round FROM second_opinions"""
_LATEST = """SELECT d.* FROM live_decisions d
    JOIN (SELECT pair_id, MAX(id) AS id FROM live_decisions GROUP BY pair_id) m ON d.id = m.id"""
_WRITE_IDS = "temp.write_ids"  # the pair ids of the current write, one indexed row each
_LATEST_OF_IDS = f"""SELECT d.pair_id, d.decision, d.caption, d.reviewer, d.source, d.round
    FROM {_WRITE_IDS} t CROSS JOIN decisions d
    ON d.id = (SELECT e.id FROM decisions e WHERE e.pair_id = t.pair_id AND NOT EXISTS (
        SELECT 1 FROM withdrawals w WHERE w.decision_id = e.id) ORDER BY e.id DESC LIMIT 1)"""
_DECISION_COLUMNS = ["pair_id", "round", "decision", "caption", "reviewer", "timestamp", "source"]
