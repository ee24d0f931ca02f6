"""A project's saved faiss indexes over image and caption vectors.

Indexes are built on first use, saved under ``PROJECT/index/`` next to a fingerprint of the
embeddings they were built from, and rebuilt only when that fingerprint changes (re-embedding,
new pairs) or extended in place: :meth:`ProjectIndex.add` appends arriving vectors (rows N, N+1, ...)
and :meth:`ProjectIndex.save` records them under the grown pool's fingerprint, so a stream of
arrivals never rebuilds the index. The index type follows :func:`mmcurate.index.build_index`
(exact below its size threshold, approximate above).

:func:`search_pairs` (``proj.search``) searches a project's pool by a text query, an example image
or an example pair. Queries are encoded with the project's own model (the one that embedded it; an
imported-embedding project has none, so only ``pair_id`` queries work there) and searched in these
indexes, built once and reused, so a query against a large pool costs one index search.
:func:`focus_scores` is ``select --query``'s focus.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from PIL import Image

from mmcurate import index as ix
from mmcurate._fileio import atomic_write_json
from mmcurate.embed.encoder import load_encoder
from mmcurate.exceptions import ProjectError

if TYPE_CHECKING:
    from mmcurate.project import Project

__all__ = ["FOCUS_POOL", "ON", "ProjectIndex", "focus_scores", "search_pairs"]


class ProjectIndex:
    """Image and text faiss indexes of one project, with batched cross-modal kNN.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        sims, idx = proj.index.image_to_text(k=10)
        idx.shape  # (N, 10): caption rows nearest to each image, best first
    """

    def __init__(self, folder: Path, image_embeddings: np.ndarray, text_embeddings: np.ndarray, *,
                 fingerprint: str) -> None:
        self.folder = Path(folder)
        self.image_embeddings = image_embeddings
        self.text_embeddings = text_embeddings
        self.fingerprint = fingerprint

    def _load_or_build(self, name: str, vectors: np.ndarray) -> Any:
        path = self.folder / f"{name}.faiss"
        meta_path = self.folder / f"{name}.json"
        if path.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("fingerprint") == self.fingerprint:
                return ix.load_index(path)
        index = ix.build_index(vectors)
        self.folder.mkdir(parents=True, exist_ok=True)
        ix.save_index(index, path)
        atomic_write_json(meta_path, {"fingerprint": self.fingerprint, "n": len(vectors),
                                      "type": type(index).__name__})
        return index

    @cached_property
    def image(self) -> Any:
        """faiss index over image vectors."""
        return self._load_or_build("image", self.image_embeddings)

    @cached_property
    def text(self) -> Any:
        """faiss index over caption vectors."""
        return self._load_or_build("text", self.text_embeddings)

    def image_to_text(self, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k captions nearest to each image: ``(sims (N, k), caption rows (N, k))``."""
        return ix.search(self.text, self.image_embeddings, k)

    def text_to_image(self, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k images nearest to each caption."""
        return ix.search(self.image, self.text_embeddings, k)

    def image_to_image(self, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k other images nearest to each image (the image itself excluded)."""
        sims, idx = ix.search(self.image, self.image_embeddings, k + 1)
        rows = np.arange(len(idx))[:, None]
        order = np.argsort(idx == rows, axis=1, kind="stable")
        return (np.take_along_axis(sims, order, 1)[:, :k], np.take_along_axis(idx, order, 1)[:, :k])

    def add(self, image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> None:
        """Append vectors ``(M, D)`` to both indexes in memory (they become rows N .. N+M-1)."""
        self.image.add(ix.as_float32(image_embeddings))
        self.text.add(ix.as_float32(text_embeddings))

    def save(self, fingerprint: str) -> None:
        """Write both indexes as they are now, recorded under ``fingerprint``."""
        self.fingerprint = fingerprint
        for name, index in (("image", self.image), ("text", self.text)):
            ix.save_index(index, self.folder / f"{name}.faiss")
            atomic_write_json(self.folder / f"{name}.json", {"fingerprint": fingerprint,
                                                            "n": int(index.ntotal),
                                                            "type": type(index).__name__})


ON = ("image", "caption")
FOCUS_POOL = 10
"""``select --query``: the focus is the ``FOCUS_POOL × n`` pairs whose images match the query best."""


def search_pairs(proj: Project, *, text: str | None = None, image: str | os.PathLike | None = None,
                 pair_id: str | None = None, k: int = 50, on: str = "image") -> pd.DataFrame:
    """The ``k`` pairs nearest to one query, best first.

    Parameters
    ----------
    proj : Project
    text, image, pair_id
        Exactly one: a text query (``"a dog on a beach"``), an image file, or a pair of the project
        (its own vector in the ``on`` space; the pair itself is left out of the answer).
    k : int
        Pairs returned.
    on : {"image", "caption"}
        Which vectors of the pool are compared with the query: a text query ``on="image"`` finds
        images that show it (cross-modal, as clip-retrieval does), ``on="caption"`` captions that say it.

    Returns
    -------
    DataFrame
        ``rank``, ``pair_id``, ``similarity`` (cosine), ``image``, ``caption``; the query in
        ``df.attrs["query"]``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        proj.search(text="a dog on a beach", k=20).head()
        proj.search(pair_id="a1b2c3d4e5f60718", on="caption")
    """
    given = {name: v for name, v in (("text", text), ("image", image), ("pair_id", pair_id)) if v is not None}
    if len(given) != 1:
        raise ValueError(f"give exactly one of text=, image=, pair_id=; got {sorted(given) or 'none'}")
    if on not in ON:
        raise ValueError(f"on must be one of {', '.join(ON)}; got {on!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    query, own = _query_vector(proj, given, on)
    index = proj.index.image if on == "image" else proj.index.text
    n = len(proj.pairs)
    sims, idx = ix.search(index, query[None], min(k + (own is not None), n))
    keep = (idx[0] >= 0) & (idx[0] != (own if own is not None else -1))
    rows, sims_kept = idx[0][keep][:k], sims[0][keep][:k]
    out = proj.pairs.iloc[rows][["pair_id", "image", "caption"]].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out.insert(2, "similarity", sims_kept.astype(np.float64))
    out.attrs["query"] = {**{key: str(v) for key, v in given.items()}, "on": on, "k": k}
    return out


def _query_vector(proj: Project, given: dict[str, Any], on: str) -> tuple[np.ndarray, int | None]:
    """The query as one L2-normalised float32 vector, and the row it came from (pair_id queries)."""
    if "pair_id" in given:
        ids = proj.pairs["pair_id"].astype(str)
        rows = np.flatnonzero(ids.to_numpy() == str(given["pair_id"]))
        if len(rows) == 0:
            raise ValueError(f"pair {given['pair_id']!r} is not in {proj.root}")
        vectors = proj.image_embeddings() if on == "image" else proj.text_embeddings()
        return np.asarray(vectors[int(rows[0])], np.float32), int(rows[0])
    encoder = _encoder(proj)
    if "text" in given:
        return encoder.encode_texts([str(given["text"])])[0], None
    with Image.open(given["image"]) as im:
        return encoder.encode_images([im.convert("RGB")])[0], None


def _encoder(proj: Project):
    if proj.kind == "external" or proj.model_spec is None:
        raise ProjectError(f"{proj.root} was built from imported embeddings and has no model to encode "
                           f"a text or image query; search it by example with pair_id=, or create the "
                           f"project from the pairs (mmcurate init --pairs) with the model that made them")
    return load_encoder(proj.model_spec, weights_sha256=proj.weights_sha256, device="cpu")


def focus_scores(proj: Project, scores: np.ndarray, query: str, *, n: int,
                 pool: int = FOCUS_POOL) -> np.ndarray:
    """Scores that rank the ``pool · n`` pairs whose images match ``query`` best first (their own
    order kept), then every other pair (its order kept): a selector given them fills its ``n``
    from the focus while it has enough candidates.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        s = focus_scores(proj, ranked["score"].to_numpy(), "x-ray images", n=40)
    """
    found = search_pairs(proj, text=query, k=min(max(pool * n, 1), len(proj.pairs)), on="image")
    focus = proj.pairs["pair_id"].isin(set(found["pair_id"])).to_numpy()
    finite = np.where(np.isfinite(scores), scores, np.nan)
    span = (np.nanmax(finite) - np.nanmin(finite)) if np.isfinite(finite).any() else 0.0
    return np.where(focus, scores + span + 1.0, scores)
