"""The oracle loop: one run (strategy × diversity × seed) through the real round machinery.

Each run gets its own project directory that shares the base project's pairs and vectors (hard
links, or copies where links are impossible; nothing is re-embedded) and starts with an empty
labels ledger. A round is what a user does: ``rank_project`` → ``select_batch`` (the held-out
pairs passed as ``exclude``) → a reviewer answers accept/reject (here an oracle reading the truth,
imported with ``import_labels`` like a decisions file) → ``train_project_head``.

Choices (documented in the summary too):

- ``clip_score`` is the no-learning baseline (DataComp-style CLIP-score filter): it reviews the
  pairs with the highest 1 − cosine of the raw vectors and never trains a head. Every other
  strategy, ``random`` included (passive learning), trains the head after each round.
- The head is trained without its internal cross-validation (``HeadConfig(n_folds=0)`` by
  default): cross-validation only reports cv metrics and recalibrates ``head.predict_proba``,
  which ranking does not use; the held-out set measures the head here instead.
- Randomness: round ``r`` of seed ``s`` uses ``random_state = 1000 * s + r`` for ranking and
  selection, and the head ``HeadConfig(random_state=1000 * s + r)``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate.embed.store import EmbeddingStore
from mmcurate.export import curate_pairs
from mmcurate.project import open_project
from mmcurate.project.layout import ProjectLayout
from mmcurate.results import Ranking
from mmcurate.rounds import import_labels, labelled_arrays, rank_project, select_batch, train_project_head
from mmcurate.simulate.metrics import detection_score_name, p_misaligned, round_metrics

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["RunSpec", "make_run_project", "oracle_decisions", "run_oracle_loop", "train_run_head"]

NO_HEAD = ("clip_score",)


@dataclass(frozen=True)
class RunSpec:
    """One run of the benchmark."""

    strategy: str
    diversity: str
    seed: int
    rounds: int
    budget: int
    k: int = 10
    head_folds: int = 0
    head_options: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.strategy}__{self.diversity}__s{self.seed}"

    def random_state(self, round_: int) -> int:
        return 1000 * self.seed + round_


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def make_run_project(base: Path, root: Path):
    """A fresh project at ``root`` sharing ``base``'s pairs and vectors, with no labels or heads."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for src, dst in zip(_shared_files(base), _shared_files(root)):
        _link(src, dst)
    for src, dst in zip(_copied_files(base), _copied_files(root)):
        if src.is_file():
            shutil.copy2(src, dst)
    return open_project(root)


def _shared_files(folder: Path) -> tuple[Path, ...]:
    """A project's pairs table and vectors (what every run shares, read-only)."""
    layout = ProjectLayout(folder)
    store = EmbeddingStore(layout.embeddings_dir)
    return (layout.pairs_path, store.manifest_path,
            *(store.array_path(kind) for kind in ("image", "text", "ids")))


def _copied_files(folder: Path) -> tuple[Path, ...]:
    """A project's settings and rejects (each run gets its own copy)."""
    layout = ProjectLayout(folder)
    return layout.config_path, layout.rejects_path


def oracle_decisions(batch: pd.DataFrame, is_noisy: pd.Series) -> pd.DataFrame:
    """What a careful reviewer answers: reject the swapped captions, accept the rest."""
    noisy = batch["pair_id"].map(is_noisy).to_numpy(bool)
    return pd.DataFrame({"pair_id": batch["pair_id"], "decision": np.where(noisy, "reject", "accept"),
                         "reviewer": "oracle"})


def train_run_head(proj: Project, spec: RunSpec, round_: int) -> None:
    """Train the run's model on the labels after round ``round_`` (a user's ``mmcurate train``), with
    the run's head options, ``head_folds`` and the round's random state."""
    from mmcurate.head import HeadConfig  # heavy: torch

    config = replace(HeadConfig(), **dict(spec.head_options), n_folds=spec.head_folds,
                     random_state=spec.random_state(round_))
    train_project_head(proj, config=config)


