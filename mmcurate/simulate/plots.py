"""Figures of a simulation: each function returns a matplotlib Figure.

The runner saves them as PNGs; notebooks show them inline (as :mod:`mmcurate.viz` does, pyplot picks
the backend: Agg without a display, the inline backend in Jupyter; forcing Agg made a returned
figure print as ``<Figure size ...>`` text in notebook 02).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["labels_to_target_bars", "learning_curves", "score_histograms"]

_LABELS = {"recall": "recall of review (noisy pairs found)", "auroc": "noise-detection AUROC (pool)",
           "auprc": "noise-detection AUPRC (pool)", "batch_precision": "precision@budget of the batch",
           "holdout_accuracy": "held-out accuracy", "auroc_p_misaligned": "AUROC of 1 - P(aligned)"}


def _figure(width: float = 7.0, height: float = 4.5, ncols: int = 1, nrows: int = 1):
    """A new figure with an ``(nrows, ncols)`` array of axes, closed in pyplot at once (Jupyter draws
    the returned figure once; scripts do not accumulate open figures; ``savefig`` still works)."""
    import matplotlib.pyplot as plt  # heavy: matplotlib

    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
    plt.close(fig)
    return fig, axes


def _run_label(strategy: str, diversity: str) -> str:
    return strategy if diversity == "none" else f"{strategy}+{diversity}"


def learning_curves(metrics: pd.DataFrame, metric: str = "recall", *, title: str | None = None):
    """Mean ``metric`` vs labels spent per (strategy, diversity), with a ±1 std band over seeds.

    For ``recall`` two dotted references are drawn: the ideal queue (every label a noisy pair) and
    random review's expectation (labels / pool size).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        fig = learning_curves(load_results("results/"), "auroc")
        fig.savefig("auroc.png")
    """
    if metric not in metrics.columns:
        raise ValueError(f"unknown metric {metric!r}; columns: {', '.join(metrics.columns)}")
    fig, axes = _figure()
    ax = axes[0, 0]
    grouped = metrics.groupby(["strategy", "diversity", "labels"], sort=True)[metric]
    stats = grouped.agg(["mean", "std"]).reset_index()
    for (strategy, diversity), curve in stats.groupby(["strategy", "diversity"], sort=True):
        x, m, s = curve["labels"], curve["mean"], curve["std"].fillna(0.0)
        style = "--" if strategy in ("random", "clip_score") else "-"
        line, = ax.plot(x, m, style, marker="o", markersize=3, label=_run_label(strategy, diversity))
        ax.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.15, linewidth=0)
    if metric == "recall":
        _recall_references(ax, metrics)
    ax.set_xlabel("labels spent")
    ax.set_ylabel(_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    n_seeds = metrics["seed"].nunique()
    ax.set_title(title or f"{_LABELS.get(metric, metric)} (mean ± std over {n_seeds} seeds)", fontsize=10)
    return fig


def _recall_references(ax, metrics: pd.DataFrame) -> None:
    """Grey references: every label a noisy pair (ideal) and random review's expectation L / pool."""
    start = metrics[metrics["round"] == 0]
    pool, n_noisy = float(start["n_pool"].mean()), float(start["n_noisy"].mean())
    x = np.linspace(0, float(metrics["labels"].max()), 200)
    ax.plot(x, np.minimum(x / n_noisy, 1.0), ":", color="grey", linewidth=1, label="ideal (all noisy first)")
    ax.plot(x, x / pool, ":", color="black", linewidth=1, label="random, expected (L / pool)")


def labels_to_target_bars(summary: pd.DataFrame, *, title: str | None = None):
    """Bars of mean labels to reach the recall and AUROC targets (seeds reached / all beside).

    ``summary`` is :func:`mmcurate.simulate.summarize`'s table; a target no seed reached shows a
    grey hatched bar up to the labels spent.
    """
    fig, axes = _figure(9.0, 4.5, ncols=2)
    targets = (("labels_to_recall", f"recall ≥ {summary.attrs.get('recall_target', 0.9):g}"),
               ("labels_to_auroc", f"AUROC ≥ {summary.attrs.get('auroc_target', 0.95):g}"))
    names = [_run_label(s, d) for s, d in zip(summary["strategy"], summary["diversity"])]
    for ax, (col, label) in zip(axes[0], targets):
        mean = summary[f"{col}_mean"].to_numpy(np.float64)
        std = summary[f"{col}_std"].fillna(0.0).to_numpy(np.float64)
        y = np.arange(len(names))
        top = max(summary.attrs.get("max_labels") or 0.0, float(np.nanmax(np.append(mean, 1.0))))
        reached = np.isfinite(mean)
        ax.barh(y[reached], mean[reached], xerr=std[reached], color="tab:blue", alpha=0.7)
        ax.barh(y[~reached], np.full((~reached).sum(), top), color="lightgrey", hatch="//")
        for i, (m, hit, n) in enumerate(zip(mean, summary[f"{col}_reached"], summary["n_seeds"])):
            text = f"{m:.0f} ({hit}/{n})" if np.isfinite(m) else f"> {top:.0f} (0/{n})"
            ax.text(m if np.isfinite(m) else top, i, f" {text}", va="center", fontsize=7)
        ax.set_xlim(0, top * 1.3)
        ax.set_yticks(y, names, fontsize=8)
        ax.set_xlabel(f"labels to {label}\n(mean ± std over the seeds that reached it)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title or "labels needed to reach a target", fontsize=10)
    return fig


def score_histograms(scores: pd.DataFrame, *, bins: int = 30, title: str | None = None):
    """Histograms of the detection score, noisy vs clean, one panel per run and snapshot.

    ``scores`` has columns ``run`` (a label), ``snapshot`` (e.g. ``round 0``, ``round 10``),
    ``score`` and ``is_noisy``.
    """
    runs = list(dict.fromkeys(scores["run"]))
    snaps = list(dict.fromkeys(scores["snapshot"]))
    fig, axes = _figure(3.2 * len(snaps), 2.2 * len(runs), ncols=len(snaps), nrows=len(runs))
    for i, run in enumerate(runs):
        for j, snap in enumerate(snaps):
            ax = axes[i, j]
            part = scores[(scores["run"] == run) & (scores["snapshot"] == snap)]
            values = part["score"].to_numpy(np.float64)
            edges = np.histogram_bin_edges(values, bins=bins) if len(values) else bins
            for noisy, colour, name in ((False, "tab:green", "clean"), (True, "tab:red", "noisy")):
                v = values[part["is_noisy"].to_numpy(bool) == noisy]
                if len(v):
                    ax.hist(v, bins=edges, density=True, alpha=0.5, color=colour, label=name)
            ax.set_title(f"{run}, {snap}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title or "detection score over the unlabelled pool: noisy vs clean", fontsize=10)
    return fig
