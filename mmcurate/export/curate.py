"""Where every pair of a project goes: curated or dropped, and why (:func:`curate_pairs`).

The rules are listed in :mod:`mmcurate.export`; this module decides, :mod:`mmcurate.export.write`
writes the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._util import sigmoid
from mmcurate.groups.hooks import apply_duplicate_policy, export_decisions
from mmcurate.index import rowwise_cosine
from mmcurate.learn import (
    CLEAN_KEPT,
    FLOOR_Z,
    MIN_RANDOM_LABELS,
    MODEL_TRUST,
    TARGET_NOISE,
    choose_threshold,
    clean_floor,
    explored_noise,
    reliability,
)
from mmcurate.results import Ranking
from mmcurate.rounds import rank_project
from mmcurate.rounds.model import load_model

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["Curation", "absolute_image_paths", "curate_pairs"]

_BASE_COLUMNS = ("pair_id", "image", "caption")
_DROPPED_COLUMNS = ["pair_id", "image", "caption", "stage", "reason", "detail"]


def absolute_image_paths(proj: ProjectFiles, refs: pd.Series) -> pd.Series:
    """Image references as absolute paths (``/root/shard.tar::member`` for WebDataset members)."""
    refs = refs.fillna("").astype(str)
    if proj.image_root is None:  # imported embeddings without image paths
        return refs
    image_root = proj.image_root
    return refs.map(lambda ref: str(image_root / ref) if ref else "")


# -- curation ---------------------------------------------------------------------------------------
@dataclass
class Curation:
    """Where every pair went.

    ``curated``: ``pair_id, image, caption, status, original_caption, p_aligned`` + extra columns.
    ``dropped``: ``pair_id, image, caption, stage, reason, detail`` (``stage`` is ``review``,
    ``threshold``, ``embed`` or ``input``). ``pairs``: every pair with ``status`` (``accepted``,
    ``fixed``, ``rejected``, ``auto``, ``unverified`` (kept: the model could not vouch for it),
    ``below_threshold``, ``embed_failed``, ``unreviewed``), its decision round and the alignment
    score. ``counts``: the numbers in the report.
    """

    curated: pd.DataFrame
    dropped: pd.DataFrame
    pairs: pd.DataFrame
    counts: dict[str, int]
    score_name: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    estimates: dict[str, Any] = field(default_factory=dict)


def _ledger_frames(proj: ProjectFiles) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Latest decisions, rounds and heads (empty frames when the project has no ledger yet)."""
    if not proj.has_ledger():
        empty = pd.DataFrame(columns=["pair_id", "round", "decision", "caption", "reviewer"])
        return empty, pd.DataFrame(), pd.DataFrame()
    ledger = proj.ledger  # one decision per pair: repeated opinions resolved (labels.resolve_opinions)
    return ledger.resolved(), ledger.rounds(), ledger.heads()


def _embed_failures(proj: ProjectFiles) -> pd.DataFrame:
    """Pairs in ``embed_failures.csv`` that still have no vectors."""
    path = proj.embed_failures_path
    if not path.is_file() or not path.stat().st_size:
        return pd.DataFrame(columns=["pair_id", "reason", "detail"])
    failures = pd.read_csv(path, dtype=str, keep_default_na=False)
    stored = proj.store.stored_ids() if proj.has_embeddings() else set()
    failures = failures[~failures["pair_id"].isin(stored)]
    for column in ("reason", "detail"):
        if column not in failures.columns:
            failures[column] = ""
    return failures.drop_duplicates("pair_id", keep="last")


def _scores_table(proj: Project, threshold: float | str | None, strategy_scores: pd.DataFrame | Ranking | None
                  ) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """The ranking table used for P(aligned) and the histogram (None when not needed/available), and
    its provenance."""
    if isinstance(strategy_scores, Ranking):
        return _scores_table(proj, threshold, strategy_scores.table)[0], dict(strategy_scores.provenance)
    if strategy_scores is not None:
        if "pair_id" not in strategy_scores.columns or (
                threshold is not None and "p_aligned" not in strategy_scores.columns):
            raise ValueError(f"strategy_scores needs columns 'pair_id' and 'p_aligned' (as returned "
                             f"by rank_project); got {list(strategy_scores.columns)}")
        return strategy_scores, {}
    if threshold is None:
        return None, {}
    ranking = rank_project(proj, ["p_misaligned"], pool_state=False, save_state=False)  # read-only
    return ranking.table, dict(ranking.provenance)


