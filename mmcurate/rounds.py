"""One active-learning round on a project: rank, select a batch, import decisions, train the head.

These functions read and write the project directory through its stages (``rank``, ``select``,
``labels``, ``head``) and return pandas objects, so the CLI and a notebook share them.

Labels: ``accept`` marks the pair aligned (y = 1); ``reject`` and ``fix`` mark the pair *as it
stands* misaligned (y = 0). A fix's corrected caption is additionally a new positive for the head
when the project has a model to embed it (image projects); imported-embedding projects cannot
embed new text, so there a fix counts only as a negative.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate._fileio import atomic_write_json, to_jsonable
from mmcurate._util import RandomState, check_random_state
from mmcurate.exceptions import NotEmbeddedError
from mmcurate.learn import EXPLORE

DEFAULT_STRATEGY = "p_misaligned"
"""What ``select`` ranks by when no strategy is given (chosen by the benchmark, see README)."""

__all__ = [
    "apply_head",
    "current_embeddings",
    "import_labels",
    "labelled_arrays",
    "load_latest_head",
    "load_model",
    "rank_project",
    "rounds_status",
    "select_batch",
    "train_project_head",
]


def labelled_arrays(proj) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pd.DataFrame]:
    """Row indices of decided pairs, their labels (1 aligned, 0 not) and the fix rows."""
    decisions = proj.ledger.decisions()
    if decisions.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), decisions
    row_of = pd.Series(np.arange(len(proj.pairs)), index=proj.pairs["pair_id"].to_numpy())
    decisions = decisions[decisions["pair_id"].isin(row_of.index)]
    rows = row_of.loc[decisions["pair_id"]].to_numpy(np.int64)
    y = (decisions["decision"].to_numpy() == "accept").astype(np.int64)
    is_fix = decisions["decision"].to_numpy() == "fix"
    fixes = decisions[is_fix].assign(row=rows[is_fix])
    return rows, y, fixes


def _head_path(proj, head_round: int) -> Path:
    return proj.root / "heads" / f"head-{head_round:04d}.safetensors"


@dataclass
class Model:
    """The model that ranks: a validated calibrator (+ head where it helped), or the prior.

    ``round`` is its model (head) round, ``None`` before any accepted model; ``calibrator`` is
    ``None`` for the zero-label prior or for models recorded before validation existed (those are
    refitted on the labels when ranking, as before).
    """

    round: int | None = None
    head: Any = None
    calibrator: Any = None
    k: int | None = None
    trained_on: frozenset[str] = field(default_factory=frozenset)
    info: dict[str, Any] = field(default_factory=dict)


def _model_sidecar(proj, model_round: int) -> Path:
    return proj.root / "heads" / f"model-{model_round:04d}.json"


def load_model(proj) -> Model:
    """The latest *accepted* model of the project (:class:`Model`; empty before any)."""
    if not (proj.root / "labels.sqlite").is_file():
        return Model()
    heads = proj.ledger.heads()
    for record in reversed(heads.to_dict("records")):
        info = (record.get("metrics") or {}).get("model")
        if info is not None and not info.get("accepted"):
            continue
        head = None
        if record["checkpoint"] and (info is None or info.get("use_head")):
            from mmcurate.head import ProjectionHead

            checkpoint = Path(record["checkpoint"])
            head = ProjectionHead.load(checkpoint if checkpoint.is_absolute() else proj.root / checkpoint)
        calibrator, k, trained_on = None, None, frozenset[str]()
        sidecar = _model_sidecar(proj, int(record["head_round"]))
        if info is not None and sidecar.is_file():
            from mmcurate.learn import calibrator_from_dict

            data = json.loads(sidecar.read_text(encoding="utf-8"))
            calibrator, k = calibrator_from_dict(data["calibrator"]), int(data["k"])
            trained_on = frozenset(data.get("trained_on", ()))
        return Model(int(record["head_round"]), head, calibrator, k, trained_on, dict(info or {}))
    return Model()


def load_latest_head(proj):
    """The projection head of the model in use and its round: ``(None, round)`` when that model
    uses no head, ``(None, None)`` before any accepted model."""
    model = load_model(proj)
    return model.head, model.round


def current_embeddings(proj) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Image and caption vectors after the latest trained head (raw CLIP vectors before any).

    Above ``rank.APPROXIMATE_FROM`` pairs the adapted vectors are lazy views
    (:class:`mmcurate.head.TransformedView`) computed chunk by chunk when read.
    """
    head, head_round = load_latest_head(proj)
    return (*apply_head(head, proj.image_embeddings(), proj.text_embeddings()), head_round)


