"""The ``tiny_scenes`` benchmark world: generated scenes embedded with the tiny stand-in model.

Captions of ``noise`` of the pairs are wrong: a share ``attribute_share`` of them in exactly one
attribute (colour, shape, count or position: the scene re-described with that attribute changed and
the same phrasing), the rest swapped with another pair's caption (inside the same shape
(``category``) or at random). Image vectors are embedded once per ``(n, seed, model)`` and cached as
``.npy`` under ``cache_dir``; caption vectors are embedded per world (cheap). The tiny model is a
toy trained on these scenes, **not CLIP**: its space has its own gap and levels.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcurate._fileio import save_npy_atomic
from mmcurate._util import check_random_state
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.tiny import get_tiny_clip
from mmcurate.simulate.worlds import SWAP_KINDS, World, cycle_swaps
from mmcurate.synth import COLORS, POSITIONS, SHAPES, describe_scene, generate_scenes, render_scene

__all__ = ["ATTRIBUTES", "change_attribute", "tiny_scenes_world"]

ATTRIBUTES = ("color", "shape", "count", "position")


def change_attribute(scene, attribute: str, rng: np.random.Generator):
    """``scene`` with ``attribute`` set to a different value drawn from ``rng`` (same seed, so
    :func:`mmcurate.synth.describe_scene` keeps the phrasing)."""
    values: dict[str, tuple[Any, ...]] = {"color": tuple(COLORS), "shape": SHAPES, "count": (1, 2, 3),
                                          "position": POSITIONS}
    if attribute not in values:
        raise ValueError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}")
    others = [x for x in values[attribute] if x != getattr(scene, attribute)]
    return replace(scene, **{attribute: others[int(rng.integers(len(others)))]})


def _encoder(model_dir: str | os.PathLike | None):
    folder = Path(model_dir) if model_dir else get_tiny_clip(progress=False)
    return folder, load_encoder(ModelSpec(f"local-dir:{folder}", None), device="cpu")


def _image_vectors(scenes, encoder, model_dir: Path, seed: int, cache_dir: Path | None) -> np.ndarray:
    path = (cache_dir / f"scenes-img-{model_dir.name}-n{len(scenes)}-s{seed}.npy") if cache_dir else None
    if path is not None and path.is_file():
        return np.load(path)
    vectors = np.concatenate([encoder.encode_images([render_scene(s, size=64) for s in scenes[i:i + 500]])
                              for i in range(0, len(scenes), 500)]).astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_npy_atomic(path, vectors)
    return vectors


def tiny_scenes_world(n: int = 5000, *, noise: float = 0.2, kind: str = "same-category",
                      attribute_share: float = 0.5, random_state: int = 0,
                      model_dir: str | os.PathLike | None = None,
                      cache_dir: str | os.PathLike | None = None) -> World:
    """Scenes ``generate_scenes(n, random_state)`` embedded with the tiny model, captions wrong.

    ``kind`` (``same-category``: swaps inside the scene's shape, or ``random``) applies to the
    swapped share; ``truth.kind`` is ``attribute``, ``swap`` or ``clean``. ``model_dir`` defaults to
    :func:`mmcurate.embed.tiny.get_tiny_clip` (trained once under ``$MMCURATE_CACHE``).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        w = tiny_scenes_world(300, random_state=0)
        w.truth["kind"].value_counts().to_dict()
        # {'clean': 240, 'attribute': 30, 'swap': 30}
    """
    if kind not in SWAP_KINDS:
        raise ValueError(f"kind must be one of {SWAP_KINDS}, got {kind!r}")
    if not isinstance(random_state, (int, np.integer)):
        raise TypeError("tiny_scenes_world needs an int random_state (it keys the vector cache)")
    rng = check_random_state(int(random_state) + 7919)  # scenes use random_state itself
    scenes = generate_scenes(n, random_state=int(random_state))
    folder, encoder = _encoder(model_dir)
    image = _image_vectors(scenes, encoder, folder, int(random_state), Path(cache_dir) if cache_dir else None)
    captions = np.array([describe_scene(s) for s in scenes], dtype=object)
    category = np.array([s.shape for s in scenes], dtype=object)
    chosen = rng.permutation(rng.choice(n, size=round(noise * n), replace=False))
    n_attr = round(attribute_share * len(chosen))
    attr_rows, swap_rows = np.sort(chosen[:n_attr]), np.sort(chosen[n_attr:])
    which = rng.integers(len(ATTRIBUTES), size=len(attr_rows))
    for row, a in zip(attr_rows, which):
        captions[row] = describe_scene(change_attribute(scenes[row], ATTRIBUTES[a], rng))
    donors = cycle_swaps(swap_rows, category if kind == "same-category" else None, rng)
    captions[swap_rows] = captions[donors]
    text = np.concatenate([encoder.encode_texts(list(captions[i:i + 500]))
                           for i in range(0, n, 500)]).astype(np.float32)
    truth_kind = np.full(n, "clean", dtype=object)
    truth_kind[attr_rows], truth_kind[swap_rows] = "attribute", "swap"
    keys = [f"ts{i:06d}" for i in range(n)]
    changed = np.full(n, "", dtype=object)
    changed[attr_rows] = np.array(ATTRIBUTES, dtype=object)[which]
    truth = pd.DataFrame({"pair_id": keys, "noisy": (truth_kind != "clean").astype(np.int64),
                          "kind": truth_kind, "attribute": changed})
    meta = pd.DataFrame({"key": keys, "caption": captions, "category": category})
    return World(image, text, meta, truth,
                 {"family": "tiny_scenes", "n": n, "noise": noise, "kind": kind,
                  "attribute_share": attribute_share, "model": folder.name})

