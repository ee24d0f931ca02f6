"""Per-round metrics of a simulation run and their summaries over seeds.

Per round (round 0 = before any label), over the *pool* = pairs neither labelled nor held out:

- ``auroc`` / ``auprc``: noise detection by the run's *detection score*: ``1 − p_aligned`` (the
  head + calibrator's P(misaligned)) for learning strategies, the strategy's own score for
  ``clip_score`` (1 − raw cosine) and ``random`` (a random ranking, so ≈ 0.5 by construction);
  ``detection_score`` names it. ``auroc_p_misaligned`` is the AUROC of ``1 − p_aligned`` for
  every run (for ``random`` that is passive learning's model).
- ``auroc_round0_model``: AUROC, on the same (current) pool, of the *round-0* model's
  ``1 − p_aligned`` (the zero-label ranking, before any label); ``learning_gain`` =
  ``auroc_p_misaligned − auroc_round0_model``, what the labels so far taught the model about the
  pairs still unreviewed (0 at round 0 by construction). Measured on ``1 − p_aligned`` for every
  strategy, whatever its detection score. ``clip_score`` trains no head, but the calibrator
  behind ``p_aligned`` is still refit on its labels each round, so its gain need not be 0.
- ``batch_precision``: fraction of noisy pairs in the batch picked at this round (precision@k with
  k = budget; NaN after the last round, when no batch is picked).
- ``recall``: fraction of all findable noisy pairs (not held out) the reviewer has seen so far.
- ``holdout_*``: accuracy / balanced accuracy (P(aligned) ≥ 0.5 = aligned) and AUROC of
  ``1 − p_aligned`` on the held-out pairs, never selectable.

Summaries: the learning gain at the last round and its minimum over rounds ≥ 1 and ≥ 3 (a
negative minimum = the labels made the model worse than the zero-label one at some round), the
normalised area under a learning curve (trapezoid over labels divided by the label
range: the curve's mean height), labels needed to reach a target (the first round's labels where
the curve reaches it; NaN when never), values at a given label count (linear interpolation), mean
± std over seeds, and paired per-seed differences against a baseline.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate.results import Ranking
from mmcurate.signals import auroc, average_precision

__all__ = ["KEYS", "compare", "detection_score_name", "p_misaligned", "per_run", "round_metrics",
           "summarize"]

KEYS = ["strategy", "diversity", "seed"]
OWN_SCORE = ("clip_score", "random")


def detection_score_name(strategy: str) -> str:
    """Which score a run's noise-detection AUROC uses (see module docstring)."""
    return strategy if strategy in OWN_SCORE else "1-p_aligned"


def detection_score(ranked: pd.DataFrame, strategy: str) -> npt.NDArray[np.float64]:
    """The detection score of a ranking: higher = more likely misaligned."""
    name = detection_score_name(strategy)
    column = ranked[name] if name in OWN_SCORE else 1.0 - ranked["p_aligned"]
    return column.to_numpy(np.float64)


