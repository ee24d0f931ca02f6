"""Train the tiny stand-in model with several recipes one after another and print time and quality.

Usage: python scripts/bench_tiny_recipes.py [RECIPE ...]   (default: every recipe below)

Each line: the recipe, wall and CPU seconds, held-out image->text top-1/top-5 and swapped-caption
AUROC on 500 fresh scenes (:func:`mmcurate.embed.tiny.evaluate_tiny_clip`) and the load average
after it. Run old and new in the same invocation and read the times as relative: on a shared
machine they move with the other jobs. Models go to a temporary folder, never the cache.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from mmcurate.embed.tiny import evaluate_tiny_clip, train_tiny_clip

RECIPES = {
    "current_700x128_lr5e-4_pool16k": dict(steps=700, batch_size=128, lr=5e-4, warmup=100, pool_size=16000),
    "short_300x128_lr1e-3_pool8k": dict(steps=300, batch_size=128, lr=1e-3, warmup=30, pool_size=8000),
    "wide_220x192_lr1.5e-3_pool8k": dict(steps=220, batch_size=192, lr=1.5e-3, warmup=25, pool_size=8000),
}


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            recipe = RECIPES[name]
            start, cpu0 = time.perf_counter(), os.times()
            folder = train_tiny_clip(os.path.join(tmp, name), seed=0, progress=False, **recipe)
            wall, cpu1 = time.perf_counter() - start, os.times()
            m = evaluate_tiny_clip(folder)
            print(json.dumps({"recipe": name, **recipe, "wall_s": round(wall, 1),
                              "cpu_s": round(cpu1.user - cpu0.user + cpu1.system - cpu0.system, 1),
                              "top1": m["top1"], "top5": m["top5"], "swap_auroc": round(m["swap_auroc"], 4),
                              "load_after": round(os.getloadavg()[0], 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
