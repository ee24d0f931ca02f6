"""Duplicate and boilerplate groups as pure functions over arrays (no I/O, no project).

Every function here takes arrays (vectors, neighbour lists, keys) and returns arrays; the search
that produces the neighbour lists is :func:`mmcurate.groups.search.neighbours` and the project
glue is :mod:`mmcurate.groups.project`.

Assumptions: vectors are L2-normalised (inner product = cosine); a neighbour list is
``(sims (N, k), idx (N, k))`` best first with -1 where missing, as :mod:`mmcurate.index` returns.
A group's id is the smallest row it holds, so grouping is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mmcurate._fileio import read_rows

__all__ = ["boilerplate_labels", "components", "confirm_edges", "key_labels", "mean_pairwise_cosine",
           "near_edges", "normalize_caption", "normalize_captions", "pair_cosine", "pixel_distance",
           "token_overlap"]

_PUNCT = r"[^\p{L}\p{N}\p{M}_\s\p{Z}]+"  # RE2 (pyarrow): anything but letters, digits, marks, _ and spaces
_SPACE = r"[\s\p{Z}]+"


def normalize_captions(captions: Iterable[object]) -> npt.NDArray[np.object_]:
    """Captions as compared for exact duplicates and boilerplate: NFKC, lower case, punctuation
    removed, whitespace collapsed; a missing (non-text) caption is ``""``. Vectorised (pyarrow).

    Examples
    --------
    >>> normalize_captions(["  Click to ENLARGE!! ", None, "Ünïcode\u00a0 text."]).tolist()
    ['click to enlarge', '', 'ünïcode text']
    """
    values = [c if isinstance(c, str) else "" for c in captions]
    arr = pc.utf8_lower(pc.utf8_normalize(pa.array(values, pa.large_string()), "NFKC"))
    arr = pc.replace_substring_regex(arr, _PUNCT, " ")
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, _SPACE, " "))
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)


def normalize_caption(text: object) -> str:
    """One caption normalised as :func:`normalize_captions` does.

    Examples
    --------
    >>> normalize_caption("  Click to ENLARGE!! ")
    'click to enlarge'
    """
    return str(normalize_captions([text])[0])


def token_overlap(texts_a: Sequence[str], texts_b: Sequence[str]) -> npt.NDArray[np.float64]:
    """How far two texts' words agree, model-independently: ``(E,)`` for the pairs ``texts_a[i]``,
    ``texts_b[i]`` (normalised captions, :func:`normalize_captions`), the overlap coefficient of their
    word sets, ``|A ∩ B| / min(|A|, |B|)``. 1: every word of the shorter text is in the longer one
    ("click to enlarge" / "click here to enlarge"); 0 when either text is empty.

    Word order, repeats and synonyms are not seen: "click to zoom" and "click to enlarge" score 2/3.

    Examples
    --------
    >>> token_overlap(["click to enlarge", "two red circles", ""], ["click here to enlarge",
    ...               "three red circles", "photo"]).round(3).tolist()
    [1.0, 0.667, 0.0]
    """
    if len(texts_a) != len(texts_b):
        raise ValueError(f"texts_a and texts_b must pair up; got {len(texts_a)} and {len(texts_b)}")
    out = np.zeros(len(texts_a), np.float64)  # float64: 9/10 stays >= 0.9
    for i, (x, y) in enumerate(zip(texts_a, texts_b)):
        a, b = set(str(x).split()), set(str(y).split())
        if a and b:
            out[i] = len(a & b) / min(len(a), len(b))
    return out


def components(n: int, a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Connected components (union-find) of ``n`` rows joined by edges ``a[i] -- b[i]``:
    ``(n,)`` each row's component, labelled by its smallest row (a row without edges is its own).

    Vectorised union by smaller root with full path compression per sweep; a few sweeps suffice
    for the short chains of duplicate graphs.

    Examples
    --------
    >>> components(5, [0, 3, 1], [1, 4, 2]).tolist()
    [0, 0, 0, 3, 3]
    """
    parent = np.arange(n, dtype=np.int64)
    ea, eb = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while len(ea):
        pa, pb = parent[ea], parent[eb]
        lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
        open_ = lo != hi
        if not open_.any():
            break
        np.minimum.at(parent, hi[open_], lo[open_])
        ea, eb = ea[open_], eb[open_]  # edges already inside one component never reopen
        while True:  # compress: every row points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    return parent


