"""Notebook helpers: an HTML grid of pairs and plotting functions returning matplotlib figures.

``grid`` embeds thumbnails as base64 data URIs, so the HTML it shows in Jupyter is the same file it
saves (self-contained, no server). Captions are HTML-escaped. Plot helpers never call ``show``;
they return the figure for the caller to display or save.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Grid", "grid", "learning_curves", "rank_change", "score_histogram"]

_CSS = (
    "<style>.mmc-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;"
    "font-family:sans-serif;font-size:12px}.mmc-card{border:1px solid #ccc;border-radius:6px;padding:6px}"
    ".mmc-card img{width:100%;height:150px;object-fit:contain;background:#fafafa}"
    ".mmc-cap{margin:4px 0}.mmc-sc{color:#555}.mmc-noimg{height:150px;display:flex;align-items:center;"
    "justify-content:center;background:#eee;color:#777;word-break:break-all;padding:4px}</style>"
)


class Grid:
    """An HTML grid that renders in Jupyter (``_repr_html_``) and saves to a file."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text

    def _repr_html_(self) -> str:
        return self.html

    def save(self, path: str | os.PathLike) -> Path:
        """Write a standalone HTML page; returns its path."""
        from mmcurate._fileio import atomic_write_text

        atomic_write_text(path, f"<!doctype html><meta charset='utf-8'><body>{self.html}</body>")
        return Path(path)


def _thumbnail(path: Path | None, size: int) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    from mmcurate.data.images import thumbnail_jpeg

    try:
        data = thumbnail_jpeg(path, size)
    except OSError:
        return None
    return base64.b64encode(data).decode("ascii")


def _resolver(df: pd.DataFrame, project, image_root) -> Callable[[int], Path | None]:
    if project is not None:
        from mmcurate.review.project_app import image_resolver

        resolve = image_resolver(project)
        return lambda i: resolve(str(df["pair_id"].iloc[i])) if "pair_id" in df.columns else None
    root = Path(image_root) if image_root else None

    def by_path(i: int) -> Path | None:
        if "image" not in df.columns or not isinstance(df["image"].iloc[i], str):
            return None
        p = Path(df["image"].iloc[i])
        return root / p if root is not None and not p.is_absolute() else p

    return by_path


def grid(
    df: pd.DataFrame,
    *,
    n: int = 24,
    project=None,
    image_root: str | os.PathLike | None = None,
    score_columns: Sequence[str] | None = None,
    thumb_size: int = 192,
) -> Grid:
    """Show the first ``n`` rows of ``df`` as image + caption + scores cards.

    Parameters
    ----------
    df : DataFrame
        Rows with ``caption`` and ``image`` (or ``pair_id`` with ``project``), in display order.
    project : Project, optional
        Resolves each pair's image inside the project's image root.
    score_columns : list of str, optional
        Numeric columns to print under each caption (default: ``score`` and ``p_aligned`` if present).

    Examples
    --------
    >>> ranked = rank_project(proj, ["margin"]).merge(proj.pairs, on="pair_id")  # doctest: +SKIP
    >>> grid(ranked.sort_values("score", ascending=False), project=proj, n=12)  # doctest: +SKIP
    """
    rows = df.head(n)
    cols = list(score_columns) if score_columns else [c for c in ("score", "p_aligned") if c in rows]
    resolve = _resolver(rows, project, image_root)
    cards = []
    for i in range(len(rows)):
        thumb = _thumbnail(resolve(i), thumb_size)
        ref = html.escape(str(rows["image"].iloc[i])) if "image" in rows.columns else ""
        img = (f"<img src='data:image/jpeg;base64,{thumb}'>" if thumb
               else f"<div class='mmc-noimg'>{ref or 'no image'}</div>")
        caption = html.escape(str(rows["caption"].iloc[i])) if "caption" in rows.columns else ""
        scores = " · ".join(f"{html.escape(c)}={float(rows[c].iloc[i]):.3f}" for c in cols)
        cards.append(f"<div class='mmc-card'>{img}<div class='mmc-cap'>{caption}</div>"
                     f"<div class='mmc-sc'>{scores}</div></div>")
    return Grid(_CSS + "<div class='mmc-grid'>" + "".join(cards) + "</div>")


def _figure(figsize=(6, 4)):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def score_histogram(df: pd.DataFrame, column: str, *, by: str | None = None, bins: int = 40):
    """Histogram of ``df[column]``, one overlaid series per value of ``by``; returns the figure."""
    fig, ax = _figure()
    groups = df.groupby(by) if by else [("all", df)]
    edges = np.histogram_bin_edges(df[column].to_numpy(float), bins=bins)
    for name, part in groups:
        ax.hist(part[column].to_numpy(float), bins=edges, alpha=0.55, label=str(name))
    ax.set_xlabel(column)
    ax.set_ylabel("pairs")
    if by:
        ax.legend(title=by)
    fig.tight_layout()
    return fig


def learning_curves(metrics: pd.DataFrame, *, y: str = "recall_of_review", x: str = "labels",
                    by: str = "strategy"):
    """Mean ± std over seeds of ``y`` against ``x`` for each ``by`` group; returns the figure."""
    fig, ax = _figure()
    for name, part in metrics.groupby(by):
        stats = part.groupby(x)[y].agg(["mean", "std"]).reset_index()
        ax.plot(stats[x], stats["mean"], label=str(name))
        ax.fill_between(stats[x], stats["mean"] - stats["std"].fillna(0),
                        stats["mean"] + stats["std"].fillna(0), alpha=0.2)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rank_change(before: pd.Series, after: pd.Series, *, highlight: np.ndarray | None = None):
    """Scatter of each pair's rank before vs after (e.g. retraining the head); returns the figure.

    ``before``/``after`` are scores aligned by index (higher = review first); ``highlight`` is an
    optional boolean mask drawn in another colour (e.g. known-noisy pairs).
    """
    fig, ax = _figure((5, 5))
    rb = before.rank(ascending=False).to_numpy()
    ra = after.rank(ascending=False).to_numpy()
    mask = np.zeros(len(rb), bool) if highlight is None else np.asarray(highlight, bool)
    ax.scatter(rb[~mask], ra[~mask], s=6, alpha=0.5, label="other")
    if mask.any():
        ax.scatter(rb[mask], ra[mask], s=8, alpha=0.8, color="crimson", label="highlighted")
    ax.set_xlabel("rank before")
    ax.set_ylabel("rank after")
    ax.legend()
    fig.tight_layout()
    return fig
