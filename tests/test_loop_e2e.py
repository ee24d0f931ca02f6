"""Three review rounds through the CLI on generated scenes with the tiny stand-in model.

select -> batch export -> decisions filled in from the known truth (as a person would edit the
file) -> label import -> train -> select again. Checks that no pair is queued twice and that the
head improves held-out alignment accuracy over plain CLIP. Captions are swapped within the same
shape category (hard negatives): with random swaps the tiny model's plain cosine is already
~0.99 accurate on its own toy domain and the head can at best tie it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.demo import prepare_scene_dataset
from mmcurate.project import open_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scene_project(tmp_path_factory, tiny_clip_dir):
    tmp = tmp_path_factory.mktemp("loop")
    csv, truth_csv = prepare_scene_dataset(tmp / "data", n=400, rate=0.2, kind="same_category")
    proj_dir = tmp / "proj"
    assert main(["init", str(proj_dir), "--pairs", str(csv), "--model", f"local-dir:{tiny_clip_dir}"]) == 0
    assert main(["embed", str(proj_dir), "--no-progress", "--workers", "0"]) == 0
    return proj_dir, pd.read_csv(truth_csv, dtype={"id": str}).set_index("id")


def _answer(batch_csv, truth):
    """Fill in a batch file the way a reviewer would: accept, or fix with the true caption."""
    df = pd.read_csv(batch_csv, dtype=str, keep_default_na=False)
    noisy = truth.loc[df["pair_id"], "is_noisy"].to_numpy(bool)
    df["decision"] = np.where(noisy, "fix", "accept")
    df.loc[noisy, "caption"] = truth.loc[df.loc[noisy, "pair_id"], "true_caption"].to_numpy()
    df["reviewer"] = "test"
    df.to_csv(batch_csv, index=False)
    return int(noisy.sum())


def test_three_rounds_through_the_cli(scene_project, tmp_path, capsys):
    proj_dir, truth = scene_project
    queued = []
    for r in range(1, 4):
        assert main(["select", str(proj_dir), "--budget", "40", "--strategy", "margin",
                     "--diversity", "cluster", "--seed", str(r)]) == 0
        out = tmp_path / f"round{r}.csv"
        assert main(["batch", "export", str(proj_dir), "--out", str(out)]) == 0
        batch = pd.read_csv(out, dtype=str)
        again = batch["reason"].fillna("").str.startswith(("second opinion", "audit"))
        assert batch.loc[again, "pair_id"].isin(queued).all()  # shown again: decided in an earlier round
        queued += batch.loc[~again, "pair_id"].tolist()
        _answer(out, truth)
        assert main(["label", str(proj_dir), "--import", str(out)]) == 0
        assert main(["label", str(proj_dir), "--import", str(out)]) == 0  # idempotent
        assert main(["train", str(proj_dir), "--head"]) == 0
    assert len(queued) == len(set(queued)) >= 110, "a pair was queued twice as new"
    capsys.readouterr()
    assert main(["status", str(proj_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["rounds"] == 3 and status["decisions"]["total"] == len(set(queued))  # pairs decided
    proj = open_project(proj_dir)
    metrics = proj.ledger.latest_head()["metrics"]
    keys = ("cv_accuracy", "cv_accuracy_identity", "cv_auroc", "cv_auroc_identity")
    print("head metrics:", {k: metrics[k] for k in keys})
    assert metrics["cv_accuracy"] > metrics["cv_accuracy_identity"], metrics
