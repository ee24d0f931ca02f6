"""Export the curated set with its report (a round's batch files: :mod:`mmcurate.review.batch`).

Curated set (:func:`export_curated`)
    Every pair of the project ends in exactly one place:

    ========================  =========================================================
    latest decision accept    curated, ``status = accepted``
    latest decision fix       curated, ``status = fixed``, corrected caption in ``caption``,
                              the original in ``original_caption``
    latest decision reject    dropped, ``reason = rejected by reviewer``
    unreviewed, embed failed  dropped with the failure's reason (``embed_failures.csv``)
    unreviewed, threshold t   curated (``status = auto``) when P(aligned) >= t, else dropped
                              (``reason = p_aligned < t``)
    unreviewed, reviewed-only in neither file (``threshold=None``; counted as ``left_out``)
    ========================  =========================================================

    By default (``threshold="auto"``) every pair gets a verdict: ``t`` is chosen from the current
    model's P(aligned) by :func:`mmcurate.learn.choose_threshold` (the lowest ``t`` whose kept
    unreviewed pairs have an estimated misaligned share <= ``target_noise``, default 3%), and the
    exploration labels give an unbiased check of that share with a 95% interval
    (``Curation.estimates``).

    Rows rejected when the project was built (``rejects.csv``) are added to ``dropped`` with their
    reasons. A reviewer's decision outranks an embedding failure (a person saw the pair).

Assumptions: P(aligned) comes from :func:`mmcurate.rounds.rank_project` with the ``p_misaligned``
strategy (calibrated under the model in use) unless a ranking table is passed in; that ranking
writes nothing into the project (no ``state.json``, no pool state): exporting changes only the
output folder. Every file is written to a temporary name and moved into place, so readers never see
half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_path, atomic_write_frame, to_jsonable
from mmcurate.data.images import ImageRefError, read_image_bytes
from mmcurate.exceptions import ProjectError

__all__ = ["CURATED_FORMATS", "Curation", "absolute_image_paths", "curate_pairs", "export_curated",
           "model_display_name", "sample_key", "write_webdataset"]

CURATED_FORMATS = ("csv", "jsonl", "parquet", "webdataset")
_BASE_COLUMNS = ("pair_id", "image", "caption")
_DROPPED_COLUMNS = ["pair_id", "image", "caption", "stage", "reason", "detail"]
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


# -- small helpers ----------------------------------------------------------------------------------
def _write_frame(df: pd.DataFrame, path: Path, fmt: str) -> Path:
    """Write ``df`` as csv, jsonl or parquet, atomically."""
    return atomic_write_frame(df, path, fmt=fmt)


def sample_key(pair_id: str) -> str:
    """A file-name-safe key for a pair: the id itself when it is ``[A-Za-z0-9_-]``, else a hash.

    WebDataset splits a member name at its first dot, so keys may not contain dots or slashes.
    """
    if _SAFE_KEY.match(pair_id):
        return pair_id
    return "id-" + hashlib.sha1(pair_id.encode("utf-8")).hexdigest()[:16]


def absolute_image_paths(proj, refs: pd.Series) -> pd.Series:
    """Image references as absolute paths (``/root/shard.tar::member`` for WebDataset members)."""
    refs = refs.fillna("").astype(str)
    if proj.kind == "external" or proj.image_root is None:
        return refs
    root = proj.image_root
    return refs.map(lambda ref: str(root / ref) if ref else "")



def _image_reader(image_root: Path) -> Callable[[str], bytes]:
    """``ref -> bytes`` of a stored image (a file under ``image_root``, a ``shard.tar::member`` or a
    ``table.parquet::row``); raises ``OSError`` when the image cannot be read, a reference outside
    the root included."""

    def read(ref: str) -> bytes:
        try:
            return read_image_bytes(ref, image_root=image_root)
        except ImageRefError as err:
            raise OSError(str(err)) from err

    return read


# -- curation ---------------------------------------------------------------------------------------
@dataclass
class Curation:
    """Where every pair went.

    ``curated``: ``pair_id, image, caption, status, original_caption, p_aligned`` + extra columns.
    ``dropped``: ``pair_id, image, caption, stage, reason, detail`` (``stage`` is ``review``,
    ``threshold``, ``embed`` or ``input``). ``pairs``: every pair with ``status`` (``accepted``,
    ``fixed``, ``rejected``, ``auto``, ``below_threshold``, ``embed_failed``, ``unreviewed``), its
    decision round and the alignment score. ``counts``: the numbers in the report.
    """

    curated: pd.DataFrame
    dropped: pd.DataFrame
    pairs: pd.DataFrame
    counts: dict[str, int]
    score_name: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    estimates: dict[str, Any] = field(default_factory=dict)


def _ledger_frames(proj) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Latest decisions, rounds and heads (empty frames when the project has no ledger yet)."""
    if not (proj.root / "labels.sqlite").is_file():
        empty = pd.DataFrame(columns=["pair_id", "round", "decision", "caption", "reviewer"])
        return empty, pd.DataFrame(), pd.DataFrame()
    ledger = proj.ledger
    return ledger.decisions(), ledger.rounds(), ledger.heads()