def apply_head(head, image, text):
    """``(image, text)`` adapted by ``head`` (unchanged when None); lazy views above
    ``rank.APPROXIMATE_FROM`` pairs, so large pools never get a float32 copy."""
    from mmcurate.rank import APPROXIMATE_FROM

    if head is None:
        return image, text
    if len(image) > APPROXIMATE_FROM:
        return head.view(image, "image"), head.view(text, "text")
    return head.transform_images(image), head.transform_texts(text)


def _provenance(proj, head_round: int | None, **params: Any) -> dict[str, Any]:
    manifest = proj.store.manifest() or {}
    return {"model": manifest.get("model"), "pretrained": manifest.get("pretrained"),
            "weights_sha256": manifest.get("weights_sha256"), "embeddings": manifest.get("kind"),
            "head_round": head_round, **params,
            "created": time.strftime("%FT%TZ", time.gmtime())}


def rank_project(proj, strategies: list[str] | tuple[str, ...] = ("disagreement",), *, k: int = 10,
                 random_state: int = 0, options: dict[str, Any] | None = None, engine: str = "local",
                 address: str | None = None, pool_state: bool = True, save_state: bool = True
                 ) -> pd.DataFrame:
    """Score every pair; a DataFrame with ``pair_id``, ``score`` and one column per signal.

    ``df.attrs["provenance"]`` records model, pretrained tag, head round, strategies and parameters.
    ``engine="ray"`` scores with Ray tasks over shards (:mod:`mmcurate.engine.ray_score`; a local
    Ray, or the cluster at ``address``); it always uses the approximate neighbour search.
    ``pool_state``: when a local ranking computed the pool state that ``add`` / ``stream`` score
    arrivals against (``disagreement`` does), save it under ``PROJECT/index/pool/``
    (:func:`mmcurate.stream.incremental.save_pool_state`) unless it is current already.
    ``save_state``: record the estimated noise rate of a ranking with ``p_aligned`` in
    ``PROJECT/state.json`` (what ``status`` reports). With ``pool_state=False, save_state=False`` a
    ranking writes nothing (what ``export`` uses).

    Examples
    --------
    >>> ranked = rank_project(proj, ["margin", "disagreement"])  # doctest: +SKIP
    >>> ranked.sort_values("score", ascending=False).head()  # doctest: +SKIP
    """
    from mmcurate.rank import RankContext, compute_from_context

    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if k < 1:
        raise ValueError(f"k (neighbours per pair) must be at least 1, got {k}")
    rows, y, _ = labelled_arrays(proj) if (proj.root / "labels.sqlite").is_file() else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), None)
    categories = proj.pairs["category"].to_numpy() if "category" in proj.pairs.columns else None
    if engine == "ray":
        table, head_round = _rank_ray(proj, strategies, rows, y, k=k, random_state=random_state,
                                      options=options, address=address)
        if categories is not None:
            table["category"] = categories
    else:
        model = load_model(proj)
        image, text = apply_head(model.head, proj.image_embeddings(), proj.text_embeddings())
        head_round = model.round
        ctx = RankContext(image, text, indices_labeled=rows, labels=y, k=k, random_state=random_state,
                          calibrator=_calibrator_for(model, k))
        table = compute_from_context(ctx, tuple(strategies), options=options, categories=categories)
        if pool_state:
            from mmcurate.stream.incremental import pool_fingerprint, save_pool_state

            save_pool_state(proj.root / "index" / "pool", ctx,
                            fingerprint=pool_fingerprint(proj, head_round, k))
    table.insert(0, "pair_id", proj.pairs["pair_id"].to_numpy())
    table.attrs["provenance"] = _provenance(proj, head_round, strategies=list(strategies), k=k,
                                            random_state=random_state, n_labels=len(rows),
                                            options=options or {}, engine=engine)
    if save_state:
        _save_state(proj, table)
    return table


def _calibrator_for(model: Model, k: int):
    """The calibrator a ranking uses: the model's; ``"prior"`` when no model was accepted yet
    (labels never rank unvalidated); ``None`` (refit on the labels) for a model recorded before
    validation existed or one made with another ``k``."""
    if model.calibrator is not None and model.k == k:
        return model.calibrator
    return "prior" if model.round is None else None


