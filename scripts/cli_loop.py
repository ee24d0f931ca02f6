"""One learning-benchmark run through the CLI only: ``mmcurate.cli.main(argv)`` and the files it writes.

A run is (world folder, seed, reviewer error). It does what a user does, ``init`` from the
embedding folder, then per round ``select --budget B --seed 1000·seed+round --exclude holdout.txt``
→ ``batch export`` →
every row of the batch file decided by a :class:`~mmcurate.simulate.reference.Reviewer` (whatever
its stratum; a pair shown again gets a fresh draw) → ``label --import`` → ``train``, and ``rank
--strategy p_misaligned --out`` to read the model in use's scores. After the last round ``export
--format parquet``. The greedy logistic reference runs on the same world with the same reviewer
draws. Nothing reads mmcurate's internals except, for the record only, ``train``'s printed verdict.

Learning gain is measured on a seeded 10% holdout (:data:`HOLDOUT`) that neither loop may select
(``select --exclude``): AUROC of each round's P(misaligned) for the noisy pairs there, minus round
0's. Recall counts the other 90%. (Before ``select --exclude`` existed it was measured on the pairs
neither loop showed, a pool both had emptied of the easy noise.)
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcurate.cli import main
from mmcurate.signals.metrics import auroc, auroc_difference_se
from mmcurate.simulate.reference import Reviewer, alignment_features, reference_loop

__all__ = ["HOLDOUT", "CliRunError", "LoopSpec", "read_world", "run_learning_benchmark"]

HOLDOUT = 0.1
"""Share of the pairs held out of both loops (seeded per run); the learning gain is measured on it."""


class CliRunError(RuntimeError):
    """A CLI command of the loop exited non-zero (the message holds its output)."""


@dataclass(frozen=True)
class LoopSpec:
    """What one run does: ``rounds`` × ``budget`` labels, the seed and the reviewer's error rate."""

    rounds: int = 10
    budget: int = 100
    seed: int = 0
    reviewer_error: float = 0.0

    def select_seed(self, round_: int) -> int:
        return 1000 * self.seed + round_


