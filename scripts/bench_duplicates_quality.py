"""Precision / recall of ``duplicates`` over its thresholds, on generated data with known truth.

Worlds from :func:`mmcurate.groups.synthetic.make_duplicate_world` (a CLIP-like space with a
modality gap; copies, exact duplicates, hard-negative siblings, recaptioned images, boilerplate
captions; see its docstring), several seeds and dimensions. For each near-duplicate threshold t
(image and caption thresholds both t) it prints, pooled over the worlds:

- pair precision / recall of the duplicate groups (pairs of rows put in one group vs truly one family);
- copy recall: the share of injected copies and exact duplicates grouped with their source;

then the same for the boilerplate caption threshold (pair precision / recall of boilerplate groups).
The defaults of :class:`mmcurate.groups.GroupParams` were chosen from this table (README).

Usage::

    python scripts/bench_duplicates_quality.py [--n-base 3000] [--seeds 0 1 2] [--dims 512 768]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from mmcurate.groups import DUPLICATE_KINDS, GroupParams, find_groups
from mmcurate.groups.synthetic import make_duplicate_world, pair_precision_recall


def labels_of(table, n: int, kinds) -> np.ndarray:
    """Each row's predicted group (a row in none: its own row, offset past every group id)."""
    out = np.arange(n, dtype=np.int64) + n
    sel = table[table["kind"].isin(kinds)]
    out[sel["row"].to_numpy()] = sel["group"].to_numpy()
    return out


def evaluate(world, params: GroupParams) -> dict[str, float]:
    n = len(world.image)
    table = find_groups(world.image, world.text, world.captions, image_keys=world.image_keys, params=params)
    dup = labels_of(table, n, DUPLICATE_KINDS)
    p, r = pair_precision_recall(dup, world.family)
    copies = np.flatnonzero(np.isin(world.role, ["copy", "exact"]))
    copy_recall = float(np.mean(dup[copies] == dup[world.family[copies]]))
    truth_b = np.where(world.boilerplate >= 0, world.boilerplate, np.arange(n) + n)
    bp, br = pair_precision_recall(labels_of(table, n, ("boilerplate",)), truth_b)
    return {"precision": p, "recall": r, "copy_recall": copy_recall, "bp_precision": bp, "bp_recall": br}


def sweep(worlds, name: str, values, base: GroupParams, fields) -> None:
    print(f"\n{name:>10}  {'pair prec':>9}  {'pair rec':>8}  {'copy rec':>8}  "
          f"{'bp prec':>7}  {'bp rec':>6}   (mean, [min] over {len(worlds)} worlds)")
    for v in values:
        params = dataclasses.replace(base, **dict.fromkeys(fields, float(v)))
        rows = [evaluate(w, params) for w in worlds]
        cell = {k: (np.mean([r[k] for r in rows]), np.min([r[k] for r in rows])) for k in rows[0]}
        keys = ("precision", "recall", "copy_recall", "bp_precision", "bp_recall")
        print(f"{v:>10.3f}  " + "  ".join(f"{cell[k][0]:.3f}[{cell[k][1]:.3f}]" for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-base", type=int, default=3000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dims", type=int, nargs="+", default=[512, 768])
    args = ap.parse_args()
    worlds = [make_duplicate_world(args.n_base, dim=d, random_state=s)
              for d in args.dims for s in args.seeds]
    print(f"{len(worlds)} worlds of {len(worlds[0].image)}+ pairs (dims {args.dims}, seeds {args.seeds}); "
          f"defaults {GroupParams()}")
    base = GroupParams()
    sweep(worlds, "near t", np.round(np.arange(0.86, 0.995, 0.01), 3), base,
          ("image_threshold", "caption_threshold"))
    sweep(worlds, "bp t", [0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995], base, ("boilerplate_threshold",))


if __name__ == "__main__":
    main()