def key_labels(keys: Iterable[object]) -> npt.NDArray[np.int64]:
    """Rows with equal (hashable, non-empty) keys share a label, the smallest such row; rows whose
    key is ``None`` or ``""`` stay alone.

    Examples
    --------
    >>> key_labels(["x", "y", "x", None, None]).tolist()
    [0, 1, 0, 3, 4]
    """
    values = pd.Series(list(keys), dtype=object)
    codes, _ = pd.factorize(values.where(values != "", None), use_na_sentinel=True)
    out = np.arange(len(codes), dtype=np.int64)
    has = codes >= 0
    if has.any():
        _, first, inverse = np.unique(codes[has], return_index=True, return_inverse=True)
        out[has] = np.flatnonzero(has)[first][inverse]
    return out


def pair_cosine(vectors, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], *,
                chunk: int = 65536) -> npt.NDArray[np.float32]:
    """Cosine of rows ``a[i]`` and ``b[i]`` of ``vectors`` ``(N, D)`` (float16 memory maps fine:
    rows are read by offset, :func:`mmcurate._fileio.read_rows`).

    Examples
    --------
    >>> pair_cosine(np.eye(2, dtype=np.float32), np.array([0, 0]), np.array([0, 1])).tolist()
    [1.0, 0.0]
    """
    out = np.empty(len(a), dtype=np.float32)
    for s in range(0, len(a), chunk):
        x = read_rows(vectors, a[s : s + chunk])
        y = read_rows(vectors, b[s : s + chunk])
        out[s : s + len(x)] = np.einsum("nd,nd->n", x, y)
    return out


