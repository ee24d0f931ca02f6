"""Benchmark the projection head: training time on 5,000 labels (N = 20,000, D = 512); prints it.

Usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_head.py
"""

from __future__ import annotations

import sys
import time

import numpy as np

from mmcurate.head import HeadConfig, train_head


def main() -> int:
    rng = np.random.default_rng(0)
    n, d = 20_000, 512
    image = rng.normal(size=(n, d)).astype(np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text = image + 0.5 / np.sqrt(d) * rng.normal(size=(n, d)).astype(np.float32)
    swapped = rng.choice(n, n // 5, replace=False)
    text[swapped] = text[np.roll(swapped, 1)]
    labelled = rng.choice(n, 5000, replace=False)
    bad = np.isin(labelled, swapped)
    for folds in (0, 5):
        start = time.perf_counter()
        _, m = train_head(image.astype(np.float16), text.astype(np.float16), positives=labelled[~bad],
                          negatives=labelled[bad], config=HeadConfig(n_folds=folds))
        print(f"5,000 labels, N={n:,}, D={d}, {folds}-fold CV: fit {m['train_seconds']:.1f} s, "
              f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
