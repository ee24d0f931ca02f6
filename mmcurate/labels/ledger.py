"""The :class:`Ledger`: one object over the rounds, decisions and heads parts of the ledger."""

from __future__ import annotations

from mmcurate.labels.batches import BatchesMixin
from mmcurate.labels.decision_log import DecisionsMixin
from mmcurate.labels.heads import HeadsMixin


class Ledger(BatchesMixin, DecisionsMixin, HeadsMixin):
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
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with Ledger(tmp / "labels.sqlite") as ledger:
    ...     r = ledger.create_round(["p1", "p2"], strategy="margin", params={"budget": 2}, model={})
    ...     ledger.record("p1", "accept", reviewer="ana")
    ...     ledger.record("p2", "fix", caption="a red cube", reviewer="ana")
    ...     ledger.batch(r)[["pair_id", "decision", "caption_fixed"]]
    True
    True
      pair_id decision caption_fixed
    0      p1   accept          None
    1      p2      fix    a red cube
    """
