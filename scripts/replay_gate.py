"""Replay the gate's decisions while the zero-label prior ranked, on kept learning-benchmark runs.

For each run kept by ``scripts/bench_learning.py --keep-work`` and each round in which the prior was
still in use, the candidate model is refitted on the labels of rounds <= r exactly as ``train``
fits it (:func:`mmcurate.learn.fit_validated`). One CSV row per round records what the labels said
(held-out AUROCs, the margin, the random labels), what the prior's own probabilities say about the
move (:func:`mmcurate.learn.prior_implied_auroc` over the pool and over the labelled pairs), and
what the holdout truth says (``hold_change``: the candidate's AUROC there minus the prior's). The
replay stops at the round a run left the prior. A rule for when to leave the prior can then be
judged on every departure at once, before running the loop with it (``docs/learning-benchmark.md``,
"Two rules against small wins").

Usage::

    python scripts/bench_learning.py --out results/learning --seeds 0,1 --keep-work
    python scripts/replay_gate.py results/learning replay.csv [--only clip_hard]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate.labels.decision_log import resolve_opinions
from mmcurate.learn import (
    LABEL_NOISE_FLOOR,
    fit_validated,
    prior_implied_auroc,
    truncate_weights,
)
from mmcurate.project.directory import open_project
from mmcurate.rank import RankContext
from mmcurate.rounds.training import _label_weights
from mmcurate.signals.alignment import prior_calibrator
from mmcurate.signals.metrics import auroc


def replay_run(work: Path, world: Path) -> list[dict]:
    """Rows of one kept run (``work``: its work folder; ``world``: its world with ``truth.csv``)."""
    proj = open_project(work / "project")
    ids = proj.pairs["pair_id"].astype(str)
    truth = pd.read_csv(world / "truth.csv").set_index("pair_id")
    noisy = truth.loc[ids, "noisy"].to_numpy(bool)
    hold = ids.isin(set((work / "holdout.txt").read_text().split())).to_numpy()
    feats = RankContext(proj.image_embeddings(), proj.text_embeddings(), indices_labeled=None,
                        labels=None, k=10, random_state=0).features
    prior = prior_calibrator(feats)
    p_prior = prior.predict_proba(feats)
    prior_mis = -prior.decision_function(feats.matrix())
    prior_hold = auroc(prior_mis[hold], noisy[hold])
    prior_self = prior_implied_auroc(1 - p_prior, p_prior)
    history = proj.ledger.decisions(history=True)
    row_of = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    rows_out = []
    for r, metrics in enumerate(proj.ledger.heads()["metrics"], 1):
        record = json.loads(proj.model_record_path(r).read_text())
        decided = resolve_opinions(history[history["round"].astype(int) <= r])
        decided = decided[decided["pair_id"].isin(row_of.index)]
        rows = row_of.loc[decided["pair_id"]].to_numpy(np.int64)
        y = (decided["decision"].to_numpy() == "accept").astype(np.int64)
        weights, n_random = _label_weights(proj, rows)  # as train weighs them
        error_rate = record["recalibration"]["error_rate"]
        cal, verdict, held = fit_validated(feats, rows, y, prior_features=feats, weights=weights,
                                           n_random=n_random, label_noise=max(error_rate, LABEL_NOISE_FLOOR))
        mis = -cal.decision_function(feats.matrix())
        capped = truncate_weights(weights)
        p_labels = p_prior[rows]
        rows_out.append({
            "run": work.name, "round": r, "n_labels": len(y), "n_random": n_random,
            "accepted": verdict.accepted, "reason": verdict.reason,
            "label_auroc_new": verdict.auroc_new, "label_auroc_prior": verdict.auroc_prior,
            "margin": verdict.margin, "l2": cal.l2, "error_rate": error_rate,
            "implied_pool_change": prior_implied_auroc(mis, p_prior) - prior_self,
            "implied_label_change": (prior_implied_auroc(-held, p_labels, capped)
                                     - prior_implied_auroc(prior_mis[rows], p_labels, capped)),
            "prior_hold": prior_hold, "hold_change": auroc(mis[hold], noisy[hold]) - prior_hold,
            "recorded": record["validation"]["reason"]})
        if not metrics["model"].get("prior"):
            break  # train left the prior in this round (a refusal keeps it, recorded as "prior")
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the --out folder of a --keep-work benchmark run")
    parser.add_argument("csv", type=Path, help="where to write the rows")
    parser.add_argument("--only", default="", help="only runs whose name contains this")
    args = parser.parse_args()
    rows: list[dict] = []
    work_dir = args.results / "work"
    works = sorted(p for p in work_dir.iterdir() if args.only in p.name) if work_dir.is_dir() else []
    if not works:
        raise SystemExit(f"no kept run in {work_dir}{f' matching {args.only!r}' if args.only else ''}: "
                         f"run scripts/bench_learning.py --keep-work first")
    for i, work in enumerate(works, 1):
        rows += replay_run(work, args.results / "worlds" / work.name.rsplit("__", 2)[0])
        print(f"[{i}/{len(works)}] {work.name}: {len(rows)} rows so far", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.csv, index=False)
    left = table[table["accepted"]]
    print(f"{len(table)} rounds with the prior in use, {len(left)} departures; "
          f"{int((left['hold_change'] < -0.005).sum())} of them cost the holdout more than 0.005 AUROC")


if __name__ == "__main__":
    main()
