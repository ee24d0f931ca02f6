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
by version 1 have no row and count as exploit with probability 1), ``decisions``,
``second_opinions`` (decided pairs shown again, version 3), ``withdrawals`` (decisions taken back
with :meth:`Ledger.undo`, version 4: the pair is undecided again; every reader goes through the view
``live_decisions``) and ``heads`` (models trained on the ledger). ``PRAGMA user_version`` holds the
schema version; older files are migrated in place (the new tables are added).

Modules: :mod:`~mmcurate.labels.schema` (tables, schema version, shared SQL),
:mod:`~mmcurate.labels.connection` (opening, migrating, the write lock and its timeout),
:mod:`~mmcurate.labels.batches` (rounds and their batches), :mod:`~mmcurate.labels.decision_log`
(recording and importing decisions, their history), :mod:`~mmcurate.labels.heads` (trained heads),
:mod:`~mmcurate.labels.ledger` (:class:`Ledger`, all of them in one object).
"""

from mmcurate.labels.connection import BUSY_TIMEOUT_S as BUSY_TIMEOUT_S
from mmcurate.labels.connection import utc_now as utc_now
from mmcurate.labels.decision_files import DECISIONS, LabelsFileError
from mmcurate.labels.decision_log import ImportReport, resolve_opinions
from mmcurate.labels.ledger import Ledger
from mmcurate.labels.schema import SCHEMA_VERSION as SCHEMA_VERSION
from mmcurate.labels.schema import SECOND_OPINION as SECOND_OPINION
from mmcurate.labels.schema import STRATA as STRATA

__all__ = ["DECISIONS", "ImportReport", "LabelsFileError", "Ledger", "resolve_opinions"]