def cli(*argv: object) -> str:
    """Run ``mmcurate ARGV`` in-process; its stdout, or :class:`CliRunError` with stdout+stderr."""
    out, err = io.StringIO(), io.StringIO()
    args = [str(a) for a in argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as exc:  # argparse: an unknown flag
            rc = exc.code if isinstance(exc.code, int) else 2
    if rc != 0:
        raise CliRunError(f"mmcurate {' '.join(args)} exited {rc}:\n{out.getvalue()}{err.getvalue()}")
    return out.getvalue()


def read_world(folder: Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """A world folder's unit vectors (float32, truth order) and ``truth.csv``."""
    def unit(path: Path) -> np.ndarray:
        x = np.load(path).astype(np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    truth = pd.read_csv(folder / "truth.csv", dtype={"pair_id": str})
    shards = sorted((folder / "img_emb").glob("img_emb_*.npy"), key=lambda p: int(p.stem.split("_")[-1]))
    image = np.concatenate([unit(p) for p in shards])
    text = np.concatenate([unit(folder / "text_emb" / p.name.replace("img_emb", "text_emb")) for p in shards])
    return image, text, truth


def _p_misaligned(project: Path, out: Path, row_of: pd.Series) -> np.ndarray:
    cli("rank", project, "--strategy", "p_misaligned", "--out", out, "--top", 1)
    ranked = pd.read_csv(out, dtype={"pair_id": str})
    col = "p_misaligned" if "p_misaligned" in ranked.columns else "score"
    scores = np.full(len(row_of), np.nan)
    scores[row_of.loc[ranked["pair_id"]].to_numpy()] = ranked[col].to_numpy(float)
    return scores


def _review(batch_path: Path, reviewer: Reviewer, row_of: pd.Series) -> np.ndarray:
    """Fill ``decision`` of every row of the batch file; returns the rows shown (file order)."""
    batch = pd.read_csv(batch_path, dtype={"pair_id": str, "decision": "string", "reviewer": "string"})
    rows = row_of.loc[batch["pair_id"]].to_numpy(np.int64)
    batch["decision"] = np.where(reviewer.decide(rows), "reject", "accept")
    batch["reviewer"] = "oracle" if not reviewer.flips.any() else "oracle-erring"
    batch.to_csv(batch_path, index=False)
    return rows


def _verdict(train_out: str) -> tuple[str, str]:
    """``train``'s printed verdict (used / not used) and its reason, or ('', '') if not printed."""
    for line in train_out.splitlines():
        words = line.strip()
        if words.startswith("verdict"):
            verdict, _, reason = words[len("verdict"):].strip().partition(":")
            return verdict.strip(), reason.strip()
    return "", ""


def _export_figures(project: Path, out: Path, noisy: np.ndarray, row_of: pd.Series) -> dict[str, Any]:
    cli("export", project, "--out", out, "--format", "parquet")
    curated = pd.read_parquet(out / "curated.parquet")
    kept = np.zeros(len(noisy), bool)
    kept[row_of.loc[curated["pair_id"].astype(str)].to_numpy()] = True
    status = curated["status"].astype(str) if "status" in curated.columns else pd.Series(dtype=str)
    return {"export_n": int(kept.sum()),
            "export_misaligned": float(noisy[kept].mean()) if kept.any() else np.nan,
            "export_clean_kept": float(kept[~noisy].mean()),
            "export_unverified": int((status == "unverified").sum())}


def _cli_loop(world: Path, work: Path, spec: LoopSpec, reviewer: Reviewer, row_of: pd.Series,
              say: Callable[[str], None], holdout: Path
              ) -> tuple[list[dict[str, Any]], list[np.ndarray], list[np.ndarray]]:
    project = work / "project"
    cli("init", project, "--embeddings", world, "--force")
    start = time.perf_counter()
    scores = [_p_misaligned(project, work / "rank.csv", row_of)]
    records: list[dict[str, Any]] = [{"round": 0, "labels": 0, "seconds": time.perf_counter() - start}]
    shown: list[np.ndarray] = []
    for r in range(1, spec.rounds + 1):
        start = time.perf_counter()
        cli("select", project, "--budget", spec.budget, "--seed", spec.select_seed(r), "--exclude", holdout)
        batch = work / f"batch{r}.csv"
        cli("batch", "export", project, "--out", batch)
        shown.append(_review(batch, reviewer, row_of))
        cli("label", project, "--import", batch)
        verdict, reason = _verdict(cli("train", project, "--seed", spec.select_seed(r)))
        scores.append(_p_misaligned(project, work / "rank.csv", row_of))
        records.append({"round": r, "labels": records[-1]["labels"] + len(shown[-1]),
                        "train_verdict": verdict, "train_reason": reason,
                        "seconds": time.perf_counter() - start})
        say(f"round {r}: {len(shown[-1])} decided, train: {verdict or '?'}")
    records[-1].update(_export_figures(project, work / "export", reviewer.noisy, row_of))
    return records, shown, scores


def _recalls(shown: list[np.ndarray], truth: pd.DataFrame, held: np.ndarray) -> list[dict[str, float]]:
    """Per round 0..R: share of the selectable noisy pairs shown so far, overall and per noise kind."""
    noisy = truth["noisy"].to_numpy(bool) & ~held
    kinds = sorted(k for k in truth["kind"].unique() if k != "clean")
    seen = np.zeros(len(truth), bool)
    out = []
    for rows in [np.empty(0, np.int64), *shown]:
        seen[rows] = True
        rec = {"recall": float(seen[noisy].mean()), "n_shown": int(seen.sum())}
        for kind in kinds:
            mask = (truth["kind"] == kind).to_numpy() & noisy
            if mask.any():
                rec[f"recall_{kind}"] = float(seen[mask].mean())
        out.append(rec)
    return out


def _gains(scores: list[np.ndarray], noisy: np.ndarray, pool: np.ndarray
           ) -> list[tuple[float, float, float]]:
    """Per round: AUROC on ``pool``, its gain over round 0's and the gain's standard error (DeLong,
    paired: both rounds ranked the same holdout pairs)."""
    ranked = [np.nan_to_num(s[pool], nan=0.5) for s in scores]
    values = [auroc(r, noisy[pool]) for r in ranked]
    return [(v, v - values[0], auroc_difference_se(r, ranked[0], noisy[pool]))
            for v, r in zip(values, ranked)]


def reviewer_seed(seed: int) -> int:
    """The seed of a run's :class:`Reviewer` draws (the CLI loop and the reference share them)."""
    return 7_000_003 * seed + 17


def holdout_mask(n: int, seed: int) -> np.ndarray:
    """A run's held-out evaluation set (``HOLDOUT`` of the ``n`` pairs, seeded): never selected by
    either loop, so the learning gain is measured on a random sample of the pool, not on what both
    loops left."""
    held = np.zeros(n, bool)
    held[np.random.default_rng([seed, 4242]).choice(n, round(HOLDOUT * n), replace=False)] = True
    return held


def run_learning_benchmark(world: str | Path, work: str | Path, spec: LoopSpec, *,
                           say: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run the CLI loop and the reference on ``world``; one row per round 0..``spec.rounds``.

    Columns: ``round``, ``labels`` (decisions so far), ``n_shown``, ``recall`` (+ ``recall_<kind>``),
    ``auroc`` / ``gain`` / ``gain_se`` (on a seeded 10% holdout neither loop may select, the
    gain's standard error paired over its pairs; recall counts the
    other 90%), ``train_verdict`` / ``train_reason``,
    ``ref_labels``, ``ref_recall``, ``ref_auroc`` / ``ref_gain``, ``eval_n``, ``seconds``; the last
    round adds ``export_n``, ``export_misaligned``, ``export_clean_kept``, ``export_unverified``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        rows = run_learning_benchmark("worlds/clip_gap", "work/run1", LoopSpec(seed=2))
    """
    world, work = Path(world), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    say = say or (lambda _msg: None)
    image, text, truth = read_world(world)
    noisy = truth["noisy"].to_numpy(bool)
    row_of = pd.Series(np.arange(len(truth)), index=truth["pair_id"].to_numpy())
    def reviewer() -> Reviewer:  # the same draws for both loops
        return Reviewer(noisy, error=spec.reviewer_error, random_state=reviewer_seed(spec.seed))

    held = holdout_mask(len(truth), spec.seed)
    holdout = work / "holdout.txt"
    holdout.write_text("\n".join(truth["pair_id"].astype(str).to_numpy()[held]) + "\n", encoding="utf-8")
    records, shown, scores = _cli_loop(world, work, spec, reviewer(), row_of, say, holdout)
    features, prior = alignment_features(image, text)
    ref = reference_loop(features, prior, reviewer(), rounds=spec.rounds, budget=spec.budget, exclude=held)
    pool = held
    table = pd.DataFrame(records)
    for name, values in (("", _recalls(shown, truth, held)), ("ref_", _recalls(ref.shown, truth, held))):
        frame = pd.DataFrame(values)
        table[[f"{name}{c}" for c in frame.columns]] = frame.to_numpy()
    table["ref_labels"] = np.arange(spec.rounds + 1) * spec.budget
    table[["auroc", "gain", "gain_se"]] = _gains(scores, noisy, pool)
    table[["ref_auroc", "ref_gain", "ref_gain_se"]] = _gains(ref.scores, noisy, pool)
    table["eval_n"] = int(pool.sum())
    return table
