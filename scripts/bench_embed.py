"""Benchmark the embedding stage on the device it runs on; prints its figures.

1. On generated camera-size JPEGs (3000×2000, textured so they compress like photos) and small
   ones (500×333): images/s of the decoding pipeline alone (DataLoader workers: read, reduced-size
   JPEG decode, resize, normalise, tokenize; no model), of the model alone on pre-decoded tensors
   (image + caption forward, same batch size, at least 3 s), and end to end (``Project.embed``:
   pipeline, model and float16 shard writes), with end to end / min(pipeline, model) (targets:
   CPU >= 0.9; GPU >= 0.8 of model-only or >= 2,000 images/s) and what limited it. Models:
   ViT-B-32 with random weights (speed does not depend on the weight values) and the tiny CLIP.
2. The whole ``mmcurate embed`` command (a fresh process: imports, model load, decode, forward,
   write) on the camera-size JPEGs with the tiny model, against a plain PIL
   ``open().convert("RGB")`` + preprocess loop over the same files in the same run (target: 2×).
3. Import of a 1,000,000-pair, 512-d float16 clip-retrieval folder: time and peak memory of the
   importing process (targets: under 60 s, under 2 GiB).
4. ``--long N``: throughput of a long job apart from its start-up. N camera-size JPEGs (generated
   once into ``$TMPDIR/mmcurate_bench_embed/`` and reused by later runs) and, in each of ``--runs``
   rounds, side by side on the same files: the pipeline alone (the embed workers' read, JPEG draft
   decode, preprocess, tokenize; no model), the model alone (image + caption forward on
   pre-decoded tensors, at least 3 s), and the whole ``mmcurate embed`` command in a fresh process
   (its part writes timestamped: start-up = process start to the first batch written; steady =
   the pairs after the first batch over the time from the first write to the last). Pipeline and
   command rates are steady rates (first batch excluded) too; the model alone is the better of all
   cores and the threads ``embed`` gives it beside its workers. Prints the medians and steady /
   min(pipeline, model) (target on CPU >= 0.9), steady / 1/(1/pipeline + 1/model) (what perfect
   overlap of two stages sharing the same cores allows), and each round's load average.

Usage::

    python scripts/bench_embed.py [--device auto] [--n-camera 120] [--n-small 256] [--vit-pairs N]
                                  [--skip-import]
    python scripts/bench_embed.py --long 1000 [--long-size 3000 2000] [--runs 3] [--models tiny]

OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set on some machines here and slow numpy; to measure
without them run ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_embed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def write_jpegs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``n`` generated scenes upscaled to ``size`` with photo-like grain, as JPEGs + pairs.csv."""
    from PIL import Image

    from mmcurate.synth import describe_scene, generate_scenes, render_scene

    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, 9, (size[1], size[0], 3)).astype(np.float32)
    rows = []
    for i, scene in enumerate(generate_scenes(n, random_state=seed)):
        base = np.asarray(render_scene(scene, size=256).resize(size, Image.BICUBIC), np.float32)
        shift = rng.integers(0, size[0] // 2)
        im = np.clip(base + np.roll(grain, shift, axis=1), 0, 255).astype(np.uint8)
        Image.fromarray(im).save(folder / "img" / f"{i}.jpg", quality=90)
        rows.append({"id": f"p{i}", "image": f"img/{i}.jpg", "caption": describe_scene(scene)})
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    return folder / "pairs.csv"


def _tiny_spec():
    from mmcurate.embed.model import ModelSpec
    from mmcurate.embed.tiny import get_tiny_clip

    return ModelSpec(f"local-dir:{get_tiny_clip(progress=False)}", None)


def _spec(model: str):
    from mmcurate.embed.model import ModelSpec

    return _tiny_spec() if model == "tiny" else ModelSpec(model, None)


def pipeline_rate(proj, enc, batch_size: int, workers: int) -> float:
    """Images/s of the worker pipeline alone (everything ``embed`` does before the model)."""
    from mmcurate.data import open_image
    from mmcurate.embed.run import _loader, _PairDataset

    pairs = proj.pairs
    ds = _PairDataset(pairs["image"].tolist(), pairs["caption"].tolist(), str(proj.image_root),
                      enc.preprocess, enc.tokenizer, open_image, min_size=enc.image_size)
    start = time.perf_counter()
    n = sum(len(b[0]) for b in _loader(ds, batch_size=batch_size, workers=workers,
                                       pin=enc.device.type == "cuda"))
    return n / (time.perf_counter() - start)


def model_rate(enc, n: int, batch_size: int) -> float:
    """Pairs/s of image + caption forward on pre-decoded, pre-tokenized batches."""
    import torch

    size = enc.image_size
    images = torch.randn(batch_size, 3, size, size)
    tokens = enc.tokenizer(["a photo of a small red circle at the top left"] * batch_size)
    if enc.device.type == "cuda":
        images, tokens = images.pin_memory(), tokens.pin_memory()
    enc.encode_image_tensors(images)  # warm-up
    enc.encode_token_tensors(tokens)
    n_batches, start = 0, time.perf_counter()
    while n_batches < max(2, -(-n // batch_size)) or time.perf_counter() - start < 3.0:
        enc.encode_image_tensors(images)
        enc.encode_token_tensors(tokens)
        n_batches += 1
    return n_batches * batch_size / (time.perf_counter() - start)


def bench_set(label: str, csv: Path, model: str, device: str, batch_size: int | None,
              workers: int | None, limit: int | None = None) -> dict:
    from mmcurate.embed.device import default_batch_size
    from mmcurate.embed.encoder import load_encoder, torch_threads
    from mmcurate.embed.run import default_workers
    from mmcurate.project import create_project

    spec = _spec(model)
    tmp = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    if limit:  # the first ``limit`` pairs (a slow model on a CPU: keep the run short)
        pd.read_csv(csv).head(limit).to_csv(csv.parent / f"pairs-{limit}.csv", index=False)
        csv = csv.parent / f"pairs-{limit}.csv"
    proj = create_project(tmp / "proj", pairs=csv, model=spec, progress=False)
    enc = load_encoder(spec, allow_random=True, device=device)
    bs = batch_size or default_batch_size(enc.device)
    nw = default_workers(enc.device.type) if workers is None else workers
    with torch_threads() as threads:  # what embed_pairs uses for the end-to-end run below
        pipe = pipeline_rate(proj, enc, bs, nw)
        fwd = model_rate(enc, len(proj.pairs), bs)
    del enc
    report = proj.embed(batch_size=bs, num_workers=nw, progress=False, allow_random=True, device=device)
    e2e = report.n_embedded / report.seconds
    return {"set": label, "model": model, "pairs": len(proj.pairs), "batch_size": bs, "workers": nw,
            "torch_threads": threads, "pipeline": pipe, "model_only": fwd, "end_to_end": e2e,
            "ratio": e2e / min(pipe, fwd), "limit": "pipeline" if pipe < fwd else "model",
            "precision": proj.store.manifest()["precision"]}


def bench_cli_vs_plain(csv: Path, device: str) -> dict:
    """Whole ``mmcurate embed`` (fresh process) vs a plain PIL loop, same files, same run."""
    from PIL import Image

    from mmcurate.embed.encoder import load_encoder
    from mmcurate.project import create_project

    spec = _tiny_spec()
    proj = create_project(Path(tempfile.mkdtemp(prefix="bench_cli_")) / "proj", pairs=csv, model=spec,
                          progress=False)
    enc = load_encoder(spec, device="cpu")
    files = [proj.image_root / r for r in proj.pairs["image"]]
    start = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            enc.preprocess(im.convert("RGB"))
    plain = time.perf_counter() - start
    cmd = [sys.executable, "-m", "mmcurate.cli", "embed", str(proj.root), "--no-progress",
           "--device", device]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    whole = time.perf_counter() - start
    start = time.perf_counter()  # again, nothing left to embed: the command's fixed cost
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    fixed = time.perf_counter() - start
    return {"images": len(files), "plain_s": plain, "cli_s": whole, "speedup": plain / whole,
            "fixed_s": fixed}


def _print_set(r: dict) -> None:
    print(f"  {r['set']:<17} {r['model']:<9} {r['precision']:<5} batch {r['batch_size']:<4} "
          f"workers {r['workers']}  pipeline {r['pipeline']:8.1f}  model {r['model_only']:8.1f}  "
          f"end-to-end {r['end_to_end']:8.1f} img/s  ratio {r['ratio']:.2f} (limit: {r['limit']})")


def run_embed(args) -> None:
    from mmcurate.embed.device import resolve_device

    choice = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench_jpegs_"))
    t0 = time.perf_counter()
    camera = write_jpegs(tmp / "camera", args.n_camera, (3000, 2000))
    small = write_jpegs(tmp / "small", args.n_small, (500, 333), seed=1)
    print(f"generated {args.n_camera} 3000x2000 + {args.n_small} 500x333 JPEGs in "
          f"{time.perf_counter() - t0:.0f} s; device {choice.name}, precision {choice.precision}")
    print("  set               model     prec  (images/s; pairs = image + caption)")
    for model in args.models:
        for label, csv in (("camera 3000x2000", camera), ("small 500x333", small)):
            limit = args.vit_pairs if model != "tiny" else None
            _print_set(bench_set(label, csv, model, args.device, args.batch_size, args.workers, limit))
    r = bench_cli_vs_plain(camera, args.device)
    print(f"whole `mmcurate embed` (tiny model) on {r['images']} 3000x2000 JPEGs: {r['cli_s']:.1f} s; "
          f"plain PIL open+convert+preprocess loop: {r['plain_s']:.1f} s; speedup {r['speedup']:.2f}x "
          f"(target >= 2); of the command, {r['fixed_s']:.1f} s is start-up (imports, model load: "
          f"the same command with nothing left to embed)")


LONG_CACHE = Path(tempfile.gettempdir()) / "mmcurate_bench_embed"


def long_jpegs(n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``n`` camera-size JPEGs + pairs.csv, generated once and reused (resumable: each file is
    deterministic for its index and written under a temporary name, then renamed)."""
    import shutil

    from PIL import Image

    from mmcurate.synth import describe_scene, generate_scenes, render_scene

    folder = LONG_CACHE / f"camera-{size[0]}x{size[1]}-n{n}-seed{seed}"
    csv = folder / "pairs.csv"
    if csv.is_file():
        return csv
    (folder / "img").mkdir(parents=True, exist_ok=True)
    grain = np.rint(np.random.default_rng(seed).normal(0, 9, (size[1], size[0], 3))).astype(np.int16)
    scenes = generate_scenes(n, random_state=seed)
    rows, start = [], time.perf_counter()
    for i, scene in enumerate(scenes):
        path = folder / "img" / f"{i}.jpg"
        if not path.is_file():
            if i and i % 100 == 0:
                per_file = path.with_name("0.jpg").stat().st_size
                free = shutil.disk_usage(folder).free
                if free < (n - i) * per_file + 2 * 2**30:
                    raise SystemExit(f"{folder}: {free / 2**30:.1f} GiB free, the remaining "
                                     f"{n - i} files need about {(n - i) * per_file / 2**30:.1f} GiB")
                print(f"  generated {i}/{n} JPEGs in {time.perf_counter() - start:.0f} s", flush=True)
            rng = np.random.default_rng([seed, i])
            base = np.asarray(render_scene(scene, size=256).resize(size, Image.BICUBIC), np.int16)
            shift = int(rng.integers(0, size[0] // 2))  # a different crop of the grain per photo
            im = np.clip(base + np.roll(grain, shift, axis=1), 0, 255).astype(np.uint8)
            tmp = path.with_suffix(".tmp")
            Image.fromarray(im).save(tmp, format="JPEG", quality=90)
            os.replace(tmp, path)
        rows.append({"id": f"p{i}", "image": f"img/{i}.jpg", "caption": describe_scene(scene)})
    pd.DataFrame(rows).to_csv(folder / "pairs.tmp", index=False)
    os.replace(folder / "pairs.tmp", csv)
    return csv


def _steady(stamps: list[tuple[float, int]]) -> float:
    """Pairs/s from ``(time, pairs)`` per batch, the first batch excluded (its wait is start-up)."""
    if len(stamps) < 2:
        return float("nan")
    return sum(n for _, n in stamps[1:]) / (stamps[-1][0] - stamps[0][0])


def pipeline_steady(proj, enc, batch_size: int, workers: int) -> float:
    """Steady images/s of the embed workers alone: read, JPEG draft decode, preprocess, tokenize."""
    from mmcurate.data import open_image
    from mmcurate.embed.run import _loader, _PairDataset

    pairs = proj.pairs
    ds = _PairDataset(pairs["image"].tolist(), pairs["caption"].tolist(), str(proj.image_root),
                      enc.preprocess, enc.tokenizer, open_image, min_size=enc.image_size)
    stamps = [(time.perf_counter(), len(b[0])) for b in _loader(ds, batch_size=batch_size,
                                                                 workers=workers, pin=False)]
    return _steady(stamps)


_EMBED_CHILD = """
import json, sys, time
from mmcurate.embed.store import EmbeddingStore
stamps, write = [], EmbeddingStore.write_part
def timed(self, ids, image, text):
    path = write(self, ids, image, text)
    stamps.append((time.time(), len(ids)))
    return path
EmbeddingStore.write_part = timed
from mmcurate.cli import main
rc = main(sys.argv[1:])
print("STAMPS " + json.dumps(stamps))
sys.exit(rc)
"""


def cli_embed_run(template: Path, work: Path, args_extra: list[str]) -> dict:
    """The whole ``mmcurate embed`` in a fresh process on a copy of an unembedded project, its
    part writes timestamped (``mmcurate.cli.main`` with a timing wrapper on the store's writes)."""
    import shutil

    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work)
    cmd = [sys.executable, "-c", _EMBED_CHILD, "embed", str(work), "--no-progress", *args_extra]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    total = time.time() - t0
    if proc.returncode:
        raise SystemExit(f"mmcurate embed failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    stamps = json.loads(proc.stdout.split("STAMPS ", 1)[1].splitlines()[0])
    shutil.rmtree(work)
    n = sum(k for _, k in stamps)
    return {"startup": stamps[0][0] - t0, "steady": _steady(stamps), "total": total,
            "whole": n / total, "after_last": t0 + total - stamps[-1][0], "pairs": n}


def run_long(args) -> None:
    """Section 4: start-up apart from the steady rate of a long job, pipeline and model side by side."""
    import shutil

    from mmcurate.embed.device import default_batch_size
    from mmcurate.embed.encoder import load_encoder, torch_threads
    from mmcurate.embed.run import default_workers, model_threads
    from mmcurate.project import create_project

    size = tuple(args.long_size)
    t0 = time.perf_counter()
    csv = long_jpegs(args.long, size)
    files = list((csv.parent / "img").glob("*.jpg"))
    mb = sum(f.stat().st_size for f in files) / len(files) / 2**20
    print(f"{len(files)} {size[0]}x{size[1]} JPEGs ({mb:.1f} MB each) in {csv.parent} "
          f"(ready in {time.perf_counter() - t0:.0f} s)", flush=True)
    for model in args.models:
        n = args.long if model == "tiny" else min(args.long, args.vit_pairs or args.long)
        spec = _spec(model)
        tmp = Path(tempfile.mkdtemp(prefix="bench_long_"))
        src = csv
        if n < args.long:  # the first n pairs (a slow model on a CPU: keep the run short)
            src = csv.parent / f"pairs-{n}.csv"
            pd.read_csv(csv).head(n).to_csv(src, index=False)
        template = create_project(tmp / "template", pairs=src, model=spec, progress=False)
        if len(template.pairs) != n:
            raise SystemExit(f"{src}: {n - len(template.pairs)} pairs rejected (see "
                             f"{template.root / 'rejects.csv'})")
        enc = load_encoder(spec, allow_random=True, device="cpu")
        bs = args.batch_size or default_batch_size(enc.device)
        nw = default_workers("cpu") if args.workers is None else args.workers
        extra = ["--device", "cpu", "--batch-size", str(bs), "--workers", str(nw)]
        if model != "tiny":
            extra = None  # the CLI has no random-weights switch: the library call instead
        print(f"model {model}{' (the tiny stand-in, not CLIP)' if model == 'tiny' else ' (random weights)'}"
              f", {n} pairs, batch {bs}, workers {nw}, cores {os.cpu_count()}", flush=True)
        rows = []
        for r in range(args.runs):
            load0 = os.getloadavg()[0]
            with torch_threads():
                pipe = pipeline_steady(template, enc, bs, nw)
                fwd_all = model_rate(enc, n, bs)
            with torch_threads(model_threads("cpu", nw)):  # the threads embed gives the model
                fwd_embed = model_rate(enc, n, bs)
            fwd = max(fwd_all, fwd_embed)  # the model alone at its best: the stricter target
            if extra is not None:
                cli = cli_embed_run(template.root, tmp / "run", extra)
            else:
                cli = lib_embed_run(template, tmp / "run", spec, bs, nw)
            row = {"pipeline": pipe, "model": fwd, **cli, "load": (load0 + os.getloadavg()[0]) / 2}
            row["ratio"] = row["steady"] / min(pipe, fwd)
            # both stages on the same cores, perfectly overlapped: 1 / (1/pipeline + 1/model)
            row["shared"] = row["steady"] * (1 / pipe + 1 / fwd)
            rows.append(row)
            print(f"  run {r + 1}: load {row['load']:.1f}  pipeline {pipe:6.1f}  model {fwd:7.1f}  "
                  f"embed steady {row['steady']:6.1f} img/s (start-up {row['startup']:.1f} s, whole "
                  f"job {row['total']:.1f} s = {row['whole']:.1f} img/s)  ratio {row['ratio']:.2f}"
                  f"  [model {fwd_all:.1f} with {os.cpu_count()} threads, {fwd_embed:.1f} with "
                  f"{model_threads('cpu', nw)}; steady / (1/(1/pipeline + 1/model)) "
                  f"{row['shared']:.2f}]", flush=True)
        med = pd.DataFrame(rows).median()
        limit = "pipeline" if med["pipeline"] < med["model"] else "model"
        print(f"  median of {len(rows)}: pipeline {med['pipeline']:.1f}, model {med['model']:.1f}, "
              f"embed steady {med['steady']:.1f} img/s, start-up {med['startup']:.1f} s, whole job "
              f"{med['total']:.1f} s; ratio steady/min(pipeline, model) {med['ratio']:.2f} "
              f"(limit: {limit}; target >= 0.9: {'met' if med['ratio'] >= 0.9 else 'NOT met'}); "
              f"steady / (1/(1/pipeline + 1/model)) {med['shared']:.2f}; "
              f"load {min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f}", flush=True)
        del enc
        shutil.rmtree(tmp, ignore_errors=True)


def lib_embed_run(template, work: Path, spec, batch_size: int, workers: int) -> dict:
    """``Project.embed`` (model load included) on a copy of an unembedded project, part writes
    timestamped: for a model the CLI cannot load (random weights)."""
    import shutil

    from mmcurate.embed.store import EmbeddingStore
    from mmcurate.project import open_project

    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template.root, work)
    stamps: list[tuple[float, int]] = []
    write = EmbeddingStore.write_part

    def timed(self, ids, image, text):
        path = write(self, ids, image, text)
        stamps.append((time.time(), len(ids)))
        return path

    EmbeddingStore.write_part = timed
    try:
        t0 = time.time()
        open_project(work).embed(batch_size=batch_size, num_workers=workers, progress=False,
                                 allow_random=True, device="cpu")
        total = time.time() - t0
    finally:
        EmbeddingStore.write_part = write
    shutil.rmtree(work)
    n = sum(k for _, k in stamps)
    return {"startup": stamps[0][0] - t0, "steady": _steady(stamps), "total": total,
            "whole": n / total, "after_last": t0 + total - stamps[-1][0], "pairs": n}


_IMPORT_CHILD = """
import sys, time, json
from mmcurate._util import peak_rss_gib
from mmcurate.embed.importer import import_embedding_folder
from mmcurate.embed.store import EmbeddingStore
start = time.perf_counter()
res = import_embedding_folder(sys.argv[1], EmbeddingStore(sys.argv[2]))
print(json.dumps({"pairs": len(res.pairs), "seconds": time.perf_counter() - start,
                  "peak_rss_gib": peak_rss_gib()}))
"""


def bench_import(n: int, dim: int = 512, shard: int = 100_000) -> dict:
    from mmcurate.embed.importer import write_embedding_folder

    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    folder = tmp / "emb"
    rng = np.random.default_rng(0)
    for s in range(0, n, shard):
        m = min(shard, n - s)
        img = rng.standard_normal((m, dim), dtype=np.float32).astype(np.float16)
        meta = pd.DataFrame({"key": [f"k{i}" for i in range(s, s + m)],
                             "caption": [f"caption number {i}" for i in range(s, s + m)]})
        part = write_embedding_folder(tmp / f"part{s}", img, img, meta, shard_size=m)
        for sub, name in (("img_emb", "img_emb"), ("text_emb", "text_emb"), ("metadata", "metadata")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            ext = "parquet" if sub == "metadata" else "npy"
            os.replace(part / sub / f"{name}_0.{ext}", folder / sub / f"{name}_{s // shard}.{ext}")
    proc = subprocess.run([sys.executable, "-c", _IMPORT_CHILD, str(folder), str(tmp / "store")],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cores() -> str:
    import torch

    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cores: {os.cpu_count()} (usable {avail}), torch threads {torch.get_num_threads()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=["ViT-B-32", "tiny"])
    parser.add_argument("--n-camera", type=int, default=120)
    parser.add_argument("--n-small", type=int, default=256)
    parser.add_argument("--vit-pairs", type=int, default=None,
                        help="pairs per set for the non-tiny models (default: all)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--n-import", type=int, default=1_000_000)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--long", type=int, default=None, metavar="N",
                        help="only section 4: a long job of N camera-size JPEGs (>= 1000 suggested)")
    parser.add_argument("--long-size", type=int, nargs=2, default=[3000, 2000], metavar=("W", "H"))
    parser.add_argument("--runs", type=int, default=3, help="rounds of section 4 (medians)")
    args = parser.parse_args(argv)
    print(f"{_cores()}  OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}  "
          f"load {os.getloadavg()[0]:.1f}")
    if args.long:
        run_long(args)
        return 0
    if not args.skip_embed:
        run_embed(args)
    if not args.skip_import:
        r = bench_import(args.n_import)
        print(f"import {r['pairs']:,} pairs x 512-d float16: {r['seconds']:.1f} s (target < 60 s), "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB (target < 2 GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
