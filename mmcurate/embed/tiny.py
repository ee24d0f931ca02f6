"""The tiny stand-in CLIP: a small open_clip model trained from scratch on generated scenes.

No pretrained CLIP weights exist on the project's machines (and nothing may download), so tests,
CI and the offline demo use this model through open_clip's ``local-dir:`` loader, exactly as a
user would load any local model. It knows only the generated domain (shapes, colours, counts,
positions, sizes): **it is not CLIP** and its figures describe that toy domain only.

Architecture: 64 px ViT (patch 16, width 192, 4 layers) + text transformer (3 layers, width 128,
context 32, open_clip's 49408-token BPE vocabulary), joint dimension 128; contrastive (InfoNCE)
training with AdamW (lr 5e-4, 400 steps of 128 pairs), warm-up and cosine decay on a pool of 16,000
pre-rendered scenes with four phrasings each, tokenised once; bfloat16 autocast where the CPU has
native bfloat16. Deterministic for a seed on a given machine and thread count.
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
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import TINY_VERSION, ModelSpec, _cache_root, import_open_clip, trained_tiny_clip
from mmcurate.synth import describe_scene, generate_scenes, render_scene

__all__ = ["TINY_CFG", "evaluate_tiny_clip", "get_tiny_clip", "train_tiny_clip", "trained_tiny_clip"]

TINY_CFG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 192, "patch_size": 16, "head_width": 64},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}
PREPROCESS_CFG = {"size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                  "interpolation": "bicubic", "resize_mode": "shortest"}


def _bar(iterable=None, **kwargs):
    """A tqdm bar on stderr with ETA: live on a terminal, a line every 30 s in a log."""
    from tqdm import tqdm  # heavy: tqdm

    live = sys.stderr.isatty()
    return tqdm(iterable, file=sys.stderr, mininterval=1.0 if live else 30.0, dynamic_ncols=live,
                **kwargs)


def _pool(n: int, seed: int, *, progress: bool = False):
    """``n`` generated scenes and their 64 px renderings as one uint8 tensor (n, 3, 64, 64)."""
    import torch  # heavy: torch

    scenes = generate_scenes(n, random_state=seed)
    arr = np.stack([np.asarray(render_scene(s, size=64))
                    for s in _bar(scenes, desc="tiny model: rendering scenes", unit="scene",
                                  disable=not progress)])
    return scenes, torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _captions(scenes, per_scene: int, rng: np.random.Generator, tokenizer):
    """``per_scene`` phrasings of every scene, tokenised once: local token ids (n, per_scene, L)
    into the sorted vocabulary actually used, that vocabulary, and each caption's EOT position."""
    import torch  # heavy: torch

    tokens = tokenizer([describe_scene(s, random_state=rng) for s in scenes for _ in range(per_scene)])
    eot = tokens.argmax(-1)  # open_clip pools the text at the EOT token, the largest id
    tokens = tokens[:, : int(eot.max()) + 1].contiguous()
    vocab = torch.unique(tokens)
    local = torch.searchsorted(vocab, tokens)
    return local.view(len(scenes), per_scene, -1), vocab, eot.view(len(scenes), per_scene)


def _fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere it would be
    emulated and slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))


def _contrastive_step(model, opt, logits):
    """One optimiser step on the symmetric InfoNCE loss of a batch's image x caption ``logits``
    (pair i on the diagonal), the logit scale clamped to CLIP's 100; returns the loss."""
    import torch  # heavy: torch
    import torch.nn.functional as F  # heavy: torch

    target = torch.arange(len(logits))
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, np.log(100))
    return loss


def _encode_text(model, embedding, local, eot):
    """open_clip's ``CLIP.encode_text`` on captions cut after their longest EOT and embedded from
    the compact vocabulary table: the same features (the causal mask keeps padding out of them)."""
    import torch  # heavy: torch
    import torch.nn.functional as F  # heavy: torch

    n = local.shape[1]
    x = F.embedding(local, embedding) + model.positional_embedding[:n]
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    return x[torch.arange(len(x)), eot] @ model.text_projection


