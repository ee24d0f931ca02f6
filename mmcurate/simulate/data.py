"""Prepare a simulation's data once: a noisy dataset, its base project (embedded once) and the truth.

Three sources, one result (:class:`SimData`): ``OUT/data/base/`` (an mmcurate project holding the
noisy pairs and their vectors), ``OUT/data/truth.csv`` (``pair_id``, ``is_noisy``,
``caption_source``) kept outside every project, and ``OUT/data/data.json`` (how it was made).

- ``scenes=N``: generated scenes (:func:`mmcurate.demo.prepare_scene_dataset`) embedded with the
  tiny stand-in model (a toy, **not CLIP**).
- ``pairs=SOURCE``: any pair source :func:`mmcurate.data.load_pairs` reads; captions are swapped
  into a noisy CSV (ids kept) that is embedded with ``model``.
- ``embeddings=DIR``: a clip-retrieval folder; caption vectors and captions are swapped together
  into a noisy copy of the folder, which is imported (nothing is embedded).

Noise comes from :func:`mmcurate.noise.inject_noise` (``random`` or ``same_category`` swaps, a
permutation of the chosen pairs' captions; the latter needs a ``category`` column). Re-running with
the same parameters reuses the prepared data; ``data.json`` records ``noise_draw`` so that data made
by an older injection (donors drawn with replacement, before ``noise_draw`` existed) is refused,
not silently reused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_frame, atomic_write_json
from mmcurate.data import load_pairs
from mmcurate.demo import prepare_scene_dataset
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.tiny import get_tiny_clip
from mmcurate.exceptions import ProjectError
from mmcurate.noise import NOISE_KINDS, inject_noise
from mmcurate.project import create_project

__all__ = ["SimData", "normalize_noise_kind", "prepare_data"]

NOISE_DRAW = "permutation"
"""How :func:`mmcurate.noise.inject_noise` assigns donor captions (recorded in ``data.json``)."""


@dataclass(frozen=True)
class SimData:
    """A prepared simulation data set."""

    base: Path
    """The base project (noisy pairs + vectors); runs share its files and never write to it."""
    truth: pd.DataFrame
    """``pair_id``, ``is_noisy`` (bool), ``caption_source`` (row whose caption the pair carries)."""
    info: dict[str, Any]
    """``source``, ``noise``, ``noise_kind``, ``noise_draw``, ``data_seed`` and ``model``."""


def normalize_noise_kind(kind: str) -> str:
    """``random`` or ``same_category`` (``same-category`` accepted)."""
    norm = kind.strip().lower().replace("-", "_")
    if norm not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; expected random or same-category")
    return norm


def prepare_data(folder: str | Path, *, pairs: str | Path | None = None,
                 embeddings: str | Path | None = None, scenes: int | None = None,
                 model: ModelSpec | None = None, image_root: str | Path | None = None,
                 noise: float = 0.2, noise_kind: str = "random", data_seed: int = 0,
                 progress: bool = False) -> SimData:
    """Build (or reuse) the noisy data set under ``folder``; exactly one of pairs/embeddings/scenes.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        data = prepare_data("results/data", scenes=200, noise=0.2)
        data.truth["is_noisy"].mean()
        # 0.2
    """
    if sum(x is not None for x in (pairs, embeddings, scenes)) != 1:
        raise ValueError("give exactly one data source: pairs=, embeddings= or scenes=")
    folder = Path(folder)
    kind = normalize_noise_kind(noise_kind)
    info = {"source": _describe_source(pairs, embeddings, scenes), "noise": float(noise),
            "noise_kind": kind, "noise_draw": NOISE_DRAW, "data_seed": int(data_seed),
            "model": f"{model.model}|{model.pretrained}" if model and scenes is None else None}
    done = _reuse(folder, info)
    if done is not None:
        return done
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if scenes is not None:
        truth = _from_scenes(folder, int(scenes), noise, kind, data_seed, progress)
    elif pairs is not None:
        truth = _from_pairs(folder, Path(pairs), image_root, model, noise, kind, data_seed, progress)
    elif embeddings is not None:
        truth = _from_embeddings(folder, Path(embeddings), noise, kind, data_seed)
    atomic_write_frame(truth, folder / "truth.csv", fmt="csv")
    atomic_write_json(folder / "data.json", info)
    return SimData(base=folder / "base", truth=truth, info=info)


def _describe_source(pairs, embeddings, scenes) -> str:
    if scenes is not None:
        return f"scenes:{int(scenes)}"
    return f"pairs:{Path(pairs).resolve()}" if pairs is not None else \
        f"embeddings:{Path(embeddings).resolve()}"


def _reuse(folder: Path, info: dict[str, Any]) -> SimData | None:
    meta, truth = folder / "data.json", folder / "truth.csv"
    if not (meta.is_file() and truth.is_file()):
        return None
    old = json.loads(meta.read_text())
    if old != info:
        raise ProjectError(f"{folder} holds a data set made with {old}, not {info}; use another --out "
                           f"(or delete {folder}) to simulate on different data.")
    table = pd.read_csv(truth, dtype={"pair_id": str})
    return SimData(base=folder / "base", truth=table, info=old)


def _noise(n: int, noise: float, kind: str, categories, captions, data_seed: int):
    if kind == "same_category" and categories is None:
        raise ValueError("noise kind same-category needs a 'category' column in the pairs (or "
                         "metadata); add one or use --noise-kind random")
    return inject_noise(n, rate=noise, kind=kind, categories=categories, captions=captions,
                        random_state=data_seed)


def _truth(pair_ids, source, noisy) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": np.asarray(pair_ids).astype(str), "is_noisy": np.asarray(noisy, bool),
                         "caption_source": np.asarray(source, np.int64)})


def _from_scenes(folder: Path, n: int, noise: float, kind: str, data_seed: int, progress: bool):
    csv, truth_csv = prepare_scene_dataset(folder / "scenes", n=n, rate=noise, kind=kind,
                                           random_state=data_seed)
    spec = ModelSpec(f"local-dir:{get_tiny_clip(progress=progress)}", None)
    proj = create_project(folder / "base", pairs=csv, model=spec, progress=progress)
    proj.embed(progress=progress)
    t = pd.read_csv(truth_csv, dtype={"id": str})
    clean = pd.read_csv(folder / "scenes" / "pairs.csv")
    source, _ = _noise(len(clean), noise, kind, clean["category"], clean["caption"], data_seed)
    return _truth(t["id"], source, t["is_noisy"])


def _from_pairs(folder: Path, src: Path, image_root, model, noise, kind, data_seed, progress):
    root = Path(image_root) if image_root is not None else (src if src.is_dir() else src.parent)
    clean = load_pairs(src, image_root=root, progress=progress).pairs
    cats = clean["category"].to_numpy() if "category" in clean.columns else None
    source, noisy = _noise(len(clean), noise, kind, cats, clean["caption"], data_seed)
    table = clean.rename(columns={"pair_id": "id"})
    table["caption"] = clean["caption"].to_numpy()[source]
    atomic_write_frame(table, folder / "pairs_noisy.csv", fmt="csv")
    proj = create_project(folder / "base", pairs=folder / "pairs_noisy.csv", image_root=root,
                          model=model or ModelSpec(), progress=progress)
    proj.embed(progress=progress)
    kept = proj.pairs["pair_id"].astype(str)
    truth = _truth(clean["pair_id"], source, noisy)
    return truth.set_index("pair_id").loc[kept].reset_index()


def _from_embeddings(folder: Path, src: Path, noise, kind, data_seed):
    clean = create_project(folder / "clean", embeddings=src)
    pairs = clean.pairs
    cats = pairs["category"].to_numpy() if "category" in pairs.columns else None
    source, noisy = _noise(len(pairs), noise, kind, cats, pairs["caption"], data_seed)
    meta = pairs.drop(columns=["pair_id", "image"]).copy()
    meta.insert(0, "key", pairs["pair_id"].astype(str))
    if pairs["image"].astype(str).str.len().any():
        meta["image_path"] = pairs["image"].astype(str)
    meta["caption"] = pairs["caption"].to_numpy()[source]
    text = np.asarray(clean.text_embeddings())
    write_embedding_folder(folder / "noisy_embeddings", np.asarray(clean.image_embeddings()),
                           text[source], meta)
    del text
    shutil.rmtree(folder / "clean")
    create_project(folder / "base", embeddings=folder / "noisy_embeddings")
    return _truth(pairs["pair_id"], source, noisy)
