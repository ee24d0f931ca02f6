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
    python scripts/bench_duplicates_quality.py --stamps --seeds 0 1        # tuxpaint photos, tiny model

``--scenes``: real image files (generated scenes), copies re-encoded as JPEG and cropped, exact
copies, boilerplate captions, embedded with the tiny stand-in model (not CLIP: it sees only shape,
colour, count, position and size, so two scenes alike in those are near-identical to it; the table
says how many grouped pairs differ in them). ``--stamps``: Debian's ``tuxpaint-stamps-default``
photos (skipped when absent; copied to a temporary folder, never into the repository) with copies
(cropped 0-3 px, resized to 50-100 %, JPEG q60-95), exact copies and near misses (the same photo
recoloured, or shrunk and moved on its canvas, with the same caption: different images), embedded
with the tiny model, which knows nothing of photos. Both image worlds print the groups with
vectors only (``verify="none"``) and confirmed by pixels (``verify="pixels"``) over
``--pixel-thresholds``, over the vector threshold (image = caption = candidate threshold) with the
default pixel threshold, and over ``boilerplate_text_overlap``; "decoded" is the share of the images
the pixel check reads (its cost).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import NamedTuple

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
                    help="N generated scenes + injected copies embedded with the tiny model (0: skip)")
    ap.add_argument("--stamps", action="store_true",
                    help="tuxpaint stamp photos + injected copies and near misses, tiny model")
    ap.add_argument("--stamps-root", default="/usr/share/tuxpaint/stamps")
    ap.add_argument("--stamps-base", type=int, default=400, help="stamp photos drawn per seed")
    ap.add_argument("--pixel-thresholds", type=float, nargs="+",
                    default=[0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.07, 0.08, 0.1])
    args = ap.parse_args()
    if args.scenes or args.stamps:
        from mmcurate.groups.pixels import project_signature_reader as reader_of
        from mmcurate.groups.project import image_keys

        built = []
        for seed in args.seeds:
            folder = tempfile.mkdtemp(prefix="dup_images_")
            if args.scenes:
                built.append(("scenes", scenes_world(folder, args.scenes, seed)))
            elif Path(args.stamps_root).is_dir():
                built.append(("stamps", stamps_world(folder, args.stamps_root, args.stamps_base, seed)))
            else:
                print(f"{args.stamps_root} not found (apt-get install tuxpaint-stamps-default): skipped")
                return
        worlds = [ImageWorld(proj.image_embeddings(), proj.text_embeddings(), proj.pairs["caption"].tolist(),
                             image_keys(proj), family, boiler, attrs, CachedReader(reader_of(proj)))
                  for _, (proj, family, boiler, attrs) in built]
        sweep_images(worlds, built[0][0], args.seeds, args.pixel_thresholds)
        return
    worlds = [make_duplicate_world(args.n_base, dim=d, random_state=s)
              for d in args.dims for s in args.seeds]
    print(f"{len(worlds)} worlds of {len(worlds[0].image)}+ pairs (dims {args.dims}, seeds {args.seeds}); "
          f"defaults {GroupParams()}")
    base = GroupParams()
    sweep(worlds, "near t", np.round(np.arange(0.86, 0.995, 0.01), 3), base,
          ("image_threshold", "caption_threshold"))
    sweep(worlds, "bp t", [0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995], base, ("boilerplate_threshold",))
    sweep(worlds, "bp words", [0.0, 0.5, 0.75, 1.0], base, ("boilerplate_text_overlap",))


# -- image worlds: real image files, copies re-encoded, embedded by the project's (tiny) model -------------
ATTRS = ["shape", "color", "count", "position", "size"]


class ImageWorld(NamedTuple):
    image: np.ndarray
    text: np.ndarray
    captions: list
    keys: list
    family: np.ndarray
    boiler: np.ndarray
    attrs: np.ndarray | None
    reader: object


class CachedReader:
    """A project's signature reader that reads each row once over the whole sweep."""

    def __init__(self, read) -> None:
        self.read, self.cache, self.asked = read, {}, 0

    def __call__(self, rows):
        self.asked += len(rows)  # what find_groups would decode without the cache
        todo = [int(r) for r in rows if int(r) not in self.cache]
        if todo:
            sig, ok = self.read(np.asarray(todo, np.int64))
            self.cache.update({r: (sig[i], ok[i]) for i, r in enumerate(todo)})
        got = [self.cache[int(r)] for r in rows]
        return np.stack([g[0] for g in got]), np.array([g[1] for g in got], bool)


