"""Notebook helpers render, escape and save."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmcurate.viz import (
    detection_summary,
    grid,
    learning_curves,
    rank_change,
    score_histogram,
    score_histograms,
)


def test_grid_embeds_thumbnails_escapes_and_saves(tmp_path):
    Image.new("RGBA", (50, 40), (255, 0, 0, 128)).save(tmp_path / "a.png")
    df = pd.DataFrame({"image": ["a.png", "missing.png"], "caption": ["<script>x</script>", "ok"],
                       "score": [0.9, 0.1]})
    g = grid(df, image_root=tmp_path)
    html = g._repr_html_()
    assert html.count("data:image/jpeg;base64,") == 1
    assert "&lt;script&gt;" in html and "<script>x" not in html
    assert "missing.png" in html and "score=0.900" in html
    out = g.save(tmp_path / "grid.html")
    assert out.read_text().startswith("<!doctype html>")


def test_plots_return_figures():
    df = pd.DataFrame({"s": [0.1, 0.2, 0.8, 0.9], "d": ["a", "a", "b", "b"]})
    assert score_histogram(df, "s", by="d").axes
    m = pd.DataFrame({"strategy": ["x"] * 4, "seed": [0, 0, 1, 1], "labels": [0, 10, 0, 10],
                      "recall_of_review": [0, 0.5, 0, 0.4]})
    assert learning_curves(m).axes
    assert rank_change(df["s"], df["s"][::-1].reset_index(drop=True)).axes


def test_score_histograms_one_panel_per_column_one_series_per_group(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": rng.uniform(size=60),
                       "truth": np.repeat(["clean", "swapped"], 30)})
    fig = score_histograms(df, ["a", "b"], by="truth", bins=10)
    assert [ax.get_xlabel() for ax in fig.axes] == ["a", "b"]
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clean", "swapped"]
        heights = sum(p.get_height() for p in ax.patches)
        assert heights == len(df)  # every pair counted once per panel
    fig.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    assert len(score_histograms(df, ["b"]).axes) == 1


def test_score_histograms_names_missing_columns():
    df = pd.DataFrame({"a": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"\['zz'\].*it has \['a'\]"):
        score_histograms(df, ["a", "zz"])
    with pytest.raises(ValueError, match="at least one column"):
        score_histograms(df, [])


def test_plots_leave_no_open_pyplot_figures():
    """Figures are detached from pyplot: Jupyter shows the returned figure once, scripts don't leak."""
    plt.close("all")
    df = pd.DataFrame({"s": [0.1, 0.2, 0.8, 0.9], "d": ["a", "a", "b", "b"]})
    figs = [score_histogram(df, "s"), score_histograms(df, ["s"], by="d"),
            rank_change(df["s"], df["s"][::-1].reset_index(drop=True))]
    assert plt.get_fignums() == []
    assert all(f.axes for f in figs)


def test_detection_summary_matches_the_metrics_per_column():
    from mmcurate.signals.metrics import auroc, average_precision, precision_at_k

    rng = np.random.default_rng(1)
    y = rng.uniform(size=80) < 0.25
    df = pd.DataFrame({"informative": y + rng.normal(scale=0.5, size=80), "noise": rng.normal(size=80)})
    table = detection_summary(df, ["informative", "noise"], y, k=10)
    assert table.index.tolist() == ["informative", "noise"]
    assert table.columns.tolist() == ["auroc", "average_precision", "precision_at_k"]
    for col in ("informative", "noise"):
        assert table.loc[col, "auroc"] == auroc(df[col], y)
        assert table.loc[col, "average_precision"] == average_precision(df[col], y)
        assert table.loc[col, "precision_at_k"] == precision_at_k(df[col], y, 10)
    assert table.loc["informative", "auroc"] > 0.8 > table.loc["noise", "auroc"]
    assert "precision_at_k" not in detection_summary(df, ["noise"], y).columns


def test_detection_summary_rejects_misaligned_truth_and_unknown_columns():
    df = pd.DataFrame({"a": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match=r"one entry per row \(3\), got shape \(2,\)"):
        detection_summary(df, ["a"], [True, False])
    with pytest.raises(ValueError, match=r"\['b'\]"):
        detection_summary(df, ["b"], [True, False, True])


def test_rank_change_names_the_highlighted_series():
    s = pd.Series([0.1, 0.5, 0.9])
    fig = rank_change(s, s[::-1].reset_index(drop=True), highlight=np.array([True, False, False]),
                      highlight_label="swapped")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["other", "swapped"]
