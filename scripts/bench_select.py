"""Benchmark scoring and batch selection on synthetic 512-d pairs; prints its figures.

For each size (default 100,000 and 1,000,000 pairs, 20% of the captions swapped within their
super-category / domain; float16 ``.npy`` files memory-mapped) it runs, in a fresh process so peak
memory is per size. ``--data clip-gap`` (default) is shaped like CLIP: a modality gap (image and
caption cones whose means, of norm ~0.55, point apart; matched cosine ~0.25), 100 concepts in 10
super-categories, concept-dependent cosine levels (:func:`mmcurate.simulate.worlds.clip_gap_chunks`);
``--data domains`` is the earlier data without a gap (a caption is its image plus noise, 256
domains; :func:`mmcurate.synth.domain_pair_chunks`).

- each strategy family from a fresh ranking context, so each time includes the neighbour
  searches that family needs (above ``rank.APPROXIMATE_FROM`` = 20,000 pairs: 128-d projection +
  clustered search; ``disagreement``: two searches, its agreements from their neighbours);
- AUROC of ``disagreement`` and ``clip_score`` against the planted swaps (a sanity check that the
  approximate search keeps the signal);
- a 1,000-pair batch with cluster quotas and with core-set;
- peak RSS of the process;
- per cross-modal search of ``disagreement``: candidates compared per query, cell sizes (max,
  p99, mean), the largest query group and seconds per phase (cell assignment, reduced-space top-k,
  full-space re-scoring): :attr:`mmcurate.index.ClusteredIndex.stats`.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_select.py [--sizes 100000 1000000] \
        [--data clip-gap|domains]

(OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set on some machines here and slow numpy; the benchmark
may unset them in its own command. Never change them in tests or CI.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILIES = {
    "clip_score": ["clip_score"],
    "uncertainty (margin, entropy, least_confidence)": ["margin", "entropy", "least_confidence"],
    "disagreement": ["disagreement"],
    "density": ["density"],
    "committee (vote_entropy, kl_divergence)": ["vote_entropy", "kl_divergence"],
    "egl": ["egl"],
    "eer": ["eer"],
}


def make_data(folder: Path, n: int, dim: int = 512, seed: int = 0, rate: float = 0.2, data: str = "clip-gap"
              ) -> tuple[Path, Path, Path]:
    """``data``'s pairs (:func:`mmcurate.simulate.worlds.benchmark_pair_chunks`), ``rate`` of the
    captions swapped within their super-category or domain (hard negatives); float16 ``.npy`` + truth."""
    from mmcurate._fileio import NpyWriter
    from mmcurate.simulate.worlds import benchmark_pair_chunks

    noisy = np.zeros(n, bool)
    with NpyWriter(folder / "img.npy", (n, dim), np.float16) as wi, \
            NpyWriter(folder / "txt.npy", (n, dim), np.float16) as wt:
        for s, img, txt, is_noisy in benchmark_pair_chunks(data, n, dim, rate=rate, seed=seed):
            noisy[s : s + len(img)] = is_noisy
            wi.write(img.astype(np.float16))
            wt.write(txt.astype(np.float16))
    np.save(folder / "noisy.npy", noisy)
    return folder / "img.npy", folder / "txt.npy", folder / "noisy.npy"


def run_size(img_path: str, txt_path: str, noisy_path: str) -> dict:
    """Runs in a child process: per-family time from a fresh context, selection, peak RSS."""
    from mmcurate._util import peak_rss_gib
    from mmcurate.rank import STRATEGIES, RankContext, selection_vectors
    from mmcurate.select import select_cluster, select_coreset
    from mmcurate.signals import auroc

    img = np.load(img_path, mmap_mode="r")
    txt = np.load(txt_path, mmap_mode="r")
    noisy = np.load(noisy_path)
    out: dict = {"n": len(img)}
    scores = None
    for family, names in FAMILIES.items():
        # a fresh context per family: each pays for the neighbour searches it needs
        ctx = RankContext(img, txt, indices_labeled=[], labels=[], k=10, random_state=0)
        t = time.perf_counter()
        for name in names:
            s = STRATEGIES.get(name).evaluate(ctx)
            if name in ("disagreement", "clip_score"):
                out[f"AUROC {name} (same-domain swaps)"] = auroc(s, noisy)
            scores = s if name == "margin" else scores
        out[family] = time.perf_counter() - t
        if family == "disagreement":
            for query, database in (("image", "text"), ("text", "image")):
                stats = ctx._index(database).stats
                out.update({f"  {query}->{database} {key}": value for key, value in stats.items()
                            if key != "queries"})
        del ctx
    t = time.perf_counter()
    joint = selection_vectors(img, txt)
    out["selection vectors (joint, reduced)"] = time.perf_counter() - t
    for name, fn in (("select 1000 cluster", select_cluster), ("select 1000 coreset", select_coreset)):
        t = time.perf_counter()
        fn(scores, n=1000, embeddings=joint, random_state=0,
           **({"candidates": 50_000} if name.endswith("coreset") else {}))
        out[name] = time.perf_counter() - t
    out["peak RSS GiB"] = peak_rss_gib()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", choices=("clip-gap", "domains"), default="clip-gap")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_size(*args.child)))
        return 0
    rows = []
    for n in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix=f"bench_select_{n}_"))
        paths = make_data(folder, n, data=args.data)
        proc = subprocess.run([sys.executable, __file__, "--child", *map(str, paths)],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        shutil.rmtree(folder, ignore_errors=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"done {n:,}", file=sys.stderr, flush=True)
    keys = [k for k in rows[0] if k != "n"]
    header = f"data: {args.data}; seconds (peak memory in GiB)"
    print(f"{header:<48}" + "".join(f"{r['n']:>14,}" for r in rows))
    for key in keys:
        print(f"{key:<48}" + "".join(f"{r[key]:>14.2f}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
