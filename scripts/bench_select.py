"""Benchmark scoring and batch selection on synthetic 512-d pairs; prints its figures.

For each size (default 100,000 and 1,000,000 pairs; clustered image vectors, captions = image +
noise, 20% swapped; float16 ``.npy`` files memory-mapped) it runs, in a fresh process so peak
memory is per size:

- the neighbour searches the signals share (image→text, text→image, image→image, text→text,
  joint), timed together as "kNN";
- each strategy family on those shared arrays (timed separately from the kNN);
- a 1,000-pair batch with cluster quotas and with core-set;
- peak RSS of the process.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_select.py [--sizes 100000 1000000]

(OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set on some machines here and slow numpy; the benchmark
may unset them in its own command. Never change them in tests or CI.)
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

FAMILIES = {
    "uncertainty (margin, entropy, least_confidence)": ["margin", "entropy", "least_confidence"],
    "clip_score": ["clip_score"],
    "disagreement": ["disagreement"],
    "density": ["density"],
    "committee (vote_entropy, kl_divergence)": ["vote_entropy", "kl_divergence"],
    "egl": ["egl"],
    "eer": ["eer"],
}


def make_data(folder: Path, n: int, dim: int = 512, seed: int = 0) -> tuple[Path, Path]:
    from mmcurate._fileio import NpyWriter

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim), dtype=np.float32)
    swap = rng.permutation(n)
    with NpyWriter(folder / "img.npy", (n, dim), np.float16) as wi, \
            NpyWriter(folder / "txt.npy", (n, dim), np.float16) as wt:
        for s in range(0, n, 100_000):
            m = min(100_000, n - s)
            r = np.random.default_rng(seed + 1 + s)
            img = centres[r.integers(0, 256, m)] + r.standard_normal((m, dim), dtype=np.float32)
            txt = img + 1.2 * r.standard_normal((m, dim), dtype=np.float32)
            img /= np.linalg.norm(img, axis=1, keepdims=True)
            txt /= np.linalg.norm(txt, axis=1, keepdims=True)
            wi.write(img.astype(np.float16))
            wt.write(txt.astype(np.float16))
    del swap
    return folder / "img.npy", folder / "txt.npy"


def run_size(img_path: str, txt_path: str) -> dict:
    """Runs in a child process: timings + peak RSS for one size."""
    import resource

    from mmcurate.rank import RankContext
    from mmcurate.select import select_cluster, select_coreset
    from mmcurate.signals.registry import STRATEGIES

    img = np.load(img_path, mmap_mode="r")
    txt = np.load(txt_path, mmap_mode="r")
    out: dict = {"n": len(img)}
    ctx = RankContext(img, txt, indices_labeled=[], labels=[], k=10, random_state=0)
    t = time.perf_counter()
    _ = ctx.i2t, ctx.t2i, ctx.i2i, ctx.t2t, ctx.representativeness
    out["kNN (5 searches)"] = time.perf_counter() - t
    t = time.perf_counter()
    _ = ctx.features, ctx.proba, ctx.agree_v, ctx.agree_t
    out["features + calibrator + agreement"] = time.perf_counter() - t
    scores = None
    for family, names in FAMILIES.items():
        t = time.perf_counter()
        for name in names:
            s = STRATEGIES.get(name).score(ctx)
            scores = s if name == "margin" else scores
        out[family] = time.perf_counter() - t
    joint = np.asarray(img[:], np.float32)
    joint += np.asarray(txt[:], np.float32)
    joint /= np.linalg.norm(joint, axis=1, keepdims=True)
    for name, fn in (("select 1000 cluster", select_cluster), ("select 1000 coreset", select_coreset)):
        t = time.perf_counter()
        fn(scores, n=1000, embeddings=joint, random_state=0,
           **({"candidates": 50_000} if name.endswith("coreset") else {}))
        out[name] = time.perf_counter() - t
    out["peak RSS GiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_size(*args.child)))
        return 0
    rows = []
    for n in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"bench_select_{n}_"))
        img, txt = make_data(folder, n)
        proc = subprocess.run([sys.executable, __file__, "--child", str(img), str(txt)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done {n:,}", file=sys.stderr, flush=True)
    keys = [k for k in rows[0] if k != "n"]
    print(f"{'seconds (peak memory in GiB)':<48}" + "".join(f"{r['n']:>14,}" for r in rows))
    for key in keys:
        print(f"{key:<48}" + "".join(f"{r[key]:>14.2f}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
