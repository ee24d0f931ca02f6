"""How well the clean floor's standard error covers the truth, on kept learning-benchmark runs.

For every run kept by ``scripts/bench_learning.py --keep-work``, the export's floor inputs are
read from the project as ``export`` reads them, and at each threshold ``t`` the estimate of the
clean undecided pairs below ``t`` (:func:`mmcurate.learn.clean_below`) is compared with the truth:
``z = (truth − estimate) / SE`` for each ``variance`` rule (``larger``, the floor's; ``design``,
Hansen-Hurwitz alone; ``assisted``, model-assisted alone). The holdout of the benchmark is a blind
spot of the floor (its pairs count by their P alone), so its own error is taken out of the truth.
The floor means ``P(z > 1.96) ≈ 2.5%``.

Usage::

    python scripts/bench_learning.py --out results/learning --seeds 0,1 --keep-work
    python scripts/check_floor_se.py results/learning [more folders] [--reviewer perfect]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmcurate import learn
from mmcurate.export import curate as export_curate
from mmcurate.project.directory import open_project

THRESHOLDS = (0.3, 0.5, 0.7)
RULES: tuple[Literal["larger", "design", "assisted"], ...] = ("larger", "design", "assisted")


def floor_inputs(project: Path) -> tuple[pd.DataFrame, tuple[np.ndarray, ...]]:
    """The export's pairs table and the arguments it gives :func:`mmcurate.learn.clean_floor`."""
    proj = open_project(project)
    pairs = export_curate.curate_pairs(proj).pairs
    design = proj.ledger.design() if proj.has_ledger() else None
    return pairs, export_curate.clean_floor_inputs(design, pairs)


def run_rows(work: Path, world: Path) -> list[dict]:
    pairs, args = floor_inputs(work / "project")
    p, undecided = np.asarray(args[0], float), np.asarray(args[1], bool)
    truth = pd.read_csv(world / "truth.csv", dtype={"pair_id": str}).set_index("pair_id")["noisy"]
    noisy = pairs["pair_id"].map(truth).to_numpy(bool)
    hold = pairs["pair_id"].isin((work / "holdout.txt").read_text().split()).to_numpy()
    rows = []
    for rule in RULES:
        p_aligned, open_, clean, shown, queued, draws, rounds, inclusion = args[:8]
        curve = learn.clean_below(p_aligned, open_, clean, shown, queued, draws, rounds, inclusion,
                                  THRESHOLDS, variance=rule)
        if curve["clean"] is None:
            continue
        for j, t in enumerate(THRESHOLDS):
            below = undecided & (p < t)
            blind = (below & hold & ~noisy).sum() - p[below & hold].sum()
            target = (below & ~noisy).sum() - blind
            se = float(curve["se"][j])
            rows.append({"run": work.name, "reviewer": work.name.split("__")[4], "rule": rule, "t": t,
                         "estimate": float(curve["dropped"][j]), "se": se, "target": float(target),
                         "z": (target - float(curve["dropped"][j])) / se if se > 0 else np.nan})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", type=Path, help="results folders of bench_learning.py --keep-work")
    ap.add_argument("--reviewer", default="perfect", help="perfect, erring10 or all")
    ap.add_argument("--out", type=Path, help="write the per-run rows here (CSV)")
    args = ap.parse_args(argv)
    rows = []
    for folder in args.results:
        for work in sorted((folder / "work").iterdir()):
            if args.reviewer == "all" or work.name.split("__")[4] == args.reviewer:
                rows += run_rows(work, folder / "worlds" / "__".join(work.name.split("__")[:4]))
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    if table.empty:
        print("no kept runs with a clean floor")
        return 1
    summary = table.groupby(["rule", "t"])["z"].agg(
        runs="count", sd="std", above=lambda z: float((z > 1.96).mean()),
        below=lambda z: float((z < -1.96).mean()))
    print("z = (truth - estimate) / SE of the clean pairs below t; above: P(z > 1.96), 2.5% intended")
    print(summary.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
