"""Benchmark worlds: three independent generators of noisy image–caption embedding folders.

Each generator is a pure function of its options and ``random_state`` and returns a :class:`World`
(vectors, metadata, truth); :func:`write_world` writes it as a clip-retrieval folder that
``mmcurate init PROJECT --embeddings DIR`` imports, plus ``truth.csv`` (``pair_id``, ``noisy`` 0/1,
``kind``) and ``world.json`` (how it was made). The truth is never part of the imported metadata.

- :func:`clip_gap_world` — a CLIP-like space with a modality gap (image and caption vectors in two
  cones whose mean directions, of norm ~0.55, point apart; matched cosine ~0.2–0.3 as in Liang et
  al. 2022, "Mind the Gap"), concepts grouped in super-categories, concept-dependent cosine levels
  and spreads. Noise: a share of captions swapped inside the super-category or at random.
- :func:`mixed_world` — compositional pairs (object + attribute), image vector = sum of component
  vectors in the image cone, caption vector = their text-cone counterparts. Noise is a mix: swapped,
  boilerplate (a few fixed captions such as "image"), half right (one component wrong), plus
  near-duplicate copies of other pairs.
- :mod:`mmcurate.simulate.scenes_world` — the tiny stand-in model on generated scenes, with captions
  wrong in one attribute or swapped (it needs torch, so it lives apart).

numpy only (pandas for the tables). The worlds are stand-ins for real embeddings, not CLIP.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate._fileio import atomic_write_frame, atomic_write_json
from mmcurate._util import check_random_state
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.synth import domain_pair_chunks

__all__ = [
    "BENCHMARK_DATA",
    "BOILERPLATE",
    "HARD_CLIP_GAP",
    "SWAP_KINDS",
    "World",
    "benchmark_pair_chunks",
    "clip_gap_chunks",
    "clip_gap_world",
    "cycle_swaps",
    "mixed_world",
    "modality_gap",
    "write_world",
]

SWAP_KINDS = ("same-category", "random")
BOILERPLATE = ("image", "click to enlarge", "photo", "untitled", "stock photo")
_GAP_NORM = 0.55  # norm of each modality's mean direction (Liang et al. 2022: ~0.5-0.6 for CLIP)
_GAP_COS = -0.1   # cosine between the two modality mean directions ("pointing apart")


@dataclass
class World:
    """A generated data set: ``image`` / ``text`` ``(N, D)`` unit rows, metadata, truth."""

    image: npt.NDArray[np.float32]
    text: npt.NDArray[np.float32]
    metadata: pd.DataFrame
    """``key`` (the pair id), ``caption``, ``category``."""
    truth: pd.DataFrame
    """``pair_id``, ``noisy`` (0/1), ``kind`` (clean, swap, attribute, boilerplate, half_right, duplicate)."""
    info: dict[str, Any] = field(default_factory=dict)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _gap_directions(rng: np.random.Generator, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit mean directions of the image and caption cones, with cosine ``_GAP_COS``."""
    u = _unit(rng.normal(size=dim))
    w = rng.normal(size=dim)
    w = _unit(w - (w @ u) * u)
    return u, _GAP_COS * u + np.sqrt(1 - _GAP_COS**2) * w