def _embed_failures(proj) -> pd.DataFrame:
    """Pairs in ``embed_failures.csv`` that still have no vectors."""
    path = proj.root / "embed_failures.csv"
    if not path.is_file() or not path.stat().st_size:
        return pd.DataFrame(columns=["pair_id", "reason", "detail"])
    failures = pd.read_csv(path, dtype=str, keep_default_na=False)
    stored = proj.store.stored_ids() if (proj.root / "embeddings").is_dir() else set()
    failures = failures[~failures["pair_id"].isin(stored)]
    for column in ("reason", "detail"):
        if column not in failures.columns:
            failures[column] = ""
    return failures.drop_duplicates("pair_id", keep="last")


def _scores_table(proj, threshold: float | str | None, strategy_scores: pd.DataFrame | None):
    """The ranking table used for P(aligned) and the histogram, or None when not needed/available."""
    if strategy_scores is not None:
        if "pair_id" not in strategy_scores.columns or (
                threshold is not None and "p_aligned" not in strategy_scores.columns):
            raise ValueError(f"strategy_scores needs columns 'pair_id' and 'p_aligned' (as returned "
                             f"by rank_project); got {list(strategy_scores.columns)}")
        return strategy_scores
    if threshold is None:
        return None
    from mmcurate.rounds import rank_project

    return rank_project(proj, ["p_misaligned"], pool_state=False, save_state=False)  # read-only


def _raw_cosine(proj) -> pd.Series | None:
    """Plain CLIP cosine per pair when the compacted vectors cover every pair (no writes)."""
    ids = proj.pairs["pair_id"].tolist()
    if not (proj.root / "embeddings").is_dir() or not proj.store.is_compact_for(ids):
        return None
    image, text = proj.image_embeddings(), proj.text_embeddings()
    out = np.empty(len(ids), np.float64)
    for start in range(0, len(ids), 65536):
        a = np.asarray(image[start : start + 65536], np.float32)
        b = np.asarray(text[start : start + 65536], np.float32)
        out[start : start + 65536] = np.einsum("ij,ij->i", a, b)
    return pd.Series(out, index=proj.pairs["pair_id"].to_numpy())


def _validate_threshold(threshold: float | str | None) -> None:
    if threshold == "auto" or threshold is None:
        return
    if isinstance(threshold, str) or not (0.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold is 'auto', None (reviewed pairs only) or a probability "
                         f"P(aligned) in [0, 1]; got {threshold!r}")


def _auto_threshold(table: pd.DataFrame, threshold: float | str | None, target_noise: float,
                    proj) -> tuple[float | None, dict[str, Any]]:
    """The threshold to apply and the estimates behind it (see the module docstring)."""
    from mmcurate.learn import choose_threshold, explored_noise

    if threshold is None:
        return None, {}
    open_ = table["decision"].isna().to_numpy() & np.isfinite(table["p_aligned"].to_numpy(float))
    p = table["p_aligned"].to_numpy(float)
    if threshold == "auto":
        rule = choose_threshold(p[open_], target_noise=target_noise)
        t = rule["threshold"]
        est = {"rule": f"lowest t with estimated noise of kept unreviewed pairs <= {target_noise:g}",
               "target_noise": target_noise, **rule}
    else:
        t = float(threshold)
        kept = open_ & (p >= t)
        est = {"rule": "given", "threshold": t, "n_kept": int(kept.sum()),
               "est_noise_kept": float(np.mean(1 - p[kept])) if kept.any() else float("nan"),
               "est_clean_kept": float(p[kept].sum() / p[open_].sum()) if open_.any() else float("nan")}
    est["exploration_check"] = _exploration_check(proj, table, t, explored_noise)
    return t, est


