"""The simulation report: ``summary.md`` (tables + paired comparisons) and the PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_path, atomic_write_text
from mmcurate.embed.store import EmbeddingStore
from mmcurate.project.layout import ProjectLayout
from mmcurate.simulate import plots
from mmcurate.simulate.metrics import compare, summarize

__all__ = ["describe_model", "markdown_summary", "write_report"]

PLOTS = {"recall.png": "recall", "auroc.png": "auroc", "auroc_p_misaligned.png": "auroc_p_misaligned",
         "holdout_accuracy.png": "holdout_accuracy"}


def describe_model(base: Path, source: str = "") -> str:
    """Which model produced the base project's vectors, flagging the tiny stand-in as a toy."""
    manifest_path = EmbeddingStore(ProjectLayout(base).embeddings_dir).manifest_path
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest.get("kind") == "external":
        folder = source.removeprefix("embeddings:") or manifest.get("source")
        return (f"imported embedding folder `{folder}` (the folder does not record which model made "
                f"its vectors)")
    model = str(manifest.get("model"))
    if "tiny-clip" in model:
        return (f"mmcurate's tiny stand-in model (`{model}`), a toy trained on generated scenes: "
                f"**not CLIP**; its figures describe that toy domain only")
    return f"open_clip `{model}` / pretrained `{manifest.get('pretrained')}`"