def train_tiny_clip(out_dir: str | os.PathLike, *, seed: int = 0, steps: int | None = None,
                    batch_size: int = 128, lr: float = 5e-4, pool_size: int = 16000,
                    warmup: int | None = None, captions_per_scene: int = 4,
                    bf16: bool | None = None,
                    progress: bool = True) -> Path:
    """Train the tiny stand-in CLIP and write it in open_clip's ``local-dir:`` format.

    The recipe: ``steps`` (default 400) AdamW steps of ``batch_size`` random pairs from a pool of
    ``pool_size`` rendered scenes, each with ``captions_per_scene`` phrasings tokenised once;
    linear warm-up over ``warmup`` steps (default ``steps // 7``), then cosine decay.
    ``bf16=None`` trains under bfloat16 autocast where the CPU has native bfloat16 (float32
    elsewhere). The text tower runs on captions cut after their longest EOT (the same features as
    the full context) and only the token rows the captions use are trained; the other rows get no
    gradient either way and are left as initialised (no weight decay on them).

    Returns ``out_dir``, holding ``open_clip_config.json`` and ``open_clip_model.safetensors``
    (written to a temporary folder first and moved into place, so a killed run leaves nothing).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        train_tiny_clip("models/tiny-clip", seed=0)
    """
    import torch  # heavy: torch
    import torch.nn.functional as F  # heavy: torch
    from safetensors.torch import save_file  # heavy: safetensors

    open_clip = import_open_clip()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    steps = steps or 400
    warmup = max(1, steps // 7) if warmup is None else int(warmup)
    bf16 = _fast_bf16() if bf16 is None else bool(bf16)
    model = open_clip.CLIP(**TINY_CFG)
    tokenizer = open_clip.SimpleTokenizer(context_length=TINY_CFG["text_cfg"]["context_length"])
    scenes, images = _pool(pool_size, seed, progress=progress)
    local, vocab, eot = _captions(scenes, captions_per_scene, rng, tokenizer)
    # Train only the vocabulary rows the captions use (66 of 49,408): the other rows get no
    # gradient and stay as initialised, and AdamW skips millions of untouched parameters a step.
    table = model.token_embedding.weight
    embedding = torch.nn.Parameter(table.detach()[vocab].clone())
    params = [embedding] + [p for p in model.parameters() if p is not table]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    model.train()
    start = time.perf_counter()
    bar = _bar(total=steps, desc="tiny model: training", unit="step", disable=not progress)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup=warmup)
        idx = torch.from_numpy(rng.choice(len(scenes), batch_size, replace=False))
        variant = torch.from_numpy(rng.integers(captions_per_scene, size=batch_size))
        pos = eot[idx, variant]
        text = local[idx, variant, : int(pos.max()) + 1]
        pixels = images[idx].float().div_(127.5).sub_(1.0)  # the (x - 0.5) / 0.5 of PREPROCESS_CFG
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            img_f = model.encode_image(pixels)
            txt_f = _encode_text(model, embedding, text, pos)
        img_f, txt_f = F.normalize(img_f.float(), dim=-1), F.normalize(txt_f.float(), dim=-1)
        loss = _contrastive_step(model, opt, model.logit_scale.exp() * img_f @ txt_f.T)
        bar.update(1)
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    with torch.no_grad():
        table[vocab] = embedding
    return _write(model, Path(out_dir), {
        "seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "pool_size": pool_size,
        "warmup": warmup, "captions_per_scene": captions_per_scene,
        "bf16": bf16, "threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - start, 1)}, save_file)


def _write(model, out: Path, training: dict, save_file) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    # a folder, so not the file helpers: built under a unique name and renamed into place whole
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        (tmp / "open_clip_config.json").write_text(json.dumps({
            "model_cfg": TINY_CFG, "preprocess_cfg": PREPROCESS_CFG,
            "mmcurate": {"note": "tiny stand-in model trained on generated scenes; NOT CLIP",
                         "version": TINY_VERSION, "training": training}}, indent=2))
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "open_clip_model.safetensors"))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def get_tiny_clip(*, cache_dir: str | os.PathLike | None = None, seed: int = 0,
                  progress: bool = True) -> Path:
    """The cached tiny model folder, trained once if missing (a file lock serialises trainers in
    the same cache). The cache is ``cache_dir`` if given, else :func:`_cache_root`."""
    root = Path(cache_dir) if cache_dir else _cache_root()
    folder = root / f"tiny-clip-{TINY_VERSION}-seed{seed}"
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
    import torch  # heavy: torch

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