def _exploration_check(proj, table: pd.DataFrame, t: float, explored_noise) -> dict[str, Any]:
    if not (proj.root / "labels.sqlite").is_file():
        return {"n": 0}
    design = proj.ledger.design()
    explore = design[design["stratum"] == "explore"].set_index("pair_id")["inclusion"]
    rows = table[table["pair_id"].isin(explore.index) & table["decision"].notna()]
    if rows.empty:
        return {"n": 0}
    return explored_noise(rows["p_aligned"].to_numpy(float) >= t,
                          (rows["decision"] != "accept").to_numpy(),
                          1.0 / rows["pair_id"].map(explore).to_numpy(float))


def curate_pairs(proj, *, threshold: float | str | None = "auto", target_noise: float = 0.03,
                 strategy_scores: pd.DataFrame | None = None) -> Curation:
    """Split the project's pairs into curated and dropped (see the module docstring); no files.

    Parameters
    ----------
    proj : Project
    threshold : "auto", float in [0, 1] or None
        Keep unreviewed pairs with P(aligned) >= ``threshold``; drop the rest. ``"auto"``
        (default) chooses it from the model (see the module docstring); ``None`` leaves unreviewed
        pairs out of both tables (reviewed pairs only).
    target_noise : float
        The estimated misaligned share of the kept unreviewed pairs that ``"auto"`` aims at.
    strategy_scores : DataFrame, optional
        A ranking table with ``pair_id`` and ``p_aligned`` (and optionally ``cosine``), as returned
        by :func:`mmcurate.rounds.rank_project`; ranked with the current model when a threshold
        is used and this is omitted.

    Examples
    --------
    >>> cur = curate_pairs(proj, threshold=0.9)  # doctest: +SKIP
    >>> cur.counts["curated"], cur.dropped["reason"].value_counts()  # doctest: +SKIP
    """
    _validate_threshold(threshold)
    decisions, _, _ = _ledger_frames(proj)
    table = proj.pairs.copy()
    table["image"] = absolute_image_paths(proj, table["image"]).to_numpy()
    latest = decisions.drop_duplicates("pair_id", keep="last").set_index("pair_id")
    ids = table["pair_id"]
    table["decision"] = ids.map(latest["decision"]).to_numpy(object)
    table["fixed_caption"] = ids.map(latest["caption"]).to_numpy(object)
    table["decision_round"] = ids.map(latest["round"]).astype("Int64").to_numpy()
    table["reviewer"] = ids.map(latest["reviewer"]).to_numpy(object)
    scores = _scores_table(proj, threshold, strategy_scores)
    score_name, alignment = _alignment(proj, scores)
    table["p_aligned"] = (ids.map(scores.set_index("pair_id")["p_aligned"]).astype(float)
                          if scores is not None and "p_aligned" in scores.columns else np.nan)
    table["alignment"] = ids.map(alignment).astype(float) if alignment is not None else np.nan
    failures = _embed_failures(proj).set_index("pair_id")
    threshold, estimates = _auto_threshold(table, threshold, target_noise, proj)
    table["status"] = _statuses(table, failures.index, threshold)
    curated = _curated_frame(table, proj.pairs.columns)
    dropped = _dropped_frame(table, failures, proj.rejects, threshold)
    counts = _counts(table, proj.rejects, curated, dropped)
    prov = dict(getattr(scores, "attrs", {}).get("provenance", {})) if scores is not None else {}
    return Curation(curated=curated, dropped=dropped, counts=counts, score_name=score_name,
                    pairs=table.drop(columns=["fixed_caption"]), provenance=prov, estimates=estimates)


