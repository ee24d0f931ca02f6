"""`mmcurate demo` runs every stage on the sample data and says what it did."""

from __future__ import annotations

import pytest

from mmcurate.cli import main

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys, tiny_clip_dir):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", "out", "--n-scenes", "150", "--rounds", "1", "--budget", "20",
                 "--no-tuxpaint"]) == 0
    out = capsys.readouterr().out
    assert "NOT CLIP" in out and "round 1: reviewed 20" in out
    assert (tmp_path / "out" / "datasets" / "generated" / "pairs.csv").is_file()
    assert (tmp_path / "out" / "curated" / "report.html").is_file()
    assert (tmp_path / "out" / "scenes" / "labels.sqlite").is_file()
    # the closing hint opens a round still to decide: select a new one first, then review it
    hint = out.splitlines()[-2:]
    assert hint == ["  mmcurate select out/scenes --budget 20", "  mmcurate review out/scenes"], hint
    assert main(["select", "out/scenes", "--budget", "20"]) == 0
    from mmcurate.project import open_project

    proj = open_project(tmp_path / "out" / "scenes")
    latest = proj.ledger.batch(proj.ledger.latest_round())
    assert latest["decision"].isna().all()  # the round `review` opens is undecided
