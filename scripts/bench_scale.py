"""Benchmark the Ray engine against the local one; prints its figures.

1. Embedding: the same pairs embedded by the local engine and by the Ray Data engine (local
   Ray, 2 actors with 0.5 CPU each), pairs/s of each and the ratio (Ray's overhead on one machine).
   Model: the tiny stand-in CLIP (``--model`` takes any open_clip model with local weights).
2. Scoring: ``disagreement`` over projects imported from embedding folders of 200,000 and
   2,000,000 synthetic 512-d pairs (20% swapped within their super-category / domain), with
   ``rank --engine ray``; wall time, peak memory of the driver process (target < 2 GiB) and the
   cost ratio between the sizes (linear = 10). Each size runs in a fresh driver process.
   ``--engine local`` times the whole command instead, ``mmcurate rank PROJECT --strategy S
   --out r.parquet`` in a fresh process (start-up, loading, pool state and the output file
   included; peak memory of that process), for each of ``--strategies`` (default
   ``disagreement``), ``--runs`` times each on one project per size (the saved pool state is
   removed before every run, so each run is a first ranking), with the median per strategy.
   ``--data clip-gap`` (default): a modality gap like CLIP's
   (:func:`mmcurate.simulate.worlds.clip_gap_chunks`); ``--data domains``: the earlier data, no gap.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_scale.py [--sizes 200000 2000000] \
        [--data clip-gap|domains] [--engine ray|local] [--skip-embed] \
        [--strategies disagreement density ...] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate._util import cost_ratio_line

_SCORE_CHILD = """
import json, sys, time
from mmcurate._util import peak_rss_gib
from mmcurate.project import open_project
from mmcurate.rounds import rank_project
from mmcurate.signals import auroc
import numpy as np
proj = open_project(sys.argv[1])
t = time.perf_counter()
table = rank_project(proj, ["disagreement"], engine="ray").table
seconds = time.perf_counter() - t
noisy = np.load(sys.argv[2])
print(json.dumps({"n": len(table), "seconds": seconds, "auroc": auroc(table["disagreement"], noisy),
                  "driver_peak_rss_gib": peak_rss_gib()}))
"""

_COMMAND_CHILD = """
import json, sys, time
start = time.perf_counter()
from mmcurate._util import peak_rss_gib
from mmcurate.cli import main
rc = main(["rank", sys.argv[1], "--strategy", sys.argv[3], "--out", sys.argv[2]])
print(json.dumps({"rc": rc, "in_process_seconds": time.perf_counter() - start,
                  "peak_rss_gib": peak_rss_gib()}))