def _raw_cosine(proj: Project) -> pd.Series | None:
    """Plain CLIP cosine per pair when the compacted vectors cover every pair (no writes)."""
    ids = proj.pairs["pair_id"].tolist()
    if not proj.has_embeddings() or not proj.store.is_compact_for(ids):
        return None
    out = rowwise_cosine(proj.image_embeddings(), proj.text_embeddings())
    return pd.Series(out, index=proj.pairs["pair_id"].to_numpy())


def _validate_threshold(threshold: float | str | None) -> None:
    if threshold == "auto" or threshold is None:
        return
    if isinstance(threshold, str) or not (0.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold is 'auto', None (reviewed pairs only) or a probability "
                         f"P(aligned) in [0, 1]; got {threshold!r}")


MIN_AUROC = 0.65
"""Held-out AUROC (weighted by 1/π) the model in use needs before ``export`` lets it drop pairs."""


def _auto_threshold(table: pd.DataFrame, threshold: float | str | None, target_noise: float,
                    proj: ProjectFiles, held_back: float = 0.0) -> tuple[float | None, dict[str, Any]]:
    """The threshold to apply and the estimates behind it (see the module docstring).

    ``"auto"`` uses the model's P(aligned) only when the model can vouch for it
    (:func:`_certify`); otherwise the threshold is ``None`` and ``estimates["verified"]`` is
    False with the reason: the unreviewed pairs are kept as ``unverified``, never dropped.
    ``held_back``: the accepts the export holds back (disputed), counted as clean pairs not kept.
    """
    if threshold is None:
        return None, {}
    open_ = table["decision"].isna().to_numpy() & np.isfinite(table["p_aligned"].to_numpy(float))
    p_open = table["p_aligned"].to_numpy(float)[open_]
    design = proj.ledger.design() if proj.has_ledger() else None  # pair_id, round, stratum, inclusion
    randoms = _random_labels(design, table)
    if threshold == "auto":
        rule = choose_threshold(p_open, target_noise=target_noise)
        est: dict[str, Any] = {"rule": f"lowest t with estimated noise of kept unreviewed pairs <= "
                                       f"{target_noise:g}", "target_noise": target_noise, **rule}
        floor = _clean_floor(design, table, held_back)
        if floor["threshold"] is not None and floor["threshold"] < rule["threshold"]:
            # the noise target would drop more clean pairs than CLEAN_KEPT allows: keep them
            rule.update(_kept_estimates(p_open, floor["threshold"]))
            est.update(rule=f"{est['rule']}, lowered to keep {CLEAN_KEPT:.0%} of the clean pairs (estimated "
                            f"from the randomly drawn labels, with a margin of {FLOOR_Z:g} standard errors)",
                       **rule)
        est["clean_floor"] = floor
        why = _certify(proj, rule, len(p_open), len(randoms))
        est.update(verified=why is None, why=why)
    else:
        est = {"rule": "given", "verified": True, "why": None, **_kept_estimates(p_open, float(threshold))}
    t = float(est["threshold"])
    mis = (randoms["decision"] != "accept").to_numpy()
    w = randoms["weight"].to_numpy(float)
    p_random = randoms["p_aligned"].to_numpy(float)
    est["exploration_check"] = explored_noise(p_random >= t, mis, w) if len(randoms) else {"n": 0}
    est["reliability"] = reliability(p_random, ~mis, w) if len(randoms) else []
    return (t if est["verified"] else None), est


def _kept_estimates(p_open: np.ndarray, t: float) -> dict[str, Any]:
    """What keeping the unreviewed pairs with P(aligned) >= ``t`` keeps, by the model's estimate."""
    kept = p_open >= t
    return {"threshold": float(t), "n_kept": int(kept.sum()),
            "est_noise_kept": float(np.mean(1 - p_open[kept])) if kept.any() else float("nan"),
            "est_clean_kept": float(p_open[kept].sum() / p_open.sum()) if len(p_open) else float("nan")}


def _random_labels(design: pd.DataFrame | None, table: pd.DataFrame) -> pd.DataFrame:
    """The decided pairs of the explore stratum (each drawn at random with a recorded inclusion
    probability π): ``pair_id, p_aligned, decision, weight`` (``1/π``), from the ledger's design
    (None: no ledger yet). The exploration check and the reliability table read these."""
    columns = ["pair_id", "p_aligned", "decision", "weight"]
    if design is None:
        return pd.DataFrame(columns=columns)
    inclusion = design[design["stratum"] == "explore"].set_index("pair_id")["inclusion"]
    rows = table[table["pair_id"].isin(inclusion.index) & table["decision"].notna()]
    return rows.assign(weight=1.0 / rows["pair_id"].map(inclusion).to_numpy(float))[columns]