def near_edges(searches: Sequence[tuple[int, npt.NDArray[np.float32], npt.NDArray[np.int64]]],
               spaces: Sequence[object], thresholds: Sequence[float], *,
               keys: Sequence[npt.NDArray[np.int64] | None] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges ``(a, b, similarity)`` between rows that are near in every space.

    ``searches``: ``(space, sims (N, k), idx (N, k))`` neighbour lists, each searched in
    ``spaces[space]`` with exact cosines ``sims`` (-1 in ``idx``: none); their union is checked.
    ``spaces``: the vectors ``(N, D)`` of each space; ``thresholds``: the cosine each must reach.
    ``keys``: per space, None or ``(N,)`` labels: two rows with equal labels count as near in that
    space whatever their cosine (equal normalised captions, which a weak model may still embed apart).
    A candidate is first filtered by its search's own similarity, then only the survivors are read
    and compared in the other spaces. An edge's similarity is the smallest of its cosines (how near
    it is in the least near space). Each undirected edge appears once (``a < b``).

    Examples
    --------
    >>> x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    >>> nb = (0, np.array([[1.0], [1.0], [0.0]], np.float32), np.array([[1], [0], [0]]))
    >>> a, b, s = near_edges([nb], [x], [0.9])
    >>> a.tolist(), b.tolist(), s.tolist()
    ([0], [1], [1.0])
    """
    labels = list(keys) if keys is not None else [None] * len(spaces)

    def same(space: int, a: np.ndarray, b: np.ndarray) -> npt.NDArray[np.bool_]:
        lab = labels[space]
        return np.zeros(len(a), bool) if lab is None else lab[a] == lab[b]

    parts = []
    for space, sims, idx in searches:
        n1 = len(idx) + 1
        rows = np.repeat(np.arange(len(idx), dtype=np.int64), idx.shape[1])
        cols = np.asarray(idx, np.int64).ravel()
        s = np.asarray(sims, np.float32).ravel()
        keep = (cols >= 0) & (cols != rows)
        keep[keep] = (s[keep] >= thresholds[space]) | same(space, rows[keep], cols[keep])
        a, b, s = np.minimum(rows[keep], cols[keep]), np.maximum(rows[keep], cols[keep]), s[keep]
        code, first = np.unique(a * n1 + b, return_index=True)
        a, b, s = code // n1, code % n1, s[first]
        for other, (vectors, t) in enumerate(zip(spaces, thresholds)):
            if other == space or not len(a):
                continue
            c = pair_cosine(vectors, a, b)
            keep = (c >= t) | same(other, a, b)
            a, b, s = a[keep], b[keep], np.minimum(s[keep], c[keep])
        parts.append((a, b, s))
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a, b, s = (np.concatenate(x) for x in zip(*parts))
    n1 = int(max(a.max(initial=0), b.max(initial=0))) + 1
    code, first = np.unique(a * n1 + b, return_index=True)  # found by both searches: once
    return code // n1, code % n1, s[first]


def mean_pairwise_cosine(vectors, labels: npt.NDArray[np.int64], members: npt.NDArray[np.int64]
                         ) -> dict[int, float]:
    """Mean cosine over distinct member pairs of each group, from the sum of its vectors:
    ``(|Σv|² − n) / (n(n−1))`` (vectors L2-normalised); ``members`` are the grouped rows."""
    members = np.sort(np.asarray(members, np.int64))
    if len(members) == 0:
        return {}
    lab = labels[members]
    uniq, inverse = np.unique(lab, return_inverse=True)
    sums = np.zeros((len(uniq), np.shape(vectors)[1]), np.float64)
    for s in range(0, len(members), 65536):
        np.add.at(sums, inverse[s : s + 65536], np.asarray(vectors[members[s : s + 65536]], np.float64))
    counts = np.bincount(inverse).astype(np.float64)
    mean = ((sums ** 2).sum(1) - counts) / np.maximum(counts * (counts - 1), 1)
    return dict(zip(uniq.tolist(), mean.tolist()))


def boilerplate_labels(n: int, caption_keys: npt.NDArray[np.int64], text_edges: tuple[np.ndarray, np.ndarray],
                       image_embeddings, *, min_size: int, max_image_similarity: float,
                       image_labels: npt.NDArray[np.int64] | None = None
                       ) -> tuple[npt.NDArray[np.int64], dict[int, float]]:
    """Boilerplate captions: one caption (same normalised text, ``caption_keys`` from
    :func:`key_labels`, or caption vectors joined by ``text_edges``) on at least ``min_size``
    different images (``image_labels``: each row's duplicate group, so copies of one pair count
    once; default every row its own) that are dissimilar (mean pairwise image cosine below
    ``max_image_similarity``; a caption shared by near-identical images is a duplicate).

    Returns each row's group (-1: none) and each group's mean image cosine.
    """
    same = np.flatnonzero(caption_keys != np.arange(n))
    a = np.r_[same, text_edges[0]]
    b = np.r_[caption_keys[same], text_edges[1]]
    labels = components(n, a, b)
    images = np.arange(n) if image_labels is None else np.asarray(image_labels, np.int64)
    distinct = np.unique(labels * (n + 1) + images) // (n + 1)  # one entry per (component, image)
    sizes = np.bincount(distinct, minlength=n)
    grouped = np.flatnonzero(sizes[labels] >= min_size)
    spread = mean_pairwise_cosine(image_embeddings, labels, grouped)
    keep = {g for g, m in spread.items() if m < max_image_similarity}
    out = np.full(n, -1, dtype=np.int64)
    mask = np.isin(labels, np.fromiter(keep, np.int64, len(keep)))
    out[mask] = labels[mask]
    return out, {g: spread[g] for g in keep}


def pixel_distance(signatures_a: npt.NDArray[np.uint8], signatures_b: npt.NDArray[np.uint8]
                   ) -> npt.NDArray[np.float32]:
    """How different two images look: ``(E,)`` for the signature pairs ``signatures_a[i]``,
    ``signatures_b[i]``, each ``(E, V, S, S, 3)`` uint8 (:func:`mmcurate.groups.pixels.image_signature`:
    view 0 the whole image as an S × S colour thumbnail, views 1.. the image cropped by other
    margins).

    ``d = rms / max(0.1, contrast)``: ``rms`` is the root-mean-square difference of the two
    thumbnails (values scaled to [0, 1], every cell and colour channel), the smallest over the
    alignments "whole a vs view j of b" and "view j of a vs whole b" (a copy cropped by a few
    pixels and resized is compared with its source cropped alike); ``contrast`` is
    ``sqrt((c_a² + c_b²) / 2)``, ``c²`` a whole thumbnail's variance over its cells summed over the
    three channels. A contrasty photo moves more under resampling and JPEG than a flat scene, and
    two flat scenes whose tints differ a little are still different: the scale makes one threshold
    fit both. 0: identical thumbnails.

    Examples
    --------
    >>> x = np.zeros((1, 2, 4, 4, 3), np.uint8)
    >>> y = x.copy(); y[0, 0] = 51
    >>> pixel_distance(x, y).astype(float).round(3).tolist()  # view 1 of y still equals x's whole view
    [0.0]
    >>> pixel_distance(x, x + 51).astype(float).round(3).tolist()  # flat: 51/255 = 0.2 apart, / 0.1
    [2.0]
    """
    a = np.asarray(signatures_a, np.float32) / 255.0
    b = np.asarray(signatures_b, np.float32) / 255.0
    if a.shape != b.shape or a.ndim != 5:
        raise ValueError(f"signatures must both be (E, V, S, S, 3); got {a.shape} and {b.shape}")
    axes = (2, 3, 4)
    best = np.sqrt(((a - b[:, :1]) ** 2).mean(axis=axes)).min(axis=1)  # view i of a vs whole b
    other = np.sqrt(((a[:, :1] - b) ** 2).mean(axis=axes)).min(axis=1)  # whole a vs view j of b
    var_a = a[:, 0].reshape(len(a), -1, 3).var(axis=1).sum(axis=1)
    var_b = b[:, 0].reshape(len(b), -1, 3).var(axis=1).sum(axis=1)
    scale = np.maximum(_CONTRAST_FLOOR, np.sqrt((var_a + var_b) / 2))
    return (np.minimum(best, other) / scale).astype(np.float32)


_CONTRAST_FLOOR = 0.1
"""The smallest contrast :func:`pixel_distance` divides by (a flat image's differences count in full)."""


def confirm_edges(a: npt.ArrayLike, b: npt.ArrayLike, signatures: npt.NDArray[np.uint8],
                  slots: npt.ArrayLike, *, threshold: float, chunk: int = 4096) -> npt.NDArray[np.bool_]:
    """Which edges ``a[i] -- b[i]`` the pixels confirm: ``(E,)`` bool, True where the two rows'
    :func:`pixel_distance` is at most ``threshold``.

    ``signatures`` ``(M, V, S, S, 3)``: the signatures read; ``slots`` ``(N,)``: each row's index
    into them, -1 for a row without one (unreadable image, never read): its edges are not confirmed.

    Examples
    --------
    >>> sig = np.zeros((2, 1, 2, 2, 3), np.uint8); sig[1] = 255
    >>> confirm_edges([0, 0, 1], [1, 2, 2], sig, [0, 0, 1], threshold=0.5).tolist()
    [True, False, False]
    """
    ea, eb = np.asarray(a, np.int64), np.asarray(b, np.int64)
    slot = np.asarray(slots, np.int64)
    sa, sb = slot[ea], slot[eb]
    out = (sa >= 0) & (sb >= 0)
    todo = np.flatnonzero(out)
    for s in range(0, len(todo), chunk):
        part = todo[s : s + chunk]
        out[part] = pixel_distance(signatures[sa[part]], signatures[sb[part]]) <= threshold
    return out