def _embed(direction: np.ndarray, content: np.ndarray, content_share: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Unit rows ``a·direction + b·content + c·noise`` with ``a = _GAP_NORM``, ``b² = content_share``.

    ``content`` rows are unit vectors (the pair's meaning), ``noise`` is private to the row, so a
    matched image–caption cosine is about ``a²·cos(dirs) + b²`` (+ the contents' own agreement).
    """
    n, dim = content.shape
    share = np.clip(np.asarray(content_share, float), 0.0, 1 - _GAP_NORM**2)[:, None]
    rest = np.sqrt(np.maximum(1 - _GAP_NORM**2 - share, 0.0))
    noise = _unit(rng.normal(size=(n, dim)))
    noise = _unit(noise - (noise @ direction)[:, None] * direction)
    return _unit(_GAP_NORM * direction + np.sqrt(share) * content + rest * noise).astype(np.float32)


def cycle_swaps(chosen: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Donor row for each chosen row: a shuffled cycle inside each group (all chosen rows if
    ``groups`` is None), so every donor gives its caption once and nobody keeps their own.
    Groups with a single chosen row join the next group's cycle (a cross-group swap)."""
    chosen = np.asarray(chosen, np.int64)
    donors = np.empty(0, np.int64)
    if groups is None:
        cycles = [rng.permutation(chosen)]
    else:
        cycles, carry = [], np.empty(0, np.int64)
        for g in np.unique(groups[chosen]):
            members = np.concatenate([carry, rng.permutation(chosen[groups[chosen] == g])])
            if len(members) < 2:
                carry = members
                continue
            cycles.append(members)
            carry = np.empty(0, np.int64)
        if len(carry):
            cycles[-1] = np.concatenate([cycles[-1], carry]) if cycles else carry
    out = np.empty(len(chosen), np.int64)
    where = {int(r): i for i, r in enumerate(chosen)}
    for cyc in cycles:
        donors = np.roll(cyc, -1)
        for row, donor in zip(cyc, donors):
            out[where[int(row)]] = donor
    return out


def _choose(n: int, share: float, rng: np.random.Generator, *, among: np.ndarray | None = None) -> np.ndarray:
    pool = np.arange(n) if among is None else among
    return np.sort(rng.choice(pool, size=round(share * n), replace=False))


def _truth_frame(keys: list[str], kind: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": keys, "noisy": (kind != "clean").astype(np.int64), "kind": kind})


HARD_CLIP_GAP = {"super_share": 0.85, "levels": (0.05, 0.35)}
"""Options of :func:`clip_gap_world` for its hard setting (``clip_hard`` in the learning benchmark):
concepts of one super-category closer together (cosine ~0.72 between their centres instead of
~0.36) and matched cosine levels that differ more by concept. The zero-label prior ranks its
same-category swaps at AUROC ~0.84-0.94 (the easy setting: ~0.98), near the folders issue 22 was
filed on, and labels can teach a ranking something: the greedy reference gains +0.04-0.08 there
by the last round of the learning benchmark (random swaps +0.01-0.03)."""


@dataclass(frozen=True)
class _GapSpace:
    """The fixed parts of a :func:`clip_gap_world`: cone directions, concepts and their levels."""

    image_direction: np.ndarray
    text_direction: np.ndarray
    concept_super: np.ndarray
    centres: np.ndarray
    level: np.ndarray
    tightness: np.ndarray


def _clip_gap_space(rng: np.random.Generator, dim: int, n_concepts: int, n_super: int, *,
                    super_share: float = 0.6, levels: tuple[float, float] = (0.15, 0.45)) -> _GapSpace:
    u, v = _gap_directions(rng, dim)
    supers = _unit(rng.normal(size=(n_super, dim)))
    concept_super = rng.integers(n_super, size=n_concepts)
    own = np.sqrt(max(1.0 - super_share**2, 0.0))
    centres = _unit(super_share * supers[concept_super] + own * _unit(rng.normal(size=(n_concepts, dim))))
    level = rng.uniform(levels[0], levels[1], n_concepts)  # concept-dependent matched cosine level
    tightness = rng.uniform(0.3, 0.8, n_concepts)    # how close a concept's pairs sit together
    return _GapSpace(u, v, concept_super, centres, level, tightness)


def _clip_gap_rows(space: _GapSpace, concept: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Matched image and caption rows ``(n, D)`` float32 of pairs of the given concepts."""
    private = _unit(rng.normal(size=(len(concept), space.centres.shape[1])))
    t = space.tightness[concept][:, None]
    meaning = _unit(np.sqrt(t) * space.centres[concept] + np.sqrt(1 - t) * private)
    return (_embed(space.image_direction, meaning, space.level[concept], rng),
            _embed(space.text_direction, meaning, space.level[concept], rng))


def clip_gap_world(n: int = 5000, *, dim: int = 256, n_concepts: int = 60, n_super: int = 10,
                   noise: float = 0.2, kind: str = "same-category", super_share: float = 0.6,
                   levels: tuple[float, float] = (0.15, 0.45),
                   random_state: int | np.random.Generator | None = 0) -> World:
    """A CLIP-like space with a modality gap and concept-dependent cosine levels.

    Each concept belongs to one of ``n_super`` super-categories (its centre = ``super_share`` ·
    super-category direction + √(1 − super_share²) · its own); a pair's meaning is its concept
    centre mixed with a private direction, the mix (``tightness`` 0.3–0.8) set per concept. Image
    and caption vectors put ``_GAP_NORM`` on their modality's direction and a per-concept share
    ``b²`` (uniform in ``levels``) on the meaning, so matched cosines sit near 0.2–0.3 on average
    (the default levels) and differ by concept. ``noise`` of the captions (with their vectors)
    are swapped as cycles inside the super-category
    (``kind="same-category"``) or across all chosen pairs (``"random"``). ``category`` = super-category.

    Examples
    --------
    >>> w = clip_gap_world(300, random_state=0)
    >>> w.image.shape, round(float(w.truth["noisy"].mean()), 2)
    ((300, 256), 0.2)
    """
    if kind not in SWAP_KINDS:
        raise ValueError(f"kind must be one of {SWAP_KINDS}, got {kind!r}")
    rng = check_random_state(random_state)
    space = _clip_gap_space(rng, dim, n_concepts, n_super, super_share=super_share, levels=levels)
    concept = rng.integers(n_concepts, size=n)
    image, text = _clip_gap_rows(space, concept, rng)
    category = space.concept_super[concept]
    captions = np.array([f"a photo of concept {c} (super-category {s}), item {i}"
                         for i, (c, s) in enumerate(zip(concept, category))], dtype=object)
    chosen = _choose(n, noise, rng)
    donors = cycle_swaps(chosen, category if kind == "same-category" else None, rng)
    text[chosen], captions[chosen] = text[donors], captions[donors]
    truth_kind = np.full(n, "clean", dtype=object)
    truth_kind[chosen] = "swap"
    keys = [f"cg{i:06d}" for i in range(n)]
    meta = pd.DataFrame({"key": keys, "caption": captions, "category": [f"super{s:02d}" for s in category]})
    return World(image, text, meta, _truth_frame(keys, truth_kind),
                 {"family": "clip_gap", "n": n, "dim": dim, "n_concepts": n_concepts, "n_super": n_super,
                  "noise": noise, "kind": kind, "super_share": super_share, "levels": list(levels)})


def clip_gap_chunks(n: int, dim: int = 512, *, chunk: int = 50_000, n_concepts: int = 100,
                    n_super: int = 10, noise: float = 0.2, random_state: int = 0):
    """A large :func:`clip_gap_world` made chunk by chunk (benchmarks): yields ``(start, image,
    text, is_noisy)``, float32 unit rows ``(m, D)`` and ``(m,)`` bool.

    The same space (modality gap, ``n_concepts`` concepts in ``n_super`` super-categories,
    concept-dependent cosine levels and spreads) for every chunk; ``noise`` of each chunk's
    captions are swapped in cycles inside their super-category (hard negatives). Chunk ``c`` is
    drawn from its own seeded stream, so any chunk is reproducible alone and millions of rows
    never sit in memory at once. Not the same draws as :func:`clip_gap_world` of the same seed.

    Examples
    --------
    >>> [(s, img.shape) for s, img, _, _ in clip_gap_chunks(5, 8, chunk=3)]
    [(0, (3, 8)), (3, (2, 8))]
    """
    space = _clip_gap_space(np.random.default_rng(random_state), dim, n_concepts, n_super)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        rng = np.random.default_rng([random_state, 1 + start])
        concept = rng.integers(n_concepts, size=m)
        image, text = _clip_gap_rows(space, concept, rng)
        chosen = _choose(m, noise, rng)
        noisy = np.zeros(m, bool)
        if len(chosen) > 1:
            donors = cycle_swaps(chosen, space.concept_super[concept], rng)
            text[chosen] = text[donors]
            noisy[chosen[donors != chosen]] = True
        yield start, image, text, noisy


BENCHMARK_DATA = ("clip-gap", "domains")
"""Generators of large benchmark pools (:func:`benchmark_pair_chunks`): ``clip-gap`` (the default,
:func:`clip_gap_chunks`: a modality gap like CLIP's) and ``domains``
(:func:`mmcurate.synth.domain_pair_chunks`: a caption is its image plus noise, no gap)."""


def benchmark_pair_chunks(data: str, n: int, dim: int = 512, *, chunk: int = 50_000, rate: float = 0.2,
                          seed: int = 0):
    """``(start, image, text, is_noisy)`` chunks of the benchmark pool ``data`` (one of
    :data:`BENCHMARK_DATA`), ``rate`` of the captions swapped within their super-category/domain.

    Examples
    --------
    >>> [len(img) for _, img, _, _ in benchmark_pair_chunks("domains", 5, 8, chunk=4)]
    [4, 1]
    """
    if data == "clip-gap":
        return clip_gap_chunks(n, dim, chunk=chunk, noise=rate, random_state=seed)
    if data == "domains":
        return domain_pair_chunks(n, dim, chunk=chunk, rate=rate, seed=seed)
    raise ValueError(f"data must be one of {', '.join(BENCHMARK_DATA)}; got {data!r}")


def _mixed_components(rng, dim, n_objects, n_attributes, n_groups):
    """Image-side and text-side component vectors (text = a correlated counterpart of the image one)."""
    groups = _unit(rng.normal(size=(n_groups, dim)))
    object_group = rng.integers(n_groups, size=n_objects)
    obj_img = _unit(0.5 * groups[object_group] + 0.85 * _unit(rng.normal(size=(n_objects, dim))))
    att_img = _unit(rng.normal(size=(n_attributes, dim)))
    obj_txt = _unit(0.8 * obj_img + 0.6 * _unit(rng.normal(size=obj_img.shape)))
    att_txt = _unit(0.8 * att_img + 0.6 * _unit(rng.normal(size=att_img.shape)))
    return object_group, (obj_img, att_img), (obj_txt, att_txt)


def _compose(parts, obj, att, weight_obj, rng, jitter=0.25):
    """Unit meaning vectors: weighted object + attribute components plus a little private jitter."""
    objs, atts = parts
    wo = weight_obj[:, None]
    x = np.sqrt(wo) * objs[obj] + np.sqrt(1 - wo) * atts[att]
    return _unit(_unit(x) + jitter * _unit(rng.normal(size=x.shape)))


def mixed_world(n: int = 5000, *, dim: int = 256, n_objects: int = 40, n_attributes: int = 12,
                n_groups: int = 8, swap: float = 0.07, boilerplate: float = 0.06, half_right: float = 0.06,
                duplicate: float = 0.08, random_state: int | np.random.Generator | None = 0) -> World:
    """Compositional pairs with a modality gap and a mix of misaligned captions and duplicates.

    A pair is an object (one of ``n_objects``, in ``n_groups`` groups = ``category``) with an
    attribute; its image vector puts ``_GAP_NORM`` on the image direction and a per-object share on
    the weighted sum of its components' image vectors, its caption vector the same on the text side
    with the components' text counterparts (cosine 0.8 with the image ones). Noise, as shares of
    ``n``: ``swap`` captions swapped at random, ``boilerplate`` captions replaced by one of
    :data:`BOILERPLATE` (all pairs with one boilerplate text share its vector up to small noise),
    ``half_right`` captions with the object or the attribute wrong; then ``duplicate`` rows are
    near copies of other rows (``kind`` duplicate, noisy as their source). Rows are shuffled.

    Examples
    --------
    >>> w = mixed_world(400, random_state=1)
    >>> sorted(w.truth["kind"].unique())
    ['boilerplate', 'clean', 'duplicate', 'half_right', 'swap']
    """
    rng = check_random_state(random_state)
    u, v = _gap_directions(rng, dim)
    object_group, img_parts, txt_parts = _mixed_components(rng, dim, n_objects, n_attributes, n_groups)
    n_dup = round(duplicate * n)
    m = n - n_dup
    obj, att = rng.integers(n_objects, size=m), rng.integers(n_attributes, size=m)
    weight_obj = rng.uniform(0.45, 0.8, n_objects)[obj]
    level = rng.uniform(0.28, 0.52, n_objects)[obj]
    image = _embed(u, _compose(img_parts, obj, att, weight_obj, rng), level, rng)
    text = _embed(v, _compose(txt_parts, obj, att, weight_obj, rng), level, rng)
    captions = np.array([f"object {o} that is attribute {a}" for o, a in zip(obj, att)], dtype=object)
    kind = np.full(m, "clean", dtype=object)
    order = rng.permutation(m)
    cuts = np.cumsum([round(s * n) for s in (swap, boilerplate, half_right)])
    swapped, boiler, half = order[: cuts[0]], order[cuts[0]: cuts[1]], order[cuts[1]: cuts[2]]
    donors = cycle_swaps(swapped, None, rng)
    text[swapped], captions[swapped] = text[donors], captions[donors]
    kind[swapped] = "swap"
    n_bp = len(BOILERPLATE)
    bp_vectors = _embed(v, _unit(rng.normal(size=(n_bp, dim))), np.full(n_bp, 0.3), rng)
    which = rng.integers(len(BOILERPLATE), size=len(boiler))
    text[boiler] = _unit(bp_vectors[which] + 0.03 * _unit(rng.normal(size=(len(boiler), dim))))
    captions[boiler] = np.array(BOILERPLATE, dtype=object)[which]
    kind[boiler] = "boilerplate"
    wrong_obj, wrong_att = obj[half].copy(), att[half].copy()
    flip_obj = rng.random(len(half)) < 0.5
    wrong_obj[flip_obj] = (wrong_obj[flip_obj] + rng.integers(1, n_objects, flip_obj.sum())) % n_objects
    shift = rng.integers(1, n_attributes, (~flip_obj).sum())
    wrong_att[~flip_obj] = (wrong_att[~flip_obj] + shift) % n_attributes
    text[half] = _embed(v, _compose(txt_parts, wrong_obj, wrong_att, weight_obj[half], rng), level[half], rng)
    captions[half] = [f"object {o} that is attribute {a}" for o, a in zip(wrong_obj, wrong_att)]
    kind[half] = "half_right"
    source = rng.integers(m, size=n_dup)
    dup_img = _unit(image[source] + 0.05 * _unit(rng.normal(size=(n_dup, dim))))
    dup_txt = _unit(text[source] + 0.05 * _unit(rng.normal(size=(n_dup, dim))))
    image = np.concatenate([image, dup_img]).astype(np.float32)
    text = np.concatenate([text, dup_txt]).astype(np.float32)
    captions = np.concatenate([captions, captions[source]])
    noisy = np.concatenate([kind != "clean", kind[source] != "clean"])
    kind = np.concatenate([kind, np.full(n_dup, "duplicate", dtype=object)])
    category = np.concatenate([object_group[obj], object_group[obj][source]])
    shuffle = rng.permutation(n)
    keys = [f"mx{i:06d}" for i in range(n)]
    truth = pd.DataFrame({"pair_id": keys, "noisy": noisy[shuffle].astype(np.int64), "kind": kind[shuffle]})
    meta = pd.DataFrame({"key": keys, "caption": captions[shuffle],
                         "category": [f"group{g:02d}" for g in category[shuffle]]})
    return World(image[shuffle], text[shuffle], meta, truth,
                 {"family": "mixed", "n": n, "dim": dim, "swap": swap, "boilerplate": boilerplate,
                  "half_right": half_right, "duplicate": duplicate, "kind": "mix"})


def modality_gap(image: np.ndarray, text: np.ndarray) -> dict[str, float]:
    """Gap figures of unit rows: matched cosine (mean), norms of the two modality means and the
    cosine between them (Liang et al. 2022 report norms ~0.5-0.6 for CLIP)."""
    mi, mt = image.mean(0), text.mean(0)
    return {"matched_cosine": float(np.mean(np.sum(image * text, 1))),
            "image_mean_norm": float(np.linalg.norm(mi)), "text_mean_norm": float(np.linalg.norm(mt)),
            "means_cosine": float(mi @ mt / (np.linalg.norm(mi) * np.linalg.norm(mt)))}


def write_world(folder: str | os.PathLike, world: World) -> Path:
    """Write ``world`` as a clip-retrieval folder + ``truth.csv`` + ``world.json``; returns ``folder``.

    ``truth.csv`` is written last (atomically), so its presence marks a complete folder.
    """
    root = write_embedding_folder(folder, world.image, world.text, world.metadata)
    info = {**world.info, **modality_gap(world.image, world.text),
            "noise_by_kind": world.truth["kind"].value_counts().to_dict()}
    atomic_write_json(root / "world.json", json.loads(json.dumps(info, default=str)))
    atomic_write_frame(world.truth, root / "truth.csv", fmt="csv")
    return root
