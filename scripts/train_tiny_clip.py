"""Train mmcurate's tiny stand-in CLIP on generated scenes and print its held-out figures.

Usage: python scripts/train_tiny_clip.py --out DIR [--seed S] [--steps N]

The model is NOT CLIP: it knows only the generated scenes (shapes, colours, counts, positions).
"""

from __future__ import annotations

import argparse
import sys
import time

from mmcurate.embed.tiny import evaluate_tiny_clip, train_tiny_clip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    folder = train_tiny_clip(args.out, seed=args.seed, steps=args.steps)
    took = time.perf_counter() - start
    m = evaluate_tiny_clip(folder)
    print(f"trained in {took:.0f} s -> {folder}")
    print(f"held-out ({m['n']} fresh scenes): image->text top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f}, "
          f"swapped-caption AUROC {m['swap_auroc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
