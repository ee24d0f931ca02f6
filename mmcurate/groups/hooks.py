"""One decision per group: how select, the ledger, training and export treat a project's groups.

Each stage that knows about groups calls one function here (see CONTRIBUTING, "groups"):

- ``select``: :func:`selection_exclude` leaves one representative per group eligible (the best
  scored; for a duplicate group none once a member is queued or decided) and
  :func:`annotate_reasons` shows the group size;
- the ledger: :func:`apply_group_decisions` records a representative's decision on every member
  (``source = "via:<representative's pair_id>"``), after ``label`` imports and at ``select`` (for
  decisions made on the review page); :func:`reject_boilerplate` rejects a boilerplate group in one
  action;
- training: :func:`count_groups_once` keeps one labelled row per group decision (the rows recorded
  ``via:`` a representative are dropped);
- export: :func:`export_decisions` (the same propagation, in memory) and
  :func:`apply_duplicate_policy` (one pair kept per duplicate group, ``group_id`` / ``duplicate_of``).

Rules: a decision propagates from the latest decision made directly on a queued member of the
group; it never overrides a member's own direct decision; boilerplate groups propagate only a
``reject`` (the caption is boilerplate whatever the image). Projects without ``duplicates.parquet``
are untouched by every hook.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmcurate.groups.compute import DUPLICATE_KINDS
from mmcurate.groups.find import components
from mmcurate.groups.project import load_duplicates
from mmcurate.labels.schema import VIA

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["VIA", "annotate_reasons", "apply_duplicate_policy", "apply_group_decisions",
           "count_groups_once", "export_decisions", "propagated_decisions", "reject_boilerplate",
           "selection_exclude"]



def _is_via(source: pd.Series) -> np.ndarray:
    return source.fillna("").astype(str).str.startswith(VIA).to_numpy()


def propagated_decisions(groups: pd.DataFrame, latest: pd.DataFrame, queued: Collection[str]) -> pd.DataFrame:
    """The decisions group members should receive: ``pair_id, decision, caption, reviewer, via``.

    ``groups``: ``duplicates.parquet`` rows; ``latest``: the latest decision per pair in recording
    order (``Ledger.decisions()``); ``queued``: pair ids queued in any review batch. Rows a member
    already holds (same decision and caption, via the same representative) are left out.
    """
    cols = ["pair_id", "decision", "caption", "reviewer", "via"]
    if groups is None or groups.empty or latest.empty:
        return pd.DataFrame(columns=cols)
    latest = latest.reset_index(drop=True).assign(order=lambda d: np.arange(len(d)))
    direct = latest[~_is_via(latest["source"])]
    src = groups.merge(direct[direct["pair_id"].isin(set(queued))], on="pair_id")
    src = src.sort_values("order").drop_duplicates("group_id", keep="last")
    src = src[(src["kind"] != "boilerplate") | (src["decision"] == "reject")]
    targets = groups[["pair_id", "group_id", "kind"]].merge(
        src[["group_id", "pair_id", "decision", "caption", "reviewer"]].rename(columns={"pair_id": "via"}),
        on="group_id")
    own = targets["pair_id"].isin(set(direct["pair_id"]))  # a member's own decision is never overridden
    targets = targets[(targets["pair_id"] != targets["via"]) & ~own]
    # duplicate groups first: a pair also in a boilerplate group takes its duplicate group's decision
    targets = targets.assign(dup=~targets["kind"].isin(DUPLICATE_KINDS)).sort_values(["dup", "group_id"])
    targets = targets.drop_duplicates("pair_id", keep="first")
    now = targets[["pair_id"]].merge(latest[["pair_id", "decision", "caption", "source"]], on="pair_id",
                                     how="left")
    same = ((now["decision"].to_numpy() == targets["decision"].to_numpy())
            & (now["source"].to_numpy() == (VIA + targets["via"].astype(str)).to_numpy())
            & ((targets["decision"].to_numpy() != "fix")
               | (now["caption"].to_numpy() == targets["caption"].to_numpy())))
    return targets.loc[~same, cols].reset_index(drop=True)


def _ledger_latest(proj: ProjectFiles) -> pd.DataFrame | None:
    return proj.ledger.decisions() if proj.has_ledger() else None


def apply_group_decisions(proj: Project) -> int:
    """Record each group decision on every member (``source = via:<representative>``); returns the
    rows appended. The caller holds the project lock. No-op without groups or decisions."""
    groups = load_duplicates(proj)
    latest = _ledger_latest(proj)
    if groups is None or latest is None or latest.empty:
        return 0
    rows = propagated_decisions(groups, latest, proj.ledger.queued_pair_ids())
    n = 0
    for via, part in rows.groupby("via", sort=True):
        n += proj.ledger.record_many(part.drop(columns="via").to_dict("records"), source=VIA + str(via))
    return n


def reject_boilerplate(proj: Project, group_id: int, *, reviewer: str | None = None) -> int:
    """Reject every pair of boilerplate group ``group_id`` in one action; returns the pairs recorded.

    The first member (by pair id) gets the decision directly (``source = "boilerplate"``), the
    others ``via:`` it, so training counts the action once.
    """
    groups = load_duplicates(proj, stale="raise")
    members = (groups[(groups["group_id"] == int(group_id)) & (groups["kind"] == "boilerplate")]
               if groups is not None else pd.DataFrame())
    if members.empty:
        known = (sorted(groups.loc[groups["kind"] == "boilerplate", "group_id"].unique().tolist())
                 if groups is not None else [])
        raise ValueError(f"{group_id!r} is not a boilerplate group of {proj.root}; boilerplate groups: "
                         f"{known[:20] or 'none (run `mmcurate duplicates`)'}")
    ids = sorted(members["pair_id"].astype(str))
    first = {"pair_id": ids[0], "decision": "reject", "reviewer": reviewer}
    n = proj.ledger.record_many([first], source="boilerplate")
    n += proj.ledger.record_many([{**first, "pair_id": p} for p in ids[1:]], source=VIA + ids[0])
    return n


def selection_exclude(proj: Project, ranked: pd.DataFrame, taken: Collection[str],
                      exclude: Collection[str] | None) -> set[str]:
    """``exclude`` plus every grouped pair that must not enter the batch.

    One member per group and batch: the best scored (ties by pair id) of the members still open;
    overlapping groups (a pair in a duplicate and a boilerplate group) count as one. Across rounds:
    once a member of a duplicate group is queued or decided (``taken``) the others wait for its
    decision (they receive it, :func:`apply_group_decisions`), so none of them is queued again; the
    other members of a boilerplate group stay open unless its decision (a reject) reached them.
    Applies pending group decisions first.
    """
    out = set(exclude or ())
    groups = load_duplicates(proj)
    if groups is None or groups.empty:
        return out
    apply_group_decisions(proj)
    ids = ranked["pair_id"].astype(str).to_numpy()
    row_of = pd.Series(np.arange(len(ids)), index=ids)
    g = groups[groups["pair_id"].isin(row_of.index)]
    frame = pd.DataFrame({"pair_id": g["pair_id"].unique()})
    frame["row"] = row_of.loc[frame["pair_id"]].to_numpy()
    frame["batch"] = _components(len(ids), g, row_of)[frame["row"]]
    frame["dup"] = _components(len(ids), g[g["kind"].isin(DUPLICATE_KINDS)], row_of)[frame["row"]]
    frame["score"] = ranked["score"].to_numpy(np.float64)[frame["row"]]
    frame["taken"] = frame["pair_id"].isin(set(taken))
    in_dup = frame["pair_id"].isin(set(g.loc[g["kind"].isin(DUPLICATE_KINDS), "pair_id"]))
    waiting = in_dup & frame["dup"].isin(set(frame.loc[frame["taken"] & in_dup, "dup"]))
    open_ = ~frame["taken"] & ~waiting & ~frame["pair_id"].isin(out)
    cand = frame[open_].assign(neg=lambda d: -d["score"].fillna(-np.inf)).sort_values(["neg", "pair_id"])
    best = set(cand.drop_duplicates("batch")["pair_id"])
    return out | (set(frame.loc[~frame["taken"], "pair_id"]) - best)


def _components(n: int, groups: pd.DataFrame, row_of: pd.Series) -> np.ndarray:
    """Each row's component when every group joins its members (rows in no group: alone)."""
    if groups.empty:
        return np.arange(n)
    first = groups.groupby("group_id")["pair_id"].transform("first")
    return components(n, row_of.loc[groups["pair_id"]].to_numpy(), row_of.loc[first].to_numpy())