def p_misaligned(ranked: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The model's P(misaligned) ``1 − p_aligned`` of a ranking, ``(N,)``."""
    return 1.0 - ranked["p_aligned"].to_numpy(np.float64)


def round_metrics(ranked: Ranking, *, noisy: np.ndarray, labelled: np.ndarray,
                  held_out: np.ndarray, batch_rows: np.ndarray | None, strategy: str,
                  round0_p_misaligned: npt.ArrayLike | None = None
                  ) -> tuple[dict, npt.NDArray[np.float64]]:
    """Metrics of one round's state (see module docstring) and the detection score ``(N,)``.

    ``round0_p_misaligned`` is the round-0 ranking's :func:`p_misaligned` ``(N,)``, rows in the
    order of ``ranked``; ``None`` means this is round 0 (learning gain 0).
    """
    score = detection_score(ranked.table, strategy)
    p_mis = p_misaligned(ranked.table)
    p_mis0 = p_mis if round0_p_misaligned is None else np.asarray(round0_p_misaligned, np.float64)
    if p_mis0.shape != p_mis.shape:
        raise ValueError(f"round0_p_misaligned has shape {p_mis0.shape}, expected {p_mis.shape} "
                         f"(one value per ranked pair, in the same order)")
    pool = ~(labelled | held_out)
    auroc_now, auroc_first = auroc(p_mis[pool], noisy[pool]), auroc(p_mis0[pool], noisy[pool])
    findable = int((noisy & ~held_out).sum())
    found = int((noisy & labelled).sum())
    truth_h = noisy[held_out]
    predicted_h = p_mis[held_out] > 0.5
    per_class = [np.mean(predicted_h[truth_h == c] == c) if (truth_h == c).any() else np.nan
                 for c in (False, True)]
    row = {
        "labels": int(labelled.sum()), "n_pool": int(pool.sum()), "n_noisy": findable, "found": found,
        "recall": found / findable if findable else np.nan,
        "batch_precision": float(noisy[batch_rows].mean()) if batch_rows is not None else np.nan,
        "auroc": auroc(score[pool], noisy[pool]), "auprc": average_precision(score[pool], noisy[pool]),
        "auroc_p_misaligned": auroc_now, "auroc_round0_model": auroc_first,
        "learning_gain": auroc_now - auroc_first,
        "holdout_accuracy": float(np.mean(predicted_h == truth_h)) if held_out.any() else np.nan,
        "holdout_balanced_accuracy": float(np.nanmean(per_class)) if held_out.any() else np.nan,
        "holdout_auroc": auroc(p_mis[held_out], truth_h) if held_out.any() else np.nan,
        "head_round": ranked.head_round,
    }
    return row, score


def _aulc(labels: np.ndarray, values: np.ndarray) -> float:
    ok = np.isfinite(values)
    x, y = labels[ok], values[ok]
    if len(x) < 2 or x[-1] == x[0]:
        return float(y[0]) if len(y) else np.nan
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def _first_reaching(labels: np.ndarray, values: np.ndarray, target: float) -> float:
    hit = np.flatnonzero(values >= target)
    return float(labels[hit[0]]) if len(hit) else np.nan


def _at(labels: np.ndarray, values: np.ndarray, at: float) -> float:
    if not labels[0] <= at <= labels[-1]:
        return np.nan
    return float(np.interp(at, labels, values))


def _min_from(rounds: np.ndarray, values: np.ndarray, first: int) -> float:
    keep = (rounds >= first) & np.isfinite(values)
    return float(values[keep].min()) if keep.any() else np.nan


def _gains(run: pd.DataFrame) -> dict[str, float]:
    """Learning gain at the last round and its minimum over rounds ≥ 1 and ≥ 3 (NaN if none)."""
    if "learning_gain" not in run.columns:  # runs recorded before the gain was measured
        return dict.fromkeys(("learning_gain_final", "learning_gain_min", "learning_gain_from3_min"),
                             np.nan)
    rounds, gain = run["round"].to_numpy(), run["learning_gain"].to_numpy(np.float64)
    return {"learning_gain_final": gain[-1], "learning_gain_min": _min_from(rounds, gain, 1),
            "learning_gain_from3_min": _min_from(rounds, gain, 3)}


_EXPORT = ("export_noise", "export_clean_kept", "export_est_noise_kept", "export_threshold")


def _export(run: pd.DataFrame) -> dict[str, float]:
    """The curated-set figures of the run's last round (NaN for runs recorded without them)."""
    return {c: float(run[c].iloc[-1]) if c in run.columns else np.nan for c in _EXPORT}


def per_run(metrics: pd.DataFrame, *, recall_target: float = 0.9, auroc_target: float = 0.95,
            at_labels: int = 100) -> pd.DataFrame:
    """One row per (strategy, diversity, seed): areas, labels-to-target, values at ``at_labels``.

    Also ``learning_gain_final`` (last round), ``learning_gain_min`` (minimum over rounds ≥ 1) and
    ``learning_gain_from3_min`` (over rounds ≥ 3; NaN for shorter runs and stream runs).
    """
    out = []
    for key, run in metrics.sort_values("round").groupby(KEYS, sort=True):
        x = run["labels"].to_numpy(np.float64)
        rec, auc = run["recall"].to_numpy(np.float64), run["auroc"].to_numpy(np.float64)
        out.append({**dict(zip(KEYS, key)),
                    "aulc_recall": _aulc(x, rec), "aulc_auroc": _aulc(x, auc),
                    "final_recall": rec[-1], "final_auroc": auc[-1],
                    "recall_at": _at(x, rec, at_labels), "auroc_at": _at(x, auc, at_labels),
                    "auroc_p_misaligned_at": _at(x, run["auroc_p_misaligned"].to_numpy(np.float64),
                                                 at_labels),
                    "holdout_accuracy_final": run["holdout_accuracy"].iloc[-1],
                    "labels_to_recall": _first_reaching(x, rec, recall_target),
                    "labels_to_auroc": _first_reaching(x, auc, auroc_target),
                    **_gains(run), **_export(run),
                    "max_labels": x[-1], "seconds_total": run["seconds_total"].iloc[-1]})
    return pd.DataFrame(out)


_SUMMED = ("aulc_recall", "aulc_auroc", "final_recall", "final_auroc", "recall_at", "auroc_at",
           "auroc_p_misaligned_at", "holdout_accuracy_final", "labels_to_recall", "labels_to_auroc",
           "learning_gain_final", "learning_gain_min", "learning_gain_from3_min", *_EXPORT,
           "seconds_total")
_WORST = ("learning_gain_final", "learning_gain_min", "learning_gain_from3_min")


def summarize(metrics: pd.DataFrame, *, recall_target: float = 0.9, auroc_target: float = 0.95,
              at_labels: int = 100) -> pd.DataFrame:
    """Mean and std over seeds per (strategy, diversity) of every :func:`per_run` quantity.

    ``labels_to_*_mean``/``_std`` average the seeds that reached the target;
    ``labels_to_*_reached`` counts them (of ``n_seeds``). ``learning_gain_*_min`` is the worst
    seed (so ``learning_gain_min_min`` = the minimum over seeds and rounds ≥ 1).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        summary = summarize(load_results("results/"))
        summary.sort_values("aulc_recall_mean", ascending=False).head()
    """
    runs = per_run(metrics, recall_target=recall_target, auroc_target=auroc_target, at_labels=at_labels)
    rows = []
    for (strategy, diversity), group in runs.groupby(["strategy", "diversity"], sort=True):
        row = {"strategy": strategy, "diversity": diversity, "n_seeds": len(group)}
        for col in _SUMMED:
            values = group[col].to_numpy(np.float64)
            row[f"{col}_mean"] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
            row[f"{col}_std"] = float(np.nanstd(values)) if np.isfinite(values).any() else np.nan
            if col.startswith("labels_to_"):
                row[f"{col}_reached"] = int(np.isfinite(values).sum())
            if col in _WORST:
                row[f"{col}_min"] = float(np.nanmin(values)) if np.isfinite(values).any() else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(recall_target=recall_target, auroc_target=auroc_target, at_labels=at_labels,
                       max_labels=float(metrics["labels"].max()) if len(metrics) else 0.0)
    return table


def compare(metrics: pd.DataFrame, *, baseline: tuple[str, str | None],
            quantities: tuple[str, ...] = ("aulc_recall", "aulc_auroc", "final_recall"),
            at_labels: int = 100) -> pd.DataFrame:
    """Paired per-seed comparison of every (strategy, diversity) with ``baseline`` on each quantity.

    ``baseline`` is ``(strategy, diversity)``; diversity ``None`` compares each run with the
    baseline strategy under the *same* diversity mode (when it was run). Returns one row per
    (strategy, diversity, quantity): ``mean_diff`` (run − baseline, same seed), ``std_diff``,
    ``wins``/``losses``/``ties`` over the seeds both have, ``n_seeds``.
    """
    runs = per_run(metrics, at_labels=at_labels).set_index(["strategy", "diversity", "seed"])
    rows = []
    for (strategy, diversity), group in runs.groupby(level=["strategy", "diversity"], sort=True):
        base_key = (baseline[0], baseline[1] or diversity)
        if (strategy, diversity) == base_key or base_key not in runs.index.droplevel("seed"):
            continue
        group, base = group.droplevel([0, 1]), runs.loc[base_key]
        seeds = group.index.intersection(base.index)
        for q in quantities:
            diff = (group.loc[seeds, q] - base.loc[seeds, q]).to_numpy(np.float64)
            diff = diff[np.isfinite(diff)]
            rows.append({"strategy": strategy, "diversity": diversity, "quantity": q,
                         "baseline": "/".join(base_key), "n_seeds": len(diff),
                         "mean_diff": float(diff.mean()) if len(diff) else np.nan,
                         "std_diff": float(diff.std()) if len(diff) else np.nan,
                         "wins": int((diff > 1e-12).sum()), "losses": int((diff < -1e-12).sum()),
                         "ties": int((np.abs(diff) <= 1e-12).sum())})
    return pd.DataFrame(rows)
