"""Benchmark the export's clean-pairs floor (:func:`mmcurate.learn.clean_floor`) on a large pool.

A synthetic pool of ``--n`` pairs after ``--rounds`` rounds, each with a queue of 800 and
``--draws`` random draws; prints the median time of ``--runs`` calls and the threshold it chose.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_clean_floor.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mmcurate.learn import clean_floor


def pool(n: int, rounds: int, draws: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """P(aligned), undecided, clean, shown and queued rounds, and the draws (rows, round, π)."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(n), 6)
    shown, queued = np.full(n, np.inf), np.full(n, np.inf)
    order = rng.permutation(n)
    queue = 800
    if rounds * (queue + draws) >= n:
        raise SystemExit(f"--n {n} is too small for {rounds} rounds of {queue + draws} pairs")
    rows, drawn_in = [], []
    for r in range(rounds):
        start = r * (queue + draws)
        queued[order[start:start + queue]] = shown[order[start:start + queue]] = r + 1
        picked = order[start + queue:start + queue + draws]
        shown[picked] = r + 1
        rows.append(picked)
        drawn_in.append(np.full(draws, r + 1))
    undecided = np.isinf(shown)
    clean = (rng.random(n) < p).astype(float)
    inclusion = np.full(rounds * draws, draws / undecided.sum())
    return p, undecided, clean, shown, queued, np.concatenate(rows), np.concatenate(drawn_in), inclusion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    data = pool(args.n, args.rounds, args.draws)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        out = clean_floor(*data)
        times.append(time.perf_counter() - start)
    print(f"clean_floor: {args.n:,} pairs, {args.rounds} rounds of {args.draws} draws: "
          f"median {float(np.median(times)):.2f} s over {args.runs} runs "
          f"(threshold {out['threshold']:.4f}, est. clean kept {out['est_clean_kept']:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
