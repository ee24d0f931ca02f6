"""Benchmark ``duplicates`` on imported pairs at two sizes; prints seconds, peak memory, copy recall.

Data: :func:`mmcurate.synth.domain_pair_chunks` (512-d, 256 domains, written chunk by chunk as a
clip-retrieval folder) with 5% of each chunk's pairs replaced by copies of other pairs of the chunk
(image cosine to the source about 0.97, caption identical or cosine about 0.98) and 1% given one of
20 boilerplate captions. Each size runs ``compute_duplicates`` (the vector kinds: imported
embeddings have no files to hash) in a fresh child process that reports its wall and CPU seconds
(user + system: on a shared machine the wall time includes waiting for a core) and its own peak resident
memory (target: 1,000,000 pairs in < 60 s and < 4 GiB on the 2-core machine, cost linear in N).

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_duplicates.py \\
        [--sizes 100000 1000000] [--data-dir DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate._util import cost_ratio_line

_CHILD = """
import json, resource, sys, time
import numpy as np
from mmcurate._util import peak_rss_gib
from mmcurate.groups.project import compute_duplicates
from mmcurate.project import open_project
proj = open_project(sys.argv[1])
t, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
result = compute_duplicates(proj)
seconds = time.perf_counter() - t
used = resource.getrusage(resource.RUSAGE_SELF)
cpu_seconds = used.ru_utime - cpu.ru_utime + used.ru_stime - cpu.ru_stime
source = np.load(sys.argv[2])
g = result.groups[result.groups["kind"] != "boilerplate"]
row = {p: i for i, p in enumerate(proj.pairs["pair_id"])}
label = np.arange(len(row)) + len(row)
label[g["pair_id"].map(row).to_numpy()] = g["group_id"].to_numpy()
copies = np.flatnonzero(source >= 0)
print(json.dumps({"n": len(row), "seconds": seconds, "cpu_seconds": cpu_seconds,
                  "peak_rss_gib": peak_rss_gib(),
                  "copy_recall": float(np.mean(label[copies] == label[source[copies]])),
                  "counts": result.counts, "timings": result.timings}))
"""


_SEARCH_CHILD = """
import json, statistics, sys, time
from mmcurate._util import peak_rss_gib
from mmcurate.project import open_project
proj = open_project(sys.argv[1])
t = time.perf_counter()
proj.index.image  # built once and saved under index/ (or loaded)
build = time.perf_counter() - t
ids = proj.pairs["pair_id"].tolist()
times = []
for i in range(int(sys.argv[2])):
    t = time.perf_counter()
    proj.search(pair_id=ids[(i * 7919) % len(ids)], k=50)
    times.append(time.perf_counter() - t)
print(json.dumps({"build_seconds": build, "median_query_seconds": statistics.median(times),
                  "max_query_seconds": max(times), "peak_rss_gib": peak_rss_gib()}))
