"""Rank a project: every pair scored under the model in use, locally or with Ray."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_json
from mmcurate.engine.incremental import pool_fingerprint, save_pool_state
from mmcurate.engine.ray_score import RAY_ENGINE, rank_with_ray
from mmcurate.groups.hooks import count_groups_once
from mmcurate.learn import DEFAULT_STRATEGY
from mmcurate.rank import RankContext, compute_from_context
from mmcurate.results import Ranking
from mmcurate.rounds.labelling import labelled_arrays
from mmcurate.rounds.model import Model, apply_head, load_model

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles


def _provenance(proj: ProjectFiles, head_round: int | None, **params: Any) -> dict[str, Any]:
    manifest = proj.store.manifest() or {}
    return {"model": manifest.get("model"), "pretrained": manifest.get("pretrained"),
            "weights_sha256": manifest.get("weights_sha256"), "embeddings": manifest.get("kind"),
            "head_round": head_round, **params,
            "created": time.strftime("%FT%TZ", time.gmtime())}


def rank_project(proj: Project, strategies: list[str] | tuple[str, ...] = (DEFAULT_STRATEGY,), *, k: int = 10,
                 random_state: int = 0, options: dict[str, Any] | None = None, engine: str = "local",
                 address: str | None = None, pool_state: bool = True, save_state: bool = True
                 ) -> Ranking:
    """Score every pair; a :class:`~mmcurate.results.Ranking` whose ``table`` has ``pair_id``,
    ``score`` and one column per signal.

    ``strategies`` defaults to :data:`DEFAULT_STRATEGY` (the same default as ``select``).

    ``Ranking.provenance`` records model, pretrained tag, head round, strategies and parameters.
    ``engine="ray"`` scores with Ray tasks over shards (:mod:`mmcurate.engine.ray_score`; a local
    Ray, or the cluster at ``address``); it always uses the approximate neighbour search.
    ``pool_state``: when a local ranking computed the pool state that ``add`` / ``stream`` score
    arrivals against (``disagreement`` does), save it under ``PROJECT/index/pool/``
    (:func:`mmcurate.engine.incremental.save_pool_state`) unless it is current already.
    ``save_state``: record the estimated noise rate of a ranking with ``p_aligned`` in
    ``PROJECT/state.json`` (what ``status`` reports). With ``pool_state=False, save_state=False`` a
    ranking writes nothing (what ``export`` uses).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        ranked = rank_project(proj, ["margin", "disagreement"])
        ranked.review_order().head(), ranked.provenance["head_round"]
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if k < 1:
        raise ValueError(f"k (neighbours per pair) must be at least 1, got {k}")
    rows, y, _ = labelled_arrays(proj) if proj.has_ledger() else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), None)
    n_labels = len(rows)  # every decision (what select checks a ranking against)
    rows, y = _one_row_per_group(proj, rows, y)
    categories = proj.pairs["category"].to_numpy() if "category" in proj.pairs.columns else None
    if engine == "ray":
        table, head_round, uses_head = _rank_ray(proj, strategies, rows, y, k=k, random_state=random_state,
                                                 options=options, address=address)
        if categories is not None:
            table["category"] = categories
    else:
        model = load_model(proj)
        image, text = apply_head(model.head, proj.image_embeddings(), proj.text_embeddings())
        head_round, uses_head = model.round, model.head is not None
        ctx = RankContext(image, text, indices_labeled=rows, labels=y, k=k, random_state=random_state,
                          calibrator=_calibrator_for(model, k))
        table = compute_from_context(ctx, tuple(strategies), options=options, categories=categories)
        if pool_state:
            save_pool_state(proj.pool_state_dir, ctx,
                            fingerprint=pool_fingerprint(proj, head_round, k))
    table.insert(0, "pair_id", proj.pairs["pair_id"].to_numpy())
    ranking = Ranking(table, _provenance(proj, head_round, strategies=list(strategies), k=k,
                                         random_state=random_state, n_labels=n_labels,
                                         options=options or {}, engine=engine),
                      tuple(strategies), uses_head=uses_head)
    if save_state:
        _save_state(proj, ranking)
    return ranking


def _calibrator_for(model: Model, k: int):
    """The calibrator a ranking uses: the model's; ``"prior"`` when no model was accepted yet
    (labels never rank unvalidated); ``None`` (refit on the labels) for a model recorded before
    validation existed or one made with another ``k``."""
    if model.calibrator is not None and model.k == k:
        return model.calibrator
    return "prior" if model.round is None else None


