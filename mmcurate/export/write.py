"""The export's files: curated and dropped tables (or WebDataset shards) and the report."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmcurate._fileio import atomic_write_frame, spreadsheet_safe
from mmcurate.exceptions import ProjectError
from mmcurate.export.curate import _DROPPED_COLUMNS, Curation, _ledger_frames, curate_pairs
from mmcurate.export.gallery import report_galleries
from mmcurate.export.webdataset import _image_reader, write_webdataset
from mmcurate.learn import TARGET_NOISE
from mmcurate.report import write_report
from mmcurate.results import ExportResult, Ranking, clean_floor_line, reviewer_words
from mmcurate.rounds.model import load_model

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["CURATED_FORMATS", "export_curated", "model_display_name"]

CURATED_FORMATS = ("csv", "jsonl", "parquet", "webdataset")


def _write_frame(df: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``df`` as csv, jsonl or parquet, atomically."""
    return atomic_write_frame(df, path, fmt=fmt)


# -- files --------------------------------------------------------------------------------------------
def export_curated(proj: Project, out_dir: str | os.PathLike, *, fmt: str = "csv",
                   threshold: float | str | None = "auto", target_noise: float = TARGET_NOISE,
                   strategy_scores: pd.DataFrame | Ranking | None = None, shard_size: int = 1000,
                   image_format: str = "original", keep_duplicates: bool = False) -> ExportResult:
    """Write the curated pairs, the dropped pairs and a report (Markdown + self-contained HTML).

    Parameters
    ----------
    proj : Project
    out_dir : path
        Created if missing; files in it are replaced atomically.
    fmt : {"csv", "jsonl", "parquet", "webdataset"}
        Tables write ``curated.<fmt>`` and ``dropped.<fmt>``. ``webdataset`` (image projects only)
        writes ``curated-000000.tar``, ... (at most ``shard_size`` samples each) holding
        ``<key>.<image ext>`` (the original bytes, so a PNG is ``<key>.png``: a reader asking for
        ``to_tuple("jpg", "txt")`` needs ``image_format="jpg"``), ``<key>.txt`` (caption) and
        ``<key>.json`` (``key``, ``url``, ``caption`` as img2dataset writes them, plus ``pair_id``,
        ``status``, ``p_aligned`` and the extra columns), plus ``dropped.csv``.
    threshold : "auto", float in [0, 1] or None
        Keep unreviewed pairs with P(aligned) >= ``threshold`` (``status = auto``), drop the rest;
        ``"auto"`` (default) chooses it from the labels (:func:`curate_pairs`); ``None`` writes the
        reviewed pairs only.
    target_noise : float
        What ``"auto"`` aims at: the estimated misaligned share of the kept unreviewed pairs.
    strategy_scores : Ranking or DataFrame, optional
        A ranking (:func:`mmcurate.rounds.rank_project`) or its table (``pair_id``, ``p_aligned``,
        optionally ``cosine``) to use instead of ranking the project again.
    shard_size : int
        Samples per WebDataset shard.
    image_format : {"original", "jpg"}
        WebDataset only: the original bytes and extension, or every image re-encoded as JPEG
        (quality 95; alpha composited on white) under ``<key>.jpg``.
    keep_duplicates : bool
        Keep every member of a duplicate group; by default one per group (``dropped`` lists the rest).

    Returns
    -------
    ExportResult
        The counts of :class:`Curation` plus ``format``, ``threshold``, ``estimates`` and the paths
        written (``curated_path`` or ``shards``, ``dropped_path``, ``report_md``, ``report_html``,
        ``plots``).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        summary = export_curated(proj, "release/", fmt="parquet", threshold=0.9)
        summary.curated, summary.dropped, summary.report_html
    """
    if fmt not in CURATED_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(CURATED_FORMATS)}; got {fmt!r}")
    if fmt == "webdataset" and proj.image_root is None:
        raise ProjectError(f"{proj.root} was built from imported embeddings and has no image files, "
                           f"so it cannot be written as WebDataset shards; use fmt='csv', 'jsonl' or "
                           f"'parquet' (or re-create it with `init --embeddings DIR --image-root "
                           f"FOLDER` when the metadata's image_path values are relative to FOLDER).")
    if image_format not in ("original", "jpg"):
        raise ValueError(f"image_format must be 'original' or 'jpg'; got {image_format!r}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 sample per shard; got {shard_size}")
    out_dir = Path(out_dir)
    cur = curate_pairs(proj, threshold=threshold, target_noise=target_noise,
                       strategy_scores=strategy_scores, keep_duplicates=keep_duplicates)
    out_dir.mkdir(parents=True, exist_ok=True)  # after the project read well: no empty folder else
    verified = cur.estimates.get("verified", True)
    threshold = cur.estimates.get("threshold") if threshold is not None and verified else None
    paths: dict[str, Any] = {}
    if fmt == "webdataset":
        image_root = proj.image_root
        assert image_root is not None  # refused above, before any work
        shards, unreadable = write_webdataset(
            cur.curated, out_dir, read_image=_image_reader(image_root),
            refs=proj.pairs.set_index("pair_id")["image"], shard_size=shard_size,
            image_format=image_format)
        _move_unreadable(cur, unreadable)
        paths["shards"] = [str(p) for p in shards]
        paths["dropped_path"] = str(_write_frame(spreadsheet_safe(cur.dropped), out_dir / "dropped.csv",
                                                 "csv"))
    else:
        paths["curated_path"] = str(_write_frame(cur.curated, out_dir / f"curated.{fmt}", fmt))
        dropped = spreadsheet_safe(cur.dropped) if fmt == "csv" else cur.dropped  # a file people open
        paths["dropped_path"] = str(_write_frame(dropped, out_dir / f"dropped.{fmt}", fmt))
    decisions, rounds, heads = _ledger_frames(proj)
    report = write_report(out_dir, cur, rounds=rounds, heads=heads, decisions=decisions,
                          title=f"mmcurate export: {proj.root.name}",
                          meta={"project": str(proj.root), "kind": proj.kind, "format": fmt,
                                "threshold": _threshold_line(cur.estimates),
                                "model": _model_line(proj),
                                "reviewer": _reviewer_line(proj, cur.counts.get("disputed", 0)),
                                "P(aligned) from": _scores_line(cur.provenance),
                                "exported": time.strftime("%FT%TZ", time.gmtime())},
                          model=model_display_name(_manifest(proj)), galleries=report_galleries(proj, cur))
    counts = dict(cur.counts)
    by_kind = {key[len("groups_"):]: counts.pop(key) for key in list(counts) if key.startswith("groups_")}
    return ExportResult(**counts, format=fmt, threshold=threshold, estimates=cur.estimates,
                        curated_path=paths.get("curated_path"), shards=tuple(paths.get("shards", ())),
                        dropped_path=paths["dropped_path"], report_md=report["report_md"],
                        report_html=report["report_html"], plots=tuple(report["plots"]),
                        groups_by_kind=by_kind)


