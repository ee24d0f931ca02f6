"""Replay: would ranking by the learned fit blended with the zero-label prior beat the fit alone?

For each run kept by ``scripts/bench_learning.py --keep-work`` and each round ``r`` asked for, the
calibrator is refitted on the labels of rounds <= r as ``train`` fits it (shrinkage chosen by
:func:`mmcurate.learn.choose_l2`, the reviewer's error rate of that round's model as label noise),
and the holdout AUROC of P(misaligned) is measured for the logit ``s · fit + (1 − s) · prior`` at
each share ``s`` (``s = 1``: the fit alone), minus the prior's. ``--domain-shift SEEDS`` does the
same on the seeded domain-shift world of the tests (2,000 pairs, both swap kinds), driving the loop
with the code in use (6 rounds of 100, perfect reviewer) and measuring on the unlabelled pool.
``docs/learning-benchmark.md`` (*Changes tried*) quotes both (a blend at 2/3, issue 22).

Usage::

    python scripts/bench_learning.py --out results/learning --seeds 0,1 --keep-work
    python scripts/replay_blend.py --results results/learning --out blend.csv
    python scripts/replay_blend.py --domain-shift 0,1,2,3 --out blend_ds.csv
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate.learn import LABEL_NOISE_FLOOR, choose_l2, stratified_folds
from mmcurate.project.directory import open_project
from mmcurate.rank import RankContext
from mmcurate.rounds.labelling import labelled_arrays
from mmcurate.signals.alignment import AlignmentFeatures, fit_calibrator, prior_calibrator
from mmcurate.signals.metrics import auroc

SHARES = (0.25, 0.5, 0.67, 0.75, 0.9, 1.0)


def blend_gains(feats: AlignmentFeatures, rows: np.ndarray, y: np.ndarray, noise: float,
                test: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """Holdout AUROC gain over the prior (on ``test`` rows) of each share's blend."""
    l2, _ = choose_l2(feats, rows, y, fold=stratified_folds(y, 5, 0), label_noise=noise)
    x = feats.matrix()[test]
    fit = fit_calibrator(feats, rows, y, l2=l2, label_noise=noise).decision_function(x)
    prior = prior_calibrator(feats).decision_function(x)
    base = auroc(-prior, noisy)
    return {f"s{s:g}": auroc(-(s * fit + (1 - s) * prior), noisy) - base for s in SHARES}


def replay_results(results: Path, rounds: list[int]) -> pd.DataFrame:
    out = []
    for work in sorted((results / "work").iterdir()):
        world = results / "worlds" / "__".join(work.name.split("__")[:4])
        proj = open_project(work / "project")
        ids = proj.pairs["pair_id"].astype(str).to_numpy()
        noisy = pd.read_csv(world / "truth.csv").set_index("pair_id")["noisy"].reindex(ids).to_numpy(bool)
        hold = np.flatnonzero(np.isin(ids, (work / "holdout.txt").read_text().split()))
        feats = RankContext(proj.image_embeddings(), proj.text_embeddings(), indices_labeled=None,
                            labels=None, k=10, random_state=0).features
        rows_all, y_all, _ = labelled_arrays(proj)
        design = proj.ledger.design().drop_duplicates("pair_id", keep="first").set_index("pair_id")
        first_round = pd.Series(ids[rows_all]).map(design["round"]).to_numpy()
        for r in rounds:
            record = proj.model_record_path(r)
            if not record.is_file():
                continue
            e = json.loads(record.read_text()).get("reviewer", {}).get("error_rate", 0.0)
            noise = max(float(e) if e is not None and np.isfinite(e) else 0.0, LABEL_NOISE_FLOOR)
            keep = first_round <= r
            gains = blend_gains(feats, rows_all[keep], y_all[keep], noise, hold, noisy[hold])
            family, kind = work.name.split("__")[:2]
            out.append({"run": work.name, "family": f"{family}/{kind}", "round": r, **gains})
            print(out[-1], flush=True)
    return pd.DataFrame(out)


def replay_domain_shift(seeds: list[int], rounds: int = 6) -> pd.DataFrame:
    from mmcurate.embed.importer import write_embedding_folder
    from mmcurate.project import create_project
    from mmcurate.rounds import import_labels, select_batch, train_project_head
    from mmcurate.synth import domain_shift_embeddings

    out = []
    for seed in seeds:
        for kind in ("same_category", "random"):
            with tempfile.TemporaryDirectory() as tmp:
                image, text, noisy, domain = domain_shift_embeddings(2000, 32, kind=kind, rate=0.2,
                                                                     random_state=seed)
                meta = pd.DataFrame({"key": [f"k{i:05d}" for i in range(len(image))],
                                     "caption": ["caption"] * len(image),
                                     "category": [f"d{d:02d}" for d in domain]})
                folder = write_embedding_folder(Path(tmp) / "emb", image, text, meta)
                proj = create_project(Path(tmp) / "p", embeddings=folder)
                truth = pd.Series(np.asarray(noisy, bool), index=meta["key"].to_numpy())
                feats = RankContext(proj.image_embeddings(), proj.text_embeddings(), indices_labeled=None,
                                    labels=None, k=10, random_state=0).features
                for r in range(1, rounds + 1):
                    selected = select_batch(proj, budget=100, random_state=r - 1)
                    batch = selected.table
                    said = np.where(batch["pair_id"].map(truth), "reject", "accept")
                    import_labels(proj, pd.DataFrame({"pair_id": batch["pair_id"], "decision": said}),
                                  round_id=selected.round)
                    train_project_head(proj)
                    rows, y, _ = labelled_arrays(proj)
                    test = np.setdiff1d(np.arange(len(meta)), rows)
                    truth_test = np.asarray(noisy, bool)[test]
                    gains = blend_gains(feats, rows, y, LABEL_NOISE_FLOOR, test, truth_test)
                    out.append({"run": f"domain_shift/{kind}/s{seed}", "family": f"domain_shift/{kind}",
                                "round": r, **gains})
                    print(out[-1], flush=True)
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, help="a results folder of bench_learning.py --keep-work")
    ap.add_argument("--domain-shift", help="seeds of the domain-shift world, e.g. 0,1,2")
    ap.add_argument("--rounds", default="2,3,4,5,7,10")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if (args.results is None) == (args.domain_shift is None):
        ap.error("give --results or --domain-shift")
    if args.results is not None:
        table = replay_results(args.results, [int(r) for r in args.rounds.split(",")])
    else:
        table = replay_domain_shift([int(s) for s in args.domain_shift.split(",")])
    table.to_csv(args.out, index=False)
    cols = [f"s{s:g}" for s in SHARES]
    pd.set_option("display.width", 200)
    print("holdout AUROC gain over the prior, mean by family (s1: the fit alone)")
    print(table.groupby("family")[cols].mean().round(4).to_string())
    print("by round")
    print(table.groupby("round")[cols].mean().round(4).to_string())
    print("all:", table[cols].mean().round(4).to_dict())
    print("share of fits losing more than 0.005:", (table[cols] < -0.005).mean().round(3).to_dict())
    print("worst:", table[cols].min().round(3).to_dict())


if __name__ == "__main__":
    main()