def run_oracle_loop(base: Path, root: Path, spec: RunSpec, truth: pd.DataFrame,
                    holdout: set[str], *, say: Callable[[str], None] | None = None
                    ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Run ``spec.rounds`` rounds with an oracle reviewer; per-round metrics and score snapshots.

    Returns the metrics (one row per round 0..rounds, see :func:`round_metrics`) and a dict of
    ``(N,)`` arrays: ``score_first`` / ``score_last`` (the detection score at round 0 and at the
    last round), ``pool_first`` / ``pool_last`` (unlabelled and not held out then) and ``is_noisy``.
    Each round's ``learning_gain`` compares its model with the round-0 ranking's ``1 − p_aligned``
    on that round's pool.
    """
    proj = make_run_project(base, root)
    is_noisy = truth.set_index("pair_id")["is_noisy"].astype(bool)
    noisy = proj.pairs["pair_id"].map(is_noisy).to_numpy(bool)
    held = proj.pairs["pair_id"].isin(holdout).to_numpy()
    rows, snapshots, elapsed = [], {"is_noisy": noisy, "pool_first": ~held}, 0.0
    p_mis0: np.ndarray | None = None
    for r in range(spec.rounds + 1):
        start = time.perf_counter()
        rs = spec.random_state(r)
        ranked = rank_project(proj, [spec.strategy], k=spec.k, random_state=rs)
        batch = None
        if r < spec.rounds:
            selected = select_batch(proj, budget=spec.budget, strategy=spec.strategy,
                                    diversity=spec.diversity, k=spec.k, random_state=rs,
                                    exclude=holdout, ranked=ranked)
            round_id, batch = selected.round, selected.table
        labelled = _labelled_mask(proj)
        row, score = round_metrics(ranked, noisy=noisy, labelled=labelled, held_out=held,
                                   batch_rows=_rows(proj, batch), strategy=spec.strategy,
                                   round0_p_misaligned=p_mis0)
        if r == 0:
            p_mis0 = p_misaligned(ranked.table)  # the zero-label model: the reference of learning_gain
        if batch is not None:
            import_labels(proj, oracle_decisions(batch, is_noisy), round_id=round_id,
                          source_name=f"oracle-round{round_id}")
            if spec.strategy not in NO_HEAD:
                train_run_head(proj, spec, r)
        seconds = time.perf_counter() - start
        elapsed += seconds
        if r == spec.rounds:
            row.update(_curated_figures(proj, ranked, noisy))
        rows.append({"round": r, **row, "seconds": seconds, "seconds_total": elapsed})
        snapshots["score_first" if r == 0 else "score_last"] = score
        if say:
            say(f"{spec.name}: round {r}/{spec.rounds} labels={row['labels']} "
                f"recall={row['recall']:.3f} auroc={row['auroc']:.3f} ({seconds:.1f} s)")
    snapshots["pool_last"] = ~(labelled | held)
    proj.ledger.close()
    table = pd.DataFrame(rows)
    table.insert(0, "detection_score", detection_score_name(spec.strategy))
    return table, snapshots


CURATED_COLUMNS = ("export_threshold", "export_noise", "export_clean_kept", "export_est_noise_kept",
                   "export_check_noise", "export_check_n")


def _curated_figures(proj: Project, ranked: Ranking, noisy: np.ndarray) -> dict[str, float]:
    """What ``mmcurate export``'s default rule keeps after the last round, against the truth.

    ``export_noise``: swapped share of the curated set (reviewed-accepted + kept by the model);
    ``export_clean_kept``: share of all clean pairs in it; ``export_est_noise_kept``: the rule's own
    estimate for the kept unreviewed pairs; ``export_check_*``: the exploration-label check.
    """
    cur = curate_pairs(proj, strategy_scores=ranked)
    kept = proj.pairs["pair_id"].isin(cur.curated["pair_id"]).to_numpy()
    est, check = cur.estimates, cur.estimates.get("exploration_check") or {}
    return {"export_threshold": est["threshold"],
            "export_noise": float(noisy[kept].mean()) if kept.any() else np.nan,
            "export_clean_kept": float(kept[~noisy].mean()) if (~noisy).any() else np.nan,
            "export_est_noise_kept": est["est_noise_kept"],
            "export_check_noise": check.get("noise", np.nan), "export_check_n": check.get("n", 0)}


def _labelled_mask(proj: ProjectFiles) -> np.ndarray:
    mask = np.zeros(len(proj.pairs), bool)
    mask[labelled_arrays(proj)[0]] = True
    return mask


def _rows(proj: ProjectFiles, batch: pd.DataFrame | None) -> np.ndarray | None:
    if batch is None:
        return None
    row_of = pd.Series(np.arange(len(proj.pairs)), index=proj.pairs["pair_id"].to_numpy())
    return row_of.loc[batch["pair_id"]].to_numpy(np.int64)
