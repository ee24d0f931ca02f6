"""Write a clean synthetic clip-retrieval folder for `mmcurate simulate --embeddings`.

Vectors from :func:`mmcurate.synth.domain_shift_embeddings` with no swaps (``rate=0``): image
vectors clustered by domain, caption vectors = image + domain-dependent noise, so the aligned
cosine level differs across domains as CLIP scores do. The domain is written as the ``category``
column (for ``--noise-kind same-category``). A stand-in for real embeddings: label figures made
with it so.

Usage: python scripts/make_domain_shift_folder.py OUT [--n 3000] [--dim 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.synth import domain_shift_embeddings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    image, text, _, domain = domain_shift_embeddings(args.n, args.dim, rate=0.0, random_state=args.seed)
    meta = pd.DataFrame({"key": [f"k{i:07d}" for i in range(args.n)],
                         "caption": [f"synthetic caption {i}" for i in range(args.n)],
                         "category": [f"domain{d:02d}" for d in domain]})
    print(write_embedding_folder(args.out, image, text, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
