"""One result type per verb (mmcurate.results): provenance is a field, the CLI prints the object the
API returns, and ``import mmcurate`` offers what a notebook needs, lazily."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import mmcurate
from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import create_project
from mmcurate.results import Batch, Ranking
from mmcurate.rounds import rank_project, select_batch


@pytest.fixture
def proj(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(120, 16))
    txt = img + 0.5 * rng.normal(size=img.shape)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(120)], "caption": [f"c{i}" for i in range(120)]})
    folder = write_embedding_folder(tmp_path / "emb", img.astype(np.float32), txt.astype(np.float32), meta)
    return create_project(tmp_path / "p", embeddings=folder)


def test_provenance_is_a_field_and_survives_a_merge(proj):
    ranking = rank_project(proj, ["margin"])
    assert isinstance(ranking, Ranking) and not ranking.table.attrs  # nothing hidden in attrs
    merged = ranking.table.merge(proj.pairs[["pair_id", "caption"]], on="pair_id")
    assert len(merged) == len(proj.pairs) and not merged.attrs
    assert ranking.provenance["strategies"] == ["margin"] and ranking.head_round is None
    assert ranking.provenance["n_labels"] == 0 and ranking.strategies == ("margin",)
    # a ranking handed back to select is checked through its provenance field
    batch = select_batch(proj, budget=8, strategy="margin", ranked=ranking, explore=0.0)
    assert isinstance(batch, Batch) and batch.round == 1 and len(batch) == 8
    assert batch.head_round is None and batch.strategy == "margin" and batch.params["budget"] == 8
    assert set(batch.table["pair_id"]) <= set(merged["pair_id"])
    stale = rank_project(proj, ["clip_score"])
    with pytest.raises(ValueError, match="ranked= must come from"):
        select_batch(proj, budget=4, strategy="margin", ranked=stale)


def test_the_cli_prints_the_object_the_api_returns(proj, capsys):
    assert main(["rank", str(proj.root), "--strategy", "margin", "clip_score", "--top", "5"]) == 0
    printed = capsys.readouterr().out.splitlines()
    ranking = rank_project(proj, ["margin", "clip_score"])  # same state, same seed: the same ranking
    expected = ranking.summary(proj.pairs[["pair_id", "caption"]], n=5).splitlines()
    assert printed[: len(expected)] == expected
    assert printed[0] == "ranked 120 pairs by margin + clip_score; higher = review first"
    assert main(["select", str(proj.root), "--budget", "12", "--strategy", "margin"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith("round 1: 12 pairs queued for review (") and "diversity=none" in said[0]
    assert said[1] == "ranked with the zero-label prior (no trained model in use)"
    assert said[-2] == "    ... 2 more" and said[-1].startswith("next: mmcurate review")


def test_import_mmcurate_is_light_and_lists_what_a_notebook_needs():
    code = ("import sys, json, mmcurate; "
            "heavy = [m for m in ('torch', 'faiss', 'open_clip', 'mmcurate.rounds') if m in sys.modules]; "
            "print(json.dumps({'heavy': heavy, 'dir': dir(mmcurate)}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["heavy"] == []
    names = {"open_project", "create_project", "Project", "rank_project", "select_batch",
             "train_project_head", "export_curated", "add_pairs", "import_labels", "Ranking", "Batch",
             "TrainResult", "ExportResult", "AddResult"}
    assert names <= set(out["dir"]) and out["dir"] == sorted(mmcurate.__all__)
    assert set(mmcurate.__all__) == {"__version__", *mmcurate._LAZY, *mmcurate._SUBMODULES}
    for name in mmcurate.__all__:  # every listed name resolves
        assert getattr(mmcurate, name) is not None
    assert mmcurate.rank_project is rank_project and mmcurate.Ranking is Ranking
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mmcurate.nope
