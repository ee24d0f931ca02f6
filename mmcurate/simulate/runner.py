"""Run the whole benchmark into an output folder: data once, then every run, resumably.

Layout of ``OUT``::

    config.json          the loop parameters (a re-run must use the same ones)
    data/                base project, truth.csv, data.json (see :mod:`mmcurate.simulate.data`)
    runs/NAME/project/   one project per run (NAME = strategy__diversity__sSEED)
    runs/NAME/metrics.csv, runs/NAME/scores.npz   written atomically when the run completes
    metrics.csv          every finished run in the folder, concatenated
    summary.md, *.png    the report (:mod:`mmcurate.simulate.report`)

A run whose ``metrics.csv`` exists is skipped, so an interrupted benchmark resumes where it
stopped (an unfinished run restarts from round 0: runs are deterministic). The held-out pairs of
seed ``s`` are the same for every strategy (paired comparisons) and drawn with
``np.random.default_rng([data_seed, s])``.
"""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from mmcurate.embed.model import ModelSpec
from mmcurate.exceptions import ProjectError
from mmcurate.index import set_threads
from mmcurate.rank import STRATEGIES
from mmcurate.select import SELECTORS
from mmcurate.simulate.data import normalize_noise_kind, prepare_data
from mmcurate.simulate.loop import RunSpec, run_oracle_loop
from mmcurate.simulate.report import write_report
from mmcurate.simulate.stream import run_stream_loop

__all__ = ["SimulationConfig", "load_results", "run_simulation"]


@dataclass(frozen=True)
class SimulationConfig:
    """What to run; see ``mmcurate simulate --help`` for each option.

    ``head`` overrides :class:`mmcurate.head.HeadConfig` fields (e.g. ``{"max_steps": 50}``);
    ``head_folds`` is its ``n_folds`` (0: skip the head's cross-validation, which ranking never uses).
    """

    strategies: tuple[str, ...] = ("random", "clip_score", "margin")
    diversity: tuple[str, ...] = ("none",)
    rounds: int = 10
    budget: int = 20
    seeds: int = 5
    holdout: float = 0.1
    noise: float = 0.2
    noise_kind: str = "random"
    k: int = 10
    head_folds: int = 0
    head: dict[str, Any] | None = None
    data_seed: int = 0
    jobs: int = 1
    note: str | None = None
    at_labels: int = field(default=100)
    mode: str = "pool"

    def __post_init__(self) -> None:
        object.__setattr__(self, "strategies", tuple(dict.fromkeys(
            STRATEGIES.get(s).name for s in self.strategies)))
        object.__setattr__(self, "diversity", tuple(dict.fromkeys(
            "none" if d.strip().lower() in ("none", "topk", "top_k") else SELECTORS.get(d).name
            for d in self.diversity)))
        object.__setattr__(self, "noise_kind", normalize_noise_kind(self.noise_kind))
        bad = [f"{n}={getattr(self, n)}" for n in ("rounds", "budget", "seeds", "jobs", "k")
               if int(getattr(self, n)) < 1]
        if self.mode not in ("pool", "stream", "both"):
            bad.append(f"mode={self.mode!r} (expected pool, stream or both)")
        if not 0.0 <= self.holdout < 1.0:
            bad.append(f"holdout={self.holdout} (expected a fraction in [0, 1))")
        if not self.strategies or not self.diversity or bad:
            raise ValueError(f"simulation needs strategies, diversity modes and positive rounds, budget, "
                             f"seeds, jobs and k; got {', '.join(bad) or 'an empty list'}")

    def loop_params(self) -> dict[str, Any]:
        """The parameters finished runs depend on (must match to resume)."""
        keys = ("rounds", "budget", "holdout", "noise", "noise_kind", "k", "head_folds", "head",
                "data_seed")
        return {key: getattr(self, key) for key in keys}


def _say(stream: TextIO | None):
    def say(msg: str) -> None:
        if stream is not None:
            print(f"[simulate {time.strftime('%H:%M:%S')}] {msg}", file=stream, flush=True)
    return say


def _check_config(out: Path, config: SimulationConfig) -> None:
    path = out / "config.json"
    params = config.loop_params()
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(params)):
            raise ProjectError(f"{out} holds runs made with {old}, not {params}; use another --out or "
                               f"the same parameters to resume.")
    else:
        atomic_write_json(path, params)


def holdout_ids(pair_ids: Sequence[str], fraction: float, *, data_seed: int, seed: int) -> set[str]:
    """The held-out pair_ids of ``seed`` (same for every strategy of that seed)."""
    rng = np.random.default_rng([data_seed, seed])
    n = round(fraction * len(pair_ids))
    return set(np.asarray(pair_ids, dtype=object)[np.sort(rng.choice(len(pair_ids), n, replace=False))])


def _run_one(out: Path, base: Path, spec: RunSpec, holdout: set[str], truth_path: Path,
             progress: bool) -> str:
    """Run one spec and write its files atomically (also the entry point of worker processes)."""
    truth = pd.read_csv(truth_path, dtype={"pair_id": str})
    folder = out / "runs" / spec.name
    say = _say(sys.stderr if progress else None)
    if spec.diversity == STREAM:
        table = run_stream_loop(base, folder / "project", spec, truth, holdout, say=say)
    else:
        table, snaps = run_oracle_loop(base, folder / "project", spec, truth, holdout, say=say)
        buf = io.BytesIO()
        arrays: dict[str, Any] = dict(snaps)  # names -> arrays (not savez's allow_pickle keyword)
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(folder / "scores.npz", buf.getvalue())
    table.insert(0, "seed", spec.seed)
    table.insert(0, "diversity", spec.diversity)
    table.insert(0, "strategy", spec.strategy)
    atomic_write_text(folder / "metrics.csv", table.to_csv(index=False))
    return spec.name


