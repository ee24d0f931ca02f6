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
    python scripts/bench_duplicates_quality.py --scenes 1000 --seeds 0 1   # the tiny model's scenes

``--scenes``: real image files (generated scenes), copies re-encoded as JPEG and cropped, exact
copies, boilerplate captions, embedded with the tiny stand-in model (not CLIP: it sees only shape,
colour, count, position and size, so two scenes alike in those are near-identical to it; the table
says how many grouped pairs differ in them).
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
    ap.add_argument("--scenes", type=int, default=0,
                    help="also N generated scenes + injected copies embedded with the tiny model (0: skip)")
    args = ap.parse_args()
    if args.scenes:
        sweep_scenes(args.scenes, args.seeds)
        return
    worlds = [make_duplicate_world(args.n_base, dim=d, random_state=s)
              for d in args.dims for s in args.seeds]
    print(f"{len(worlds)} worlds of {len(worlds[0].image)}+ pairs (dims {args.dims}, seeds {args.seeds}); "
          f"defaults {GroupParams()}")
    base = GroupParams()
    sweep(worlds, "near t", np.round(np.arange(0.86, 0.995, 0.01), 3), base,
          ("image_threshold", "caption_threshold"))
    sweep(worlds, "bp t", [0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995], base, ("boilerplate_threshold",))


# -- the tiny model's scenes: real image files, copies re-encoded, embedded by the project's model --------
ATTRS = ["shape", "color", "count", "position", "size"]


def scenes_world(folder, n: int, seed: int):
    """A scene project with injected copies (JPEG re-encoded, cropped 0-3 px and resized back; caption
    the same or reworded), exact copies (same bytes, caption in capitals) and boilerplate captions on
    extra scenes; embedded with the tiny stand-in model. Returns ``(proj, family, boilerplate, attrs)``."""
    import shutil
    from pathlib import Path

    import pandas as pd
    from PIL import Image

    from mmcurate.embed.model import ModelSpec
    from mmcurate.embed.tiny import get_tiny_clip
    from mmcurate.groups.synthetic import BOILERPLATE
    from mmcurate.project import create_project
    from mmcurate.synth import write_scene_dataset

    folder = Path(folder)
    base = pd.read_csv(write_scene_dataset(folder, n, random_state=seed), dtype={"id": str})
    extra = pd.read_csv(write_scene_dataset(folder / "extra", 200, random_state=seed + 1000),
                        dtype={"id": str})
    rng = np.random.default_rng(seed)
    rows, family, boiler = base.to_dict("records"), list(range(n)), [-1] * n
    (folder / "copies").mkdir(exist_ok=True)
    for j, s in enumerate(rng.integers(0, n, int(0.15 * n))):
        src = rows[int(s)]
        im = Image.open(folder / src["image"]).convert("RGB")
        c = int(rng.integers(0, 4))
        w, h = im.size
        im = im.crop((c, c, w - c, h - c)).resize((w, h))
        name = f"copies/c{j:05d}.jpg"
        im.save(folder / name, quality=int(rng.integers(60, 96)))
        caption = src["caption"] if rng.random() < 0.5 else src["caption"].replace("A single ", "One ")
        caption += "" if rng.random() < 0.5 else " ."
        rows.append({**src, "id": f"c{j:05d}", "image": name, "caption": caption})
        family.append(family[int(s)])
        boiler.append(-1)
    for j, s in enumerate(rng.integers(0, n, int(0.05 * n))):
        src = rows[int(s)]
        name = f"copies/e{j:05d}.png"
        shutil.copy(folder / src["image"], folder / name)
        rows.append({**src, "id": f"e{j:05d}", "image": name, "caption": src["caption"].upper() + "!"})
        family.append(family[int(s)])
        boiler.append(-1)
    start = 0
    for b in range(8):
        m = int(rng.integers(5, 20))
        for r in extra.iloc[start : start + m].to_dict("records"):
            family.append(len(rows))
            rows.append({**r, "id": f"b{r['id']}", "image": "extra/" + r["image"], "caption": BOILERPLATE[b]})
            boiler.append(b)
        start += m
    table = pd.DataFrame(rows)
    table.to_csv(folder / "pairs_dup.csv", index=False)
    proj = create_project(folder / "proj", pairs=folder / "pairs_dup.csv", image_root=folder,
                          model=ModelSpec(f"local-dir:{get_tiny_clip(progress=False)}", None))
    proj.embed(progress=False, num_workers=0)
    attrs = table[ATTRS].astype(str).agg("|".join, axis=1).to_numpy()
    return proj, np.asarray(family), np.asarray(boiler), attrs


def sweep_scenes(n: int, seeds) -> None:
    import tempfile

    from mmcurate.groups.project import image_keys

    worlds = []
    for seed in seeds:
        proj, family, boiler, attrs = scenes_world(tempfile.mkdtemp(prefix="dup_scenes_"), n, seed)
        worlds.append((proj.image_embeddings(), proj.text_embeddings(), proj.pairs["caption"].tolist(),
                       image_keys(proj), family, boiler, attrs))
    print(f"\nscenes (tiny stand-in model, not CLIP): {len(worlds)} worlds of {len(worlds[0][0])} pairs; "
          f"'other content' = pairs put together whose scenes differ in shape, colour, count, position "
          f"or size (same-attribute scenes are near-identical to this model)")
    print(f"{'near t':>10}  {'pair prec':>9}  {'pair rec':>8}  {'copy rec':>8}  {'other content':>13}  "
          f"{'bp prec':>7}  {'bp rec':>6}")
    for t in np.round(np.arange(0.86, 0.995, 0.01), 3):
        params = dataclasses.replace(GroupParams(), image_threshold=float(t), caption_threshold=float(t))
        cells = []
        for image, text, captions, keys, family, boiler, attrs in worlds:
            m = len(image)
            table = find_groups(image, text, captions, image_keys=keys, params=params)
            dup = labels_of(table, m, DUPLICATE_KINDS)
            p, r = pair_precision_recall(dup, family)
            copies = np.flatnonzero(family != np.arange(m))
            same_attrs = pair_precision_recall(dup, pd_codes(attrs))[0]
            truth_b = np.where(boiler >= 0, boiler, np.arange(m) + m)
            bp, br = pair_precision_recall(labels_of(table, m, ("boilerplate",)), truth_b)
            cells.append((p, r, float(np.mean(dup[copies] == dup[family[copies]])), 1 - same_attrs, bp, br))
        mean = np.mean(cells, axis=0)
        print(f"{t:>10.3f}  " + "  ".join(f"{v:.3f}" for v in mean))


def pd_codes(values) -> np.ndarray:
    """Each value's first row (rows with equal values share it)."""
    from mmcurate.groups.find import key_labels

    return key_labels(values)


if __name__ == "__main__":
    main()