def annotate_reasons(proj: Project, pair_ids: Sequence[str], reasons: Sequence[str]) -> list[str]:
    """Each reason, with ``; group G: n pairs (kind)`` added for a representative of a group."""
    groups = load_duplicates(proj)
    if groups is None or groups.empty:
        return list(reasons)
    sizes = groups.groupby("group_id")["pair_id"].size()
    info = groups.assign(size=groups["group_id"].map(sizes)).groupby("pair_id")
    notes = {p: "; ".join(f"group {g}: {s} pairs ({k})" for g, s, k in
                          zip(d["group_id"], d["size"], d["kind"])) for p, d in info}
    return [f"{r}; {notes[p]}" if p in notes else r for p, r in zip(map(str, pair_ids), reasons)]


def count_groups_once(proj: ProjectFiles, rows: np.ndarray, y: np.ndarray, fixes: pd.DataFrame
                      ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Labelled rows for training, one per group decision: rows whose latest decision was recorded
    ``via:`` a representative are dropped (the representative's own row stays)."""
    latest = _ledger_latest(proj)
    if latest is None or latest.empty or len(rows) == 0:
        return rows, y, fixes
    via = set(latest.loc[_is_via(latest["source"]), "pair_id"])
    if not via:
        return rows, y, fixes
    keep = ~np.isin(proj.pairs["pair_id"].to_numpy()[rows].astype(str), list(via))
    if "row" in fixes.columns:
        fixes = fixes[fixes["row"].isin(rows[keep])]
    return rows[keep], y[keep], fixes


def export_decisions(proj: Project, decisions: pd.DataFrame) -> pd.DataFrame:
    """``decisions`` (latest per pair) with the group decisions not yet recorded added (in memory:
    export writes nothing into the project)."""
    groups = load_duplicates(proj, write=False)
    if groups is None or decisions.empty:
        return decisions
    extra = propagated_decisions(groups, decisions, proj.ledger.queued_pair_ids())
    if extra.empty:
        return decisions
    extra = extra.assign(source=VIA + extra["via"].astype(str)).drop(columns="via")
    return pd.concat([decisions, extra.reindex(columns=decisions.columns)], ignore_index=True)


def apply_duplicate_policy(proj: Project, curated: pd.DataFrame, dropped: pd.DataFrame,
                           counts: dict[str, int], *,
                           keep_duplicates: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One curated pair per duplicate group (the best P(aligned), ties by pair id), the other
    curated members moved to ``dropped`` (``stage = duplicates``) unless ``keep_duplicates``.

    Every curated pair gets ``group_id`` (nullable) and ``duplicate_of`` (the kept member, for the
    others of its group; empty for the kept one and for pairs in no group). ``counts`` gains
    ``duplicate_groups``, ``duplicates_dropped`` and ``groups_<kind>`` per kind found.
    """
    groups = load_duplicates(proj, write=False)
    dup = (groups[groups["kind"].isin(DUPLICATE_KINDS)] if groups is not None
           else pd.DataFrame(columns=["pair_id", "group_id", "kind", "similarity"]))
    curated = curated.copy()
    gid = (curated["pair_id"].map(dup.set_index("pair_id")["group_id"]) if len(dup)
           else pd.Series(np.nan, curated.index))
    curated["group_id"] = gid.astype("Int64")
    ranked = curated[curated["group_id"].notna()].assign(
        neg=lambda d: -d["p_aligned"].astype(float).fillna(-np.inf)).sort_values(["neg", "pair_id"])
    best = ranked.drop_duplicates("group_id").set_index("group_id")["pair_id"]
    kept_of = curated["group_id"].map(best)
    curated["duplicate_of"] = np.where(kept_of.notna() & (kept_of != curated["pair_id"]), kept_of, None)
    copies = curated["duplicate_of"].notna()
    counts.update(duplicate_groups=int(dup["group_id"].nunique()) if len(dup) else 0,
                  duplicates_dropped=0 if keep_duplicates else int(copies.sum()))
    if groups is not None:  # groups by kind, for the report
        by_kind = groups.groupby("kind")["group_id"].nunique()
        counts.update({f"groups_{k}": int(n) for k, n in by_kind.items()})
    if keep_duplicates or not copies.any():
        return curated.reset_index(drop=True), dropped
    gone = curated[copies]
    kind = gone["pair_id"].map(dup.set_index("pair_id")["kind"])
    sim = gone["pair_id"].map(dup.set_index("pair_id")["similarity"]).astype(float)
    extra = gone.assign(stage="duplicates", reason="duplicate",
                        detail=[f"duplicate of {o} ({k} group {g}, similarity {s:.3f})" for o, k, g, s in
                                zip(gone["duplicate_of"], kind, gone["group_id"], sim)])
    extra = extra.reindex(columns=dropped.columns)
    dropped = pd.concat([dropped, extra], ignore_index=True) if len(dropped) else extra.reset_index(drop=True)
    counts.update(curated=int((~copies).sum()), dropped=len(dropped))
    return curated[~copies].reset_index(drop=True), dropped
