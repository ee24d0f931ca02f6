"""Build the pairs file of Debian's tuxpaint stamp photos: python scripts/make_tuxpaint_pairs.py --out FILE"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from mmcurate.data.tuxpaint import STAMPS_ROOT, build_tuxpaint_pairs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="datasets/tuxpaint/pairs.csv")
    parser.add_argument("--stamps-root", default=STAMPS_ROOT)
    args = parser.parse_args(argv)
    path = build_tuxpaint_pairs(args.out, stamps_root=args.stamps_root)
    df = pd.read_csv(path)
    print(f"wrote {len(df)} pairs in {df['category'].nunique()} categories to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