def _rank_ray(proj, strategies, rows, y, *, k, random_state, options, address):
    from mmcurate.engine.ray_score import RAY_ENGINE, rank_with_ray

    RAY_ENGINE.check(strategies, options)  # refused before the store is compacted or Ray started
    ids = proj.pairs["pair_id"].tolist()
    if not proj.store.is_compact_for(ids):
        with proj.lock():
            proj.store.compact(ids)
    model = load_model(proj)
    head = None
    if model.head is not None:
        record = proj.ledger.heads().set_index("head_round").loc[model.round]
        checkpoint = Path(record["checkpoint"])
        head = checkpoint if checkpoint.is_absolute() else proj.root / checkpoint
    table = rank_with_ray(proj.store.root / "image.npy", proj.store.root / "text.npy",
                          strategies=tuple(strategies), indices_labeled=rows, labels=y, k=k,
                          random_state=random_state, head=head, address=address, options=options,
                          calibrator=_calibrator_for(model, k))
    return table, model.round


def _save_state(proj, table: pd.DataFrame) -> None:
    if "p_aligned" in table.columns:
        atomic_write_json(proj.root / "state.json", {
            "estimated_noise_rate": float(1.0 - np.mean(table["p_aligned"])),
            "from": table.attrs.get("provenance", {}),
        })


def select_batch(proj, *, budget: int, strategy: str = DEFAULT_STRATEGY, diversity: str = "none",
                 k: int = 10, random_state: int = 0, exclude: Collection[str] | None = None,
                 ranked: pd.DataFrame | None = None, explore: float = EXPLORE,
                 balance: str | None = None, balance_mode: str = "uniform") -> tuple[int, pd.DataFrame]:
    """Rank, pick ``budget`` pairs never labelled or queued before, and save them as a round.

    ``exclude``: pair_ids never to select (e.g. a held-out evaluation set); unlike the pairs already
    labelled or queued (the selector's ``indices_labeled``), they do not shape diversity (core-set
    centres). ``ranked``: a ranking
    :func:`rank_project` just made for ``strategy`` on the current labels and head (saves ranking
    twice when the caller also needs the scores); ranked here when None. ``explore``: the share of
    the batch drawn uniformly at random from the pairs the strategy did not pick (recorded as the
    ``explore`` stratum with its inclusion probability; it lets the next model correct for the
    queue's bias and gives unbiased estimates of the noise left, see :mod:`mmcurate.learn`).
    ``balance="categories"``: every value of the pairs' ``category`` column gets a share of the
    exploit part (``balance_mode`` ``uniform`` or ``proportional``, floor 1;
    :func:`mmcurate.select.select_balanced`), each share chosen by ``diversity``.

    Returns the round number and the batch (``pair_id``, ``score``, ``reason``, ``stratum``,
    caption, image).

    Examples
    --------
    >>> round_id, batch = select_batch(proj, budget=100)  # doctest: +SKIP
    >>> batch["stratum"].value_counts()  # doctest: +SKIP
    exploit    90
    explore    10
    """
    from mmcurate.learn import split_budget
    from mmcurate.rank import selection_vectors

    with proj.lock():
        selector = _batch_selector(proj, diversity, balance, balance_mode)
        if ranked is None:
            ranked = rank_project(proj, [strategy], k=k, random_state=random_state)
        _check_ranking(proj, ranked, strategy)
        queued = proj.ledger.queued_pair_ids()
        labelled = set(proj.ledger.decisions()["pair_id"]) if len(proj.ledger.decisions()) else set()
        # labelled or queued pairs seed diversity (core-set centres); held-out pairs are only skipped
        labelled_rows = np.flatnonzero(ranked["pair_id"].isin(queued | labelled).to_numpy())
        held_out_rows = np.flatnonzero(ranked["pair_id"].isin(set(exclude or ())).to_numpy())
        excluded_rows = np.union1d(labelled_rows, held_out_rows)
        image, text, _ = current_embeddings(proj)
        joint = selection_vectors(image, text, random_state=random_state)
        n_exploit, n_explore = split_budget(int(budget), explore)
        scores = ranked["score"].to_numpy(np.float64)
        picked = selector(scores, n=n_exploit, embeddings=joint, indices_labeled=labelled_rows,
                          exclude=np.setdiff1d(held_out_rows, labelled_rows), random_state=random_state)
        explored, inclusion = _explore(len(ranked), np.r_[excluded_rows, picked], n_explore, random_state)
        chosen = ranked.iloc[np.r_[picked, explored]]
        params = {"budget": budget, "diversity": diversity, "k": k, "random_state": random_state,
                  "explore": explore}
        if balance not in (None, "none"):
            params.update(balance=balance, balance_mode=balance_mode)
        prov = ranked.attrs["provenance"]
        reasons = [f"{strategy}={s:.3f}" for s in scores[picked]]
        reasons += [f"explore: drawn at random (p={inclusion:.2g}); {strategy}={s:.3f}"
                    for s in scores[explored]]
        round_id = proj.ledger.create_round(
            chosen["pair_id"].tolist(), strategy=strategy, params=params,
            model={key: prov[key] for key in ("model", "pretrained", "weights_sha256", "embeddings")},
            head_round=prov["head_round"], scores=chosen["score"].astype(float).tolist(),
            reasons=reasons, strata=["exploit"] * len(picked) + ["explore"] * len(explored),
            inclusion=[1.0] * len(picked) + [inclusion] * len(explored),
        )
    batch = proj.ledger.batch(round_id).merge(proj.pairs[["pair_id", "image", "caption"]], on="pair_id")
    return round_id, batch


