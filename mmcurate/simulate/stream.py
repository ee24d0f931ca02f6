"""Stream-based selection under the oracle: pairs arrive in batches and are queued or passed.

The pool-based loop (:mod:`~mmcurate.simulate.loop`) sees every pair from the start and may pick
any of them each round. Here the same pairs arrive over time, as a user running
``mmcurate add`` / ``stream --watch`` would see them:

- the run's project starts with the held-out pairs only (never reviewable, they measure nothing
  here but give the first arrivals neighbours);
- the remaining pairs arrive in ``rounds`` batches (a seeded order), each added with the real
  :func:`mmcurate.stream.add_pairs` (an imported-embedding batch built from the base project's
  stored vectors, so nothing is re-embedded) at a target review rate of ``budget / batch size``
  with the adaptive threshold; the oracle answers the queued pairs; the head is retrained (except
  for ``clip_score``, the no-learning baseline).
- A pair that passed is never seen again: stream selection cannot go back. So at equal labels the
  comparison with the pool-based loop measures what deciding on arrival costs.

Per round: labels spent, ``recall`` (noisy pairs found / all noisy pairs outside the held-out
set, the same denominator as the pool loop), ``batch_precision`` (noisy share of the queued
pairs) and the realised review rate; the pool-only columns (AUROC over the pool, held-out
accuracy, learning gain) are NaN. In the metrics table these runs carry ``diversity`` = ``stream``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import create_project, open_project
from mmcurate.rounds import import_labels
from mmcurate.simulate.loop import NO_HEAD, RunSpec, oracle_decisions, train_run_head
from mmcurate.stream import add_pairs

__all__ = ["run_stream_loop"]


def _write_batch(folder: Path, proj_base, rows: np.ndarray) -> Path:
    pairs = proj_base.pairs.iloc[rows]
    meta = pd.DataFrame({"key": pairs["pair_id"].to_numpy(), "caption": pairs["caption"].to_numpy()})
    if "category" in pairs.columns:
        meta["category"] = pairs["category"].to_numpy()
    image = np.asarray(proj_base.image_embeddings()[np.sort(rows)], np.float32)
    text = np.asarray(proj_base.text_embeddings()[np.sort(rows)], np.float32)
    order = np.argsort(np.argsort(rows))  # rows may be unsorted: restore their order
    return write_embedding_folder(folder, image[order], text[order], meta.reset_index(drop=True))


def run_stream_loop(base: Path, root: Path, spec: RunSpec, truth: pd.DataFrame, holdout: set[str], *,
                    say=None) -> pd.DataFrame:
    """Run one strategy in stream mode; one row per arriving batch (round 0 = before any)."""
    arrivals = root.with_name(root.name + "-arrivals")  # the batches as they land
    for folder in (root, arrivals):
        if folder.exists():
            shutil.rmtree(folder)
    arrivals.mkdir(parents=True)
    source = open_project(base)
    ids = source.pairs["pair_id"].to_numpy()
    is_noisy = truth.set_index("pair_id")["is_noisy"].astype(bool)
    held = np.isin(ids, list(holdout))
    arriving = np.random.default_rng([spec.seed, 7]).permutation(np.flatnonzero(~held))
    chunks = np.array_split(arriving, spec.rounds)
    n_noisy = int(is_noisy.loc[ids[~held]].sum())
    proj = create_project(root, embeddings=_write_batch(arrivals / "initial", source, np.flatnonzero(held)))
    rate = min(0.99, spec.budget / max(1, len(chunks[0])))
    rows = [{"round": 0, "labels": 0, "recall": 0.0, "batch_precision": np.nan, "arrived": 0,
             "realised_rate": np.nan, "seconds": 0.0}]
    found = labels = arrived = 0
    for r, chunk in enumerate(chunks, 1):
        start = time.perf_counter()
        batch = _write_batch(arrivals / f"batch{r:03d}", source, chunk)
        added = add_pairs(proj, batch, strategy=spec.strategy, threshold="auto", rate=rate, k=spec.k,
                          random_state=spec.random_state(r))
        decisions = added.table
        queued = decisions[decisions["queued"]]
        arrived += len(decisions)
        if len(queued):
            answers = oracle_decisions(queued, is_noisy)
            import_labels(proj, answers, round_id=added.round,
                          source_name=f"oracle-stream{r}")
            found += int((answers["decision"] == "reject").sum())
            labels += len(answers)
            if spec.strategy not in NO_HEAD:
                train_run_head(proj, spec, r)
        precision = float(queued["pair_id"].map(is_noisy).mean()) if len(queued) else np.nan
        rows.append({"round": r, "labels": labels, "recall": found / max(n_noisy, 1),
                     "batch_precision": precision, "arrived": arrived,
                     "realised_rate": len(queued) / max(len(decisions), 1),
                     "seconds": time.perf_counter() - start})
        if say:
            say(f"{spec.name} [stream]: batch {r}/{spec.rounds} labels={labels} "
                f"recall={rows[-1]['recall']:.3f}")
    proj.ledger.close()
    table = pd.DataFrame(rows)
    table["seconds_total"] = table["seconds"].cumsum()
    for column in POOL_ONLY:  # measured on a pool that stream mode never holds: not applicable
        table[column] = np.nan
    table["n_pool"] = len(arriving) - table["labels"]  # as in the pool loop: not labelled, not held out
    table["n_noisy"] = n_noisy
    table["found"] = (table["recall"] * n_noisy).round().astype(int)
    table.insert(0, "detection_score", "none (stream)")
    return table


POOL_ONLY = ("auroc", "auprc", "auroc_p_misaligned", "auroc_round0_model", "learning_gain",
             "holdout_accuracy", "holdout_balanced_accuracy", "holdout_auroc", "head_round")
