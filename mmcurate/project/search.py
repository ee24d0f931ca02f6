"""Search a project's pool by a text query, an example image or an example pair (``proj.search``).

Queries are encoded with the project's own model (the one that embedded it; an imported-embedding
project has none, so only ``pair_id`` queries work there) and searched in the project's saved faiss
indexes (:attr:`mmcurate.project.Project.index`: exact up to :data:`mmcurate.index.EXACT_MAX`
vectors, IVF above), built once and reused, so a query against a large pool costs one index search.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate.exceptions import ProjectError

if TYPE_CHECKING:
    from mmcurate.project import Project

__all__ = ["FOCUS_POOL", "ON", "focus_scores", "search_pairs"]

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
    from mmcurate import index as ix

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
    from PIL import Image

    with Image.open(given["image"]) as im:
        return encoder.encode_images([im.convert("RGB")])[0], None


def _encoder(proj: Project):
    if proj.kind == "external" or proj.model_spec is None:
        raise ProjectError(f"{proj.root} was built from imported embeddings and has no model to encode "
                           f"a text or image query; search it by example with pair_id=, or create the "
                           f"project from the pairs (mmcurate init --pairs) with the model that made them")
    from mmcurate.embed.encoder import load_encoder

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
