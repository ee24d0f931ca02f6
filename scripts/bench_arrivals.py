"""Benchmark scoring arrivals against the pool's saved state vs a full re-rank; prints its figures.

For each pool size: synthetic 512-d pairs (``--data clip-gap``, the default: a modality gap like
CLIP's, :func:`mmcurate.simulate.worlds.clip_gap_chunks`; ``--data domains``: no gap,
``synth.domain_pair_chunks``; 20% swapped within their super-category / domain, float16 like a
project's store), the pool's state built once
(:class:`mmcurate.engine.incremental.PoolScorer`), then ``--arrivals`` new pairs scored with
``disagreement`` incrementally and by a full :func:`mmcurate.rank.compute_ranking` over pool +
arrivals, side by side in one run. Prints seconds of each, their ratio (target < 0.20), the
agreement of the arrivals' scores (max |difference|, Pearson r), and the same agreement between two
full rankings with different seeds (the approximate search's own variance: the tolerance floor).

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_arrivals.py [--sizes 100000 1000000] \
        [--data clip-gap|domains]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mmcurate.engine.incremental import PoolScorer
from mmcurate.rank import compute_ranking
from mmcurate.simulate.worlds import BENCHMARK_DATA, benchmark_pair_chunks


def pairs(n: int, dim: int = 512, seed: int = 0, data: str = "clip-gap") -> tuple[np.ndarray, np.ndarray]:
    image = np.empty((n, dim), np.float16)
    text = np.empty((n, dim), np.float16)
    for start, img, txt, _ in benchmark_pair_chunks(data, n, dim, rate=0.2, seed=seed):
        image[start : start + len(img)], text[start : start + len(img)] = img, txt
    return image, text


def one_size(n_pool: int, n_arrivals: int, strategy: str, data: str) -> None:
    image, text = pairs(n_pool + n_arrivals, data=data)
    pool, new = slice(0, n_pool), slice(n_pool, None)
    with tempfile.TemporaryDirectory(prefix="bench_arrivals_") as tmp:
        start = time.perf_counter()
        scorer = PoolScorer(Path(tmp), image[pool], text[pool], fingerprint="bench", k=10)
        t_build = time.perf_counter() - start
        start = time.perf_counter()
        got = scorer.score(image[new], text[new], strategy=strategy)
        scorer.commit("bench+arrivals")
        t_incremental = time.perf_counter() - start
    start = time.perf_counter()
    full = compute_ranking(image, text, strategies=[strategy], k=10)["score"].to_numpy()[n_pool:]
    t_full = time.perf_counter() - start
    other = compute_ranking(image, text, strategies=[strategy], k=10,
                            random_state=1)["score"].to_numpy()[n_pool:]
    print(f"pool {n_pool:>9,} + {n_arrivals:,} arrivals ({strategy}): state built once {t_build:6.1f} s; "
          f"incremental {t_incremental:6.2f} s vs full ranking {t_full:6.1f} s = "
          f"{t_incremental / t_full:.1%} (target < 20%); scores max|diff| "
          f"{np.abs(got - full).max():.3f}, r = {np.corrcoef(got, full)[0, 1]:.3f}; "
          f"floor (full ranking, seed 1 vs 0): max|diff| {np.abs(other - full).max():.3f}, "
          f"r = {np.corrcoef(other, full)[0, 1]:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--arrivals", type=int, default=1000)
    parser.add_argument("--strategy", default="disagreement")
    parser.add_argument("--data", choices=BENCHMARK_DATA, default="clip-gap")
    args = parser.parse_args()
    for n in args.sizes:
        one_size(n, args.arrivals, args.strategy, args.data)


if __name__ == "__main__":
    main()
