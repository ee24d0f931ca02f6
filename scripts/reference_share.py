"""What the loop's randomly drawn share costs a greedy loop: the reference with and without it.

mmcurate's loop draws 10% of each batch at random (the unbiased labels its gate, calibration and
export checks rest on; :func:`mmcurate.learn.exploration_draw`) and shows some decided pairs again
(second opinions, audits); the issue's reference queues every label. This script re-runs the
reference of each finished run of a ``bench_learning.py`` results folder (same world, holdout and
reviewer draws; ``ref_0`` must equal the recorded ``ref``) and two variants drawing their random
pairs as the loop does: ``ref_<share>``, with ``--explore`` of each batch drawn at random, and
``ref_matched``, which spends round by round what the loop spent off its queue (as many pairs
drawn at random as the loop explored, and one label wasted per decided pair the loop showed
again; ``off_queue`` counts those labels). It prints per cell the loop's recall against each:
where the loop trails the reference but not the matched one, the gap is the price of the labels
spent off the queue, not of the learner.

Usage::

    python scripts/reference_share.py RESULTS [--explore 0.1,0.12] [--families clip_hard] [--seeds 2,3,4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_learning import REVIEWERS, run_of  # noqa: E402
from cli_loop import _recalls, holdout_mask, read_world, reviewer_seed  # noqa: E402

from mmcurate.learn import EXPLORE, split_budget  # noqa: E402
from mmcurate.simulate.reference import Reviewer, alignment_features, reference_loop  # noqa: E402


def shares(results: Path, explore: list[float], families: set[str] | None,
           seeds: set[int] | None = None) -> pd.DataFrame:
    """One row per finished run: the loop's and the reference's final recall, the re-run reference's
    with each share of ``explore`` drawn at random (``ref_<share>``, ``ref_0`` the plain one) and
    the matched reference's (``ref_matched``), and the loop's labels spent off its queue
    (``off_queue``)."""
    rows = []
    features_of: dict[str, tuple[np.ndarray, np.ndarray, pd.DataFrame]] = {}
    for path in sorted((results / "runs").glob("*.csv")):
        recorded = pd.read_csv(path)
        run = run_of(recorded)
        if (families and run.family not in families) or (seeds and run.seed not in seeds):
            continue
        if run.world_name not in features_of:
            image, text, truth = read_world(results / "worlds" / run.world_name)
            features_of[run.world_name] = (*alignment_features(image, text), truth)
        features, prior, truth = features_of[run.world_name]
        held = holdout_mask(len(truth), run.seed)
        row: dict[str, object] = {"family": run.family, "kind": run.kind, "reviewer": run.reviewer,
                                  "seed": run.seed, "split": run.split,
                                  "loop": float(recorded["recall"].iloc[-1]),
                                  "ref": float(recorded["ref_recall"].iloc[-1])}
        # the loop's own spending per round: new pairs shown, of them ~10% explored, the rest of
        # its decisions shown again (second opinions, audits): a matched reference queues the
        # new pairs less the explored ones, draws as many at random and wastes the repeats
        new = np.diff(recorded["n_shown"].to_numpy(np.int64))
        plan = [(int(n) - e, e) for n in new for e in [split_budget(int(n), EXPLORE)[1]]]
        variants = {f"ref_{s:g}": {"explore": s} for s in [0.0, *explore]}
        variants["ref_matched"] = {"plan": plan}
        for name, how in variants.items():
            reviewer = Reviewer(truth["noisy"].to_numpy(bool), error=REVIEWERS[run.reviewer],
                                random_state=reviewer_seed(run.seed))
            ref = reference_loop(features, prior, reviewer, rounds=run.rounds, budget=run.budget,
                                 exclude=held, random_state=run.seed, **how)
            row[name] = _recalls(ref.shown, truth, held)[-1]["recall"]
        row["off_queue"] = int(recorded["labels"].iloc[-1]) - sum(q for q, _ in plan)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--explore", default="0.1,0.12", help="shares drawn at random, with commas")
    parser.add_argument("--families", default=None, help="only these families, with commas")
    parser.add_argument("--seeds", default=None, help="only these seeds, with commas")
    args = parser.parse_args(argv)
    explore = [float(x) for x in args.explore.split(",") if x.strip()]
    families = None if args.families is None else {f.strip() for f in args.families.split(",")}
    seeds = None if args.seeds is None else {int(x) for x in args.seeds.split(",") if x.strip()}
    table = shares(args.results, explore, families, seeds)
    if table.empty:
        print(f"no finished runs under {args.results / 'runs'}")
        return 1
    if not np.allclose(table["ref"], table["ref_0"]):
        print("warning: the re-run reference differs from the recorded one (code changed since?)")
    cols = ["loop", "ref", *[f"ref_{s:g}" for s in explore], "ref_matched", "off_queue"]
    cells = table.groupby(["family", "kind", "reviewer"])[cols].mean()
    for s in explore:
        cells[f"loop − ref_{s:g}"] = cells["loop"] - cells[f"ref_{s:g}"]
    cells["loop − ref_matched"] = cells["loop"] - cells["ref_matched"]
    cells["worst run"] = (table.assign(d=table["loop"] - table["ref_matched"])
                          .groupby(["family", "kind", "reviewer"])["d"].min())
    cells["loop − ref"] = cells["loop"] - cells["ref"]
    seeds_run = sorted(int(s) for s in table["seed"].unique())
    print(f"{len(table)} runs; mean final recall per cell (seeds {seeds_run})")
    print(cells.round(4).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
