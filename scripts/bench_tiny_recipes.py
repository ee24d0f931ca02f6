"""Train the tiny stand-in model with several recipes one after another and print time and quality.

Usage: python scripts/bench_tiny_recipes.py [--seed S] [RECIPE ...]   (default: every recipe below)

The ``v1_*`` recipes run a frozen copy of the first training loop (:func:`_train_v1`: captions
re-phrased and tokenised every step, full 32-token context, float32, the whole 49,408-row token
table in AdamW, random batches), so the old default can be timed beside the new one.

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
from pathlib import Path

import numpy as np

from mmcurate.embed.tiny import (
    TINY_CFG,
    _bar,
    _contrastive_step,
    _lr,
    _write,
    evaluate_tiny_clip,
    train_tiny_clip,
)

RECIPES = {
    # the first default (VERSION v1): 700 x 128, lr 5e-4, pool 16k, random batches
    "v1_700x128_lr5e-4_pool16k": dict(v1=True, steps=700, batch_size=128, lr=5e-4, warmup=100,
                                      pool_size=16000),
    "v1_300x128_lr1e-3_pool8k": dict(v1=True, steps=300, batch_size=128, lr=1e-3, warmup=30, pool_size=8000),
    "v1_220x192_lr1.5e-3_pool8k": dict(v1=True, steps=220, batch_size=192, lr=1.5e-3, warmup=25,
                                       pool_size=8000),
    # the v2 loop (captions tokenised once, trimmed context, compact vocabulary, bf16 where native)
    "v2_default_400x128_lr5e-4_pool16k": dict(),
    "v2_300x128_lr5e-4_pool16k": dict(steps=300),
    "v2_400x128_lr5e-4_pool16k_fp32": dict(bf16=False),
    "v2_400x128_lr1e-3_pool8k": dict(lr=1e-3, pool_size=8000),
}


def _train_v1(out_dir, *, seed=0, steps=700, batch_size=128, lr=5e-4, pool_size=16000, warmup=100,
              progress=False):
    """The first training loop, unchanged, for side-by-side timing (VERSION v1 of tiny.py)."""
    import torch
    from safetensors.torch import save_file

    from mmcurate.embed.model import import_open_clip
    from mmcurate.synth import describe_scene, generate_scenes, render_scene

    open_clip = import_open_clip()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = open_clip.CLIP(**TINY_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CFG["text_cfg"]["context_length"])
    scenes = generate_scenes(pool_size, random_state=seed)
    arr = np.stack([np.asarray(render_scene(s, size=64)) for s in scenes])
    images = (torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0) - 0.5) / 0.5
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    model.train()
    start = time.perf_counter()
    for step in _bar(range(steps), desc="v1 training", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup=warmup)
        idx = rng.choice(len(scenes), batch_size, replace=False)
        texts = tokenizer([describe_scene(scenes[i], random_state=rng) for i in idx])
        img_f, txt_f, scale = model(images[torch.from_numpy(idx)], texts)
        _contrastive_step(model, opt, scale * img_f @ txt_f.T)
    return _write(model, Path(out_dir), {"v1": True, "seed": seed, "steps": steps,
                                         "seconds": round(time.perf_counter() - start, 1)}, save_file)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    seed = 0
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    names = args or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            recipe = dict(RECIPES[name])
            train = _train_v1 if recipe.pop("v1", False) else train_tiny_clip
            start, cpu0 = time.perf_counter(), os.times()
            folder = train(os.path.join(tmp, name), seed=seed, progress=False, **recipe)
            wall, cpu1 = time.perf_counter() - start, os.times()
            m = evaluate_tiny_clip(folder)
            print(json.dumps({"recipe": name, "seed": seed, **recipe, "wall_s": round(wall, 1),
                              "cpu_s": round(cpu1.user - cpu0.user + cpu1.system - cpu0.system, 1),
                              "top1": m["top1"], "top5": m["top5"], "swap_auroc": round(m["swap_auroc"], 4),
                              "load_after": round(os.getloadavg()[0], 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