def _alignment(proj, scores: pd.DataFrame | None) -> tuple[str | None, pd.Series | None]:
    """The alignment score shown in the histogram: ranking cosine, P(aligned), or raw CLIP cosine."""
    for column, name in (("cosine", "cosine"), ("p_aligned", "P(aligned)")):
        if scores is not None and column in scores.columns:
            return name, scores.set_index("pair_id")[column].astype(float)
    raw = _raw_cosine(proj)
    return ("cosine", raw) if raw is not None else (None, None)


def _statuses(table: pd.DataFrame, failed: pd.Index, threshold: float | None) -> np.ndarray:
    decision = table["decision"].to_numpy(object)
    status = np.full(len(table), "unreviewed", dtype=object)
    status[decision == "accept"] = "accepted"
    status[decision == "fix"] = "fixed"
    status[decision == "reject"] = "rejected"
    open_ = status == "unreviewed"
    failed_mask = open_ & table["pair_id"].isin(failed).to_numpy()
    status[failed_mask] = "embed_failed"
    if threshold is not None:
        p = table["p_aligned"].to_numpy(float)
        keep = open_ & ~failed_mask & (p >= float(threshold))  # NaN compares False: dropped
        status[keep] = "auto"
        status[open_ & ~failed_mask & ~keep] = "below_threshold"
    return status


def _curated_frame(table: pd.DataFrame, pair_columns: pd.Index) -> pd.DataFrame:
    kept = table[table["status"].isin(["accepted", "fixed", "auto"])].copy()
    is_fix = (kept["status"] == "fixed").to_numpy()
    kept["original_caption"] = np.where(is_fix, kept["caption"].to_numpy(object), None)
    kept.loc[is_fix, "caption"] = kept.loc[is_fix, "fixed_caption"]
    extras = [c for c in pair_columns if c not in _BASE_COLUMNS]
    columns = ["pair_id", "image", "caption", "status", "original_caption", "p_aligned", *extras]
    return kept[columns].reset_index(drop=True)


