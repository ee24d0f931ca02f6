"""Pictures for the export report: the most suspect pairs dropped and kept, and example duplicate groups.

A report that only lists pair ids asks its reader to trust it; a few thumbnails let them check the
model's verdicts at a glance. The HTML report embeds every thumbnail as a small base64 JPEG, so it
shows them wherever it is opened from (moved, mailed, opened from another folder); the Markdown
report links the same files saved under ``thumbs/`` beside it. Imported-embedding projects without
image files get the same galleries with captions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmcurate.data.images import ref_thumbnail_jpeg
from mmcurate.groups.compute import DUPLICATE_KINDS
from mmcurate.groups.project import load_duplicates

if TYPE_CHECKING:
    from mmcurate.export.curate import Curation
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["THUMB_SIZE", "Gallery", "Thumb", "report_galleries"]

THUMB_SIZE = 160
"""Longest side of a report thumbnail, in pixels (about 5 kB as JPEG)."""
N_SUSPECT = 8
N_GROUPS = 3
PER_GROUP = 6


@dataclass(frozen=True)
class Thumb:
    """One picture of a gallery: the pair, its caption, a short note and the JPEG (None: no image)."""

    pair_id: str
    caption: str
    note: str
    jpeg: bytes | None = None


@dataclass
class Gallery:
    """A titled row of thumbnails in the report."""

    title: str
    text: str = ""
    thumbs: list[Thumb] = field(default_factory=list)


def report_galleries(proj: Project, cur: Curation, *, n: int = N_SUSPECT, n_groups: int = N_GROUPS,
                     per_group: int = PER_GROUP) -> list[Gallery]:
    """The report's galleries for an export ``cur`` (:class:`~mmcurate.export.Curation`) of ``proj``.

    - the ``n`` dropped pairs with the lowest P(aligned) (the model's surest rejections);
    - the ``n`` kept pairs with the lowest P(aligned) among those no one reviewed (or among all
      kept pairs when every kept pair was reviewed): where to look for noise left in the set;
    - up to ``n_groups`` duplicate groups (the largest first), ``per_group`` members each, saying
      which member was kept.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        [g.title for g in report_galleries(proj, curate_pairs(proj))]
    """
    p_aligned = cur.pairs.set_index("pair_id")["p_aligned"] if "p_aligned" in cur.pairs.columns else None
    picture = _thumbnailer(proj)
    out = []
    dropped = _lowest(cur.dropped, p_aligned, n)
    if len(dropped):
        out.append(Gallery("Most suspect dropped pairs", "The dropped pairs with the lowest P(aligned).", [
            picture(r.pair_id, r.caption, f"{_p(p_aligned, r.pair_id)} · {r.stage}: {r.reason}")
            for r in dropped.itertuples()]))
    kept = cur.curated
    unreviewed = kept[kept["status"].isin(["auto", "unverified"])] if "status" in kept.columns else kept
    suspects = _lowest(unreviewed if len(unreviewed) else kept, p_aligned, n)
    if len(suspects):
        out.append(Gallery("Most suspect kept pairs", (
            "The kept pairs " + ("no one reviewed " if len(unreviewed) else "")
            + "with the lowest P(aligned): where noise left in the set would be."), [
            picture(r.pair_id, r.caption, f"{_p(p_aligned, r.pair_id)} · {r.status}")
            for r in suspects.itertuples()]))
    out += _group_galleries(proj, cur, picture, p_aligned, n_groups, per_group)
    return out


def _lowest(table: pd.DataFrame, p_aligned: pd.Series | None, n: int) -> pd.DataFrame:
    """The ``n`` rows of ``table`` with the lowest P(aligned) (rows without one last; ties by id)."""
    if table.empty or n < 1:
        return table.head(0)
    p = (table["pair_id"].map(p_aligned).astype(float) if p_aligned is not None
         else pd.Series(np.nan, index=table.index))
    order = table.assign(_p=p.fillna(np.inf).to_numpy()).sort_values(["_p", "pair_id"])
    return order.head(n).drop(columns="_p").astype({"caption": str})


def _p(p_aligned: pd.Series | None, pair_id: str) -> str:
    value = p_aligned.get(pair_id) if p_aligned is not None else None
    return f"P(aligned)={float(value):.3f}" if value is not None and np.isfinite(value) else "no P(aligned)"


def _thumbnailer(proj: ProjectFiles):
    """``(pair_id, caption, note) -> Thumb`` with the pair's JPEG where its image can be read."""
    refs = proj.pairs.set_index("pair_id")["image"] if "image" in proj.pairs.columns else pd.Series(dtype=str)

    def picture(pair_id: str, caption: str, note: str) -> Thumb:
        ref = refs.get(pair_id)
        jpeg = None
        if proj.image_root is not None and isinstance(ref, str) and ref:
            try:
                jpeg = ref_thumbnail_jpeg(ref, image_root=proj.image_root, size=THUMB_SIZE)
            except (OSError, ValueError):  # unreadable now: the caption and note still show
                jpeg = None
        return Thumb(str(pair_id), str(caption), note, jpeg)

    return picture


def _group_galleries(proj: Project, cur, picture, p_aligned, n_groups: int, per_group: int) -> list[Gallery]:
    """The largest duplicate groups, members best P(aligned) first, each saying kept or dropped."""
    groups = load_duplicates(proj, write=False)
    if groups is None or groups.empty or n_groups < 1:
        return []
    dup = groups[groups["kind"].isin(DUPLICATE_KINDS)]
    sizes = dup["group_id"].value_counts()
    chosen = sorted(sizes.index, key=lambda g: (-sizes[g], g))[:n_groups]
    kept = set(cur.curated["pair_id"])
    captions = proj.pairs.set_index("pair_id")["caption"]
    out = []
    for gid in chosen:
        members = dup[dup["group_id"] == gid]
        members = members.assign(_dropped=~members["pair_id"].isin(kept)).sort_values(["_dropped", "pair_id"])
        thumbs = [picture(pid, captions.get(pid, ""), ("kept" if pid in kept else "dropped")
                          + f" · {_p(p_aligned, pid)}") for pid in members["pair_id"].head(per_group)]
        kind = str(members["kind"].iloc[0]).replace("_", " ")
        more = f" ({len(members) - per_group} more not shown)" if len(members) > per_group else ""
        out.append(Gallery(f"Duplicate group {gid}: {sizes[gid]} pairs ({kind})",
                           f"One decision and one kept pair per group{more}.", thumbs))
    return out