def _pm(mean: float, std: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _labels_cell(row: pd.Series, col: str, max_labels: float) -> str:
    reached, n = int(row[f"{col}_reached"]), int(row["n_seeds"])
    if reached == 0:
        return f"> {max_labels:.0f} (0/{n})"
    return f"{row[f'{col}_mean']:.0f} ± {row[f'{col}_std']:.0f} ({reached}/{n})"


def _name(strategy: str, diversity: str) -> str:
    return strategy if diversity == "none" else f"{strategy} + {diversity}"


def _main_table(summary: pd.DataFrame, max_labels: float) -> str:
    at = summary.attrs["at_labels"]
    head = ["strategy", "AULC recall", f"recall @{at}", f"recall @{max_labels:.0f}", "labels to recall ≥ "
            f"{summary.attrs['recall_target']:g}", f"AUROC @{at}", f"AUROC 1−P @{at}",
            f"labels to AUROC ≥ {summary.attrs['auroc_target']:g}", "held-out acc (last)", "s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summary.sort_values("aulc_recall_mean", ascending=False).iterrows():
        cells = [_name(r["strategy"], r["diversity"]), _pm(r["aulc_recall_mean"], r["aulc_recall_std"]),
                 _pm(r["recall_at_mean"], r["recall_at_std"]),
                 _pm(r["final_recall_mean"], r["final_recall_std"]),
                 _labels_cell(r, "labels_to_recall", max_labels),
                 _pm(r["auroc_at_mean"], r["auroc_at_std"]),
                 _pm(r["auroc_p_misaligned_at_mean"], r["auroc_p_misaligned_at_std"]),
                 _labels_cell(r, "labels_to_auroc", max_labels),
                 _pm(r["holdout_accuracy_final_mean"], r["holdout_accuracy_final_std"]),
                 f"{r['seconds_total_mean']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gain_cell(value: float) -> str:
    return f"{value:+.3f}" if np.isfinite(value) else "–"


def _gain_tables(metrics: pd.DataFrame, summary: pd.DataFrame) -> str:
    """Learning gain per (strategy, diversity): last round, worst seed, mean per round ≥ 1."""
    if "learning_gain" not in metrics.columns or not np.isfinite(metrics["learning_gain"]).any():
        return "_(not measured in these runs)_"
    measured = metrics[np.isfinite(metrics["learning_gain"])]
    names = measured[["strategy", "diversity"]].drop_duplicates()
    order = summary.merge(names).sort_values("aulc_recall_mean", ascending=False)
    head = ["strategy", "gain (last round)", "min gain, rounds ≥ 1", "min gain, rounds ≥ 3"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in order.iterrows():
        cells = [_name(r["strategy"], r["diversity"]),
                 _pm(r["learning_gain_final_mean"], r["learning_gain_final_std"]),
                 _gain_cell(r["learning_gain_min_min"]), _gain_cell(r["learning_gain_from3_min_min"])]
        lines.append("| " + " | ".join(cells) + " |")
    per_round = measured[measured["round"] >= 1].pivot_table(
        index=["strategy", "diversity"], columns="round", values="learning_gain", aggfunc="mean")
    rounds = list(per_round.columns)
    lines += ["", "Mean learning gain over seeds, per round:", "",
              "| strategy | " + " | ".join(f"round {r}" for r in rounds) + " |",
              "|" + "---|" * (len(rounds) + 1)]
    for _, r in order.iterrows():
        values = per_round.loc[(r["strategy"], r["diversity"])]
        lines.append(f"| {_name(r['strategy'], r['diversity'])} | "
                     + " | ".join(_gain_cell(values[c]) for c in rounds) + " |")
    return "\n".join(lines)


def _comparison_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "_(baseline not in this simulation)_"
    wide: dict[str, dict[str, Any]] = {}
    for _, r in table.iterrows():
        key = _name(r["strategy"], r["diversity"])
        wide.setdefault(key, {})[r["quantity"]] = (
            f"{r['mean_diff']:+.3f} ± {r['std_diff']:.3f} ({r['wins']}/{r['losses']}/{r['ties']})")
    quantities = list(dict.fromkeys(table["quantity"]))
    lines = ["| strategy | " + " | ".join(f"Δ {q} (W/L/T)" for q in quantities) + " |",
             "|" + "---|" * (len(quantities) + 1)]
    lines += [f"| {k} | " + " | ".join(v.get(q, "–") for q in quantities) + " |" for k, v in wide.items()]
    return "\n".join(lines)


def markdown_summary(metrics: pd.DataFrame, *, data_info: dict[str, Any], model: str,
                     params: dict[str, Any], note: str | None = None, at_labels: int = 100) -> str:
    """The text of ``summary.md``."""
    summary = summarize(metrics, at_labels=at_labels)
    first = metrics[metrics["round"] == 0].iloc[0]
    max_labels = float(metrics["labels"].max())
    pool = int(first["n_pool"])
    n_held = int(params.get("n_pairs", 0)) - pool
    parts = [
        "# mmcurate simulate: label efficiency with an oracle reviewer", "",
        f"- data: `{data_info['source']}`, {pool} selectable pairs (+ {n_held} held out), "
        f"{int(first['n_noisy'])} of them noisy; noise: {data_info['noise']:.0%} captions swapped, "
        f"kind `{data_info['noise_kind']}` (data seed {data_info['data_seed']})",
        f"- embeddings: {model}",
        *([f"- note: {note}"] if note else []),
        f"- loop: {params['rounds']} rounds × budget {params['budget']}, {metrics['seed'].nunique()} "
        f"seeds, held-out fraction {params['holdout']}, k={params['k']}; the reviewer is an oracle "
        f"answering accept/reject from the truth through the real round machinery", "",
        "How to read: *recall* = fraction of the findable noisy pairs the reviewer has seen; random "
        f"review finds L / {pool} of them after L labels in expectation. *AULC* = area under the "
        "learning curve divided by the label range (the curve's mean height). *AUROC* ranks the "
        "unlabelled pool by the run's detection score: 1 − P(aligned) (head + calibrator) for "
        "learning strategies, the strategy's own score for `clip_score` (1 − raw cosine, no learning, "
        "no head) and `random` (a random ranking, so ≈ 0.5 by construction); *AUROC 1−P* uses "
        "1 − P(aligned) for every run (for `random` that is passive learning). Labels-to-target cells "
        "give mean ± std over the seeds that reached it (reached/seeds); `> N` = never within the budget.",
        "", "## Results (mean ± std over seeds)", "", _main_table(summary, max_labels), "",
        "## Learning gain of the model", "",
        "*Learning gain* at round r = AUROC of the round-r model's 1 − P(aligned) on the pool still "
        "unlabelled at round r, minus the AUROC of the round-0 (zero-label) model's 1 − P(aligned) "
        "on that same pool: what the labels taught the model about the pairs not yet reviewed, "
        "whatever the strategy's own detection score (0 at round 0; `clip_score` trains no head, "
        "but the calibrator behind P(aligned) is refit on its labels). Gain (last round): mean ± "
        "std over seeds; min gain: the worst seed's minimum over the rounds (negative = at some "
        "round the labels made the model worse than the zero-label one).", "",
        _gain_tables(metrics, summary), "",
    ]
    baselines: list[tuple[tuple[str, str | None], str]] = [(("random", "none"), "`random`"),
                                                            (("clip_score", "none"), "`clip_score`")]
    if (metrics["diversity"] != "none").any():
        baselines.append((("clip_score", None), "`clip_score` with the same diversity"))
    for baseline, title in baselines:
        table = compare(metrics, baseline=baseline, at_labels=at_labels)
        if baseline[1] is None and not table.empty:
            table = table[table["diversity"] != "none"]
        parts += [f"## Paired per-seed comparison against {title}", "",
                  "Δ = strategy − baseline on the same seed (same held-out split); W/L/T = seeds won, "
                  "lost, tied.", "", _comparison_table(table), ""]
    parts += ["## Plots", ""] + [f"- `{name}`" for name in (*PLOTS, "labels_to_target.png",
                                                            "score_histograms.png")]
    return "\n".join(parts) + "\n"


def _scores_frame(out: Path, metrics: pd.DataFrame, rounds: int) -> pd.DataFrame:
    seed = int(metrics["seed"].min())
    frames = []
    for strategy in dict.fromkeys(metrics["strategy"]):
        path = out / "runs" / f"{strategy}__none__s{seed}" / "scores.npz"
        if not path.is_file():
            continue
        with np.load(path) as z:
            for snap, key in (("round 0", "first"), (f"round {rounds}", "last")):
                pool = z[f"pool_{key}"]
                frames.append(pd.DataFrame({"run": strategy, "snapshot": snap,
                                            "score": z[f"score_{key}"][pool],
                                            "is_noisy": z["is_noisy"][pool]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_report(out: Path, metrics: pd.DataFrame, *, data_info: dict[str, Any], config,
                 base: Path) -> None:
    """Write ``summary.md`` and the PNG plots into ``out``."""
    n_pairs = len(pd.read_parquet(ProjectLayout(base).pairs_path, columns=["pair_id"]))
    params = {**config.loop_params(), "n_pairs": n_pairs}
    text = markdown_summary(metrics, data_info=data_info, model=describe_model(base, data_info["source"]),
                            params=params,
                            note=config.note, at_labels=config.at_labels)
    atomic_write_text(out / "summary.md", text)
    figures = {name: plots.learning_curves(metrics, metric) for name, metric in PLOTS.items()}
    figures["labels_to_target.png"] = plots.labels_to_target_bars(summarize(metrics,
                                                                            at_labels=config.at_labels))
    scores = _scores_frame(out, metrics, config.rounds)
    if not scores.empty:
        figures["score_histograms.png"] = plots.score_histograms(scores)
    for name, fig in figures.items():
        with atomic_path(out / name) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
