"""Batch files out: one round's batch as a CSV / JSONL file for outside annotators, with thumbnails.

One row per pair of a round, named so that the file, once filled in, imports as is with
``mmcurate label PROJECT --import FILE`` (read back by :mod:`mmcurate.labels.decision_files`):
``pair_id, decision, caption, reviewer`` (``caption`` holds the current caption; a reviewer edits it
for ``fix``), plus ``image``, ``score``, ``reason``, ``round`` (and ``thumbnail``), which the importer
ignores. Every file is written to a temporary name and moved into place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mmcurate._fileio import atomic_write_bytes, atomic_write_frame, spreadsheet_safe
from mmcurate.data.images import ref_thumbnail_jpeg
from mmcurate.exceptions import ProjectError
from mmcurate.export import absolute_image_paths, sample_key

if TYPE_CHECKING:
    from mmcurate.project.files import ProjectFiles

__all__ = ["BATCH_SUFFIXES", "THUMBNAIL_SIZE", "export_batch"]

BATCH_SUFFIXES = (".csv", ".jsonl")
THUMBNAIL_SIZE = 256
_BASE_COLUMNS = ("pair_id", "image", "caption")


def export_batch(proj: ProjectFiles, out: str | os.PathLike, *, round_id: int | None = None,
                 thumbnails: bool = False) -> Path:
    """Write one round's batch (latest by default) as a CSV or JSONL file for annotators.

    Columns ``pair_id, decision, caption, reviewer, image, score, reason, round`` (+ ``thumbnail``).
    ``decision`` and ``reviewer`` are empty, to fill in; ``caption`` holds the current caption and
    is the corrected caption for ``fix``. ``image`` is an absolute path for image projects and the
    stored reference (possibly empty) for imported-embedding projects. The filled-in file imports
    unchanged with ``mmcurate label PROJECT --import FILE``; rows left without a decision are skipped.

    Parameters
    ----------
    proj : Project
    out : path
        Ends in ``.csv`` or ``.jsonl`` (the format).
    round_id : int, optional
        The round to export; the latest when omitted.
    thumbnails : bool
        Also write 256-px JPEG thumbnails into ``<out stem>_thumbs/`` and a ``thumbnail`` column
        (path relative to the folder of ``out``; empty when the image cannot be read).

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        path = export_batch(proj, "round3.csv", thumbnails=True)
        # pandas reads the empty `decision` column as float64, which refuses strings; read it as text:
        df = pd.read_csv(path, dtype={"decision": "string", "reviewer": "string"})
        df.loc[df["pair_id"] == "p7", "decision"] = "reject"
        df.to_csv(path, index=False)  # NaN / <NA> left in `decision` = not reviewed yet
        # fill in `decision` (accept | reject | fix) and `caption` for fixes, then
        proj.ledger.import_decisions(path, known_pair_ids=set(proj.pairs["pair_id"]))
    """
    out = Path(out)
    if out.suffix.lower() not in BATCH_SUFFIXES:
        raise ValueError(f"batch file {out.name!r}: expected a name ending in one of "
                         f"{', '.join(BATCH_SUFFIXES)} (the format), got suffix {out.suffix!r}")
    if not proj.has_ledger() or proj.ledger.latest_round() is None:
        raise ProjectError(f"{proj.root} has no round to export yet; run `mmcurate select "
                           f"{proj.root} --budget N` first.")
    batch = proj.ledger.batch(round_id)
    rows = batch.merge(proj.pairs[list(_BASE_COLUMNS)], on="pair_id", how="left")
    table = pd.DataFrame({
        "pair_id": rows["pair_id"].astype(str),
        "decision": "",
        "caption": rows["caption"].fillna("").astype(str),
        "reviewer": "",
        "image": absolute_image_paths(proj, rows["image"]).to_numpy(),
        "score": rows["score"].astype(float),
        "reason": rows["reason"].fillna("").astype(str),
        "round": rows["round"].astype("int64"),
    })
    if thumbnails:
        table["thumbnail"] = _write_thumbnails(proj, rows, out)
    fmt = out.suffix.lower().lstrip(".")
    # a person opens the CSV in a spreadsheet: no cell may run as a formula (read back unescaped)
    return atomic_write_frame(spreadsheet_safe(table) if fmt == "csv" else table, out, fmt=fmt)


def _write_thumbnails(proj: ProjectFiles, rows: pd.DataFrame, out: Path) -> list[str]:
    """Write one JPEG per readable image into ``<out stem>_thumbs/``; relative paths or ''."""
    if proj.image_root is None:
        return [""] * len(rows)
    folder = out.parent / f"{out.stem}_thumbs"
    names: list[str] = []
    for pair_id, ref in zip(rows["pair_id"].astype(str), rows["image"].fillna("").astype(str)):
        try:
            data = ref_thumbnail_jpeg(ref, image_root=proj.image_root, size=THUMBNAIL_SIZE)
        except (OSError, ValueError):  # unreadable or missing image: no thumbnail
            names.append("")
            continue
        target = folder / f"{sample_key(pair_id)}.jpg"
        atomic_write_bytes(target, data)
        names.append(target.relative_to(out.parent).as_posix())
    return names