def _explore(n: int, taken: np.ndarray, n_explore: int,
             random_state: RandomState) -> tuple[np.ndarray, float]:
    """``n_explore`` rows drawn uniformly from those not ``taken``, and their inclusion probability."""
    mask = np.ones(n, bool)
    mask[np.asarray(taken, np.int64)] = False
    rest = np.flatnonzero(mask)
    m = min(n_explore, len(rest))
    if m == 0:
        return np.zeros(0, np.int64), 1.0
    rng = check_random_state(random_state, stream=0x6578706C)  # an int seed: its own stream
    return np.sort(rng.choice(rest, size=m, replace=False)).astype(np.int64), m / len(rest)


def _batch_selector(proj, diversity: str, balance: str | None, balance_mode: str):
    """The selector for :func:`select_batch`: ``diversity``, or it per category when balancing."""
    from functools import partial

    from mmcurate.select import get_selector, select_balanced

    if balance in (None, "none"):
        return get_selector(diversity)
    if balance != "categories":
        raise ValueError(f"balance must be None, 'none' or 'categories', got {balance!r}")
    if balance_mode not in ("uniform", "proportional"):
        raise ValueError(f"balance_mode must be 'uniform' or 'proportional', got {balance_mode!r}")
    if "category" not in proj.pairs.columns:
        raise ValueError(f"balance='categories' needs a `category` column in the project's pairs, "
                         f"but {proj.root} has only {', '.join(map(str, proj.pairs.columns))}. Add a "
                         f"`category` column to the pairs file (or to the embedding folder's "
                         f"metadata) and create the project again (mmcurate init --force), or select "
                         f"without balance.")
    categories = proj.pairs["category"].astype("string").fillna("<missing>").to_numpy(dtype=object)
    get_selector(diversity)  # an unknown name fails here, before ranking
    return partial(select_balanced, categories=categories, mode=balance_mode, within=diversity)


def _check_ranking(proj, ranked: pd.DataFrame, strategy: str) -> None:
    """A ranking passed to :func:`select_batch` must be of ``strategy`` on the current state."""
    from mmcurate.rank import STRATEGIES

    prov = ranked.attrs.get("provenance") or {}
    expected = (STRATEGIES.get(strategy).name, len(labelled_arrays(proj)[0]), load_model(proj).round)
    found = (STRATEGIES.get(prov["strategies"][0]).name if prov.get("strategies") else None,
             prov.get("n_labels"), prov.get("head_round"))
    if found != expected or len(ranked) != len(proj.pairs):
        raise ValueError(f"ranked= must come from rank_project(proj, [{strategy!r}]) on the current "
                         f"labels and head: expected (strategy, labels, head round) {expected}, got "
                         f"{found} over {len(ranked)} rows; rank again or pass ranked=None.")


def import_labels(proj, source: str | Path | pd.DataFrame, *, round_id: int | None = None,
                  source_name: str | None = None):
    """Import decisions (a CSV/JSONL file or a DataFrame) into the ledger in one transaction.

    Every decided pair must be queued in a review batch (in round ``round_id`` when given);
    otherwise nothing is imported and :class:`mmcurate.labels.LabelsFileError` names the rows.
    """
    if source_name is None and not isinstance(source, pd.DataFrame):
        source_name = Path(source).name
    return proj.ledger.import_decisions(source, known_pair_ids=set(proj.pairs["pair_id"]),
                                        source_name=source_name, round_id=round_id, queued_only=True)


