"""Stream-based selection: pairs arrive a batch at a time; each is queued for review or passed.

An arriving batch (a pairs file for image projects, a clip-retrieval embedding folder for
``external`` projects) is validated like ``init`` (bad rows go to ``rejects.csv`` with file and
row; pair_ids already in the project are rejected as ``duplicate_id``), embedded with the
project's model, and scored by one strategy over pool + arrivals with the current head and a
calibrator fitted on every label so far. Each arrival is then queued (score above the threshold)
or passed. ``threshold="auto"`` keeps the review rate at ``rate`` with
:class:`mmcurate.stream.threshold.AdaptiveThreshold`, whose state persists between batches; a float
is a fixed threshold on the score. Queued pairs become one new ledger round, so ``mmcurate
review`` / ``label`` work on them unchanged; nothing labelled or queued before is queued again.

Layout::

    PROJECT/stream/
      state.json                 batches so far, threshold state, processed files (by sha256)
      log/batch-NNNNNN.parquet   one row per arrival: score, threshold, queued, round, head, strategy
      staging/                   the batch being validated and embedded (discarded on failure)
      pending/                   journal of the batch being committed

Commit protocol (one writer: the project lock). Nothing in the project changes until the
arrivals are validated, embedded (into ``staging/``), scored and decided; the decisions are
journalled in ``pending/``; the vectors go into the store as one new part and the new
``pairs.parquet`` replaces the old one atomically -- the commit point. Then the round, the log,
the rejects and the state are written, each step idempotent, and the journal removed. An add
that fails before the commit point leaves the project as it was (a stray part is dropped by the
next compaction); one that fails after it is finished by the next ``add_pairs`` / ``watch`` /
:func:`recover_stream`. Labels are never touched, and the compacted vectors are replaced
atomically only after the commit point, so nothing already there is lost.

Modules: :mod:`~mmcurate.stream.add` (``add_pairs``, the commit protocol, state and log),
:mod:`~mmcurate.stream.ingest` (validate and embed a batch into staging),
:mod:`~mmcurate.stream.watch` (poll a folder), :mod:`~mmcurate.stream.threshold` (the threshold).
"""

from __future__ import annotations

from mmcurate.stream.add import (
    LOG_COLUMNS,
    add_pairs,
    content_hash,
    recover_stream,
    stream_log,
    stream_state,
)
from mmcurate.stream.watch import watch

__all__ = ["LOG_COLUMNS", "add_pairs", "content_hash", "recover_stream", "stream_log", "stream_state",
           "watch"]
