"""A/B of the model's torch threads while decode workers run (issue 25 item 4).

``embed`` on CPU gives the model the cores its decode workers leave (:func:`mmcurate.embed.run.
model_threads`); before, it gave the model every core. This times both on the same camera-size
JPEGs (made by ``bench_embed.py --long``), alternating in one run, ViT-B-32 with random weights
(speed does not depend on the weight values; never downloads). Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE HF_HUB_OFFLINE=1 \
        python scripts/bench_embed_threads.py --n 256 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_embed as B

import mmcurate.embed.run as run
from mmcurate.project import create_project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="pairs (camera-size JPEGs)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="ViT-B-32")
    args = parser.parse_args()
    csv = B.long_jpegs(max(args.n, 1000), (3000, 2000))
    src = csv.parent / f"pairs-{args.n}.csv"
    pd.read_csv(csv).head(args.n).to_csv(src, index=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench_threads_"))
    spec = B._spec(args.model)
    template = create_project(tmp / "template", pairs=src, model=spec, progress=False)
    new_rule = run.model_threads
    workers = run.default_workers("cpu")
    rules = {"every core (before)": lambda *a, **k: os.cpu_count() or 1,
             "cores the workers leave (now)": new_rule}
    for r in range(args.rounds):
        for name, rule in rules.items():
            run.model_threads = rule
            res = B.lib_embed_run(template, tmp / "run", spec, 32, workers)
            print(f"round {r} {name}: steady {res['steady']:.2f} img/s, whole job {res['whole']:.2f} "
                  f"img/s, start-up {res['startup']:.1f} s, load {os.getloadavg()[0]:.1f}", flush=True)
    run.model_threads = new_rule


if __name__ == "__main__":
    main()
