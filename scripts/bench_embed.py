"""Benchmark the embedding stage; prints its figures.

1. End-to-end pairs/s of the project embed path (``Project.embed``: decode + resize in DataLoader
   workers, tokenize, forward, write float16 shards) versus raw model forward throughput on
   pre-decoded, pre-tokenized tensors, same model and batch size, measured side by side in one run;
   their ratio (target >= 0.85: the data pipeline must not be the bottleneck).
   Model: ViT-B-32 with random weights by default (no pretrained weights exist on CI machines; speed
   does not depend on the weight values).
2. Import of a 1,000,000-pair, 512-d float16 clip-retrieval folder: time and peak memory of the
   importing process (targets: under 60 s, under 2 GiB).

Usage::

    python scripts/bench_embed.py [--model ViT-B-32] [--n-images 256] [--n-import 1000000]

OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set on some machines here and slow numpy; to measure
without them run ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_embed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _images(folder: Path, n: int) -> tuple[Path, Path]:
    """Real photos when the tuxpaint set is installed, else generated 256-px scenes."""
    from mmcurate.synth import write_scene_dataset

    stamps = Path("/usr/share/tuxpaint/stamps")
    if stamps.is_dir():
        from mmcurate.data.tuxpaint import build_tuxpaint_pairs

        csv = build_tuxpaint_pairs(folder / "tux.csv", stamps_root=stamps)
        df = pd.read_csv(csv).head(n)
        df.to_csv(folder / "pairs.csv", index=False)
        return folder / "pairs.csv", stamps
    csv = write_scene_dataset(folder / "scenes", n, random_state=0, size=256)
    return csv, csv.parent


def bench_forward_vs_pipeline(model: str, n: int, batch_size: int, workers: int | None) -> dict:
    import torch

    from mmcurate.data import open_image
    from mmcurate.embed.encoder import load_encoder, set_torch_threads
    from mmcurate.embed.model import ModelSpec
    from mmcurate.project import create_project

    tmp = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    csv, root = _images(tmp, n)
    proj = create_project(tmp / "proj", pairs=csv, image_root=root, model=ModelSpec(model, None),
                          progress=False)
    n = len(proj.pairs)
    set_torch_threads()
    enc = load_encoder(ModelSpec(model, None), allow_random=True)
    # raw forward on pre-decoded tensors (decode excluded), same batches
    images = torch.stack([enc.preprocess(open_image(r, image_root=root)) for r in proj.pairs["image"]])
    tokens = enc.tokenizer(proj.pairs["caption"].tolist())
    enc.encode_image_tensors(images[:batch_size])  # warm-up
    enc.encode_token_tensors(tokens[:batch_size])
    start = time.perf_counter()
    for s in range(0, n, batch_size):
        enc.encode_image_tensors(images[s : s + batch_size])
        enc.encode_token_tensors(tokens[s : s + batch_size])
    raw = n / (time.perf_counter() - start)
    del enc, images
    report = proj.embed(batch_size=batch_size, num_workers=workers, progress=False, allow_random=True)
    e2e = report.n_embedded / report.seconds
    return {"model": model, "pairs": n, "batch_size": batch_size, "raw_forward_pairs_per_s": raw,
            "end_to_end_pairs_per_s": e2e, "ratio": e2e / raw}


_IMPORT_CHILD = """
import resource, sys, time, json
from mmcurate.embed.importer import import_embedding_folder
from mmcurate.embed.store import EmbeddingStore
start = time.perf_counter()
res = import_embedding_folder(sys.argv[1], EmbeddingStore(sys.argv[2]))
print(json.dumps({"pairs": len(res.pairs), "seconds": time.perf_counter() - start,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def bench_import(n: int, dim: int = 512, shard: int = 100_000) -> dict:
    from mmcurate.embed.importer import write_embedding_folder

    tmp = Path(tempfile.mkdtemp(prefix="bench_import_"))
    folder = tmp / "emb"
    rng = np.random.default_rng(0)
    for s in range(0, n, shard):
        m = min(shard, n - s)
        img = rng.standard_normal((m, dim), dtype=np.float32).astype(np.float16)
        meta = pd.DataFrame({"key": [f"k{i}" for i in range(s, s + m)],
                             "caption": [f"caption number {i}" for i in range(s, s + m)]})
        part = write_embedding_folder(tmp / f"part{s}", img, img, meta, shard_size=m)
        for sub, name in (("img_emb", "img_emb"), ("text_emb", "text_emb"), ("metadata", "metadata")):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            ext = "parquet" if sub == "metadata" else "npy"
            os.replace(part / sub / f"{name}_0.{ext}", folder / sub / f"{name}_{s // shard}.{ext}")
    proc = subprocess.run([sys.executable, "-c", _IMPORT_CHILD, str(folder), str(tmp / "store")],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--n-import", type=int, default=1_000_000)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args(argv)
    print(f"cores: {os.cpu_count()}  OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    if not args.skip_embed:
        r = bench_forward_vs_pipeline(args.model, args.n_images, args.batch_size, args.workers)
        print(f"embed  {r['model']} random weights, {r['pairs']} pairs, batch {r['batch_size']}: "
              f"raw forward {r['raw_forward_pairs_per_s']:.2f} pairs/s, end-to-end "
              f"{r['end_to_end_pairs_per_s']:.2f} pairs/s, ratio {r['ratio']:.3f} (target >= 0.85)")
    if not args.skip_import:
        r = bench_import(args.n_import)
        print(f"import {r['pairs']:,} pairs x 512-d float16: {r['seconds']:.1f} s (target < 60 s), "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB (target < 2 GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
