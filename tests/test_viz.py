"""Notebook helpers render, escape and save."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from mmcurate.viz import grid, learning_curves, rank_change, score_histogram


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