def _fixed_texts(proj, fixes: pd.DataFrame):
    if fixes is None or fixes.empty or proj.kind == "external":
        return None
    from mmcurate.embed.encoder import load_encoder

    manifest = proj.store.manifest() or {}
    encoder = load_encoder(proj.model_spec, weights_sha256=manifest.get("weights_sha256"))
    vectors = encoder.encode_texts(fixes["caption"].astype(str).tolist())
    return fixes["row"].to_numpy(np.int64), vectors


def train_project_head(proj, *, config=None, k: int = 10, tolerance: float = 0.0
                       ) -> tuple[int, dict[str, Any]]:
    """Fit a new model on every decision so far, validate it, and use it only if it does not lose.

    The model is the calibrator of P(aligned) on the alignment features (after the projection
    head when the head's own cross-validation shows it helps; ``config.n_folds >= 2``). It is
    compared with the zero-label prior and with the model in use on labels it was not fitted on
    (:mod:`mmcurate.learn`); a losing model is recorded with ``accepted = False`` and ranking goes
    on with the model in use. Saves ``heads/head-NNNN.safetensors`` (when a head was trained) and
    ``heads/model-NNNN.json`` (calibrator, validation) and records the round in the ledger.

    Returns the model round and its metrics (``accepted``, ``reason``, ``use_head`` and the
    validation AUROCs under ``validation``; the head's training metrics when one was trained).

    Examples
    --------
    >>> model_round, metrics = train_project_head(proj)  # doctest: +SKIP
    >>> metrics["accepted"], metrics["reason"]  # doctest: +SKIP
    (True, 'held-out AUROC 0.9731 vs prior 0.9514')
    """
    from mmcurate.head import HeadConfig

    rows, y, fixes = labelled_arrays(proj)
    if len(rows) == 0:
        raise NotEmbeddedError("no decisions yet: review a batch (mmcurate review / label) first")
    config = config or HeadConfig()
    with proj.lock():
        previous = load_model(proj)
        head, head_metrics = _train_head_if_useful(proj, rows, y, fixes, config)
        fit = _fit_and_validate(proj, rows, y, head, previous, k=k, random_state=config.random_state,
                                tolerance=tolerance)
        model_round = len(proj.ledger.heads()) + 1
        checkpoint = ""
        if head is not None:
            path = _head_path(proj, model_round)
            path.parent.mkdir(parents=True, exist_ok=True)
            head.save(path)
            checkpoint = path.relative_to(proj.root).as_posix()
        ids = proj.pairs["pair_id"].to_numpy()[rows]
        atomic_write_json(_model_sidecar(proj, model_round), {
            "calibrator": fit["calibrator"], "k": k, "use_head": fit["use_head"],
            "validation": fit["validation"], "trained_on": sorted(map(str, ids))})
        info = {"accepted": fit["validation"]["accepted"], "reason": fit["validation"]["reason"],
                "use_head": fit["use_head"], "replaces": previous.round,
                "validation": fit["validation"]}
        if "auroc_with_head" in fit:
            info.update(auroc_with_head=fit["auroc_with_head"], auroc_without_head=fit["auroc_without_head"])
            head_metrics["head"] = (
                f"{'used' if fit['use_head'] else 'not used'}: held-out AUROC of the model with the head "
                f"{fit['auroc_with_head']:.4f} vs without {fit['auroc_without_head']:.4f}")
        metrics = {**head_metrics, "model": info}
        recorded = proj.ledger.record_head(checkpoint=checkpoint, metrics=to_jsonable(metrics),
                                           n_labels=len(rows))
    return recorded, {**head_metrics, **info}


def _train_head_if_useful(proj, rows, y, fixes, config) -> tuple[Any, dict[str, Any]]:
    """Train the projection head when it can be validated (``n_folds >= 2``); ``(head or None,
    metrics)``. The head is kept only when its cross-validated AUROC beats plain CLIP's."""
    if config.n_folds < 2 or (y == 1).sum() < 2 or (y == 0).sum() < 2:
        return None, {"head": "not trained (needs n_folds >= 2 and two labels of each class)"}
    from mmcurate.head import train_head

    head, metrics = train_head(proj.image_embeddings(), proj.text_embeddings(),
                               positives=rows[y == 1], negatives=rows[y == 0],
                               fixed_texts=_fixed_texts(proj, fixes), config=config)
    cv, cv_identity = metrics.get("cv_auroc", np.nan), metrics.get("cv_auroc_identity", np.nan)
    helps = bool(np.isfinite(cv) and np.isfinite(cv_identity) and cv > cv_identity)
    metrics["head"] = "used" if helps else "not used: its cross-validated AUROC does not beat plain CLIP"
    return (head if helps else None), metrics