def _project(folder, table):
    from mmcurate.embed.model import ModelSpec
    from mmcurate.embed.tiny import get_tiny_clip
    from mmcurate.project import create_project

    table.to_csv(folder / "pairs_dup.csv", index=False)
    proj = create_project(folder / "proj", pairs=folder / "pairs_dup.csv", image_root=folder,
                          model=ModelSpec(f"local-dir:{get_tiny_clip(progress=False)}", None))
    proj.embed(progress=False, num_workers=0)
    return proj


def scenes_world(folder, n: int, seed: int):
    """A scene project with injected copies (JPEG re-encoded, cropped 0-3 px and resized back; caption
    the same or reworded), exact copies (same bytes, caption in capitals) and boilerplate captions on
    extra scenes; embedded with the tiny stand-in model. Returns ``(proj, family, boilerplate, attrs)``."""
    import shutil

    import pandas as pd
    from PIL import Image

    from mmcurate.groups.synthetic import BOILERPLATE
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
    proj = _project(folder, table)
    attrs = table[ATTRS].astype(str).agg("|".join, axis=1).to_numpy()
    return proj, np.asarray(family), np.asarray(boiler), attrs


def stamps_world(folder, stamps_root, n_base: int, seed: int):
    """Tuxpaint stamp photos (``n_base`` drawn per seed, on white) with injected copies (15 %: cropped
    0-3 px, resized to 50-100 %, JPEG q60-95; caption the same or with a full stop added), exact copies
    (5 %: same bytes, caption in capitals) and near misses with the *same caption* as their source,
    which are different images (truth: their own family): 7.5 % recoloured (hue turned 90-270 degrees;
    only photos whose opaque pixels have mean saturation >= 0.25: a grey photo turned is the same
    image) and 7.5 % moved (shrunk to 60 % and placed in a corner of a white canvas of the source's
    size). Embedded with the tiny stand-in model. Returns ``(proj, family, boilerplate, None)``."""
    import hashlib
    import shutil

    import pandas as pd
    from PIL import Image

    from mmcurate.data.tuxpaint import build_tuxpaint_pairs

    folder = Path(folder)
    every = pd.read_csv(build_tuxpaint_pairs(folder / "all.csv", stamps_root=stamps_root))
    # the stock set holds a few identical photos under two names ("A fireman."): one of each, or the
    # truth would call true duplicates different
    pixels = [hashlib.sha1(_on_white(Image.open(Path(stamps_root) / p)).tobytes()).hexdigest()
              for p in every["image"]]
    every = every[~pd.Series(pixels).duplicated().to_numpy()]
    rng = np.random.default_rng(seed)
    base = every.iloc[np.sort(rng.choice(len(every), min(n_base, len(every)), replace=False))]
    (folder / "img").mkdir(exist_ok=True)
    rows = []
    for i, r in enumerate(base.to_dict("records")):
        name = f"img/b{i:04d}.png"
        _on_white(Image.open(Path(stamps_root) / r["image"])).save(folder / name)
        rows.append({"id": f"b{i:04d}", "image": name, "caption": r["caption"]})
    n = len(rows)
    family, boiler = list(range(n)), [-1] * n

    def add(src: int, image: Image.Image | None, kind: str, caption: str, same_family: bool) -> None:
        j = len(rows)
        name = f"img/{kind}{j:05d}." + ("png" if image is None else "jpg" if kind == "c" else "png")
        if image is None:
            shutil.copy(folder / rows[src]["image"], folder / name)
        elif kind == "c":
            image.save(folder / name, quality=int(rng.integers(60, 96)))
        else:
            image.save(folder / name)
        rows.append({"id": f"{kind}{j:05d}", "image": name, "caption": caption})
        family.append(family[src] if same_family else j)
        boiler.append(-1)

    for s in rng.integers(0, n, int(0.15 * n)):
        im = Image.open(folder / rows[int(s)]["image"]).convert("RGB")
        c, scale = int(rng.integers(0, 4)), float(rng.uniform(0.5, 1.0))
        w, h = im.size
        im = im.crop((c, c, w - c, h - c)).resize((max(8, round(w * scale)), max(8, round(h * scale))))
        add(int(s), im, "c", rows[int(s)]["caption"] + ("" if rng.random() < 0.5 else " ."), True)
    for s in rng.integers(0, n, int(0.05 * n)):
        add(int(s), None, "e", rows[int(s)]["caption"].upper() + "!", True)
    colourful = [i for i in range(n) if _saturation(Image.open(folder / rows[i]["image"])) >= 0.25]
    for s in rng.choice(colourful, min(len(colourful), int(0.075 * n)), replace=False):
        im = _turn_hue(Image.open(folder / rows[int(s)]["image"]), float(rng.uniform(90, 270)))
        add(int(s), im, "r", rows[int(s)]["caption"], False)
    for s in rng.choice(n, int(0.075 * n), replace=False):
        im = Image.open(folder / rows[int(s)]["image"]).convert("RGB")
        w, h = im.size
        small = im.resize((max(4, round(0.6 * w)), max(4, round(0.6 * h))))
        canvas = Image.new("RGB", (w, h), (255, 255, 255))
        corner = int(rng.integers(0, 4))
        canvas.paste(small, ((w - small.width) * (corner % 2), (h - small.height) * (corner // 2)))
        add(int(s), canvas, "m", rows[int(s)]["caption"], False)
    proj = _project(folder, pd.DataFrame(rows))
    return proj, np.asarray(family), np.asarray(boiler), None


def _on_white(im):
    from PIL import Image

    im = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im).convert("RGB")


def _saturation(im) -> float:
    """Mean HSV saturation of the pixels that are not white background (0-1)."""
    arr = np.asarray(im.convert("RGB"), np.float32)
    fg = arr.min(-1) < 245
    hsv = np.asarray(im.convert("RGB").convert("HSV"), np.float32)
    return float(hsv[..., 1][fg].mean() / 255) if fg.any() else 0.0


def _turn_hue(im, degrees: float):
    from PIL import Image

    hsv = np.asarray(im.convert("RGB").convert("HSV")).copy()
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _cells(world: ImageWorld, params: GroupParams) -> tuple[float, ...]:
    m = len(world.image)
    reader = world.reader if params.verify != "none" else None
    world.reader.asked = 0
    table = find_groups(world.image, world.text, world.captions, image_keys=world.keys, params=params,
                        pixel_signatures=reader)
    dup = labels_of(table, m, DUPLICATE_KINDS)
    p, r = pair_precision_recall(dup, world.family)
    copies = np.flatnonzero(world.family != np.arange(m))
    other = 1 - pair_precision_recall(dup, pd_codes(world.attrs))[0] if world.attrs is not None else np.nan
    truth_b = np.where(world.boiler >= 0, world.boiler, np.arange(m) + m)
    bp, br = pair_precision_recall(labels_of(table, m, ("boilerplate",)), truth_b)
    copy_recall = float(np.mean(dup[copies] == dup[world.family[copies]]))
    return p, r, copy_recall, other, bp, br, world.reader.asked / m


def _print_rows(worlds, label: str, settings) -> None:
    print(f"{label:>16}  {'pair prec':>13}  {'pair rec':>13}  {'copy rec':>13}  {'other content':>13}  "
          f"{'bp prec':>13}  {'bp rec':>13}  {'decoded':>13}   (mean [min] over {len(worlds)} worlds; "
          f"decoded: share of the images read for the pixel check)")
    for name, params in settings:
        cells = np.array([_cells(w, params) for w in worlds])
        print(f"{name:>16}  " + "  ".join(f"{np.mean(c):.3f} [{np.min(c):.3f}]" for c in cells.T))


def sweep_images(worlds, family: str, seeds, pixel_thresholds) -> None:
    d = GroupParams()
    print(f"\n{family} (tiny stand-in model, not CLIP): {len(worlds)} worlds (seeds {list(seeds)}) of "
          f"{len(worlds[0].image)}+ pairs; " + ("'other content' = pairs put together whose scenes differ "
                                                 "in shape, colour, count, position or size"
                                                 if family == "scenes" else "'other content': n/a"))
    print(f"\npixel threshold at candidate threshold {d.candidate_threshold} (verify='pixels'):")
    _print_rows(worlds, "pixel t", [("none (vectors)", dataclasses.replace(d, verify="none"))]
                + [(f"{t:.3f}", dataclasses.replace(d, verify="pixels", pixel_threshold=float(t)))
                   for t in pixel_thresholds])
    print(f"\nvector threshold (image = caption = candidate), vectors only vs pixel-checked at "
          f"{d.pixel_threshold}:")
    settings = []
    for t in np.round(np.arange(0.70, 0.995, 0.02), 3):
        for verify in ("none", "pixels"):
            settings.append((f"{t:.2f} {verify}", dataclasses.replace(
                d, image_threshold=float(t), caption_threshold=float(t), candidate_threshold=float(t),
                verify=verify)))
    _print_rows(worlds, "vector t", settings)
    print(f"\nboilerplate text overlap (caption words must agree besides cosine >= "
          f"{d.boilerplate_threshold}), verify='pixels':")
    _print_rows(worlds, "bp words", [(f"{o:.2f}", dataclasses.replace(d, verify="pixels",
                                                                      boilerplate_text_overlap=o))
                                     for o in (0.0, 0.5, 0.75, 0.8, 0.9, 1.0)])


def pd_codes(values) -> np.ndarray:
    """Each value's first row (rows with equal values share it)."""
    from mmcurate.groups.find import key_labels

    return key_labels(values)


if __name__ == "__main__":
    main()