"""


def write_folder(folder: Path, n: int, *, dim: int = 512, shard: int = 100_000, rate: float = 0.2,
                 seed: int = 0, data: str = "clip-gap") -> Path:
    """A clip-retrieval style folder (img_emb/, text_emb/, metadata/) + ``noisy.npy`` truth."""
    from mmcurate._fileio import save_npy_atomic
    from mmcurate.simulate.worlds import benchmark_pair_chunks

    noisy = np.zeros(n, bool)
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (s, img, txt, is_noisy) in enumerate(benchmark_pair_chunks(data, n, dim, chunk=shard, rate=rate,
                                                                       seed=seed)):
        m = len(img)
        noisy[s : s + m] = is_noisy
        save_npy_atomic(folder / "img_emb" / f"img_emb_{i}.npy", img.astype(np.float16))
        save_npy_atomic(folder / "text_emb" / f"text_emb_{i}.npy", txt.astype(np.float16))
        pd.DataFrame({"key": [f"k{j}" for j in range(s, s + m)],
                      "caption": [f"caption {j}" for j in range(s, s + m)]}).to_parquet(
            folder / "metadata" / f"metadata_{i}.parquet", index=False)
    np.save(folder / "noisy.npy", noisy)
    return folder


def bench_scoring(n: int, *, data: str = "clip-gap", engine: str = "ray",
                  strategies: tuple[str, ...] = ("disagreement",), runs: int = 1) -> list[dict]:
    """One project of ``n`` pairs; one dict per (run, strategy) with ``seconds`` and ``auroc``."""
    from mmcurate.project import create_project, open_project
    from mmcurate.signals import auroc

    tmp = Path(tempfile.mkdtemp(prefix=f"bench_scale_{n}_"))
    try:
        t = time.perf_counter()
        folder = write_folder(tmp / "emb", n, data=data)
        create_project(tmp / "proj", embeddings=folder)
        prep = time.perf_counter() - t
        truth = np.load(folder / "noisy.npy")
        results = []
        for run in range(runs):
            for strategy in (("disagreement",) if engine == "ray" else strategies):
                if engine == "ray":
                    argv = [sys.executable, "-c", _SCORE_CHILD, str(tmp / "proj"), str(folder / "noisy.npy")]
                else:
                    shutil.rmtree(open_project(tmp / "proj").pool_state_dir, ignore_errors=True)
                    argv = [sys.executable, "-c", _COMMAND_CHILD, str(tmp / "proj"), str(tmp / "r.parquet"),
                            strategy]
                t = time.perf_counter()
                proc = subprocess.run(argv, capture_output=True, text=True)
                wall = time.perf_counter() - t
                if proc.returncode:
                    raise RuntimeError(proc.stderr[-3000:])
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                out.update(prepare_seconds=prep, n=n, run=run, strategy=strategy)
                if engine == "local":
                    table = pd.read_parquet(tmp / "r.parquet")
                    rows = table["pair_id"].str[1:].astype(int).to_numpy()
                    out.update(seconds=wall, auroc=auroc(table[strategy] if strategy in table else
                                                         table["score"], truth[rows]))
                results.append(out)
                _print_run(out, data, engine)
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _print_run(r: dict, data: str, engine: str) -> None:
    n = r["n"]
    if engine == "ray":
        print(f"disagreement on {n:,} imported {data} pairs with --engine ray: "
              f"{r['seconds']:.1f} s, "
              f"driver peak {r['driver_peak_rss_gib']:.2f} GiB, AUROC vs planted swaps {r['auroc']:.3f} "
              f"(data + import {r['prepare_seconds']:.0f} s)", flush=True)
    else:
        print(f"run {r['run'] + 1}: `mmcurate rank --strategy {r['strategy']} --out r.parquet` on {n:,} "
              f"imported {data} pairs: {r['seconds']:.1f} s whole command ({r['in_process_seconds']:.1f} s "
              f"after the interpreter started), peak {r['peak_rss_gib']:.2f} GiB, AUROC vs planted swaps "
              f"{r['auroc']:.3f} (data + import {r['prepare_seconds']:.0f} s)", flush=True)


def bench_embed(n: int, model: str | None) -> dict:
    from mmcurate.embed.model import ModelSpec
    from mmcurate.embed.tiny import get_tiny_clip
    from mmcurate.engine.ray_embed import embed_with_ray
    from mmcurate.project import create_project
    from mmcurate.synth import write_scene_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_embed_"))
    csv = write_scene_dataset(tmp / "scenes", n, random_state=0)
    spec = ModelSpec(model or f"local-dir:{get_tiny_clip()}", None)
    local = create_project(tmp / "local", pairs=csv, model=spec, progress=False)
    t = time.perf_counter()
    local.embed(progress=False)
    local_rate = n / (time.perf_counter() - t)
    dist = create_project(tmp / "ray", pairs=csv, model=spec, progress=False)
    t = time.perf_counter()
    embed_with_ray(dist, num_workers=2, cpus_per_worker=0.5)
    ray_rate = n / (time.perf_counter() - t)
    same = np.abs(np.asarray(local.image_embeddings(), np.float32)
                  - np.asarray(dist.image_embeddings(), np.float32)).max()
    return {"pairs": n, "local_pairs_per_s": local_rate, "ray_pairs_per_s": ray_rate,
            "ratio": ray_rate / local_rate, "max_abs_diff": float(same)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--n-embed", type=int, default=600)
    parser.add_argument("--model", default=None, help="open_clip model with local weights (default: tiny)")
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--data", choices=("clip-gap", "domains"), default="clip-gap")
    parser.add_argument("--engine", choices=("ray", "local"), default="ray",
                        help="ray: rank_project(engine='ray'); local: the whole `mmcurate rank` command")
    parser.add_argument("--strategies", nargs="+", default=["disagreement"],
                        help="with --engine local: strategies timed one after another (fresh process each)")
    parser.add_argument("--runs", type=int, default=1, help="runs per strategy and size (medians printed)")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if not args.skip_embed:
        e = bench_embed(args.n_embed, args.model)
        print(f"embed {e['pairs']} pairs: local {e['local_pairs_per_s']:.1f} pairs/s, Ray engine "
              f"{e['ray_pairs_per_s']:.1f} pairs/s, ratio {e['ratio']:.2f} "
              f"(max |difference| of the vectors {e['max_abs_diff']:.1e})", flush=True)
    rows: list[dict] = []
    for n in args.sizes:
        rows += bench_scoring(n, data=args.data, engine=args.engine, strategies=tuple(args.strategies),
                              runs=args.runs)
    table = pd.DataFrame(rows)
    summary = table.groupby(["strategy", "n"], sort=False).agg(
        median_s=("seconds", "median"), min_s=("seconds", "min"), max_s=("seconds", "max"),
        runs=("seconds", "size"), peak_gib=(("peak_rss_gib" if "peak_rss_gib" in table else
                                             "driver_peak_rss_gib"), "max"),
        auroc=("auroc", "median")).reset_index()
    print("\nmedians over runs (seconds; range; peak memory of the process; AUROC vs planted swaps):")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}" if v < 2 else f"{v:.1f}"))
    for strategy, part in summary.groupby("strategy", sort=False):
        line = cost_ratio_line([{"n": r.n, "seconds": r.median_s} for r in part.itertuples()])
        if line is not None:
            print(f"{strategy}: {line} (medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
