"""The tiny stand-in CLIP: a small open_clip model trained from scratch on generated scenes.

No pretrained CLIP weights exist on the project's machines (and nothing may download), so tests,
CI and the offline demo use this model through open_clip's ``local-dir:`` loader, exactly as a
user would load any local model. It knows only the generated domain (shapes, colours, counts,
positions, sizes): **it is not CLIP** and its figures describe that toy domain only.

Architecture: 64 px ViT (patch 16, width 192, 4 layers) + text transformer (3 layers, width 128,
context 32, open_clip's 49408-token BPE vocabulary), joint dimension 128; contrastive (InfoNCE)
training with AdamW, warm-up and cosine decay on a pool of pre-rendered scenes whose captions are
re-phrased every step. Deterministic for a seed on a given machine and thread count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmcurate._util import check_random_state
from mmcurate.embed.model import import_open_clip

__all__ = ["TINY_CFG", "evaluate_tiny_clip", "get_tiny_clip", "train_tiny_clip"]

VERSION = "v1"
TINY_CFG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 192, "patch_size": 16, "head_width": 64},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
PREPROCESS_CFG = {"size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                  "interpolation": "bicubic", "resize_mode": "shortest"}


def _bar(iterable=None, **kwargs):
    """A tqdm bar on stderr with ETA: live on a terminal, a line every 30 s in a log."""
    from tqdm import tqdm

    live = sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, mininterval=1.0 if live else 30.0, dynamic_ncols=live,
                **kwargs)


def _pool(n: int, seed: int, *, progress: bool = False):
    import torch

    from mmcurate.synth import generate_scenes, render_scene

    scenes = generate_scenes(n, random_state=seed)
    arr = np.stack([np.asarray(render_scene(s, size=64))
                    for s in _bar(scenes, desc="tiny model: rendering scenes", unit="scene",
                                  disable=not progress)])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
    return scenes, (x - 0.5) / 0.5


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))


def train_tiny_clip(out_dir: str | os.PathLike, *, seed: int = 0, steps: int | None = None,
                    batch_size: int = 128, lr: float = 5e-4, pool_size: int = 16000,
                    warmup: int | None = None, progress: bool = True) -> Path:
    """Train the tiny stand-in CLIP and write it in open_clip's ``local-dir:`` format.

    Returns ``out_dir``, holding ``open_clip_config.json`` and ``open_clip_model.safetensors``
    (written to a temporary folder first and moved into place, so a killed run leaves nothing).

    Examples
    --------
    >>> train_tiny_clip("models/tiny-clip", seed=0)  # doctest: +SKIP
    """
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from mmcurate.synth import describe_scene

    open_clip = import_open_clip()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps = steps or 700
    warmup = max(1, steps // 7) if warmup is None else int(warmup)
    model = open_clip.CLIP(**TINY_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CFG["text_cfg"]["context_length"])
    scenes, images = _pool(pool_size, seed, progress=progress)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    model.train()
    start = time.perf_counter()
    bar = _bar(total=steps, desc="tiny model: training", unit="step", disable=not progress)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup=warmup)
        idx = rng.choice(len(scenes), batch_size, replace=False)
        texts = tokenizer([describe_scene(scenes[i], random_state=rng) for i in idx])
        img_f, txt_f, scale = model(images[torch.from_numpy(idx)], texts)
        logits = scale * img_f @ txt_f.T
        target = torch.arange(batch_size)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        bar.update(1)
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return _write(model, Path(out_dir), {"seed": seed, "steps": steps, "batch_size": batch_size,
                                         "lr": lr, "pool_size": pool_size, "warmup": warmup,
                                         "seconds": round(time.perf_counter() - start, 1)}, save_file)


def _write(model, out: Path, training: dict, save_file) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    # a folder, so not the file helpers: built under a unique name and renamed into place whole
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        (tmp / "open_clip_config.json").write_text(json.dumps({
            "model_cfg": TINY_CFG, "preprocess_cfg": PREPROCESS_CFG,
            "mmcurate": {"note": "tiny stand-in model trained on generated scenes; NOT CLIP",
                         "version": VERSION, "training": training}}, indent=2))
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "open_clip_model.safetensors"))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _cache_root() -> Path:
    return Path(os.environ.get("MMCURATE_CACHE") or Path.home() / ".cache" / "mmcurate")


def get_tiny_clip(*, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                  progress: bool = True) -> Path:
    """The cached tiny model folder, trained once if missing (a file lock serialises trainers)."""
    root = Path(cache_dir) if cache_dir else _cache_root()
    folder = root / f"tiny-clip-{VERSION}-seed{seed}"
    if (folder / "open_clip_model.safetensors").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{folder.name}.lock", "a+") as fh, contextlib.ExitStack():
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        if not (folder / "open_clip_model.safetensors").is_file():
            train_tiny_clip(folder, seed=seed, progress=progress)
    return folder


def evaluate_tiny_clip(model_dir: str | os.PathLike, *, n: int = 500,
                       random_state: int = 12345) -> dict[str, float]:
    """Held-out image→text top-1/top-5 and swapped-caption AUROC on freshly generated scenes,
    loading the model through open_clip's ``local-dir:`` path as a user would."""
    import torch

    from mmcurate.embed.encoder import load_encoder
    from mmcurate.embed.model import ModelSpec
    from mmcurate.synth import describe_scene, generate_scenes, render_scene

    enc = load_encoder(ModelSpec(f"local-dir:{model_dir}", None))
    scenes = generate_scenes(n, random_state=random_state)
    img = enc.encode_images([render_scene(s, size=64) for s in scenes])
    txt = enc.encode_texts([describe_scene(s) for s in scenes])
    sims = img @ txt.T
    ranks = (sims > np.diag(sims)[:, None]).sum(1)
    perm = check_random_state(random_state).permutation(n)
    true, wrong = np.diag(sims), sims[np.arange(n), perm]
    wrong = wrong[perm != np.arange(n)]
    auroc = float((true[:, None] > wrong[None, :]).mean() + 0.5 * (true[:, None] == wrong[None, :]).mean())
    del torch
    return {"top1": float((ranks == 0).mean()), "top5": float((ranks < 5).mean()),
            "swap_auroc": auroc, "n": n}
