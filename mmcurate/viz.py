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
import numpy.typing as npt
import pandas as pd

from mmcurate._fileio import atomic_write_text
from mmcurate.data.images import thumbnail_jpeg
from mmcurate.review.project_app import image_resolver
from mmcurate.signals.metrics import auroc, average_precision, precision_at_k

__all__ = [
    "Grid", "detection_summary", "grid", "learning_curves", "rank_change", "score_histogram",
    "score_histograms",
]

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
        atomic_write_text(path, f"<!doctype html><meta charset='utf-8'><body>{self.html}</body>")
        return Path(path)


def _thumbnail(path: Path | None, size: int) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    try:
        data = thumbnail_jpeg(path, size)
    except OSError:
        return None
    return base64.b64encode(data).decode("ascii")


def _resolver(df: pd.DataFrame, project, image_root) -> Callable[[int], Path | None]:
    if project is not None:
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
    Usage (not run as a doctest: it needs data of your own)::

        ranked = rank_project(proj, ["margin"])
        grid(ranked.review_order(proj.pairs), project=proj, n=12)
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


def _figure(figsize=(6, 4), ncols: int = 1):
    """A new figure and its axes, detached from pyplot's list of open figures.

    pyplot picks the backend (Agg without a display; the inline backend in Jupyter, which also
    teaches IPython to render a returned figure). The backend is never forced: forcing Agg inside a
    kernel made returned figures print as ``<Figure ...>`` text. Closing the figure at once keeps
    Jupyter from drawing it twice (auto-show plus the returned value) and scripts from
    accumulating open figures; ``fig.savefig`` still works.
    """
    import matplotlib.pyplot as plt  # heavy: matplotlib

    fig, axes = plt.subplots(ncols=ncols, figsize=figsize)
    plt.close(fig)
    return fig, axes


def _histogram_on(ax, df: pd.DataFrame, column: str, by: str | None, bins: int) -> None:
    groups = df.groupby(by, sort=True) if by else [("all", df)]
    edges = np.histogram_bin_edges(df[column].to_numpy(float), bins=bins)
    for name, part in groups:
        ax.hist(part[column].to_numpy(float), bins=edges, alpha=0.55, label=str(name))
    ax.set_xlabel(column)
    ax.set_ylabel("pairs")
    if by:
        ax.legend(title=by)


def score_histogram(df: pd.DataFrame, column: str, *, by: str | None = None, bins: int = 40):
    """Histogram of ``df[column]``, one overlaid series per value of ``by``; returns the figure."""
    fig, ax = _figure()
    _histogram_on(ax, df, column, by, bins)
    fig.tight_layout()
    return fig


def score_histograms(df: pd.DataFrame, columns: Sequence[str], *, by: str | None = None,
                     bins: int = 40):
    """One histogram panel per score column, side by side (e.g. two strategies); returns the figure.

    Parameters
    ----------
    df : DataFrame
        One row per pair, e.g. the ``table`` of :func:`mmcurate.rounds.rank_project`.
    columns : list of str
        Numeric columns to plot, one panel each, in this order (each panel has its own bins).
    by : str, optional
        Column whose values split each panel into overlaid series (e.g. known clean / swapped).
    bins : int
        Bins per panel.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        ranked = rank_project(proj, ["clip_score", "disagreement"])
        table = ranked.table.assign(truth=labels)
        score_histograms(table, ["clip_score", "disagreement"], by="truth")
    """
    columns = list(columns)
    if not columns:
        raise ValueError("give at least one column to plot")
    missing = [c for c in [*columns, *([by] if by else [])] if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; it has {list(df.columns)}")
    fig, axes = _figure((4.5 * len(columns), 3.6), ncols=len(columns))
    for ax, column in zip(np.atleast_1d(axes), columns):
        _histogram_on(ax, df, column, by, bins)
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


def rank_change(before: pd.Series, after: pd.Series, *, highlight: np.ndarray | None = None,
                highlight_label: str = "highlighted"):
    """Scatter of each pair's rank before vs after (e.g. retraining the head); returns the figure.

    ``before``/``after`` are scores aligned by index (higher = review first); ``highlight`` is an
    optional boolean mask drawn in another colour (e.g. known-noisy pairs), named
    ``highlight_label`` in the legend.
    """
    fig, ax = _figure((5, 5))
    rb = before.rank(ascending=False).to_numpy()
    ra = after.rank(ascending=False).to_numpy()
    mask = np.zeros(len(rb), bool) if highlight is None else np.asarray(highlight, bool)
    ax.scatter(rb[~mask], ra[~mask], s=6, alpha=0.5, label="other")
    if mask.any():
        ax.scatter(rb[mask], ra[mask], s=8, alpha=0.8, color="crimson", label=highlight_label)
    ax.set_xlabel("rank before")
    ax.set_ylabel("rank after")
    ax.legend()
    fig.tight_layout()
    return fig


def detection_summary(df: pd.DataFrame, columns: Sequence[str], positive: npt.ArrayLike, *,
                      k: int | None = None) -> pd.DataFrame:
    """How well each score column ranks known-bad pairs first: one row per column.

    Parameters
    ----------
    df : DataFrame
        One row per pair (e.g. the ``table`` of :func:`mmcurate.rounds.rank_project`), higher = review first.
    columns : list of str
        Score columns to evaluate (e.g. strategy names).
    positive : bool array (N,)
        Ground truth aligned with ``df``'s rows: True where the caption is known to be wrong.
    k : int, optional
        Adds ``precision_at_k``: the fraction of known-bad pairs among the ``k`` highest scores
        (e.g. the review budget).

    Returns
    -------
    DataFrame
        Index ``columns``; columns ``auroc``, ``average_precision`` and, with ``k``,
        ``precision_at_k`` (see :mod:`mmcurate.signals.metrics`).

    Examples
    --------
    >>> df = pd.DataFrame({"good": [0.9, 0.8, 0.1, 0.2], "bad": [0.1, 0.2, 0.9, 0.8]})
    >>> detection_summary(df, ["good", "bad"], [True, True, False, False], k=2)["auroc"].tolist()
    [1.0, 0.0]
    """
    y = np.asarray(positive, dtype=bool)
    if y.shape != (len(df),):
        raise ValueError(f"positive must be a boolean array with one entry per row ({len(df)}), "
                         f"got shape {y.shape}; align it with the table's rows first")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table; it has {list(df.columns)}")
    rows = {}
    for column in columns:
        s = df[column].to_numpy(np.float64)
        row = {"auroc": auroc(s, y), "average_precision": average_precision(s, y)}
        if k is not None:
            row["precision_at_k"] = precision_at_k(s, y, k)
        rows[column] = row
    return pd.DataFrame.from_dict(rows, orient="index")