def _clean_floor(design: pd.DataFrame | None, table: pd.DataFrame, held_back: float) -> dict[str, Any]:
    """The highest threshold that keeps :data:`~mmcurate.learn.CLEAN_KEPT` of the clean pairs with a
    margin (:func:`mmcurate.learn.clean_floor`, on :func:`clean_floor_inputs`). It protects what the
    noise target alone does not (a reviewer who errs made the model's probabilities too pessimistic
    and the export kept 3% of clean pairs in one benchmark run)."""
    return clean_floor(*clean_floor_inputs(design, table), held_back=float(held_back))


def clean_floor_inputs(design: pd.DataFrame | None, table: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """The arrays the export gives :func:`mmcurate.learn.clean_floor` (and
    :func:`mmcurate.learn.clean_below`), in their order: P(aligned), undecided, accepted, the round
    each pair was first shown or decided, the round the queue picked it, and the decided random
    draws (rows, rounds, inclusion probabilities).

    ``table``: the export's pairs table (``pair_id``, ``decision``, ``decision_round``,
    ``p_aligned``; :attr:`Curation.pairs <mmcurate.export.Curation.pairs>` has them); ``design``:
    the ledger's (None: no ledger yet)."""
    ids = table["pair_id"]
    decision = table["decision"]
    undecided = decision.isna().to_numpy()
    decided_round = pd.to_numeric(table["decision_round"], errors="coerce").to_numpy(float)
    shown = np.where(undecided, np.inf, np.nan_to_num(decided_round, nan=0.0))
    queued = np.full(len(table), np.inf)
    rows, rounds, inclusion = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    if design is not None:
        first = design.groupby("pair_id")["round"].min()
        shown = np.fmin(shown, ids.map(first).to_numpy(float))
        picked = design[design["stratum"] != "explore"].groupby("pair_id")["round"].min()
        queued = np.nan_to_num(ids.map(picked).to_numpy(float), nan=np.inf)
        draws = design[design["stratum"] == "explore"]
        row_of = pd.Series(np.arange(len(table)), index=ids.to_numpy())
        draws = draws[draws["pair_id"].isin(ids)]
        # a round with undecided draws (a batch labelled in part) is left out whole
        partly = draws.loc[draws["pair_id"].isin(ids[undecided]), "round"].unique()
        draws = draws[~draws["round"].isin(partly)]
        rows = row_of.loc[draws["pair_id"]].to_numpy(np.int64)
        rounds, inclusion = draws["round"].to_numpy(float), draws["inclusion"].to_numpy(float)
    return (table["p_aligned"].to_numpy(float), undecided, (decision == "accept").to_numpy(float),
            shown, queued, rows, rounds, inclusion)


def _certify(proj: ProjectFiles, rule: dict[str, Any], n_open: int, n_random: int) -> str | None:
    """Why the model in use cannot vouch for the unreviewed pairs, or None when it can.

    It can when a model was trained, validated and calibrated on the labels (not the zero-label
    prior), ranks held-out labels with AUROC >= :data:`MIN_AUROC`, its calibration rests on at
    least :data:`MIN_RANDOM_LABELS` randomly drawn labels, and the rule keeps some pairs.
    """
    if n_open == 0:
        return None
    model = load_model(proj)
    if model.calibrator is None or not model.info.get("recalibration"):
        return ("no model calibrated on the labels is in use yet (train after reviewing a few batches: "
                "mmcurate select / label / train)")
    validation = model.info.get("validation") or {}
    auroc_ = float(validation.get("auroc_in_use", validation.get("auroc_new", float("nan"))))
    if not auroc_ >= MIN_AUROC:
        return (f"the model in use ranks held-out labels with AUROC {auroc_:.3f} (< {MIN_AUROC}): it cannot "
                f"tell aligned from misaligned pairs on these embeddings")
    if n_random < MIN_RANDOM_LABELS:
        return (f"its probabilities rest on {n_random} randomly drawn labels (< {MIN_RANDOM_LABELS}); "
                f"review more rounds (each batch draws 10% at random)")
    if rule["n_kept"] == 0:
        return (f"no threshold keeps unreviewed pairs at the target noise ({rule.get('target_noise', 0):g}) "
                f"with the model's probabilities")
    return None


def curate_pairs(proj: Project, *, threshold: float | str | None = "auto", target_noise: float = TARGET_NOISE,
                 strategy_scores: pd.DataFrame | Ranking | None = None, keep_duplicates: bool = False
                 ) -> Curation:
    """Split the project's pairs into curated and dropped (see the module docstring); no files.

    Parameters
    ----------
    proj : Project
    threshold : "auto", float in [0, 1] or None
        Keep unreviewed pairs with P(aligned) >= ``threshold``; drop the rest. ``"auto"``
        (default) chooses it from the model (see the module docstring); ``None`` leaves unreviewed
        pairs out of both tables (reviewed pairs only).
    target_noise : float
        The estimated misaligned share of the kept unreviewed pairs that ``"auto"`` aims at.
    strategy_scores : Ranking or DataFrame, optional
        A ranking (:func:`mmcurate.rounds.rank_project`) or a table with ``pair_id`` and
        ``p_aligned`` (and optionally ``cosine``), such as its ``table``; ranked with the current
        model when a threshold is used and this is omitted.
    keep_duplicates : bool
        Keep every member of a duplicate group (``mmcurate duplicates``); by default one pair per
        group is kept (:func:`mmcurate.groups.hooks.apply_duplicate_policy`).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        cur = curate_pairs(proj, threshold=0.9)
        cur.counts["curated"], cur.dropped["reason"].value_counts()
    """
    _validate_threshold(threshold)
    decisions = _with_group_decisions(proj, _ledger_frames(proj)[0])
    table = proj.pairs.copy()
    table["image"] = absolute_image_paths(proj, table["image"]).to_numpy()
    latest = decisions.drop_duplicates("pair_id", keep="last").set_index("pair_id")
    ids = table["pair_id"]
    table["decision"] = ids.map(latest["decision"]).to_numpy(object)
    table["fixed_caption"] = ids.map(latest["caption"]).to_numpy(object)
    table["decision_round"] = ids.map(latest["round"]).astype("Int64").to_numpy()
    table["reviewer"] = ids.map(latest["reviewer"]).to_numpy(object)
    scores, prov = _scores_table(proj, threshold, strategy_scores)
    score_name, alignment = _alignment(proj, scores)
    table["p_aligned"] = (ids.map(scores.set_index("pair_id")["p_aligned"]).astype(float)
                          if scores is not None and "p_aligned" in scores.columns else np.nan)
    table["alignment"] = ids.map(alignment).astype(float) if alignment is not None else np.nan
    failures = _embed_failures(proj).set_index("pair_id")
    asked = threshold
    # accepts the export holds back (disputed): the floor counts each as a clean pair not kept
    # (conservative: in the learning benchmark 18% of them were clean; the sum of their
    # P(aligned | model, opinions) left 6 of 140 fresh runs below 95% clean kept instead of 3)
    p_decision = (_decision_posterior(proj, table, decisions) if threshold is not None
                  else np.full(len(table), np.nan))
    held_back = float(((table["decision"] == "accept").to_numpy() & (p_decision < DISPUTE_BELOW)).sum())
    threshold, estimates = _auto_threshold(table, threshold, target_noise, proj, held_back)
    table["p_decision"] = p_decision if threshold is not None else np.nan
    table["status"] = _statuses(table, failures.index, threshold, unverified=asked is not None)
    curated = _curated_frame(table, proj.pairs.columns)
    dropped = _dropped_frame(table, failures, proj.rejects, threshold)
    counts = _counts(table, proj.rejects, curated, dropped)
    curated, dropped = _duplicate_policy(proj, curated, dropped, counts, keep_duplicates)
    return Curation(curated=curated, dropped=dropped, counts=counts, score_name=score_name,
                    pairs=table.drop(columns=["fixed_caption", "p_decision"]), provenance=prov,
                    estimates=estimates)


DISPUTE_BELOW = 0.5
"""An accepted pair is disputed when P(aligned | model, opinions) is below this: the evidence
together says it is more likely misaligned than aligned. The export's threshold for unreviewed
pairs is not used here: a person's accept outweighs a model's doubt, not its near-certainty."""


def _decision_posterior(proj: ProjectFiles, table: pd.DataFrame, decisions: pd.DataFrame) -> np.ndarray:
    """P(aligned) of each accepted pair given the model *and* its opinions (NaN elsewhere).

    A reviewer who errs with rate ``e`` (estimated from the pairs seen twice,
    :func:`mmcurate.learn.reviewer_error_rate`) makes each opinion a likelihood ratio ``(1 − e)/e``;
    the model's held-out P(aligned) (from fits that did not see the decision, calibrated on the
    labelled pairs: :func:`mmcurate.learn.calibrate_on_labels`) is the prior. Log-odds ``logit(p) +
    (accepts − rejects) · log((1 − e)/e)``. NaN (no dispute possible) while fewer than 10 pairs seen
    twice estimated ``e`` or it is 0: a reviewer who never errs is never doubted.
    """
    out = np.full(len(table), np.nan)
    if "n_opinions" not in decisions.columns or not len(decisions):
        return out
    model = load_model(proj)
    reviewer = model.info.get("reviewer") or {}
    e = float(reviewer.get("error_rate", np.nan)) if int(reviewer.get("n", 0) or 0) >= 10 else np.nan
    if not (np.isfinite(e) and e > 0):
        return out
    e = min(e, 0.45)
    latest = decisions.drop_duplicates("pair_id", keep="last").set_index("pair_id")
    ids = table["pair_id"]
    accepted = (table["decision"] == "accept").to_numpy()
    n = ids.map(latest["n_opinions"]).to_numpy(float)
    agree = (ids.map(latest["agreement"]).to_numpy(float) if "agreement" in latest.columns
             else np.ones(len(ids)))
    net = np.rint(n * agree) - np.rint(n * (1.0 - agree))  # accepts minus rejects (misaligned opinions)
    held = model.held_out_calibrated(ids)  # calibrated on the labelled pairs
    p = np.where(np.isfinite(held), held, table["p_aligned"].to_numpy(float))
    p = np.clip(p, 1 - MODEL_TRUST, MODEL_TRUST)
    logit = np.log(p / (1 - p)) + net * np.log((1 - e) / e)
    ok = accepted & np.isfinite(logit)
    out[ok] = sigmoid(logit[ok])
    return out


def _alignment(proj: Project, scores: pd.DataFrame | None) -> tuple[str | None, pd.Series | None]:
    """The alignment score shown in the histogram: ranking cosine, P(aligned), or raw CLIP cosine."""
    for column, name in (("cosine", "cosine"), ("p_aligned", "P(aligned)")):
        if scores is not None and column in scores.columns:
            return name, scores.set_index("pair_id")[column].astype(float)
    raw = _raw_cosine(proj)
    return ("cosine", raw) if raw is not None else (None, None)


def _statuses(table: pd.DataFrame, failed: pd.Index, threshold: float | None,
              unverified: bool = False) -> np.ndarray:
    decision = table["decision"].to_numpy(object)
    status = np.full(len(table), "unreviewed", dtype=object)
    status[decision == "accept"] = "accepted"
    if threshold is not None and "p_decision" in table.columns:
        # accepted, but the model and the reviewer's error rate together say misaligned: held back
        # until a second opinion settles it (a person's accept outweighs a model's doubt, not its
        # near-certainty; the threshold for unreviewed pairs is not theirs)
        status[(decision == "accept") & (table["p_decision"].to_numpy(float) < DISPUTE_BELOW)] = "disputed"
    status[decision == "fix"] = "fixed"
    status[decision == "reject"] = "rejected"
    open_ = status == "unreviewed"
    failed_mask = open_ & table["pair_id"].isin(failed).to_numpy()
    status[failed_mask] = "embed_failed"
    if threshold is not None:
        p = table["p_aligned"].to_numpy(float)
        keep = open_ & ~failed_mask & (p >= float(threshold))  # NaN compares False: dropped
        status[keep] = "auto"
        status[open_ & ~failed_mask & ~keep] = "below_threshold"
    elif unverified:
        status[open_ & ~failed_mask] = "unverified"
    return status


def _curated_frame(table: pd.DataFrame, pair_columns: pd.Index) -> pd.DataFrame:
    kept = table[table["status"].isin(["accepted", "fixed", "auto", "unverified"])].copy()
    is_fix = (kept["status"] == "fixed").to_numpy()
    kept["original_caption"] = np.where(is_fix, kept["caption"].to_numpy(object), None)
    kept.loc[is_fix, "caption"] = kept.loc[is_fix, "fixed_caption"]
    extras = [c for c in pair_columns if c not in _BASE_COLUMNS]
    columns = ["pair_id", "image", "caption", "status", "original_caption", "p_aligned", *extras]
    return kept[columns].reset_index(drop=True)


def _dropped_frame(table: pd.DataFrame, failures: pd.DataFrame, rejects: pd.DataFrame,
                   threshold: float | None) -> pd.DataFrame:
    parts = []
    rejected = table[table["status"] == "rejected"]
    parts.append(rejected.assign(
        stage="review", reason="rejected by reviewer",
        detail=[_who(r, n) for r, n in zip(rejected["reviewer"], rejected["decision_round"])]))
    disputed = table[table["status"] == "disputed"]
    parts.append(disputed.assign(
        stage="review", reason=f"disputed: accepted, but P(aligned) given the model and the reviewer's "
                              f"error rate is below {DISPUTE_BELOW:g}",
        detail=[f"P(aligned | model, opinions)={q:.3f}; {_who(r, n)}; a second opinion settles it"
                for q, r, n in zip(disputed["p_decision"].to_numpy(float), disputed["reviewer"],
                                   disputed["decision_round"])]))
    below = table[table["status"] == "below_threshold"]
    parts.append(below.assign(
        stage="threshold", reason=f"p_aligned < {threshold:.4g}" if threshold is not None else "",
        detail=[f"p_aligned={p:.4f}" if np.isfinite(p) else "no p_aligned for this pair"
                for p in below["p_aligned"].to_numpy(float)]))
    failed = table[table["status"] == "embed_failed"]
    parts.append(failed.assign(
        stage="embed", reason=failed["pair_id"].map(failures["reason"]).replace("", "embed_failed"),
        detail=failed["pair_id"].map(failures["detail"])))
    parts.append(_input_rejects(rejects))
    frames = [p.reindex(columns=_DROPPED_COLUMNS) for p in parts if len(p)]
    if not frames:
        return pd.DataFrame(columns=_DROPPED_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _who(reviewer: Any, round_id: Any) -> str:
    who = f"by {reviewer}" if isinstance(reviewer, str) and reviewer else "reviewer unknown"
    return f"{who}, round {int(round_id)}" if not pd.isna(round_id) else who


def _input_rejects(rejects: pd.DataFrame) -> pd.DataFrame:
    if rejects.empty:
        return pd.DataFrame(columns=_DROPPED_COLUMNS)
    rej = rejects.reindex(columns=["source", "row", "pair_id", "column", "reason", "detail"])
    no_row = rej["row"].isna().to_numpy()  # set aside by embed (no source row), else at input
    where = [f"{s}, column {c}" if missing else f"{s} row {int(r)}, column {c}"
             for s, r, c, missing in zip(rej["source"], rej["row"], rej["column"], no_row)]
    detail = [f"{w}: {d}" if isinstance(d, str) and d else w for w, d in zip(where, rej["detail"])]
    return pd.DataFrame({"pair_id": rej["pair_id"], "image": None, "caption": None,
                         "stage": np.where(no_row, "embed", "input"), "reason": rej["reason"],
                         "detail": detail})


def _counts(table: pd.DataFrame, rejects: pd.DataFrame, curated: pd.DataFrame,
            dropped: pd.DataFrame) -> dict[str, int]:
    status = table["status"].value_counts()

    def n(name: str) -> int:
        return int(status.get(name, 0))

    return {
        "pairs": len(table), "rejected_at_input": len(rejects),
        "reviewed": n("accepted") + n("rejected") + n("fixed") + n("disputed"),
        "accepted": n("accepted"), "rejected": n("rejected"), "fixed": n("fixed"), "disputed": n("disputed"),
        "auto": n("auto"), "unverified": n("unverified"), "below_threshold": n("below_threshold"),
        "embed_failures": n("embed_failed"),
        "left_out": n("unreviewed"), "curated": len(curated), "dropped": len(dropped),
    }


# -- groups (mmcurate.groups): decisions per group, one pair kept per duplicate group -------------
def _with_group_decisions(proj: Project, decisions: pd.DataFrame) -> pd.DataFrame:
    return export_decisions(proj, decisions)


def _duplicate_policy(proj: Project, curated: pd.DataFrame, dropped: pd.DataFrame, counts: dict[str, int],
                      keep_duplicates: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    return apply_duplicate_policy(proj, curated, dropped, counts, keep_duplicates=keep_duplicates)