"""


def _jitter(rng, v, cosine):
    e = rng.standard_normal(v.shape, dtype=np.float32)
    e -= (e * v).sum(1, keepdims=True) * v
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return cosine * v + np.sqrt(1 - cosine ** 2) * e


def write_folder(folder: Path, n: int, *, dim: int = 512, shard: int = 100_000, seed: int = 0) -> Path:
    """The folder and ``source.npy`` (the source row of each injected copy, -1 otherwise)."""
    from mmcurate._fileio import save_npy_atomic
    from mmcurate.synth import domain_pair_chunks

    source = np.full(n, -1, np.int64)
    boiler = np.random.default_rng(seed).standard_normal((20, dim), dtype=np.float32)
    boiler /= np.linalg.norm(boiler, axis=1, keepdims=True)
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i, (s, img, txt, _) in enumerate(domain_pair_chunks(n, dim, chunk=shard, seed=seed)):
        m = len(img)
        rng = np.random.default_rng(seed + 7 + s)
        captions = np.array([f"caption {j}" for j in range(s, s + m)], dtype=object)
        rows = rng.permutation(m)
        copy, src = rows[: m // 20], rows[m // 20 : m // 10]
        img[copy] = _jitter(rng, img[src], 0.97)
        same = rng.random(len(copy)) < 0.5
        txt[copy] = np.where(same[:, None], txt[src], _jitter(rng, txt[src], 0.98))
        captions[copy] = captions[src]
        source[s + copy] = s + src
        bp = rows[m // 10 : m // 10 + m // 100]
        which = rng.integers(0, 20, len(bp))
        txt[bp] = boiler[which]
        captions[bp] = [f"boilerplate caption {w}" for w in which]
        save_npy_atomic(folder / "img_emb" / f"img_emb_{i}.npy", img.astype(np.float16))
        save_npy_atomic(folder / "text_emb" / f"text_emb_{i}.npy", txt.astype(np.float16))
        pd.DataFrame({"key": [f"k{j}" for j in range(s, s + m)], "caption": captions}).to_parquet(
            folder / "metadata" / f"metadata_{i}.parquet", index=False)
    np.save(folder / "source.npy", source)
    return folder


def bench(n: int, data_dir: Path | None = None, runs: int = 1) -> dict:
    """``runs`` timings of ``compute_duplicates`` on one generated project (a fresh process each);
    the median run's figures, with ``all_seconds`` the wall time of each."""
    from mmcurate.project import create_project

    tmp = data_dir / str(n) if data_dir else Path(tempfile.mkdtemp(prefix=f"bench_duplicates_{n}_"))
    folder = tmp / "emb"
    t = time.perf_counter()
    if not (tmp / "proj" / "project.json").is_file():  # --data-dir: made once, reused
        write_folder(folder, n)
        create_project(tmp / "proj", embeddings=folder)
    prep = time.perf_counter() - t
    outs = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(tmp / "proj"), str(folder / "source.npy")],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  run {len(outs)} on {n:,} pairs: {outs[-1]['seconds']:.1f} s "
              f"(CPU {outs[-1]['cpu_seconds']:.1f} s), peak {outs[-1]['peak_rss_gib']:.2f} GiB", flush=True)
    out = sorted(outs, key=lambda o: o["seconds"])[(len(outs) - 1) // 2]
    out["all_seconds"] = [o["seconds"] for o in outs]
    out["peak_rss_gib"] = max(o["peak_rss_gib"] for o in outs)
    out["prepare_seconds"] = prep
    out["proj"] = str(tmp / "proj")
    return out


def search_bench(proj_dir: str, n_queries: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", _SEARCH_CHILD, proj_dir, str(n_queries)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep the generated projects here and reuse them in later runs")
    parser.add_argument("--queries", type=int, default=0,
                        help="also time this many proj.search(pair_id=...) queries on the largest size "
                             "(after building or loading its saved image index)")
    parser.add_argument("--runs", type=int, default=1, help="timed runs per size on the same data (median)")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        r = bench(n, args.data_dir, args.runs)
        rows.append(r)
        counts = ", ".join(f"{k} {v['groups']}" for k, v in r["counts"].items() if v["groups"])
        print(f"duplicates on {n:,} imported pairs: {r['seconds']:.1f} s (CPU {r['cpu_seconds']:.1f} s; "
              f"median of {len(r['all_seconds'])}: {' / '.join(f'{x:.1f}' for x in r['all_seconds'])} s), "
              f"peak {r['peak_rss_gib']:.2f} GiB, "
              f"copy recall {r['copy_recall']:.3f}; groups: {counts}; "
              f"(data + import {r['prepare_seconds']:.0f} s; {r['timings']})", flush=True)
    if args.queries:
        q = search_bench(rows[-1]["proj"], args.queries)
        print(f"search on {rows[-1]['n']:,} pairs: index built (or loaded) in {q['build_seconds']:.1f} s; "
              f"one pair_id query, k=50: median {q['median_query_seconds'] * 1000:.0f} ms, max "
              f"{q['max_query_seconds'] * 1000:.0f} ms ({args.queries} queries)", flush=True)
    if (line := cost_ratio_line(rows)) is not None:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
