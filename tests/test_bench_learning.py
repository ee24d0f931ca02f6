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
    assert rows["eval_n"].nunique() == 1 and 0 < rows["eval_n"].iloc[0] <= 400 - 40
    last = rows.iloc[-1]
    assert 0 <= last["export_misaligned"] <= 1 and 0 < last["export_clean_kept"] <= 1
    assert rows["split"].iloc[0] == "report"
    out = capsys.readouterr().out
    assert "| clip_gap | random | erring10 | 2 |" in out and "Report seeds" in out
    # finished runs are not redone; --report-only prints the same matrix from the CSVs
    assert bench.main([*argv, "--report-only"]) == 0
    assert "| clip_gap | random | erring10 | 2 |" in capsys.readouterr().out
    assert bench.main(argv) == 0
    assert "1 of 1 runs finished before; running 0" in capsys.readouterr().out
