"""A project's decisions: imported into its ledger, and read back as labelled rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate.groups.hooks import apply_group_decisions
from mmcurate.labels.decision_log import round_opinions

if TYPE_CHECKING:
    from mmcurate.labels import Ledger
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles


def labelled_arrays(proj: ProjectFiles) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pd.DataFrame]:
    """Row indices of decided pairs, their labels (1 aligned, 0 not) and the fix rows.

    A pair decided more than once counts once, by :func:`mmcurate.labels.resolve_opinions`.
    """
    decisions = proj.ledger.resolved()
    if decisions.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), decisions
    row_of = pd.Series(np.arange(len(proj.pairs)), index=proj.pairs["pair_id"].to_numpy())
    decisions = decisions[decisions["pair_id"].isin(row_of.index)]
    rows = row_of.loc[decisions["pair_id"]].to_numpy(np.int64)
    y = (decisions["decision"].to_numpy() == "accept").astype(np.int64)
    is_fix = decisions["decision"].to_numpy() == "fix"
    fixes = decisions[is_fix].assign(row=rows[is_fix])
    return rows, y, fixes


def import_labels(proj: Project, source: str | Path | pd.DataFrame, *, round_id: int | None = None,
                  source_name: str | None = None):
    """Import decisions (a CSV/JSONL file or a DataFrame) into the ledger in one transaction.

    Every decided pair must be queued in a review batch (in round ``round_id`` when given);
    otherwise nothing is imported and :class:`mmcurate.labels.LabelsFileError` names the rows.
    """
    if source_name is None and not isinstance(source, pd.DataFrame):
        source_name = Path(source).name
    report = proj.ledger.import_decisions(source, known_pair_ids=set(proj.pairs["pair_id"]),
                                          source_name=source_name, round_id=round_id, queued_only=True)
    apply_group_decisions(proj)  # a representative's decision reaches its group's members
    return report


def repeated_opinions(proj: ProjectFiles) -> list[tuple[str, str, str, str]]:
    """``(pair_id, reason, first, second)`` of every pair shown again and decided again: its opinion
    before the second-opinion round and the one given in it (``reason`` starts ``audit`` for a
    random re-check, ``second opinion`` for a contradicted decision)."""
    again = proj.ledger.second_opinions()
    if again.empty:
        return []
    hist = proj.ledger.decisions(history=True)
    hist = hist[hist["pair_id"].isin(set(again["pair_id"]))].assign(
        round=lambda d: d["round"].astype("Int64").fillna(-1).astype(np.int64))
    by_pair = {pid: group for pid, group in hist.groupby("pair_id", sort=False)}
    out = []
    for pid, rnd, reason in zip(again["pair_id"], again["round"], again["reason"].fillna("")):
        mine = by_pair.get(pid)
        if mine is None:
            continue
        before = mine.loc[mine["round"] < int(rnd), "decision"]
        during = mine.loc[mine["round"] == int(rnd), "decision"]
        if len(before) and len(during):
            out.append((str(pid), str(reason), str(before.iloc[-1]), str(during.iloc[-1])))
    return out


def decided_opinions(ledger: Ledger) -> dict[str, list[str]]:
    """Every decided pair's opinions, oldest first: what :func:`mmcurate.learn.reviewer_error_rate`
    weighs.

    A pair the loop showed again (second opinions and audits, :meth:`Ledger.second_opinions`)
    gives one opinion per round it was decided in, the last decision recorded in that round (as
    :func:`mmcurate.labels.resolve_opinions` counts them), so a pair shown three times keeps all
    three: each showing was chosen on the opinions before it. Any other pair gives its latest
    decision only: a decision a person changed on their own is a correction, and why it was
    changed is not recorded.
    """
    latest = ledger.decisions()
    opinions = {str(pid): [str(d)] for pid, d in zip(latest["pair_id"], latest["decision"])}
    again = set(ledger.second_opinions()["pair_id"].astype(str))
    if again:
        hist = ledger.decisions(history=True)
        per_round = round_opinions(hist[hist["pair_id"].astype(str).isin(again)])
        for pid, group in per_round.groupby(per_round["pair_id"].astype(str), sort=False):
            if pid in opinions:  # still decided (not taken back)
                opinions[pid] = group["decision"].astype(str).tolist()
    return opinions
