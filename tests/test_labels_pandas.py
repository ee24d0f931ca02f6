"""A batch file edited in pandas imports back: the idiom the README shows, NaN / <NA> / "nan" as
"no decision yet", and the count the CLI prints."""

from __future__ import annotations

import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.project import create_project
from mmcurate.review.batch import export_batch


@pytest.fixture
def batch_csv(png_pairs, tmp_path):
    proj = create_project(tmp_path / "proj", pairs=png_pairs, progress=False)
    ids = proj.pairs["pair_id"].tolist()[:8]
    proj.ledger.create_round(ids, strategy="p_misaligned", params={}, model={},
                             scores=[0.9 - 0.1 * i for i in range(8)], reasons=["x"] * 8)
    return proj, export_batch(proj, tmp_path / "round1.csv")


def test_readme_idiom_round_trip(batch_csv, capsys):
    proj, path = batch_csv
    df = pd.read_csv(path, dtype={"decision": "string", "reviewer": "string"})  # the README idiom
    df.loc[df["pair_id"] == "p0", "decision"] = "accept"
    df.loc[df["pair_id"] == "p1", "decision"] = "reject"
    df.loc[df["pair_id"] == "p2", ["decision", "caption"]] = ["fix", "a corrected caption"]
    df.to_csv(path, index=False)
    assert pd.read_csv(path)["decision"].isna().sum() == 5  # what pandas wrote back for the rest
    assert main(["label", str(proj.root), "--import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "8 rows" in out
    assert " 3  new decisions" in out and " 5  no decision yet" in out and "skipped" in out
    latest = proj.ledger.decisions().set_index("pair_id")
    assert latest["decision"].to_dict() == {"p0": "accept", "p1": "reject", "p2": "fix"}
    assert latest.loc["p2", "caption"] == "a corrected caption"
    assert (latest["reviewer"].fillna("") == "").all()  # reviewer <NA> is no reviewer, not "<NA>"


def test_default_read_trips_on_strings_and_object_cast_imports(batch_csv):
    proj, path = batch_csv
    df = pd.read_csv(path)
    assert df["decision"].dtype == "float64"  # the trap the idiom avoids
    df["decision"] = df["decision"].astype(object)
    df.loc[[0, 3], "decision"] = "reject"
    df.to_csv(path, index=False)
    report = proj.ledger.import_decisions(path, known_pair_ids=set(proj.pairs["pair_id"]))
    assert (report.n_added, report.n_skipped) == (2, 6)


def test_pandas_missing_markers_are_no_decision(batch_csv, tmp_path):
    proj, path = batch_csv
    known = set(proj.pairs["pair_id"])
    df = pd.read_csv(path, dtype={"decision": "string", "reviewer": "string"})
    df.loc[0, "decision"] = "accept"
    # a DataFrame straight from pandas: <NA> cells
    report = proj.ledger.import_decisions(df, known_pair_ids=known)
    assert (report.n_added, report.n_skipped) == (1, 7)
    # astype(str) on NaN gives "nan" text in pandas 2 (and "<NA>" for the string dtype)
    text = df.astype(object).where(df.notna(), "nan")
    text.loc[1, "decision"] = "<NA>"
    text.loc[2, "decision"] = "reject"
    text.to_csv(tmp_path / "as_text.csv", index=False)
    report = proj.ledger.import_decisions(tmp_path / "as_text.csv", known_pair_ids=known)
    assert (report.n_added + report.n_unchanged, report.n_skipped) == (2, 6)  # p0 accept, p2 reject
    assert proj.ledger.decisions().set_index("pair_id").loc["p2", "reviewer"] in ("", None)
    # JSON lines from to_json: null decisions
    df.loc[3, "decision"] = "reject"
    df.to_json(tmp_path / "b.jsonl", orient="records", lines=True)
    report = proj.ledger.import_decisions(tmp_path / "b.jsonl", known_pair_ids=known)
    assert (report.n_unchanged + report.n_added, report.n_skipped) == (2, 6)


def test_a_real_typo_is_still_an_error(batch_csv):
    from mmcurate.labels import LabelsFileError

    proj, path = batch_csv
    df = pd.read_csv(path, dtype={"decision": "string"})
    df.loc[0, "decision"] = "acept"
    df.to_csv(path, index=False)
    with pytest.raises(LabelsFileError, match="acept"):
        proj.ledger.import_decisions(path, known_pair_ids=set(proj.pairs["pair_id"]))