def _dropped_frame(table: pd.DataFrame, failures: pd.DataFrame, rejects: pd.DataFrame,
                   threshold: float | None) -> pd.DataFrame:
    parts = []
    rejected = table[table["status"] == "rejected"]
    parts.append(rejected.assign(
        stage="review", reason="rejected by reviewer",
        detail=[_who(r, n) for r, n in zip(rejected["reviewer"], rejected["decision_round"])]))
    below = table[table["status"] == "below_threshold"]
    parts.append(below.assign(
        stage="threshold", reason=f"p_aligned < {threshold:.4g}" if threshold is not None else "",
        detail=[f"p_aligned={p:.4f}" if np.isfinite(p) else "no p_aligned for this pair"
                for p in below["p_aligned"].to_numpy(float)]))
    failed = table[table["status"] == "embed_failed"]
    parts.append(failed.assign(
        stage="embed", reason=failed["pair_id"].map(failures["reason"]).replace("", "embed_failed"),
        detail=failed["pair_id"].map(failures["detail"])))
    parts.append(_input_rejects(rejects))
    frames = [p.reindex(columns=_DROPPED_COLUMNS) for p in parts if len(p)]
    if not frames:
        return pd.DataFrame(columns=_DROPPED_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _who(reviewer: Any, round_id: Any) -> str:
    who = f"by {reviewer}" if isinstance(reviewer, str) and reviewer else "reviewer unknown"
    return f"{who}, round {int(round_id)}" if not pd.isna(round_id) else who


def _input_rejects(rejects: pd.DataFrame) -> pd.DataFrame:
    if rejects.empty:
        return pd.DataFrame(columns=_DROPPED_COLUMNS)
    rej = rejects.reindex(columns=["source", "row", "pair_id", "column", "reason", "detail"])
    no_row = rej["row"].isna().to_numpy()  # set aside by embed (no source row), else at input
    where = [f"{s}, column {c}" if missing else f"{s} row {int(r)}, column {c}"
             for s, r, c, missing in zip(rej["source"], rej["row"], rej["column"], no_row)]
    detail = [f"{w}: {d}" if isinstance(d, str) and d else w for w, d in zip(where, rej["detail"])]
    return pd.DataFrame({"pair_id": rej["pair_id"], "image": None, "caption": None,
                         "stage": np.where(no_row, "embed", "input"), "reason": rej["reason"],
                         "detail": detail})


def _counts(table: pd.DataFrame, rejects: pd.DataFrame, curated: pd.DataFrame,
            dropped: pd.DataFrame) -> dict[str, int]:
    status = table["status"].value_counts()

    def n(name: str) -> int:
        return int(status.get(name, 0))

    return {
        "pairs": len(table), "rejected_at_input": len(rejects),
        "reviewed": n("accepted") + n("rejected") + n("fixed"),
        "accepted": n("accepted"), "rejected": n("rejected"), "fixed": n("fixed"),
        "auto": n("auto"), "below_threshold": n("below_threshold"), "embed_failures": n("embed_failed"),
        "left_out": n("unreviewed"), "curated": len(curated), "dropped": len(dropped),
    }


# -- files --------------------------------------------------------------------------------------------
def export_curated(proj, out_dir: str | os.PathLike, *, fmt: str = "csv",
                   threshold: float | str | None = "auto", target_noise: float = 0.03,
                   strategy_scores: pd.DataFrame | None = None, shard_size: int = 1000) -> dict[str, Any]:
    """Write the curated pairs, the dropped pairs and a report (Markdown + self-contained HTML).

    Parameters
    ----------
    proj : Project
    out_dir : path
        Created if missing; files in it are replaced atomically.
    fmt : {"csv", "jsonl", "parquet", "webdataset"}
        Tables write ``curated.<fmt>`` and ``dropped.<fmt>``. ``webdataset`` (image projects only)
        writes ``curated-000000.tar``, ... (at most ``shard_size`` samples each) holding
        ``<key>.<image ext>`` (the original bytes), ``<key>.txt`` (caption) and ``<key>.json``
        (metadata), plus ``dropped.csv``.
    threshold : "auto", float in [0, 1] or None
        Keep unreviewed pairs with P(aligned) >= ``threshold`` (``status = auto``), drop the rest;
        ``"auto"`` (default) chooses it from the labels (:func:`curate_pairs`); ``None`` writes the
        reviewed pairs only.
    target_noise : float
        What ``"auto"`` aims at: the estimated misaligned share of the kept unreviewed pairs.
    strategy_scores : DataFrame, optional
        A ranking table (``pair_id``, ``p_aligned``, optionally ``cosine``) to use instead of
        ranking the project again.
    shard_size : int
        Samples per WebDataset shard.

    Returns
    -------
    dict
        The counts of :class:`Curation` plus ``format``, ``threshold`` and the paths written
        (``curated_path`` or ``shards``, ``dropped_path``, ``report_md``, ``report_html``, ``plots``).

    Examples
    --------
    >>> summary = export_curated(proj, "release/", fmt="parquet", threshold=0.9)  # doctest: +SKIP
    >>> summary["curated"], summary["dropped"], summary["report_html"]  # doctest: +SKIP
    """
    if fmt not in CURATED_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(CURATED_FORMATS)}; got {fmt!r}")
    if fmt == "webdataset" and (proj.kind == "external" or proj.image_root is None):
        raise ProjectError(f"{proj.root} was built from imported embeddings and has no image files, "
                           f"so it cannot be written as WebDataset shards; use fmt='csv', 'jsonl' or "
                           f"'parquet'.")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1 sample per shard; got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cur = curate_pairs(proj, threshold=threshold, target_noise=target_noise,
                       strategy_scores=strategy_scores)
    threshold = cur.estimates.get("threshold") if threshold is not None else None
    paths: dict[str, Any] = {}
    if fmt == "webdataset":
        shards, unreadable = write_webdataset(
            cur.curated, out_dir, read_image=_image_reader(proj.image_root),
            refs=proj.pairs.set_index("pair_id")["image"], shard_size=shard_size)
        _move_unreadable(cur, unreadable)
        paths["shards"] = [str(p) for p in shards]
        paths["dropped_path"] = str(_write_frame(cur.dropped, out_dir / "dropped.csv", "csv"))
    else:
        paths["curated_path"] = str(_write_frame(cur.curated, out_dir / f"curated.{fmt}", fmt))
        paths["dropped_path"] = str(_write_frame(cur.dropped, out_dir / f"dropped.{fmt}", fmt))
    from mmcurate.report import write_report

    decisions, rounds, heads = _ledger_frames(proj)
    report = write_report(out_dir, cur, rounds=rounds, heads=heads, decisions=decisions,
                          title=f"mmcurate export: {proj.root.name}",
                          meta={"project": str(proj.root), "kind": proj.kind, "format": fmt,
                                "threshold": _threshold_line(cur.estimates),
                                "model": _model_line(proj),
                                "P(aligned) from": _scores_line(cur.provenance),
                                "exported": time.strftime("%FT%TZ", time.gmtime())},
                          model=model_display_name(_manifest(proj)))
    return {**cur.counts, "format": fmt, "threshold": threshold, "estimates": cur.estimates,
            **paths, **report}