def _label_weights(proj, rows: np.ndarray) -> np.ndarray:
    """``1/π`` of each labelled row (1 for pairs queued without a recorded design)."""
    design = proj.ledger.design().set_index("pair_id")["inclusion"]
    ids = pd.Series(proj.pairs["pair_id"].to_numpy()[rows])
    return 1.0 / ids.map(design).fillna(1.0).to_numpy(np.float64)


def _features(proj, head, k: int, random_state: int):
    from mmcurate.rank import RankContext

    image, text = apply_head(head, proj.image_embeddings(), proj.text_embeddings())
    ctx = RankContext(image, text, indices_labeled=None, labels=None, k=k, random_state=random_state)
    return ctx.features


def _fit_and_validate(proj, rows, y, head, previous: Model, *, k: int, random_state: int,
                      tolerance: float) -> dict[str, Any]:
    """Fit the calibrator without and (when a head was trained) with the head, validate each on
    labels it was not fitted on, keep the head only if its model ranks those labels better."""
    from mmcurate.learn import calibrator_to_dict, fit_validated

    raw = _features(proj, None, k, random_state)
    prev_logits = recent = None
    if previous.calibrator is not None and previous.k == k:
        prev_features = raw if previous.head is None else _features(proj, previous.head, k, random_state)
        prev_logits = previous.calibrator.decision_function(prev_features.matrix()[rows])
        ids = proj.pairs["pair_id"].to_numpy()[rows]
        recent = ~np.isin(ids.astype(str), list(previous.trained_on))
    common = {"prior_features": raw, "weights": _label_weights(proj, rows), "previous_logits": prev_logits,
              "recent": recent, "tolerance": tolerance, "random_state": random_state}
    calibrator, verdict = fit_validated(raw, rows, y, **common)
    out = {"calibrator": calibrator_to_dict(calibrator), "use_head": False, "validation": verdict.as_dict()}
    if head is None or not head.fold_heads:
        return out
    # leak-free: each fold's labels are scored after the head trained without them
    fold = np.array([head.fold_of_row[int(r)] for r in rows], np.int64)
    fold_features = [_features(proj, h, k, random_state) for h in head.fold_heads]
    with_head, verdict_head = fit_validated(_features(proj, head, k, random_state), rows, y, fold=fold,
                                            fold_features=fold_features, **common)
    out["auroc_without_head"], out["auroc_with_head"] = verdict.auroc_new, verdict_head.auroc_new
    if verdict_head.auroc_new > verdict.auroc_new:
        out.update(calibrator=calibrator_to_dict(with_head), use_head=True, validation=verdict_head.as_dict())
    return out


def rounds_status(proj) -> dict[str, Any]:
    """Rounds, decisions, conflicts, head metrics and the estimated noise rate."""
    ledger = proj.ledger
    decisions = ledger.decisions()
    counts = decisions["decision"].value_counts().to_dict() if len(decisions) else {}
    latest = ledger.latest_head()
    state_path = proj.root / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    reviewed = len(decisions)
    in_use = load_model(proj)
    latest_info = ((latest.get("metrics") or {}).get("model") if latest else None) or {}
    return {
        "model": {"in_use": in_use.round, "latest": latest["head_round"] if latest else None,
                  "latest_accepted": latest_info.get("accepted", bool(latest)) if latest else None,
                  "latest_reason": latest_info.get("reason"), "uses_head": in_use.head is not None,
                  "labels_not_yet_used": reviewed - (latest.get("n_labels") or 0 if latest else 0)},
        "rounds": len(ledger.rounds()),
        "decisions": {"total": reviewed, **{d: int(counts.get(d, 0)) for d in ("accept", "reject", "fix")}},
        "conflicts": len(ledger.conflicts()),
        "head": ({"round": latest["head_round"], "n_labels": latest.get("n_labels"),
                  "metrics": {k: v for k, v in (latest.get("metrics") or {}).items()
                              if not isinstance(v, list)}} if latest else None),
        "reviewed_noise_rate": (float((decisions["decision"] != "accept").mean()) if reviewed else None),
        "estimated_noise_rate": state.get("estimated_noise_rate"),
    }
