"""Smoke test of the learning benchmark: scripts/bench_learning.py drives the CLI loop end to end on a
small world; the recorded metrics are sane (not specific values)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_learning.py"


def _script():
    spec = importlib.util.spec_from_file_location("bench_learning", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_learning", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_learning_small_run_through_the_cli(tmp_path, capsys):
    bench = _script()
    argv = ["--out", str(tmp_path), "--families", "clip_gap", "--kinds", "random", "--reviewers", "erring10",
            "--seeds", "2,", "--rounds", "2", "--budget", "20", "--n", "400"]
    assert bench.main(argv) == 0
    runs = list((tmp_path / "runs").glob("*.csv"))
    assert len(runs) == 1
    rows = pd.read_csv(runs[0])
    assert list(rows["round"]) == [0, 1, 2]
    assert list(rows["labels"]) == [0, 20, 40] and list(rows["ref_labels"]) == [0, 20, 40]
    for col in ("recall", "ref_recall"):
        values = rows[col].to_numpy()
        assert ((values >= 0) & (values <= 1)).all() and (np.diff(values) >= 0).all()
        assert values[0] == 0 and values[-1] > 0
    assert rows["gain"].iloc[0] == 0 and rows["gain"].abs().max() <= 1
    # the gain's paired standard error: none at round 0 (the same ranking), finite after
    assert rows["gain_se"].iloc[0] == 0 and (rows["gain_se"] >= 0).all() and rows["gain_se"].notna().all()
    assert rows["eval_n"].nunique() == 1 and 0 < rows["eval_n"].iloc[0] <= 400 - 40
    last = rows.iloc[-1]
    assert 0 <= last["export_misaligned"] <= 1 and 0 < last["export_clean_kept"] <= 1
    assert rows["split"].iloc[0] == "report"
    out = capsys.readouterr().out
    assert "| clip_gap | random | erring10 | 2 |" in out and "Report seeds" in out
    assert "beyond 2 standard errors of the holdout" in out
    # finished runs are not redone; --report-only prints the same matrix from the CSVs
    assert bench.main([*argv, "--report-only"]) == 0
    assert "| clip_gap | random | erring10 | 2 |" in capsys.readouterr().out
    assert bench.main(argv) == 0
    assert "1 of 1 runs finished before; running 0" in capsys.readouterr().out


def _load(name: str):
    path = SCRIPT.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_diagnostic_scripts_read_a_kept_benchmark_run(tmp_path, capsys):
    """reference_share.py re-runs the recorded reference exactly and counts the loop's labels spent
    off its queue; export_bound.py's truth-chosen threshold is never worse than the export's own
    (a verified threshold here) when that one keeps 95% of the clean pairs (perfect reviewer: no
    disputed accepts)."""
    from mmcurate.learn import EXPLORE, split_budget

    bench = _script()
    argv = ["--out", str(tmp_path), "--families", "clip_gap", "--kinds", "random", "--reviewers", "perfect",
            "--seeds", "3,", "--rounds", "4", "--budget", "60", "--n", "1500", "--keep-work"]
    assert bench.main(argv) == 0
    capsys.readouterr()
    rows = pd.read_csv(next((tmp_path / "runs").glob("*.csv")))
    share = _load("reference_share")
    table = share.shares(tmp_path, [0.1], None)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["ref_0"] == row["ref"]  # the same world, holdout and reviewer draws as the benchmark
    explored = sum(split_budget(int(n), EXPLORE)[1] for n in np.diff(rows["n_shown"]))
    repeats = rows["labels"].iloc[-1] - rows["n_shown"].iloc[-1]
    assert row["off_queue"] == explored + repeats and explored >= 4 * 6
    assert 0 < row["ref_matched"] <= 1 and 0 < row["ref_0.1"] <= 1
    assert share.main([str(tmp_path), "--explore", "0.1"]) == 0
    assert "ref_matched" in capsys.readouterr().out
    bound = _load("export_bound").bounds(tmp_path, 0.95)
    assert len(bound) == 1
    b = bound.iloc[0]
    assert rows["export_unverified"].iloc[-1] == 0  # the export applied a threshold of its own
    assert 0 <= b["truth_fitted"] <= 1 and 0 <= b["loop_ranking"] <= 1
    assert b["export_clean_kept"] >= 0.95 and b["loop_ranking"] <= b["export_misaligned"]
    again = _load("export_bound").bounds(tmp_path, 0.95, reexport=True).iloc[0]  # same code, same export
    assert again["export_misaligned"] == b["export_misaligned"]
    assert again["export_clean_kept"] == b["export_clean_kept"]


def test_the_clean_floor_benchmark_runs_on_a_small_pool(capsys):
    """scripts/bench_clean_floor.py builds its pool and prints the floor it chose (no time asserted)."""
    bench = _load("bench_clean_floor")
    assert bench.main(["--n", "20000", "--rounds", "5", "--draws", "40", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "20,000 pairs, 5 rounds of 40 draws" in out and "threshold 0." in out
    with pytest.raises(SystemExit):
        bench.main(["--n", "1000", "--rounds", "5"])  # too small for the rounds asked


def test_the_feature_ceiling_recall_counts_the_pool_down_the_ranking():
    """recall_down: the benchmark's recall for a static ranking, with the holdout left out."""
    ceiling = _load("feature_ceiling")
    noisy = np.array([1, 0, 1, 0, 1, 0], bool)
    pool = np.array([True, True, True, True, False, True])
    score = np.array([0.9, 0.8, 0.1, 0.2, 1.0, 0.3])  # row 4 (noisy, held out) ranks first
    assert ceiling.recall_down(score, noisy, pool, 1) == 0.5        # row 0: 1 of the pool's 2
    assert ceiling.recall_down(score, noisy, pool, 4) == 0.5        # rows 0, 1, 5, 3
    assert ceiling.recall_down(score, noisy, pool, 5) == 1.0


