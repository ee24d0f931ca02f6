"""Generated pairs with injected copies, exact duplicates and boilerplate captions, truth kept aside.

A CLIP-like space (the shape STYLE asks benchmarks to have): image and caption vectors sit in two
cones (a modality gap: a large shared offset per modality), matched pairs have cosine about 0.35,
images of one concept about 0.75, unrelated images about 0.55. Into it go

- **copies** of a pair (re-encoded, resized, cropped: image cosine to the source 1 − Exp(mean 0.02),
  at least 0.85: median 0.986, 1 in 8 below 0.96), whose caption is the same (half of them) or lightly
  edited (caption cosine 1 − Exp(mean 0.015), at least 0.88);
- **exact duplicates** (the same file, the caption with other case/punctuation);
- **siblings**, the hard negatives: another shot of the same thing with its own caption (image
  cosine uniform 0.78–0.95, caption 0.70–0.96), which are *not* duplicates;
- **recaptioned** images (one image, an unrelated caption of the same concept: not a duplicate pair);
- **boilerplate** captions ("click to enlarge", "untitled", ...) on 5–40 unrelated images each.

Used by ``scripts/bench_duplicates_quality.py`` (the threshold curves) and the tests. Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mmcurate._util import RandomState, check_random_state

__all__ = ["BOILERPLATE", "DuplicateWorld", "make_duplicate_world", "pair_precision_recall"]

BOILERPLATE = ("click to enlarge", "untitled", "image", "no description available", "stock photo",
               "thumbnail", "view larger", "photo", "see more", "product image")


@dataclass
class DuplicateWorld:
    """``image`` / ``text`` ``(N, D)`` float32 L2-normalised; ``captions``, ``image_keys`` (a file
    hash stand-in) per pair; truth: ``family`` (the source row of a copy or exact duplicate, else
    the row itself), ``boilerplate`` (the injected boilerplate group, -1 none), ``role``."""

    image: npt.NDArray[np.float32]
    text: npt.NDArray[np.float32]
    captions: list[str]
    image_keys: list[str]
    family: npt.NDArray[np.int64]
    boilerplate: npt.NDArray[np.int64]
    role: npt.NDArray[np.object_]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _jitter(rng: np.random.Generator, v: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    """Rows of ``v`` moved to the given cosine with themselves (random orthogonal direction)."""
    e = rng.normal(size=v.shape)
    e -= (e * v).sum(1, keepdims=True) * v
    e = _unit(e)
    c = np.clip(cosine, -1, 1)[:, None]
    return _unit(c * v + np.sqrt(1 - c ** 2) * e)


def make_duplicate_world(n_base: int = 2000, *, dim: int = 512, n_concepts: int = 40,
                         copy_share: float = 0.15, exact_share: float = 0.05,
                         sibling_share: float = 0.15, recaption_share: float = 0.03,
                         n_boilerplate: int = 8, gap: float = 1.5,
                         random_state: RandomState = 0) -> DuplicateWorld:
    """A world of ``n_base`` original pairs plus the injected ones (see the module docstring).

    Copies of copies are injected too (a copy's source may itself be a copy), so groups are
    found only transitively.

    Examples
    --------
    >>> w = make_duplicate_world(200, dim=64, random_state=0)
    >>> len(w.image) == len(w.captions) == len(w.family), bool((w.family <= np.arange(len(w.family))).all())
    (True, True)
    """
    rng = check_random_state(random_state)
    g_v, g_t = _unit(rng.normal(size=(2, dim)))
    concepts = _unit(rng.normal(size=(n_concepts, dim)))
    concept = rng.integers(0, n_concepts, n_base)
    inst = _unit(rng.normal(size=(n_base, dim)))
    noise = _unit(rng.normal(size=(2, n_base, dim)))
    image = _unit(gap * g_v + 0.9 * concepts[concept] + 0.8 * inst + 0.6 * noise[0])
    text = _unit(gap * g_t + 0.9 * concepts[concept] + 0.8 * inst + 0.6 * noise[1])
    rows_v, rows_t = [image], [text]
    captions = [f"concept {c} item {i}" for i, c in enumerate(concept)]
    keys = [f"file-{i}" for i in range(n_base)]
    family, role = list(range(n_base)), ["original"] * n_base
    boiler = [-1] * n_base

    def add(v, t, caps, ks, fam, r, b=None):
        rows_v.append(v)
        rows_t.append(t)
        captions.extend(caps)
        keys.extend(ks)
        family.extend(fam)
        role.extend([r] * len(caps))
        boiler.extend(b if b is not None else [-1] * len(caps))

    n = n_base
    # copies, a fifth of them of an earlier copy (chains)
    n_copy = int(copy_share * n_base)
    src = rng.integers(0, n_base, n_copy)
    for j in range(n_copy):
        s = int(src[j]) if j < n_copy * 4 // 5 or j == 0 else n_base + int(rng.integers(0, j))
        same_caption = rng.random() < 0.5
        v = _jitter(rng, _row(rows_v, s), np.maximum(1 - rng.exponential(0.02, 1), 0.85))
        t = _row(rows_t, s) if same_caption else _jitter(
            rng, _row(rows_t, s), np.maximum(1 - rng.exponential(0.015, 1), 0.88))
        cap = captions[s] if same_caption else captions[s] + " (edited)"
        add(v, t, [cap], [f"file-{n}"], [family[s]], "copy")
        n += 1
    # exact duplicates: same file, caption in other case / punctuation
    for s in rng.integers(0, n_base, int(exact_share * n_base)):
        s = int(s)
        add(_row(rows_v, s), _row(rows_t, s), [captions[s].upper() + "!"], [keys[s]], [family[s]], "exact")
    # siblings (hard negatives) and recaptioned images (not duplicate pairs)
    for s in rng.integers(0, n_base, int(sibling_share * n_base)):
        s = int(s)
        v = _jitter(rng, _row(rows_v, s), rng.uniform(0.78, 0.95, 1))
        t = _jitter(rng, _row(rows_t, s), rng.uniform(0.70, 0.96, 1))
        add(v, t, [captions[s] + " another shot"], [f"file-{len(captions)}"], [len(captions)], "sibling")
    for s in rng.integers(0, n_base, int(recaption_share * n_base)):
        s, other = int(s), int(rng.integers(0, n_base))
        add(_row(rows_v, s), _row(rows_t, other), [captions[other]], [f"file-{len(captions)}"],
            [len(captions)], "recaptioned")
    # boilerplate captions on unrelated images (variants normalise to the same text)
    for b in range(n_boilerplate):
        m = int(rng.integers(5, 41))
        phrase = BOILERPLATE[b % len(BOILERPLATE)] + (f" {b}" if b >= len(BOILERPLATE) else "")
        base_t = _unit(gap * g_t + 0.9 * _unit(rng.normal(size=dim)) + 0.3 * _unit(rng.normal(size=dim)))
        c = rng.integers(0, n_concepts, m)
        v = _unit(gap * g_v + 0.9 * concepts[c] + 0.8 * _unit(rng.normal(size=(m, dim)))
                  + 0.6 * _unit(rng.normal(size=(m, dim))))
        variant = rng.random(m) < 0.3
        t = np.repeat(base_t[None], m, 0)
        t[variant] = _jitter(rng, t[variant], rng.uniform(0.985, 0.999, int(variant.sum())))
        caps = [phrase.title() + "!" if var else phrase for var in variant]
        start = len(captions)
        add(v, t, caps, [f"file-{start + i}" for i in range(m)], list(range(start, start + m)),
            "boilerplate", [b] * m)
    return DuplicateWorld(
        image=np.concatenate(rows_v).astype(np.float32), text=np.concatenate(rows_t).astype(np.float32),
        captions=captions, image_keys=keys, family=np.asarray(family, np.int64),
        boilerplate=np.asarray(boiler, np.int64), role=np.asarray(role, dtype=object))


def _row(rows: list[np.ndarray], i: int) -> np.ndarray:
    """Row ``i`` of the blocks in ``rows`` (concatenated), as ``(1, D)``."""
    for block in rows:
        if i < len(block):
            return block[i : i + 1]
        i -= len(block)
    raise IndexError(i)


def pair_precision_recall(predicted: npt.ArrayLike, truth: npt.ArrayLike) -> tuple[float, float]:
    """Pair-counting precision and recall of a grouping: over pairs of rows put in one predicted
    group, the share truly in one group; over truly grouped pairs, the share predicted together.
    Labels: one per row, a row alone has a label no other row has (e.g. its own row).

    Examples
    --------
    >>> pair_precision_recall([0, 0, 2, 2], [0, 0, 0, 3])
    (0.5, 0.3333333333333333)
    """
    p, t = np.asarray(predicted, np.int64), np.asarray(truth, np.int64)

    def pairs(counts: np.ndarray) -> float:
        return float((counts * (counts - 1) // 2).sum())

    _, both = np.unique(np.stack([p, t]), axis=1, return_counts=True)
    tp = pairs(both)
    n_pred, n_true = pairs(np.unique(p, return_counts=True)[1]), pairs(np.unique(t, return_counts=True)[1])
    return (tp / n_pred if n_pred else 1.0), (tp / n_true if n_true else 1.0)