def _rank_ray(proj: ProjectFiles, strategies, rows, y, *, k, random_state, options, address):
    RAY_ENGINE.check(strategies, options)  # refused before the store is compacted or Ray started
    ids = proj.pairs["pair_id"].tolist()
    if not proj.store.is_compact_for(ids):
        with proj.lock():
            proj.store.compact(ids)
    model = load_model(proj)
    head = None
    if model.head is not None:
        record = proj.ledger.heads().set_index("head_round").loc[model.round]
        head = proj.checkpoint_path(record["checkpoint"])
    table = rank_with_ray(proj.store.array_path("image"), proj.store.array_path("text"),
                          strategies=tuple(strategies), indices_labeled=rows, labels=y, k=k,
                          random_state=random_state, head=head, address=address, options=options,
                          calibrator=_calibrator_for(model, k))
    return table, model.round, head is not None


def _save_state(proj: ProjectFiles, ranking: Ranking) -> None:
    table = ranking.table
    if "p_aligned" in table.columns:
        atomic_write_json(proj.state_path, {
            **noise_estimate(proj, table["pair_id"], table["p_aligned"].to_numpy(float)),
            "from": ranking.provenance,
        })


def noise_estimate(proj: ProjectFiles, pair_ids: pd.Series, p_aligned: np.ndarray) -> dict[str, Any]:
    """The pool's misaligned share: decided pairs by their decision, the rest by the model, with
    a 95% interval from the randomly drawn labels.

    ``estimated_noise_rate`` = (misaligned decisions + Σ P(misaligned) of undecided pairs) / N, a
    difference estimator corrected by the mean of (misaligned − P(misaligned)) over the random
    (explore) labels, whose spread gives the interval. Without random labels the interval is
    unknown (NaN) and ``how`` says the estimate is the model's alone.
    """
    n = len(pair_ids)
    p_mis = 1.0 - np.nan_to_num(p_aligned, nan=0.5)
    out: dict[str, Any] = {"estimated_noise_rate": float(p_mis.mean()) if n else float("nan"),
                           "low": float("nan"), "high": float("nan"), "n_random_labels": 0,
                           "how": "the model's mean P(misaligned) over every pair (no labels yet)"}
    if not n or not proj.has_ledger():
        return out
    decisions = proj.ledger.resolved()  # one decision per pair (repeated opinions resolved)
    decided = pair_ids.map(decisions.set_index("pair_id")["decision"]).to_numpy(object)
    has = pd.notna(decided)
    if not has.any():
        return out
    mis = decided[has] != "accept"
    design = proj.ledger.design()
    explored = pair_ids.isin(set(design.loc[design["stratum"] == "explore", "pair_id"])).to_numpy() & has
    base = float(mis.sum() + p_mis[~has].sum())
    n_open = int((~has).sum())
    out.update(n_random_labels=int(explored.sum()))
    if explored.sum() >= 2 and n_open:
        resid = (decided[explored] != "accept").astype(float) - p_mis[explored]
        correction = float(resid.mean())
        se = float(resid.std(ddof=1) / np.sqrt(explored.sum()))
        rate = float(np.clip((base + n_open * correction) / n, 0.0, 1.0))
        half = 1.96 * n_open * se / n
        out.update(estimated_noise_rate=rate, low=max(0.0, rate - half), high=min(1.0, rate + half),
                   how=f"decisions of {int(has.sum())} reviewed pairs + the model's P(misaligned) of the "
                       f"{n_open} others, corrected on {int(explored.sum())} randomly drawn labels")
    else:
        out.update(estimated_noise_rate=base / n,
                   how=f"decisions of {int(has.sum())} reviewed pairs + the model's P(misaligned) of the "
                       f"{n_open} others (no random labels yet: no interval)")
    return out


def _one_row_per_group(proj: ProjectFiles, rows: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A group decision is one label for the calibrator fitted here too: rows recorded via a
    representative are dropped (:func:`mmcurate.groups.hooks.count_groups_once`)."""
    if len(rows) == 0:
        return rows, y
    rows, y, _ = count_groups_once(proj, rows, y, pd.DataFrame())
    return rows, y
