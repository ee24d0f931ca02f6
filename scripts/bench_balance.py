"""Does category balance stop a rare category being starved? Oracle loop with and without it.

Synthetic pairs (a stand-in for real embeddings): ``--categories`` categories with clustered image
vectors, the last one ``--rarity`` times rarer than the others; a caption is its image plus noise
whose level grows across categories (the rare category's captions are the noisiest, so its
aligned pairs look least aligned in absolute cosine). ``--rate`` of each category's captions are
swapped *within* the category, as a derangement of the swapped pairs (each donor caption used
once). The vectors are written as a clip-retrieval embedding folder and imported into a project;
then ``--rounds`` rounds of the real loop run (``rank_project`` → ``select_batch`` → an oracle's
accept/reject imported with ``import_labels`` → ``train_project_head``), once with
``balance=None`` and once with ``balance="categories"``. Printed: the recall of swapped pairs
(found by review / planted) per category and overall, and how many pairs of each were reviewed.

Run from the repository root::

    python scripts/bench_balance.py                     # 3,000 pairs, 5 rounds x 60
    python scripts/bench_balance.py --pairs 10000 --rounds 8 --budget 100 --strategy margin
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.head import HeadConfig
from mmcurate.project import create_project
from mmcurate.rounds import import_labels, rank_project, select_batch, train_project_head
from mmcurate.simulate.loop import NO_HEAD


def make_pairs(n: int, dim: int, n_categories: int, rarity: float, rate: float, seed: int):
    """``(image, text, category, is_swapped)``: float32 L2-normalised vectors, names, truth."""
    rng = np.random.default_rng(seed)
    weights = np.r_[np.ones(n_categories - 1), 1.0 / rarity]
    category = rng.choice(n_categories, size=n, p=weights / weights.sum())
    centres = 1.5 * rng.normal(size=(n_categories, dim))
    image = centres[category] + rng.normal(size=(n, dim))
    level = np.linspace(0.8, 2.0, n_categories)[category]
    text = image + level[:, None] * rng.normal(size=(n, dim))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    swapped = np.zeros(n, bool)
    donor = np.arange(n)
    for c in range(n_categories):
        rows = np.flatnonzero(category == c)
        pick = rng.permutation(rows[rng.random(len(rows)) < rate])
        if len(pick) > 1:  # a cyclic shift of a shuffled set: no fixed point, each donor once
            donor[pick] = np.roll(pick, 1)
            swapped[pick] = True
    names = np.array([f"common{c}" for c in range(n_categories - 1)] + ["rare"])
    return image.astype(np.float32), text[donor].astype(np.float32), names[category], swapped


def run_loop(folder: Path, root: Path, truth: pd.Series, args, balance: str | None) -> pd.DataFrame:
    """Rounds of the loop on a fresh project; one row per pair reviewed (pair_id, round)."""
    proj = create_project(root, embeddings=folder)
    reviewed = []
    for r in range(args.rounds):
        ranked = rank_project(proj, [args.strategy], k=args.k, random_state=r)
        selected = select_batch(proj, budget=args.budget, strategy=args.strategy,
                                diversity=args.diversity, k=args.k, random_state=r,
                                ranked=ranked, balance=balance, balance_mode=args.balance_mode)
        round_id, batch = selected.round, selected.table
        noisy = batch["pair_id"].map(truth).to_numpy(bool)
        import_labels(proj, pd.DataFrame({"pair_id": batch["pair_id"], "reviewer": "oracle",
                                          "decision": np.where(noisy, "reject", "accept")}),
                      round_id=round_id, source_name=f"oracle-round{round_id}")
        if args.strategy not in NO_HEAD:
            train_project_head(proj, config=HeadConfig(n_folds=0, random_state=r))
        reviewed.append(pd.DataFrame({"pair_id": batch["pair_id"], "round": r}))
    proj.ledger.close()
    return pd.concat(reviewed, ignore_index=True)


def summarise(meta: pd.DataFrame, reviewed: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per category (and overall): pairs, swapped, and per condition reviewed / found / recall."""
    rows = []
    groups = [*sorted(meta["category"].unique()), "overall"]
    for cat in groups:
        part = meta if cat == "overall" else meta[meta["category"] == cat]
        row = {"category": cat, "pairs": len(part), "swapped": int(part["swapped"].sum())}
        for name, rev in reviewed.items():
            hit = part["key"].isin(rev["pair_id"])
            found = int((hit & part["swapped"]).sum())
            row[f"{name}: reviewed"] = int(hit.sum())
            row[f"{name}: found"] = found
            row[f"{name}: recall"] = round(found / max(row["swapped"], 1), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--categories", type=int, default=6, help="the last one is the rare one")
    p.add_argument("--rarity", type=float, default=10.0, help="how many times rarer it is")
    p.add_argument("--rate", type=float, default=0.2, help="share of swapped captions")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--budget", type=int, default=60)
    p.add_argument("--strategy", default="disagreement")
    p.add_argument("--diversity", default="none")
    p.add_argument("--balance-mode", choices=["uniform", "proportional"], default="uniform")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        image, text, category, swapped = make_pairs(args.pairs, args.dim, args.categories,
                                                    args.rarity, args.rate, args.seed)
        meta = pd.DataFrame({"key": [f"p{i:06d}" for i in range(args.pairs)],
                             "caption": [f"caption {i}" for i in range(args.pairs)],
                             "category": category, "swapped": swapped})
        folder = write_embedding_folder(out / "embeddings", image, text,
                                        meta.drop(columns="swapped"))
        truth = meta.set_index("key")["swapped"]
        reviewed = {}
        for name, balance in (("none", None), ("balanced", "categories")):
            start = time.perf_counter()
            reviewed[name] = run_loop(folder, out / f"project-{name}", truth, args, balance)
            print(f"{name}: {args.rounds} rounds x {args.budget} in {time.perf_counter() - start:.0f} s")
    table = summarise(meta, reviewed)
    print(f"\n{args.pairs} pairs, {args.categories} categories (rare: {args.rarity:g}x rarer), "
          f"{args.rate:.0%} swapped within category; strategy={args.strategy}, "
          f"diversity={args.diversity}, balance mode={args.balance_mode}; "
          f"{args.rounds} rounds x {args.budget}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
