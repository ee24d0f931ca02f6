"""Train a round's model: the head (when it helps), the calibrator, validated against the model in use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_json, to_jsonable
from mmcurate._util import sigmoid
from mmcurate.embed.encoder import load_encoder
from mmcurate.exceptions import NoDecisionsError
from mmcurate.groups.hooks import count_groups_once
from mmcurate.learn import (
    LABEL_NOISE_FLOOR,
    calibrate_on_labels,
    calibrator_to_dict,
    fit_validated,
    platt_ipw,
    prior_logits,
    recalibrated,
    reviewer_error_rate,
    stratified_folds,
)
from mmcurate.rank import RankContext
from mmcurate.results import TrainResult
from mmcurate.rounds.labelling import decided_opinions, labelled_arrays
from mmcurate.rounds.model import Model, apply_head, load_model
from mmcurate.signals.alignment import prior_calibrator

if TYPE_CHECKING:
    from mmcurate.head import HeadConfig
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles


def _fixed_texts(proj: ProjectFiles, fixes: pd.DataFrame):
    if fixes is None or fixes.empty or proj.kind == "external":
        return None
    manifest = proj.store.manifest() or {}
    encoder = load_encoder(proj.model_spec, weights_sha256=manifest.get("weights_sha256"))
    vectors = encoder.encode_texts(fixes["caption"].astype(str).tolist())
    return fixes["row"].to_numpy(np.int64), vectors


def train_project_head(proj: Project, *, config: HeadConfig | None = None, k: int = 10,
                       tolerance: float = 0.0, with_head: bool | None = None) -> TrainResult:
    """Fit a new model on every decision so far, validate it, and use it only if it does not lose.

    The model is the calibrator of P(aligned) on the alignment features (after the projection
    head when ``with_head`` (default :data:`HEAD_BY_DEFAULT`, off) and the head's leak-free
    held-out comparison shows it helps; ``config.n_folds >= 2``). It is
    compared with the zero-label prior and with the model in use on labels it was not fitted on
    (:mod:`mmcurate.learn`); a losing model is recorded with ``accepted = False`` and ranking goes
    on with the model in use. Saves ``heads/head-NNNN.safetensors`` (when a head was trained) and
    ``heads/model-NNNN.json`` (calibrator, validation) and records the round in the ledger.

    Returns a :class:`~mmcurate.results.TrainResult`: the model round, ``accepted``, ``reason``
    and its metrics (``use_head``, ``replaces``, the validation AUROCs under ``validation``; the
    head's training metrics when one was trained).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        trained = train_project_head(proj)
        trained.round, trained.accepted, trained.reason
        # (True, 'held-out AUROC 0.9731 vs prior 0.9514')
    """
    from mmcurate.head import HeadConfig  # heavy: torch

    rows, y, fixes = _one_row_per_group(proj, *labelled_arrays(proj))
    if len(rows) == 0:
        raise NoDecisionsError("no decisions yet: review a batch (mmcurate review / label) first")
    config = config or HeadConfig()
    with proj.lock():
        previous = load_model(proj)
        if use_head_option(with_head):
            head, head_metrics = _train_head_if_useful(proj, rows, y, fixes, config)
        else:
            head, head_metrics = None, {"head": "not trained (the default; train --head trains one)"}
        # every decided pair weighed against the model in use's held-out P, jointly recalibrated
        reviewer = reviewer_error_rate(*_opinions_and_model(proj, previous))
        error_rate = reviewer["error_rate"] if reviewer["n"] >= 10 else 0.0
        fit = _fit_and_validate(proj, rows, y, head, previous, k=k, random_state=config.random_state,
                                tolerance=tolerance, error_rate=error_rate)
        model_round = len(proj.ledger.heads()) + 1
        checkpoint = ""
        if head is not None:
            path = proj.head_path(model_round)
            path.parent.mkdir(parents=True, exist_ok=True)
            head.save(path)
            checkpoint = proj.checkpoint_name(path)
        ids = proj.pairs["pair_id"].to_numpy()[rows]
        atomic_write_json(proj.model_record_path(model_round), {
            "calibrator": fit["calibrator"], "k": k, "use_head": fit["use_head"],
            "validation": fit["validation"], "recalibration": fit["recalibration"],
            "reviewer": reviewer, "held_out_p_aligned": fit["held_out_p_aligned"],
            "label_calibration": fit["label_calibration"],
            "trained_on": sorted(map(str, ids))})
        info = {"accepted": fit["validation"]["accepted"], "reason": fit["validation"]["reason"],
                "use_head": fit["use_head"], "replaces": previous.round, "prior": fit.get("prior", False),
                "kept": fit.get("kept"),
                "validation": fit["validation"], "recalibration": fit["recalibration"],
                "reviewer": reviewer}
        if "auroc_with_head" in fit:
            info.update(auroc_with_head=fit["auroc_with_head"], auroc_without_head=fit["auroc_without_head"])
            head_metrics["head"] = (
                f"{'used' if fit['use_head'] else 'not used'}: held-out AUROC of the model with the head "
                f"{fit['auroc_with_head']:.4f} vs without {fit['auroc_without_head']:.4f}")
        metrics = {**head_metrics, "model": info}
        recorded = proj.ledger.record_head(checkpoint=checkpoint, metrics=to_jsonable(metrics),
                                           n_labels=len(rows))
    return TrainResult(recorded, bool(info["accepted"]), str(info["reason"]), {**head_metrics, **info})


HEAD_BY_DEFAULT = False
"""Whether ``train`` fits the projection head unless told. Off: in the learning benchmark the head
won its leak-free held-out comparison in 9 of 10 rounds yet the queue it ranked found 0.848 of the
swaps against 0.898-0.901 without it (clip_gap, seed 0, same labels budget), at 4x the time; see
the README. ``train --head`` (``with_head=True``) trains it and the same gate decides whether it is used."""


def use_head_option(with_head: bool | None) -> bool:
    """Whether to fit the head: ``with_head``, or :data:`HEAD_BY_DEFAULT` when None."""
    return HEAD_BY_DEFAULT if with_head is None else bool(with_head)


def _train_head_if_useful(proj: Project, rows, y, fixes, config) -> tuple[Any, dict[str, Any]]:
    """Train the projection head when it can be validated (``n_folds >= 2``); ``(head or None,
    metrics)``. The head is kept only when its cross-validated AUROC beats plain CLIP's."""
    if config.n_folds < 2 or (y == 1).sum() < 2 or (y == 0).sum() < 2:
        return None, {"head": "not trained (needs n_folds >= 2 and two labels of each class)"}
    from mmcurate.head import train_head  # heavy: torch

    head, metrics = train_head(proj.image_embeddings(), proj.text_embeddings(),
                               positives=rows[y == 1], negatives=rows[y == 0],
                               fixed_texts=_fixed_texts(proj, fixes), config=config)
    cv, cv_identity = metrics.get("cv_auroc", np.nan), metrics.get("cv_auroc_identity", np.nan)
    helps = bool(np.isfinite(cv) and np.isfinite(cv_identity) and cv > cv_identity)
    metrics["head"] = "used" if helps else "not used: its cross-validated AUROC does not beat plain CLIP"
    return (head if helps else None), metrics


def _opinions_and_model(proj: ProjectFiles, previous: Model) -> tuple[list[list[str]], np.ndarray]:
    """What :func:`mmcurate.learn.reviewer_error_rate` weighs: each decided pair's opinions
    (:func:`~mmcurate.rounds.labelling.decided_opinions`) and the model in use's held-out
    P(aligned) of it (NaN where none: pairs decided since it was trained)."""
    opinions = decided_opinions(proj.ledger)
    held = pd.Series(list(opinions), dtype=object).map(pd.Series(previous.held_out, dtype=float))
    return list(opinions.values()), held.to_numpy(np.float64)


def _label_weights(proj: ProjectFiles, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """``1/π`` of each labelled row (1 for pairs queued without a recorded design), and how many
    of the rows were drawn at random (the explore stratum)."""
    design = proj.ledger.design().drop_duplicates("pair_id", keep="last").set_index("pair_id")
    ids = pd.Series(proj.pairs["pair_id"].to_numpy()[rows])
    n_random = int((ids.map(design["stratum"]) == "explore").sum())
    return 1.0 / ids.map(design["inclusion"]).fillna(1.0).to_numpy(np.float64), n_random


def _features(proj: Project, head, k: int, random_state: int):
    image, text = apply_head(head, proj.image_embeddings(), proj.text_embeddings())
    ctx = RankContext(image, text, indices_labeled=None, labels=None, k=k, random_state=random_state)
    return ctx.features


def _incumbent_held_out(proj: Project, rows, previous: Model, raw, k: int, random_state: int) -> np.ndarray:
    """The model in use's logits on every label, none from a fit that saw it: labels it was
    trained on get the held-out logit recorded when it was trained (cross-fitted, its head's own
    folds included), the labels added since get its prediction (it never saw them). Re-fitting its
    recipe without each fold instead leaked through its head, trained on all of its labels: the
    model in use looked 0.03-0.07 AUROC better than it was and refused better models for rounds.
    """
    features = raw if previous.head is None else _features(proj, previous.head, k, random_state)
    assert previous.calibrator is not None  # called only for a model in use with a calibrator
    logits = previous.calibrator.decision_function(features.matrix()[rows])
    if previous.held_out:
        ids = pd.Series(proj.pairs["pair_id"].to_numpy()[rows].astype(str))
        p = ids.map(previous.held_out).to_numpy(np.float64)
        known = np.isfinite(p)
        p = np.clip(p[known], 1e-12, 1 - 1e-12)
        logits[known] = np.log(p / (1 - p))
    return logits


def _fit_and_validate(proj: Project, rows, y, head, previous: Model, *, k: int, random_state: int,
                      tolerance: float, error_rate: float = 0.0) -> dict[str, Any]:
    """Fit the calibrator without and (when a head was trained) with the head, judge each against
    the model in use on every label (each scored by fits that did not see it), keep the head only
    if its model ranks the labels better, and recalibrate the chosen model on the labels weighted
    by ``1/π`` (:mod:`mmcurate.learn`)."""
    raw = _features(proj, None, k, random_state)
    weights, n_random = _label_weights(proj, rows)
    if head is not None and head.fold_heads:  # the head's folds, so both models see the same splits
        fold = np.array([head.fold_of_row[int(r)] for r in rows], np.int64)
    else:
        fold = stratified_folds(y, max(2, min(5, len(rows))), random_state)
    incumbent_logits, incumbent = None, "prior"
    if previous.calibrator is not None and previous.k == k and not previous.info.get("prior"):
        incumbent_logits = _incumbent_held_out(proj, rows, previous, raw, k, random_state)
        incumbent = f"model {previous.round}"
    common = {"prior_features": raw, "weights": weights, "incumbent_logits": incumbent_logits,
              "incumbent": incumbent, "random_state": random_state, "fold": fold,
              "tolerance": tolerance, "label_noise": max(error_rate, LABEL_NOISE_FLOOR),
              "n_random": n_random}
    calibrator, verdict, held = fit_validated(raw, rows, y, **common)
    out: dict[str, Any] = {"use_head": False}
    if head is not None and head.fold_heads:
        # leak-free: each fold's labels are scored after the head trained without them
        fold_features = [_features(proj, h, k, random_state) for h in head.fold_heads]
        with_head, verdict_head, held_head = fit_validated(_features(proj, head, k, random_state), rows, y,
                                                           fold_features=fold_features, **common)
        out["auroc_without_head"], out["auroc_with_head"] = verdict.auroc_new, verdict_head.auroc_new
        # a refused model never ranks, however well it scored
        if verdict_head.accepted and verdict_head.auroc_new > verdict.auroc_new:
            calibrator, verdict, held, out["use_head"] = with_head, verdict_head, held_head, True
    out["validation"] = verdict.as_dict()
    out["validation"]["auroc_in_use"] = verdict.auroc_new
    if not verdict.accepted and incumbent == "prior" and np.isfinite(verdict.auroc_prior):
        # the prior keeps ranking (same order), but its probabilities are calibrated on the labels,
        # so export and status can use them; the next model must still beat the prior strictly
        calibrator, held = prior_calibrator(raw), prior_logits(raw, rows)
        out["use_head"], out["prior"] = False, True
        out["validation"].update(accepted=True, auroc_in_use=verdict.auroc_prior,
                                 reason=verdict.reason + " (recalibrated)")
    elif (not verdict.accepted and incumbent_logits is not None and previous.head is None
          and previous.calibrator is not None):
        # the model in use keeps ranking (same order), recalibrated on every label so far: a
        # refusal must not leave the export on probabilities fitted to fewer labels (it kept 63% of
        # the clean pairs of the seeded test world after a refusal in round 2)
        calibrator, held = previous.calibrator, np.asarray(incumbent_logits, np.float64)
        out["kept"] = previous.round
        out["validation"].update(accepted=True, auroc_in_use=verdict.auroc_incumbent,
                                 reason=verdict.reason + " (recalibrated on every label)")
    a, b = platt_ipw(held, y, weights=weights, error_rate=error_rate)
    out["calibrator"] = calibrator_to_dict(recalibrated(calibrator, a, b))
    # each decided pair's P(aligned) from fits that did not see its decision (second opinions)
    ids = proj.pairs["pair_id"].to_numpy()[rows].astype(str)
    held_p = sigmoid(a * held + b)
    out["held_out_p_aligned"] = dict(zip(ids.tolist(), held_p.tolist()))
    # only once pairs seen twice have measured the reviewer's error rate: before, a few wrong
    # decisions on pairs the model is sure of would be read as the model's overconfidence
    la, lb = (calibrate_on_labels(held_p, y, error_rate=max(error_rate, LABEL_NOISE_FLOOR))
              if error_rate > 0 else (1.0, 0.0))
    out["label_calibration"] = {"a": la, "b": lb}
    out["recalibration"] = {"a": a, "b": b, "error_rate": error_rate, "l2": calibrator.l2}
    return out


def _one_row_per_group(proj: ProjectFiles, rows, y, fixes):
    """A group decision counts once: rows recorded via a representative are dropped
    (:func:`mmcurate.groups.hooks.count_groups_once`)."""
    return count_groups_once(proj, rows, y, fixes)