@pytest.mark.slow
def test_the_blend_replay_refits_the_loops_models_exactly(tmp_path, capsys):
    """scripts/replay_blend.py refits each round's model from the kept project: where the loop
    ranked with the model it fitted that round, the replay's fit alone (share 1) has exactly the
    holdout gain the benchmark recorded, so its blends are measured on the loop's own fits."""
    import json

    bench = _script()
    argv = ["--out", str(tmp_path), "--families", "clip_hard", "--kinds", "same-category", "--reviewers",
            "perfect", "--seeds", "3,", "--rounds", "4", "--budget", "60", "--n", "1500", "--keep-work"]
    assert bench.main(argv) == 0
    rows = pd.read_csv(next((tmp_path / "runs").glob("*.csv"))).set_index("round")
    work = next((tmp_path / "work").iterdir())
    replay = _load("replay_blend")
    table = replay.replay_results(tmp_path, [1, 2, 3, 4])
    assert list(table["round"]) == [1, 2, 3, 4]
    shares = [f"s{s:g}" for s in replay.SHARES]
    assert np.isfinite(table[shares].to_numpy()).all() and (table[shares].abs() <= 1).all().all()
    checked = 0
    for _, row in table.iterrows():
        record = json.loads((work / "project" / "heads" / f"model-{int(row['round']):04d}.json").read_text())
        if record["validation"]["accepted"] and "recalibrated" not in record["validation"]["reason"]:
            assert row["s1"] == pytest.approx(rows.loc[int(row["round"]), "gain"], abs=1e-9)
            checked += 1
    assert checked >= 1  # a round in which the loop ranked with its new fit


@pytest.mark.slow
def test_the_floor_check_reads_a_kept_benchmark_run(tmp_path, capsys):
    """scripts/check_floor_se.py compares the floor's estimate of the clean pairs below each
    threshold with the truth under each variance rule: the estimate is the same for all three, and
    the floor's (the larger per round) is never below either of the others."""
    bench = _script()
    argv = ["--out", str(tmp_path), "--families", "clip_hard", "--kinds", "same-category", "--reviewers",
            "perfect", "--seeds", "3,", "--rounds", "4", "--budget", "60", "--n", "1500", "--keep-work"]
    assert bench.main(argv) == 0
    check = _load("check_floor_se")
    work = next((tmp_path / "work").iterdir())
    rows = pd.DataFrame(check.run_rows(work, tmp_path / "worlds" / "__".join(work.name.split("__")[:4])))
    assert len(rows) == len(check.RULES) * len(check.THRESHOLDS)
    by = rows.pivot(index="t", columns="rule")
    np.testing.assert_allclose(by["estimate"]["design"], by["estimate"]["larger"])
    np.testing.assert_allclose(by["target"]["design"], by["target"]["assisted"])
    assert (by["se"]["larger"] >= np.maximum(by["se"]["design"], by["se"]["assisted"]) - 1e-9).all()
    assert (by["se"]["larger"] ** 2 <= by["se"]["design"] ** 2 + by["se"]["assisted"] ** 2 + 1e-9).all()
    capsys.readouterr()
    assert check.main([str(tmp_path)]) == 0
    assert "2.5% intended" in capsys.readouterr().out