def _threshold_line(est: dict[str, Any]) -> str | None:
    """The threshold and its estimates in one sentence for the report."""
    if not est:
        return "none (reviewed pairs only)"
    line = (f"P(aligned) >= {est['threshold']:.4f} ({est['rule']}): keeps {est['n_kept']} unreviewed "
            f"pairs, estimated noise among them {est['est_noise_kept']:.1%}, estimated share of clean "
            f"unreviewed pairs kept {est['est_clean_kept']:.1%}")
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


def _manifest(proj) -> dict[str, Any] | None:
    return proj.store.manifest() if (proj.root / "embeddings").is_dir() else None


def _model_line(proj) -> str:
    manifest = _manifest(proj)
    if not manifest:
        return "no embeddings"
    if manifest.get("kind") == "external":
        return f"imported embeddings from {manifest.get('source')}"
    return f"{manifest.get('model')} ({manifest.get('pretrained') or 'local weights'})"


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


def write_webdataset(curated: pd.DataFrame, out_dir: str | os.PathLike, *,
                     read_image: Callable[[str], bytes], refs: pd.Series,
                     shard_size: int = 1000) -> tuple[list[Path], dict[str, str]]:
    """Write curated pairs as WebDataset tar shards ``curated-NNNNNN.tar``.

    Each sample is ``<key>.<ext>`` (the original image bytes; ``ext`` from the stored name, e.g.
    ``jpg``/``png``), ``<key>.txt`` (the caption, UTF-8) and ``<key>.json`` (every other column,
    ``pair_id`` included). ``key`` is :func:`sample_key` of the pair id. ``refs`` maps ``pair_id`` to
    the stored image reference given to ``read_image``. Shards left from an earlier, larger export
    are removed. Returns the shard paths and ``{pair_id: error}`` for images that could not be read
    (those samples are skipped).

    Examples
    --------
    >>> shards, unreadable = write_webdataset(cur.curated, "out/", read_image=read,  # doctest: +SKIP
    ...                                       refs=proj.pairs.set_index("pair_id")["image"])
    """
    out_dir = Path(out_dir)
    records = curated.to_dict("records")
    unreadable: dict[str, str] = {}
    shards: list[Path] = []
    stamp = int(time.time())
    position = 0
    while position < len(records) or not shards:
        path = out_dir / f"curated-{len(shards):06d}.tar"
        with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            n_in_shard = 0
            while position < len(records) and n_in_shard < shard_size:
                record = records[position]
                position += 1
                try:
                    _add_sample(tar, record, read_image, str(refs.get(record["pair_id"], "")), stamp)
                    n_in_shard += 1
                except OSError as err:
                    unreadable[str(record["pair_id"])] = str(err)
        shards.append(path)
    for old in out_dir.glob("curated-*.tar"):
        if old not in shards:
            old.unlink()
    return shards, unreadable


def _add_sample(tar: tarfile.TarFile, record: dict[str, Any], read_image, ref: str, stamp: int) -> None:
    data = read_image(ref)  # before any member is added: an unreadable image leaves no trace
    key = sample_key(str(record["pair_id"]))
    ext = Path(ref.split("::")[-1]).suffix.lower().lstrip(".") or "jpg"
    ext = "jpg" if ext == "jpeg" else ext
    meta = {k: to_jsonable(v) for k, v in record.items() if k != "caption"}
    meta["image_ref"] = ref
    for name, payload in ((f"{key}.{ext}", data), (f"{key}.txt", str(record["caption"]).encode()),
                          (f"{key}.json", json.dumps(meta, ensure_ascii=False, default=str).encode())):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), stamp, 0o644
        tar.addfile(info, io.BytesIO(payload))
