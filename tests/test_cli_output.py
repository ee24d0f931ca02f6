"""What the CLI prints for a person: short aligned lines, no Python reprs, says what ranked and
what to do next (issue 17)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.project import open_project

WIDTH = 110  # no line a person reads is wider (paths aside: they are checked without them)


@pytest.fixture
def scenes(tmp_path):
    from mmcurate.demo import prepare_scene_dataset

    pairs_csv, truth_csv = prepare_scene_dataset(tmp_path / "data", n=60)
    return pairs_csv, pd.read_csv(truth_csv, dtype={"id": str})


def _run(capsys, *argv: str) -> str:
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def _narrow(text: str, prefix: str) -> None:
    for line in text.splitlines():
        assert len(line.replace(prefix, "T")) <= WIDTH, f"{len(line)} chars: {line}"
        assert not re.search(r"\{'|': |=\S+, \S+=", line), f"a repr or key=value list: {line}"


def test_help_is_for_a_person(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "main(argv" not in out and "``" not in out
    assert "mmcurate init PROJECT --pairs" in out and "mmcurate demo" in out


def test_walkthrough_output(scenes, tmp_path, micro_clip_dir, capsys):
    pairs_csv, truth = scenes
    root = str(tmp_path / "proj")
    out = _run(capsys, "init", root, "--pairs", str(pairs_csv), "--model", f"local-dir:{micro_clip_dir}")
    assert "weights found; next: mmcurate embed" in out
    _run(capsys, "embed", root, "--no-progress")
    status = _run(capsys, "status", root)
    _narrow(status, str(tmp_path))
    assert re.search(r"^model\s+micro_clip\d*, 32-d$", status, re.M), status
    assert re.search(r"^next\s+mmcurate select .* --budget 40$", status, re.M)

    ranked = _run(capsys, "rank", root, "--strategy", "p_misaligned", "disagreement",
                  "--out", str(tmp_path / "ranked.csv"))
    _narrow(ranked, str(tmp_path))
    assert "scored with the zero-label prior" in ranked
    header = next(line for line in ranked.splitlines() if line.lstrip().startswith("#"))
    assert header.split() == ["#", "pair_id", "score", "p_misaligned", "disagreement", "caption"]
    assert {"cosine", "p_aligned"} <= set(pd.read_csv(tmp_path / "ranked.csv").columns)  # the file has all

    first = _run(capsys, "select", root, "--budget", "12")
    _narrow(first, str(tmp_path))
    assert "ranked with the zero-label prior" in first and "drawn at random" in first

    batch = tmp_path / "round1.csv"
    assert "dtype={'decision': 'string'" in _run(capsys, "batch", "export", root, "--out", str(batch))
    df = pd.read_csv(batch, dtype={"decision": "string", "reviewer": "string"})
    noisy = df["pair_id"].map(truth.set_index("id")["is_noisy"]).astype(bool)
    df.loc[:9, "decision"] = noisy[:10].map({True: "reject", False: "accept"})
    df.to_csv(batch, index=False)
    label = _run(capsys, "label", root, "--import", str(batch))
    assert re.search(r"^\s+10\s+new decisions$", label, re.M), label
    assert re.search(r"^\s+2\s+no decision yet\s+decision empty or NaN", label, re.M), label

    trained = _run(capsys, "train", root)
    _narrow(trained, str(tmp_path))
    lines = trained.splitlines()
    assert lines[0].startswith("model 1: fitted on 10 decisions")
    keys = [line.split()[0] for line in lines[1:-1]]
    assert keys[0] == "verdict" and "ranking" in keys
    status_json = json.loads(_run(capsys, "status", root, "--json"))
    assert status_json["model"]["dim"] == 32 and "in_use" in status_json["model"]  # both kept
    in_use = status_json["model"]["in_use"]

    second = _run(capsys, "select", root, "--budget", "12", "--allow-undecided")  # 2 left undecided
    said = "ranked with model 1" if in_use == 1 else "ranked with the zero-label prior"
    assert said in second, second

    exported = _run(capsys, "export", root, "--out", str(tmp_path / "cur"))
    _narrow(exported, str(tmp_path))
    assert re.search(r"^curated\s+\d+\s+10 reviewed", exported, re.M), exported
    report = (tmp_path / "cur" / "report.md").read_text()
    dropped = (tmp_path / "cur" / "dropped.csv").read_text()
    assert "round 1.0" not in report + dropped and "CLIP cosine" not in report
    assert "micro_clip" in report  # the plots' sections name the model


def test_status_of_an_unembedded_project_says_embed(png_pairs, tmp_path, capsys):
    root = str(tmp_path / "p")
    _run(capsys, "init", root, "--pairs", str(png_pairs), "--model", f"local-dir:{tmp_path / 'none'}")
    out = _run(capsys, "status", root)
    assert re.search(r"^embedded\s+0 of 12$", out, re.M)
    assert re.search(rf"^next\s+mmcurate embed {re.escape(root)}$", out, re.M)
    assert open_project(root).model_spec.model.endswith("none")


def test_coreset_described_alike_in_cli_readme_and_code(capsys):
    """`mmcurate strategies`, the README and select_coreset's default say the same about core-set."""
    import numpy as np

    from mmcurate.select import select_coreset

    out = _run(capsys, "strategies")
    line = next(x for x in out.splitlines() if x.split()[:1] == ["coreset"])
    assert "top 10 x budget" in line and "candidates=0" in line and "whole pool" in line
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "k-center among the top 10 × budget by score" in readme and "candidates=0" in readme
    rng = np.random.default_rng(0)
    scores, emb = rng.random(500), rng.normal(size=(500, 8))
    default = select_coreset(scores, n=5, embeddings=emb, random_state=0)
    assert default.tolist() == select_coreset(scores, n=5, embeddings=emb, random_state=0,
                                              candidates=50).tolist()
    assert set(default) <= set(np.argsort(-scores)[:50])
