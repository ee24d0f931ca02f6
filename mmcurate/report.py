"""The export report: counts, rounds, head metrics and plots, as Markdown and self-contained HTML.

The report is built once as a list of sections (text, tables, figures) and rendered twice: HTML
with every caption and value escaped and the PNG plots embedded as base64 data URIs (the file is
self-contained), and Markdown that links the same PNGs saved under ``plots/``. Plots use
matplotlib's object-oriented ``Figure`` (rendered by Agg; no pyplot state, no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_bytes, atomic_write_text
from mmcurate._util import sample_key

if TYPE_CHECKING:
    from mmcurate.export.curate import Curation

__all__ = ["plot_alignment_histogram", "plot_rounds", "round_summary", "write_report"]

DECISION_GROUPS = ("accepted", "rejected", "fixed", "unreviewed")
_GROUP_OF_STATUS = {"accepted": "accepted", "rejected": "rejected", "fixed": "fixed", "disputed": "accepted"}
_COLOURS = {"accepted": "#2a9d4b", "rejected": "#d1495b", "fixed": "#edae49", "unreviewed": "#66737f"}
_COUNT_LABELS = {
    "pairs": "pairs in the project", "rejected_at_input": "rejected at input (rejects.csv)",
    "embed_failures": "embedding failures (unreviewed)", "reviewed": "reviewed",
    "accepted": "accepted", "rejected": "rejected by reviewer", "fixed": "fixed (caption corrected)",
    "auto": "auto-kept (P(aligned) >= threshold)",
    "unverified": "kept unverified (the model could not vouch)",
    "below_threshold": "dropped below threshold",
    "disputed": "accepted but disputed (held back for a second opinion)",
    "left_out": "unreviewed, not exported (no threshold)", "unreadable_images": "unreadable at export",
    "curated": "curated (exported)", "dropped": "dropped (dropped file)",
    "duplicate_groups": "duplicate groups (mmcurate duplicates)",
    "duplicates_dropped": "duplicates dropped (one pair kept per group)",
    **{f"groups_{kind}": f"{kind.replace('_', ' ')} groups" for kind in
       ("exact", "near", "near_image", "near_caption", "boilerplate")},
}
_HEAD_METRICS = ("cv_accuracy", "cv_accuracy_identity", "cv_auroc", "cv_auroc_identity", "cv_folds",
                 "n_pos", "n_neg", "n_fixed")
_N_EXAMPLES = 20
_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:left;vertical-align:top;font-size:13px}th{background:#f3f3f3}img{max-width:100%}"
        "code{background:#f6f6f6}.gallery{display:flex;flex-wrap:wrap;gap:10px;margin:0.5em 0 1.5em}"
        "figure.thumb{margin:0;width:170px;font-size:12px}figure.thumb img{width:160px;height:160px;"
        "object-fit:contain;background:#f3f3f3;border:1px solid #ccc}.noimg{width:160px;height:40px;"
        "color:#888;border:1px dashed #ccc;text-align:center;line-height:40px}"
        "figcaption{overflow-wrap:anywhere}")


@dataclass
class _Section:
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    figure: str | None = None  # name of a PNG under plots/
    thumbs: list[Any] | None = None  # mmcurate.export.gallery.Thumb: JPEGs under thumbs/ (md), inline (html)


# -- tables -------------------------------------------------------------------------------------------
def round_summary(rounds: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """One row per round: strategy, params, items, decided, head round and latest decisions.

    ``noise_found`` = rejected + fixed among the round's pairs; ``noise_rate`` = noise_found /
    decided. Decisions recorded outside any round are summed in a row with ``round`` = ``-``.
    """
    per_round = _decisions_per_round(decisions)
    rows = []
    for rec in rounds.to_dict("records") if len(rounds) else []:
        got = per_round.get(rec["round"], {})
        rows.append({"round": rec["round"], "strategy": rec["strategy"],
                     "params": json.dumps(rec["params"], sort_keys=True, default=str),
                     "n_items": rec["n_items"], "n_decided": rec["n_decided"],
                     "head_round": "" if pd.isna(rec["head_round"]) else int(rec["head_round"]),
                     **_decision_cells(got)})
    if None in per_round:
        got = per_round[None]
        rows.append({"round": "-", "strategy": "(no round)", "params": "", "n_items": "",
                     "n_decided": sum(got.values()), "head_round": "", **_decision_cells(got)})
    return pd.DataFrame(rows)


def _decisions_per_round(decisions: pd.DataFrame) -> dict[Any, dict[str, int]]:
    out: dict[Any, dict[str, int]] = {}
    for rnd, decision in zip(decisions.get("round", []), decisions.get("decision", [])):
        key = None if pd.isna(rnd) else int(rnd)
        counts = out.setdefault(key, {})
        counts[decision] = counts.get(decision, 0) + 1
    return out


def _decision_cells(counts: dict[str, int]) -> dict[str, Any]:
    acc, rej, fix = (counts.get(d, 0) for d in ("accept", "reject", "fix"))
    decided = acc + rej + fix
    return {"accepted": acc, "rejected": rej, "fixed": fix, "noise_found": rej + fix,
            "noise_rate": f"{(rej + fix) / decided:.3f}" if decided else ""}


def _heads_table(heads: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for rec in heads.to_dict("records") if len(heads) else []:
        metrics = rec.get("metrics") or {}
        scalar = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None}
        ordered = [k for k in _HEAD_METRICS if k in scalar]
        rows.append({"head_round": rec["head_round"], "created_at": rec["created_at"],
                     "n_labels": rec["n_labels"], **{k: _fmt(scalar[k]) for k in ordered}})
    return pd.DataFrame(rows)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# -- plots --------------------------------------------------------------------------------------------
def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure  # heavy: matplotlib

    return Figure(figsize=(width, height), dpi=100)


def plot_alignment_histogram(scores: pd.Series, groups: pd.Series, *, label: str, bins: int = 40,
                             model: str | None = None):
    """Histogram of the alignment score per decision group (density, so small groups show).

    ``scores`` and ``groups`` are aligned per pair; groups are ``accepted``, ``rejected``,
    ``fixed``, ``unreviewed``. ``model`` (the embedding model's display name) goes in the title.
    Returns a matplotlib ``Figure``.
    """
    fig = _new_figure(7, 4)
    ax = fig.add_subplot()
    values = scores.to_numpy(float)
    finite = np.isfinite(values)
    edges = np.histogram_bin_edges(values[finite], bins=bins) if finite.any() else bins
    for group in DECISION_GROUPS:
        part = values[finite & (groups.to_numpy(object) == group)]
        if len(part):
            ax.hist(part, bins=edges, density=True, histtype="step", linewidth=1.8,
                    color=_COLOURS[group], label=f"{group} (n={len(part)})")
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.set_title(f"{label} by decision" + (f"\n{model}" if model else ""))
    if finite.any():
        ax.legend()
    fig.tight_layout()
    return fig


def plot_rounds(summary: pd.DataFrame, heads: pd.DataFrame, *, model: str | None = None):
    """Decisions per round, noise found per round, and head held-out accuracy per head round.

    ``summary`` is :func:`round_summary`; ``heads`` is ``Ledger.heads()``; ``model`` (the embedding
    model's display name) is the figure's title. Returns a ``Figure``.
    """
    fig = _new_figure(12, 4.0)
    if model:
        fig.suptitle(f"embeddings: {model}", fontsize=10)
    ax_dec, ax_noise, ax_head = fig.subplots(1, 3)
    rows = summary[summary["round"] != "-"] if len(summary) else summary
    x = [str(r) for r in rows["round"]] if len(rows) else []
    bottom = np.zeros(len(x))
    for decision, group in (("accepted", "accepted"), ("rejected", "rejected"), ("fixed", "fixed")):
        values = rows[decision].to_numpy(float) if len(rows) else np.zeros(0)
        ax_dec.bar(x, values, bottom=bottom, color=_COLOURS[group], label=decision)
        bottom += values
    ax_dec.set(title="decisions per round", xlabel="round", ylabel="pairs")
    if len(x):  # headroom above the tallest bar so the legend covers none
        ax_dec.set_ylim(0, max(1.0, float(bottom.max())) * 1.35)
        ax_dec.legend(fontsize=8, ncol=3, loc="upper center", frameon=False)
    noise = rows["noise_found"].to_numpy(float) if len(rows) else np.zeros(0)
    bars = ax_noise.bar(x, noise, color=_COLOURS["rejected"])
    rates = list(rows["noise_rate"]) if len(rows) else []
    ax_noise.bar_label(bars, labels=[f"{r}" if r != "" else "" for r in rates], fontsize=8)
    if len(noise):
        ax_noise.set_ylim(0, max(1.0, float(np.nanmax(noise))) * 1.2)
    ax_noise.set(title="noise found per round (rejected + fixed; rate)", xlabel="round", ylabel="pairs")
    _plot_head_accuracy(ax_head, heads)
    fig.tight_layout()
    return fig


def _plot_head_accuracy(ax, heads: pd.DataFrame) -> None:
    ax.set(title="head accuracy (cross-validated)", xlabel="model round", ylabel="accuracy")
    if heads.empty:
        ax.text(0.5, 0.5, "no head trained yet", ha="center", va="center", transform=ax.transAxes)
        return
    x = heads["head_round"].to_numpy(int)
    for key, name, style in (("cv_accuracy", "head", "o-"),
                             ("cv_accuracy_identity", "no head (raw cosine)", "s--")):
        y = [_as_float((m or {}).get(key)) for m in heads["metrics"]]
        ax.plot(x, y, style, label=name)
    ax.set_xticks(x)
    ax.set_ylim(0, 1.05)  # the whole accuracy scale: a zoomed axis makes 0.97 vs 0.99 look large
    ax.legend(fontsize=8, loc="lower right")


def _as_float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("nan")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- assembling ---------------------------------------------------------------------------------------
def _counts_section(counts: dict[str, int], meta: dict[str, Any]) -> _Section:
    rows = [{"": _COUNT_LABELS.get(k, k), "count": v} for k, v in counts.items()]
    lines = [f"{k}: {v}" for k, v in meta.items() if v is not None]
    return _Section("Counts", text="\n".join(lines), table=pd.DataFrame(rows))


def _examples(cur) -> list[_Section]:
    out = []
    fixed = cur.curated[cur.curated["status"] == "fixed"].head(_N_EXAMPLES)
    if len(fixed):
        out.append(_Section(f"Fixed captions (first {len(fixed)})", table=fixed[
            ["pair_id", "original_caption", "caption"]].rename(columns={"caption": "fixed caption"})))
    dropped = cur.dropped
    if len(dropped):
        reasons = dropped.groupby(["stage", "reason"], dropna=False).size().reset_index(name="pairs")
        out.append(_Section("Dropped, by reason", table=reasons))
        rejected = dropped[dropped["stage"] == "review"].head(_N_EXAMPLES)
        if len(rejected):
            out.append(_Section(f"Rejected by reviewer (first {len(rejected)})",
                                table=rejected[["pair_id", "caption", "detail"]]))
    return out


def _sections(cur, rounds, heads, decisions, meta, plots: dict[str, bytes],
              model: str | None = None) -> list[_Section]:
    summary = round_summary(rounds, decisions)
    sections = [_counts_section(cur.counts, meta)]
    sections.append(_Section("Rounds", table=summary) if len(summary)
                    else _Section("Rounds", text="No rounds yet."))
    head_table = _heads_table(heads)
    note = ("Cross-validated on the labelled pairs of each head round; the columns ending in "
            "_identity score plain CLIP on the same folds.") if len(head_table) else "No head trained yet."
    sections.append(_Section("Projection heads (held-out metrics)", table=head_table, text=note))
    if cur.score_name is not None and np.isfinite(cur.pairs["alignment"].to_numpy(float)).any():
        groups = cur.pairs["status"].map(_GROUP_OF_STATUS).fillna("unreviewed")
        fig = plot_alignment_histogram(cur.pairs["alignment"], groups, label=cur.score_name, model=model)
        plots["alignment_histogram.png"] = _png(fig)
        sections.append(_Section(f"Alignment ({cur.score_name}) by decision"
                                 + (f", {model}" if model else ""), figure="alignment_histogram.png"))
    curve = (cur.estimates or {}).get("reliability") or []
    if curve:
        table = pd.DataFrame(curve).rename(columns={"predicted": "mean P(aligned)",
                                                    "observed": "aligned share (1/pi weighted)"})
        sections.append(_Section("Calibration on the randomly drawn labels", table=table, text=(
            "Each bin of the model's P(aligned): the mean prediction and the share the reviewers "
            "accepted among the randomly drawn (explore) labels, weighted by 1/inclusion, with a 95% "
            "interval. Verdicts are trustworthy where the two agree.")))
    if len(summary) or len(heads):
        plots["rounds.png"] = _png(plot_rounds(summary, heads, model=model))
        sections.append(_Section("Round by round" + (f", {model}" if model else ""), figure="rounds.png"))
    return sections + _examples(cur)


def write_report(out_dir: str | os.PathLike, cur: Curation, *, rounds: pd.DataFrame, heads: pd.DataFrame,
                 decisions: pd.DataFrame, title: str = "mmcurate export",
                 meta: dict[str, Any] | None = None, model: str | None = None,
                 galleries: list[Any] | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``out_dir`` (atomically).

    Parameters
    ----------
    out_dir : path
    cur : mmcurate.export.Curation
        Counts, curated/dropped tables and per-pair statuses with the alignment score.
    rounds, heads, decisions : DataFrame
        ``Ledger.rounds()``, ``Ledger.heads()`` and ``Ledger.decisions()`` (may be empty).
    title : str
    meta : dict, optional
        Lines printed under the counts (project, model, format, threshold, ...).
    model : str, optional
        The embedding model's display name, shown in the plot titles.
    galleries : list of mmcurate.export.gallery.Gallery, optional
        Thumbnail rows (:func:`mmcurate.export.gallery.report_galleries`): embedded in the HTML as
        base64 JPEGs (it shows them wherever it is opened), saved under ``thumbs/`` for the Markdown.

    Returns
    -------
    dict
        ``report_md``, ``report_html`` (paths as str) and ``plots`` (list of str).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        paths = write_report("out/", curate_pairs(proj), rounds=ledger.rounds(),
                             heads=ledger.heads(), decisions=ledger.decisions())
    """
    out = Path(out_dir)
    plots: dict[str, bytes] = {}
    sections = _sections(cur, rounds, heads, decisions, meta or {}, plots, model=model)
    sections += [_Section(g.title, text=g.text, thumbs=g.thumbs) for g in galleries or () if g.thumbs]
    for name, data in plots.items():
        atomic_write_bytes(out / "plots" / name, data)
    for thumb in (t for sec in sections for t in sec.thumbs or () if t.jpeg):
        atomic_write_bytes(out / "thumbs" / _thumb_name(thumb.pair_id), thumb.jpeg)
    atomic_write_text(out / "report.md", _markdown(title, sections))
    atomic_write_text(out / "report.html", _html(title, sections, plots))
    return {"report_md": str(out / "report.md"), "report_html": str(out / "report.html"),
            "plots": [str(out / "plots" / name) for name in plots]}


# -- rendering ----------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return str(value)


def _md_cell(value: Any) -> str:
    return html.escape(_cell(value), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _markdown(title: str, sections: list[_Section]) -> str:
    lines = [f"# {html.escape(title)}", ""]
    for sec in sections:
        lines += [f"## {html.escape(sec.title)}", ""]
        if sec.text:
            lines += [f"{html.escape(line, quote=False)}  " for line in sec.text.splitlines()] + [""]
        if sec.table is not None and len(sec.table):
            cols = [str(c) for c in sec.table.columns]
            lines.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
            lines.append("|" + "---|" * len(cols))
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |"
                      for row in sec.table.itertuples(index=False)]
            lines.append("")
        if sec.figure:
            lines += [f"![{html.escape(sec.title)}](plots/{sec.figure})", ""]
        for t in sec.thumbs or ():
            picture = f"![{_md_cell(t.pair_id)}](thumbs/{_thumb_name(t.pair_id)}) " if t.jpeg else ""
            lines.append(f"- {picture}`{_md_cell(t.pair_id)}` {_md_cell(t.caption)} ({_md_cell(t.note)})")
        if sec.thumbs:
            lines.append("")
    return "\n".join(lines)


def _thumb_name(pair_id: str) -> str:
    """The file of a pair's report thumbnail under ``thumbs/`` (a safe name for any pair id)."""
    return f"{sample_key(pair_id)}.jpg"


def _html_thumbs(thumbs: list[Any]) -> str:
    """A wrapping row of figures: the JPEG inline (base64), pair id, caption and note, escaped."""
    cells = []
    for t in thumbs:
        img = "<div class='noimg'>no image</div>"
        if t.jpeg:
            img = (f"<img alt='{html.escape(t.pair_id, quote=True)}' src='data:image/jpeg;base64,"
                   f"{base64.b64encode(t.jpeg).decode('ascii')}'>")
        cells.append(f"<figure class='thumb'>{img}<figcaption><code>{html.escape(t.pair_id)}</code> "
                     f"{html.escape(t.caption)}<br><small>{html.escape(t.note)}</small></figcaption></figure>")
    return "<div class='gallery'>" + "".join(cells) + "</div>"


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(title: str, sections: list[_Section], plots: dict[str, bytes]) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.text:
            parts.append("<p>" + "<br>".join(html.escape(line) for line in sec.text.splitlines()) + "</p>")
        if sec.table is not None and len(sec.table):
            parts.append(_html_table(sec.table))
        if sec.figure:
            data = base64.b64encode(plots[sec.figure]).decode("ascii")
            parts.append(f"<img alt='{html.escape(sec.title, quote=True)}' "
                         f"src='data:image/png;base64,{data}'>")
        if sec.thumbs:
            parts.append(_html_thumbs(sec.thumbs))
    parts.append("</body></html>")
    return "\n".join(parts)