STREAM = "stream"
"""The ``diversity`` value of stream-mode runs (pairs arrive in batches, decided on arrival)."""


def _specs(config: SimulationConfig) -> list[RunSpec]:
    modes = {"pool": list(config.diversity), "stream": [STREAM],
             "both": [*config.diversity, STREAM]}[config.mode]
    return [RunSpec(strategy=s, diversity=d, seed=seed, rounds=config.rounds, budget=config.budget,
                    k=config.k, head_folds=config.head_folds,
                    head_options=tuple(sorted((config.head or {}).items())))
            for seed in range(config.seeds) for s in config.strategies for d in modes]


def _worker_init(threads: int) -> None:
    """The initializer of the worker processes :func:`_execute`'s pool creates: each process runs
    whole runs and nothing else, so these thread counts are its own (nothing to restore)."""
    import torch  # heavy: torch

    torch.set_num_threads(threads)
    set_threads(threads)


def _execute(out: Path, base: Path, todo: list[RunSpec], holdouts: dict[int, set[str]],
             config: SimulationConfig, progress: bool, say) -> None:
    truth_path = out / "data" / "truth.csv"
    if config.jobs == 1:
        for i, spec in enumerate(todo, 1):
            say(f"run {i}/{len(todo)}: {spec.name}")
            _run_one(out, base, spec, holdouts[spec.seed], truth_path, progress)
        return
    threads = max(1, (os.cpu_count() or 1) // config.jobs)
    with ProcessPoolExecutor(config.jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as pool:
        futures = [pool.submit(_run_one, out, base, spec, holdouts[spec.seed], truth_path, progress)
                   for spec in todo]
        for i, fut in enumerate(as_completed(futures), 1):
            say(f"finished {fut.result()} ({i}/{len(todo)})")


def run_simulation(out_dir: str | Path, *, pairs: str | Path | None = None,
                   embeddings: str | Path | None = None, scenes: int | None = None,
                   model: ModelSpec | None = None, image_root: str | Path | None = None,
                   config: SimulationConfig | None = None, progress: bool = True,
                   report: bool = True, **options: Any) -> pd.DataFrame:
    """Prepare the noisy data once, run every strategy × diversity × seed, write the report.

    ``options`` override :class:`SimulationConfig` fields (``strategies=[...]``, ``rounds=5``...).
    Returns the metrics of every finished run in ``out_dir`` (the content of ``OUT/metrics.csv``):
    the runs asked for now and those of earlier calls with the same loop parameters, so a folder
    can grow (e.g. diversity variants of the best strategy) and its report covers all of it.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        metrics = run_simulation("results/", scenes=300, strategies=["random", "margin"],
                                 rounds=3, budget=20, seeds=2)
        summarize(metrics)[["strategy", "aulc_recall_mean"]]
    """
    config = SimulationConfig(**{**(asdict(config) if config else {}), **options})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = _say(sys.stderr if progress else None)
    _check_config(out, config)
    say(f"preparing data in {out / 'data'}")
    data = prepare_data(out / "data", pairs=pairs, embeddings=embeddings, scenes=scenes, model=model,
                        image_root=image_root, noise=config.noise, noise_kind=config.noise_kind,
                        data_seed=config.data_seed, progress=progress)
    ids = data.truth["pair_id"].tolist()
    holdouts = {s: holdout_ids(ids, config.holdout, data_seed=config.data_seed, seed=s)
                for s in range(config.seeds)}
    if config.rounds * config.budget > len(ids) - len(holdouts[0]):
        raise ValueError(f"{config.rounds} rounds x budget {config.budget} need more pairs than the "
                         f"{len(ids) - len(holdouts[0])} selectable ones; lower --rounds or --budget")
    specs = _specs(config)
    todo = [s for s in specs if not (out / "runs" / s.name / "metrics.csv").is_file()]
    say(f"{len(specs)} runs ({len(specs) - len(todo)} already done), {len(ids)} pairs, "
        f"{int(data.truth['is_noisy'].sum())} noisy")
    _execute(out, data.base, todo, holdouts, config, progress, say)
    metrics = _finished_runs(out)
    atomic_write_text(out / "metrics.csv", metrics.to_csv(index=False))
    if report:
        write_report(out, metrics, data_info=data.info, config=config, base=data.base)
        say(f"wrote {out / 'metrics.csv'}, {out / 'summary.md'} and plots")
    return metrics


def _finished_runs(out: Path) -> pd.DataFrame:
    files = sorted((out / "runs").glob("*/metrics.csv"))
    if not files:
        raise FileNotFoundError(f"{out} holds no simulation results (no metrics.csv, no runs/*/metrics.csv); "
                                f"run `mmcurate simulate --out {out} ...` first.")
    metrics = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return metrics.sort_values(["strategy", "diversity", "seed", "round"], kind="stable",
                               ignore_index=True)


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """The metrics of a simulation folder (``metrics.csv``, or the finished runs' files)."""
    out = Path(out_dir)
    if (out / "metrics.csv").is_file():
        return pd.read_csv(out / "metrics.csv")
    return _finished_runs(out)
