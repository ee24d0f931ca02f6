"""Export the curated set with its report (a round's batch files: :mod:`mmcurate.review.batch`).

Curated set (:func:`export_curated`)
    Every pair of the project ends in exactly one place:

    ========================  =========================================================
    latest decision accept    curated, ``status = accepted``; dropped as ``disputed`` when the
                              reviewer errs (pairs seen twice) and the model contradicts it (below)
    latest decision fix       curated, ``status = fixed``, corrected caption in ``caption``,
                              the original in ``original_caption``
    latest decision reject    dropped, ``reason = rejected by reviewer``
    unreviewed, embed failed  dropped with the failure's reason (``embed_failures.csv``)
    unreviewed, threshold t   curated (``status = auto``) when P(aligned) >= t, else dropped
                              (``reason = p_aligned < t``)
    unreviewed, no vouching   curated, ``status = unverified`` (``"auto"`` only, when the model
                              cannot vouch for its probabilities: see below)
    unreviewed, reviewed-only in neither file (``threshold=None``; counted as ``left_out``)
    ========================  =========================================================

    By default (``threshold="auto"``) every pair gets a verdict: ``t`` is chosen from the current
    model's P(aligned) by :func:`mmcurate.learn.choose_threshold` (the lowest ``t`` whose kept
    unreviewed pairs have an estimated misaligned share <= ``target_noise``, default 3%), lowered
    where needed so that, by an estimate from the randomly drawn labels with a margin of 1.96
    standard errors, 95% of the clean pairs are kept (:func:`mmcurate.learn.clean_floor`); the
    exploration labels give an unbiased check of the misaligned share with a 95% interval
    (``Curation.estimates``). The model's probabilities are recalibrated on every label weighted by
    1/inclusion probability when it is trained (:mod:`mmcurate.learn`). When the model cannot
    vouch for them (no trained model in use, held-out AUROC below 0.65, fewer than 15 randomly
    drawn labels, or no threshold keeps anything), nothing is dropped by the model: the
    unreviewed pairs are kept as ``unverified`` and ``estimates["why"]`` says why.

    A reviewer who errs (an error rate ``e > 0`` estimated from 10 or more pairs seen twice) makes
    each opinion evidence, not proof: an accepted pair's log-odds of being aligned, given the
    model's held-out P(aligned) ``p`` and its opinions, are ``logit(p) + (accepts − rejects)·log((1
    − e)/e)``; below 0.5 (more likely misaligned than aligned) it is held back
    (``status = disputed``, dropped with that probability) until a second opinion settles it.
    Rejections stand: keeping a pair a person rejected is not the model's call. A reviewer whose
    second looks never disagree is never doubted.

    Rows rejected when the project was built (``rejects.csv``) are added to ``dropped`` with their
    reasons. A reviewer's decision outranks an embedding failure (a person saw the pair).

Assumptions: P(aligned) comes from :func:`mmcurate.rounds.rank_project` with the ``p_misaligned``
strategy (calibrated under the model in use) unless a ranking table is passed in; that ranking
writes nothing into the project (no ``state.json``, no pool state): exporting changes only the
output folder. Every file is written to a temporary name and moved into place, so readers never see
half a file.

Modules: :mod:`~mmcurate.export.curate` (the verdicts), :mod:`~mmcurate.export.write` (the files
and the report), :mod:`~mmcurate.export.webdataset` (shards).
"""

from mmcurate._util import sample_key
from mmcurate.export.curate import Curation, absolute_image_paths, curate_pairs
from mmcurate.export.webdataset import write_webdataset
from mmcurate.export.write import CURATED_FORMATS, export_curated, model_display_name

__all__ = ["CURATED_FORMATS", "Curation", "absolute_image_paths", "curate_pairs", "export_curated",
           "model_display_name", "sample_key", "write_webdataset"]
