"""Duplicate and boilerplate groups of N pairs from their vectors (and, when known, image hashes).

:func:`find_groups` runs the neighbour searches through the ranking's own machinery
(:class:`mmcurate.rank.RankContext`: exact kNN up to :data:`mmcurate.index.EXACT_MAX` pairs, above
it candidates from the reduced, clustered search re-scored with the full vectors), then groups with
the pure functions of :mod:`mmcurate.groups.find`. No I/O: :mod:`mmcurate.groups.project` reads and
writes the project's files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate.groups.find import (
    boilerplate_labels,
    components,
    confirm_edges,
    key_labels,
    near_edges,
    normalize_captions,
    token_overlap,
)
from mmcurate.rank import RankContext

__all__ = ["DUPLICATE_KINDS", "KINDS", "VERIFY", "GroupParams", "SignatureReader", "find_groups"]

KINDS = ("exact", "near", "near_image", "near_caption", "boilerplate")
DUPLICATE_KINDS = ("exact", "near", "near_image", "near_caption")
"""Kinds whose members are copies of one pair: one decision per group, one pair kept at export."""

_NEAR_KIND = {"both": "near", "image": "near_image", "caption": "near_caption"}
VERIFY = ("auto", "pixels", "none")
"""How near-duplicate edges are confirmed: see :class:`GroupParams`."""

SignatureReader = Callable[[npt.NDArray[np.int64]], tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]]
"""rows -> ``(signatures (R, V, S, S, 3), readable (R,))``: :func:`mmcurate.groups.pixels.read_signatures`."""


@dataclass(frozen=True)
class GroupParams:
    """Options of :func:`find_groups` (defaults measured by ``scripts/bench_duplicates_quality.py``).

    ``image_threshold`` / ``caption_threshold``: the cosine a copy's image / caption vector must
    reach to its source's. ``near``: ``both`` (image and caption near), ``image`` or ``caption``
    (one space only: image-only groups gather one image with different captions), or ``none``.
    ``k``: neighbours searched per pair and space (a group larger than ``k + 1`` is still joined
    through chains of neighbours). ``boilerplate_threshold``: caption cosine joining boilerplate
    captions (besides equal normalised text), only where their words also agree: the
    :func:`mmcurate.groups.find.token_overlap` of the two normalised captions at least
    ``boilerplate_text_overlap`` (1: the shorter caption's words are all in the longer one; 0: the
    vectors alone decide); ``boilerplate_min_size``: different images a caption
    must be on (copies of one pair, a duplicate group, count once);
    ``boilerplate_max_image_similarity``: the mean pairwise image cosine under which its images
    count as dissimilar. ``exact``: group equal image hashes + normalised captions (image projects).
    ``verify``: how a vector-near pair of the ``near`` (both) and ``near_image`` kinds is confirmed:
    ``pixels`` (its two images' pixel signatures must be within ``pixel_threshold``,
    :func:`mmcurate.groups.find.pixel_distance`; an unreadable image confirms nothing), ``none``
    (vectors only) or ``auto`` (pixels when the images can be read: image projects; vectors only for
    imported embeddings). ``near_caption`` pairs are never pixel-checked: their images may differ.
    ``candidate_threshold``: when the pixels confirm (``near`` both or image), a pair is proposed
    from image cosine ``min(image_threshold, candidate_threshold)``: a weak model puts copies below
    the image threshold, and the pixels, not the vectors, then decide. Captions are not
    pixel-checked, so they keep ``caption_threshold`` (two different captions of one image are not
    a copy), and two equal normalised captions count as near whatever their cosine (a weak model
    puts "A lemon slice. ." at 0.79 to "A lemon slice."). Without the pixel check (``verify`` none,
    imported embeddings, ``near`` caption) ``image_threshold`` and ``caption_threshold`` apply as given.
    """

    image_threshold: float = 0.92
    caption_threshold: float = 0.92
    near: str = "both"
    k: int = 10
    boilerplate_threshold: float = 0.97
    boilerplate_min_size: int = 5
    boilerplate_max_image_similarity: float = 0.9
    boilerplate_text_overlap: float = 1.0
    exact: bool = True
    verify: str = "auto"
    pixel_threshold: float = 0.08
    candidate_threshold: float = 0.80

    def __post_init__(self) -> None:
        if self.near not in (*_NEAR_KIND, "none"):
            raise ValueError(f"near must be one of both, image, caption, none; got {self.near!r}")
        if self.verify not in VERIFY:
            raise ValueError(f"verify must be one of {', '.join(VERIFY)}; got {self.verify!r}")
        if not 0.0 <= float(self.pixel_threshold) <= 1.0:
            raise ValueError(f"pixel_threshold is an RMS pixel difference in [0, 1]; "
                             f"got {self.pixel_threshold!r}")
        if not 0.0 <= float(self.boilerplate_text_overlap) <= 1.0:
            raise ValueError(f"boilerplate_text_overlap is a share of words in [0, 1]; "
                             f"got {self.boilerplate_text_overlap!r}")
        for name in ("image_threshold", "caption_threshold", "boilerplate_threshold",
                     "boilerplate_max_image_similarity", "candidate_threshold"):
            if not -1.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} is a cosine in [-1, 1]; got {getattr(self, name)!r}")
        if self.k < 1 or self.boilerplate_min_size < 2:
            raise ValueError(f"k must be >= 1 and boilerplate_min_size >= 2; got {self.k}, "
                             f"{self.boilerplate_min_size}")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def find_groups(image_embeddings, text_embeddings, captions: Sequence[object], *,
                image_keys: Sequence[object] | None = None, params: GroupParams | None = None,
                pixel_signatures: SignatureReader | None = None, random_state: int = 0,
                approximate: bool | None = None) -> pd.DataFrame:
    """Group N pairs: exact duplicates, near duplicates and boilerplate captions.

    Parameters
    ----------
    image_embeddings, text_embeddings : (N, D)
        L2-normalised vectors, row i = pair i (float16 memory maps fine).
    captions : sequence of N captions (compared after :func:`normalize_caption`).
    image_keys : sequence of N image content hashes, optional
        With ``params.exact``: pairs with equal keys and equal normalised captions are exact
        duplicates. None (imported embeddings): only the vector-based kinds.
    params : GroupParams
    pixel_signatures : callable, optional
        ``rows -> (signatures, readable)`` (:func:`mmcurate.groups.pixels.project_signature_reader`),
        called once with the rows of the vector-near candidate edges when ``params.verify`` is
        ``pixels`` or ``auto``; None: vectors only (``verify="pixels"`` then raises ``ValueError``).
    approximate : None (by size, as a ranking), True or False.

    Returns
    -------
    DataFrame
        One row per grouped pair and kind: ``row`` (int64), ``group`` (the group's smallest row),
        ``kind`` (one of :data:`KINDS`), ``similarity`` (exact: 1; near: its best edge's smaller
        cosine; boilerplate: the group's mean pairwise image cosine). Pairs in no group are absent;
        a pair can be in one duplicate group and one boilerplate group.

    Examples
    --------
    >>> v = np.eye(3, dtype=np.float32)[[0, 0, 1]]
    >>> find_groups(v, v, ["a", "a", "b"]).to_dict("list")
    {'row': [0, 1], 'group': [0, 0], 'kind': ['near', 'near'], 'similarity': [1.0, 1.0]}
    """
    params = params or GroupParams()
    if params.verify == "pixels" and pixel_signatures is None:
        raise ValueError("verify='pixels' needs the images: pass pixel_signatures (an image project; "
                         "imported embeddings have none), or use verify='auto' or 'none'")
    reader = pixel_signatures if params.verify != "none" else None
    n = len(image_embeddings)
    if len(text_embeddings) != n or len(captions) != n:
        raise ValueError(f"image_embeddings, text_embeddings and captions must have one row per pair; "
                         f"got {n}, {len(text_embeddings)} and {len(captions)}")
    if n < 2:
        return _frame([], [], [], [])
    search = _searcher(image_embeddings, text_embeddings, params.k, random_state, approximate)
    norm = normalize_captions(captions)
    caption_keys = key_labels(norm)  # equal normalised captions: one label
    dup = _duplicates(n, image_embeddings, text_embeddings, norm, caption_keys, image_keys, params, search,
                      reader)
    images = np.arange(n)
    images[dup["row"].to_numpy()] = dup["group"].to_numpy()  # copies of one image count once
    parts = [dup, _boilerplate(n, image_embeddings, norm, caption_keys, search("text"), images, params)]
    return pd.concat([p for p in parts if len(p)] or [parts[0]], ignore_index=True)


def _searcher(image, text, k: int, random_state: int, approximate: bool | None):
    ctx = RankContext(image, text, indices_labeled=None, labels=None, k=k, random_state=random_state,
                      approximate=approximate)

    def search(space: str) -> tuple[np.ndarray, np.ndarray]:
        """``(sims, idx)``: each pair's k nearest others in ``space`` (exact cosines; run once)."""
        return ctx.neighbours(space, space, ctx.k, exclude_self=True)

    return search


def _duplicates(n, image, text, norm, caption_keys, image_keys, params: GroupParams, search, reader
                ) -> pd.DataFrame:
    a, b, sim = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    exact_lab = np.arange(n)
    if params.exact and image_keys is not None:
        exact_lab = key_labels([f"{k}\n{c}" if k else None for k, c in zip(image_keys, norm)])
        same = np.flatnonzero(exact_lab != np.arange(n))
        a.append(exact_lab[same])
        b.append(same)
        sim.append(np.ones(len(same), np.float32))
    if params.near != "none":
        spaces = {"both": ("image", "text"), "image": ("image",), "caption": ("text",)}[params.near]
        vectors = {"image": image, "text": text}
        verifying = reader is not None and params.near != "caption"
        thresholds = {"image": params.image_threshold, "text": params.caption_threshold}
        keys = None
        if verifying:  # the image vectors only propose: the pixels decide
            thresholds["image"] = min(params.image_threshold, params.candidate_threshold)
            # captions are not pixel-checked: they stay at their threshold (two captions of one image
            # at cosine 0.80 are two captions, not a copy), and equal normalised texts count as near
            keys = [caption_keys if s == "text" else None for s in spaces]
        ea, eb, es = near_edges([(i, *search(s)) for i, s in enumerate(spaces)], [vectors[s] for s in spaces],
                                [thresholds[s] for s in spaces], keys=keys)
        if verifying:
            keep = _pixels_confirm(n, ea, eb, reader, params.pixel_threshold)
            ea, eb, es = ea[keep], eb[keep], es[keep]
        a.append(ea)
        b.append(eb)
        sim.append(es)
    ea, eb, es = np.concatenate(a), np.concatenate(b), np.concatenate(sim)
    labels = components(n, ea, eb)
    sizes = np.bincount(labels, minlength=n)
    rows = np.flatnonzero(sizes[labels] >= 2)
    best = np.full(n, -np.inf, np.float32)
    np.maximum.at(best, ea, es)
    np.maximum.at(best, eb, es)
    # exact: every member shares one exact key (the group is one exact-duplicate set)
    exact_groups = pd.Series(exact_lab[rows]).groupby(labels[rows]).nunique()
    kind = np.where(exact_groups.reindex(labels[rows]).to_numpy() == 1, "exact",
                    _NEAR_KIND.get(params.near, "near"))
    return _frame(rows, labels[rows], kind, np.clip(best[rows], -1.0, 1.0))


def _pixels_confirm(n: int, a: np.ndarray, b: np.ndarray, reader: SignatureReader,
                    threshold: float) -> npt.NDArray[np.bool_]:
    """Which near edges the images confirm; only the rows in an edge are read."""
    rows = np.unique(np.r_[a, b])
    if not len(rows):
        return np.zeros(0, bool)
    signatures, readable = reader(rows)
    slots = np.full(n, -1, np.int64)
    slots[rows[readable]] = np.flatnonzero(readable)
    return confirm_edges(a, b, signatures, slots, threshold=threshold)


def _boilerplate(n, image, norm, caption_keys, text_search, images, params: GroupParams) -> pd.DataFrame:
    ea, eb, _ = near_edges([(0, *text_search)], [None], [params.boilerplate_threshold])
    agree = token_overlap(norm[ea], norm[eb]) >= params.boilerplate_text_overlap  # words confirm vectors
    edges = (ea[agree], eb[agree])
    labels, spread = boilerplate_labels(n, caption_keys, edges, image,
                                        min_size=params.boilerplate_min_size,
                                        max_image_similarity=params.boilerplate_max_image_similarity,
                                        image_labels=images)
    rows = np.flatnonzero(labels >= 0)
    return _frame(rows, labels[rows], np.full(len(rows), "boilerplate"),
                  np.array([spread[g] for g in labels[rows]], np.float32))


def _frame(rows, group, kind, similarity) -> pd.DataFrame:
    return pd.DataFrame({"row": np.asarray(rows, np.int64), "group": np.asarray(group, np.int64),
                         "kind": np.asarray(kind, dtype=object),
                         "similarity": np.asarray(similarity, np.float64)})
