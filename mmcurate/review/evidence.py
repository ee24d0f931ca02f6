"""Why a pair was queued, shown to its reviewer: what the pool says about its image and its caption.

For each pair of a batch, searched in the project's saved faiss indexes (:attr:`Project.index`,
the same ones :func:`mmcurate.project_index.search_pairs` uses):

- the caption of the pool nearest to the pair's image (another pair's; the pair itself and the
  members of its duplicate groups are left out), its pair id and cosine similarity: when it is
  higher than the pair's own caption's, the image "matches another caption better", the plainest
  sign of a swapped or wrong caption; it is also the suggestion offered when editing the caption;
- the image of the pool nearest to the pair's caption, likewise;
- the size and kind of the groups the pair represents (:mod:`mmcurate.groups`).

Similarities are plain cosines of the project's vectors (the model's own space, before any trained
head), so they read the same in every round. A project whose vectors are missing gets no evidence
(an empty table), never an error: the review page still works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmcurate import index as ix
from mmcurate.exceptions import NotEmbeddedError
from mmcurate.groups.project import load_duplicates

if TYPE_CHECKING:
    from mmcurate.project import Project

__all__ = ["EVIDENCE_COLUMNS", "pair_evidence"]

EVIDENCE_COLUMNS = ["pair_id", "own_similarity", "caption_pair_id", "caption_text", "caption_similarity",
                    "image_pair_id", "image_caption", "image_similarity", "group_size", "group_kind"]
_K = 8
"""Neighbours searched per query beyond the members of its groups: room to skip the pair itself."""
MAX_DEPTH = 256
"""At most this many extra neighbours are searched to get past a pair's own group members."""


def pair_evidence(proj: Project, pair_ids: Sequence[str], *, k: int = _K) -> pd.DataFrame:
    """The evidence for each of ``pair_ids`` (pairs of the project; unknown ids are left out).

    Returns
    -------
    DataFrame
        :data:`EVIDENCE_COLUMNS`, one row per known pair in the order given: ``own_similarity``
        (image · own caption); ``caption_pair_id`` / ``caption_text`` / ``caption_similarity``
        (the pool's caption nearest to this image, image · that caption); ``image_pair_id`` /
        ``image_caption`` / ``image_similarity`` (the pool's image nearest to this caption, with
        that pair's caption for projects without image files); ``group_size`` / ``group_kind``
        (the largest group the pair is in; 0 and '' outside groups). Empty when the project has
        no vectors.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        ev = pair_evidence(proj, proj.ledger.batch(3)["pair_id"])
        better = ev["caption_similarity"] > ev["own_similarity"]
    """
    ids = proj.pairs["pair_id"].astype(str)
    row_of = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    wanted = [p for p in dict.fromkeys(map(str, pair_ids)) if p in row_of.index]
    if not wanted:
        return pd.DataFrame(columns=EVIDENCE_COLUMNS)
    try:
        image, text = proj.image_embeddings(), proj.text_embeddings()
    except NotEmbeddedError:
        return pd.DataFrame(columns=EVIDENCE_COLUMNS)
    rows = row_of.loc[wanted].to_numpy(np.int64)
    queries_image, queries_text = np.asarray(image[rows], np.float32), np.asarray(text[rows], np.float32)
    own = ix.rowwise_cosine(queries_image, queries_text)
    same_group = _group_rows(proj, row_of, wanted)
    # room to skip the pair's own group members (a large boilerplate group is capped: MAX_DEPTH)
    depth = min(int(k) + min(max(map(len, same_group)), MAX_DEPTH), len(ids))
    sims_c, idx_c = ix.search(proj.index.text, queries_image, depth)
    sims_i, idx_i = ix.search(proj.index.image, queries_text, depth)
    best_c = _first_other(idx_c, rows, same_group)
    best_i = _first_other(idx_i, rows, same_group)
    captions = proj.pairs["caption"].astype(str).to_numpy()
    size, kind = _group_sizes(proj, wanted)
    out = pd.DataFrame({
        "pair_id": wanted, "own_similarity": own,
        "caption_pair_id": _take(ids.to_numpy(), idx_c, best_c),
        "caption_text": _take(captions, idx_c, best_c),
        "caption_similarity": _take_sim(sims_c, best_c),
        "image_pair_id": _take(ids.to_numpy(), idx_i, best_i),
        "image_caption": _take(captions, idx_i, best_i),
        "image_similarity": _take_sim(sims_i, best_i),
        "group_size": size, "group_kind": kind})
    return out[EVIDENCE_COLUMNS]


def _first_other(idx: np.ndarray, rows: np.ndarray, same_group: list[set[int]]) -> np.ndarray:
    """Column of the first neighbour of each query that is neither itself nor in its groups (-1: none)."""
    out = np.full(len(rows), -1, np.int64)
    for q, (row, skip) in enumerate(zip(rows, same_group)):
        for col, hit in enumerate(idx[q]):
            if hit >= 0 and hit != row and int(hit) not in skip:
                out[q] = col
                break
    return out


def _take(values: np.ndarray, idx: np.ndarray, col: np.ndarray) -> list[str | None]:
    return [str(values[idx[q, c]]) if c >= 0 else None for q, c in enumerate(col)]


def _take_sim(sims: np.ndarray, col: np.ndarray) -> np.ndarray:
    return np.array([float(sims[q, c]) if c >= 0 else np.nan for q, c in enumerate(col)])


def _groups(proj: Project) -> pd.DataFrame | None:
    return load_duplicates(proj, write=False)


def _group_rows(proj: Project, row_of: pd.Series, pair_ids: list[str]) -> list[set[int]]:
    """For each queried pair, the rows sharing a group with it (its copies are no evidence); work
    linear in the group table plus the members of the queried pairs' groups."""
    groups = _groups(proj)
    if groups is None or groups.empty:
        return [set() for _ in pair_ids]
    g = groups[groups["pair_id"].isin(row_of.index)]
    members = g.groupby("group_id")["pair_id"].agg(list)
    mine = g[g["pair_id"].isin(set(pair_ids))].groupby("pair_id")["group_id"].agg(list)
    return [{int(row_of[m]) for gid in mine.get(p, []) for m in members[gid]} for p in pair_ids]


def _group_sizes(proj: Project, pair_ids: list[str]) -> tuple[list[int], list[str]]:
    """Size and kind of the largest group each pair is in (0, '' for none)."""
    groups = _groups(proj)
    if groups is None or groups.empty:
        return [0] * len(pair_ids), [""] * len(pair_ids)
    sized = groups.assign(size=groups["group_id"].map(groups["group_id"].value_counts()))
    largest = sized.sort_values("size", ascending=False).drop_duplicates("pair_id").set_index("pair_id")
    return ([int(largest["size"].get(p, 0)) for p in pair_ids],
            [str(largest["kind"].get(p, "")) for p in pair_ids])