def _threshold_line(est: dict[str, Any]) -> str | None:
    """The threshold and its estimates in one sentence for the report."""
    if not est:
        return "none (reviewed pairs only)"
    if not est.get("verified", True):
        return f"none: unreviewed pairs kept as unverified, because {est.get('why')}"
    line = (f"P(aligned) >= {est['threshold']:.4f} ({est['rule']}): keeps {est['n_kept']} unreviewed "
            f"pairs, estimated noise among them {est['est_noise_kept']:.1%}, estimated share of clean "
            f"unreviewed pairs kept {est['est_clean_kept']:.1%}")
    floor_line = clean_floor_line(est)
    if floor_line:
        line += f"; clean-pairs floor: {floor_line}"
    check = est.get("exploration_check") or {}
    if check.get("n"):
        line += (f"; check on {check['n']} randomly drawn reviewed pairs it would keep: "
                 f"{check['noise']:.1%} misaligned (95% interval {check['low']:.1%}–{check['high']:.1%})")
    return line


def model_display_name(manifest: dict[str, Any] | None) -> str | None:
    """A short name for the model that made the vectors, for titles: ``ViT-B-32 / laion2b_s34b_b79k``,
    a local folder's name, ``imported embeddings``, or the tiny stand-in model said plainly."""
    if not manifest:
        return None
    if manifest.get("kind") == "external":
        return "imported embeddings"
    name = str(manifest.get("model") or "")
    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:"):])
        if folder.name.startswith("tiny-clip"):
            return f"mmcurate tiny stand-in model ({folder.name}; not CLIP)"
        return folder.name
    return name + (f" / {manifest['pretrained']}" if manifest.get("pretrained") else "")


def _manifest(proj: ProjectFiles) -> dict[str, Any] | None:
    return proj.store.manifest() if proj.has_embeddings() else None


def _model_line(proj: ProjectFiles) -> str:
    manifest = _manifest(proj)
    if not manifest:
        return "no embeddings"
    if manifest.get("kind") == "external":
        return f"imported embeddings from {manifest.get('source')}"
    return f"{manifest.get('model')} ({manifest.get('pretrained') or 'local weights'})"


def _reviewer_line(proj: ProjectFiles, disputed: int) -> str | None:
    """The reviewer's estimated error rate (from the pairs seen twice) and the disputed accepts."""
    reviewer = load_model(proj).info.get("reviewer") or {}
    if not reviewer.get("n"):
        return None
    return f"{reviewer_words(reviewer)}; {disputed} accepted pairs disputed"


def _scores_line(provenance: dict[str, Any]) -> str | None:
    if not provenance:
        return None
    head = provenance.get("head_round")
    return (f"rank_project {provenance.get('strategies')} under "
            f"{f'head round {head}' if head else 'plain CLIP (no head)'}")


def _move_unreadable(cur: Curation, unreadable: dict[str, str]) -> None:
    """Pairs whose image could not be read for the shards go from curated to dropped."""
    if not unreadable:
        return
    gone = cur.curated[cur.curated["pair_id"].isin(list(unreadable))]
    cur.curated = cur.curated[~cur.curated["pair_id"].isin(list(unreadable))].reset_index(drop=True)
    extra = gone.assign(stage="export", reason="unreadable_image",
                        detail=gone["pair_id"].map(unreadable)).reindex(columns=_DROPPED_COLUMNS)
    cur.dropped = pd.concat([cur.dropped, extra], ignore_index=True)
    cur.counts.update(curated=len(cur.curated), dropped=len(cur.dropped),
                      unreadable_images=len(unreadable))


