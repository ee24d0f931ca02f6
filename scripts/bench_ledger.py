"""Benchmark the labels ledger: a first import and a re-import of one decisions file; prints its figures.

Each run writes a CSV of ``--rows`` decisions (accept/reject with reviewer and timestamp), imports it
into an empty ledger (first import), then imports the same file again into the now populated ledger
(re-import: every row is looked up, none is new) and then a file that changes every decision
(changed: every row is looked up and appended). Prints the median seconds of ``--runs`` runs and the
ratios to the first import (linear imports keep them near 1; the target is <= 2).

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_ledger.py [--rows 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mmcurate.labels import Ledger


def write_decisions(path: Path, pair_ids: list[str], *, flip: bool) -> Path:
    """A decisions CSV with one row per pair (``flip`` swaps every accept/reject)."""
    choices = ("reject", "accept") if flip else ("accept", "reject")
    rows = "".join(f"{p},{choices[i % 2]},ana,2025-01-31T12:00:00Z\n" for i, p in enumerate(pair_ids))
    path.write_text("pair_id,decision,reviewer,timestamp\n" + rows, encoding="utf-8")
    return path


def one_run(folder: Path, n_rows: int) -> dict[str, float]:
    """Seconds of the first import, the re-import and the changed import into one fresh ledger."""
    pair_ids = [f"pair{i:08d}" for i in range(n_rows)]
    known = set(pair_ids)
    same = write_decisions(folder / "decisions.csv", pair_ids, flip=False)
    changed = write_decisions(folder / "changed.csv", pair_ids, flip=True)
    seconds = {}
    with Ledger(folder / "labels.sqlite") as ledger:
        for name, path in (("first", same), ("reimport", same), ("changed", changed)):
            start = time.perf_counter()
            ledger.import_decisions(path, known_pair_ids=known)
            seconds[name] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_ledger_") as tmp:
            runs.append(one_run(Path(tmp), args.rows))
    medians = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
    print(f"ledger import, {args.rows:,} rows, median of {args.runs} runs")
    for name, value in medians.items():
        print(f"  {name:>9}: {value:7.2f} s  ({value / medians['first']:.2f}x first import)")


if __name__ == "__main__":
    main()
