"""Label Studio and FiftyOne round trips: export -> edit as the tool would -> import."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from mmcurate.exceptions import DataError
from mmcurate.project import create_project
from mmcurate.review.interchange import (
    export_fiftyone,
    export_label_studio,
    read_fiftyone,
    read_label_studio,
)


@pytest.fixture
def proj_with_round(tmp_path):
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(6):
        Image.new("RGB", (16, 16), (40 * i, 0, 0)).save(tmp_path / "img" / f"{i}.png")
        rows.append({"id": f"p{i}", "image": f"img/{i}.png", "caption": f"caption {i}"})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "pairs.csv", progress=False)
    proj.ledger.create_round(["p0", "p1", "p2", "p3"], strategy="margin", params={}, model={},
                             scores=[0.9, 0.8, 0.7, 0.6], reasons=["margin"] * 4)
    return proj


def _ls_annotate(task, decision, text=None, who="ann@example.com"):
    result = [{"from_name": "decision", "to_name": "image", "type": "choices",
               "value": {"choices": [decision]}}]
    if text:
        result.append({"from_name": "fixed_caption", "to_name": "image", "type": "textarea",
                       "value": {"text": [text]}})
    return {**task, "id": hash(task["data"]["pair_id"]) % 1000,
            "annotations": [{"id": 1, "completed_by": {"email": who}, "result": result,
                             "was_cancelled": False, "updated_at": "2026-11-25T10:00:00Z"}]}


def test_label_studio_round_trip(proj_with_round, tmp_path):
    proj = proj_with_round
    tasks_path = export_label_studio(proj, tmp_path / "ls")
    tasks = json.loads(tasks_path.read_text())
    # the storage is the image root (here tmp_path), served from below the document root (its parent)
    root = proj.image_root.resolve()
    assert len(tasks) == 4 and tasks[0]["data"]["image"] == f"/data/local-files/?d={root.name}/img/0.png"
    setup = json.loads((tmp_path / "ls" / "label_studio.json").read_text())
    assert setup["local_files_storage_path"] == str(root)
    assert setup["LOCAL_FILES_DOCUMENT_ROOT"] == str(root.parent)
    assert "<Choices name=\"decision\"" in (tmp_path / "ls" / "label_config.xml").read_text()
    answers = {"p0": ("accept", None), "p1": ("reject", None), "p2": ("fix", "a better caption")}
    exported = [_ls_annotate(t, *answers[t["data"]["pair_id"]]) if t["data"]["pair_id"] in answers
                else {**t, "annotations": []} for t in tasks]
    (tmp_path / "export.json").write_text(json.dumps(exported))
    decisions = read_label_studio(tmp_path / "export.json").decisions
    assert sorted(decisions.loc[decisions["decision"] != "", "pair_id"]) == ["p0", "p1", "p2"]
    report = proj.ledger.import_decisions(decisions, known_pair_ids=set(proj.pairs["pair_id"]),
                                          source_name="label-studio")
    assert report.n_added == 3
    latest = proj.ledger.decisions().set_index("pair_id")
    assert latest.loc["p2", "decision"] == "fix" and latest.loc["p2", "caption"] == "a better caption"
    assert latest.loc["p0", "reviewer"] == "ann@example.com"


def test_label_studio_document_root_option(proj_with_round, tmp_path, capsys):
    """--document-root: URLs are paths below it; a root that is not above the images is refused."""
    from mmcurate.cli import main

    root = proj_with_round.image_root.resolve()
    argv = ["batch", "export", str(proj_with_round.root), "--format", "label-studio",
            "--out", str(tmp_path / "ls")]
    assert main([*argv, "--document-root", str(root.parent.parent)]) == 0
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d={root.parent.name}/{root.name}/img/0.png"
    assert f"LOCAL_FILES_DOCUMENT_ROOT={root.parent.parent}" in capsys.readouterr().out
    assert main([*argv, "--document-root", str(root)]) == 2
    assert "not below" in capsys.readouterr().err


def test_label_studio_bad_export_names_the_task(tmp_path):
    bad = [{"id": 7, "data": {"pair_id": "p0"}, "annotations": [
        {"result": [{"from_name": "decision", "value": {"choices": ["maybe"]}}]}]}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"task 1 \(Label Studio id 7\).*'maybe'"):
        read_label_studio(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_bytes(b"\xff\xfe not json")
    with pytest.raises(DataError, match="not a Label Studio JSON export"):
        read_label_studio(tmp_path / "bad2.json")


def test_fiftyone_round_trip_csv_and_samples_json(proj_with_round, tmp_path):
    proj = proj_with_round
    csv = export_fiftyone(proj, tmp_path / "fo")
    table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(table.columns[:3]) == ["filepath", "pair_id", "caption"]
    assert all(p.endswith(".png") for p in table["filepath"])
    table.loc[0, "decision"] = "accept"
    table.loc[1, "decision"] = "fix"
    table.loc[1, "fixed_caption"] = "fixed!"
    table.to_csv(csv, index=False)
    got = read_fiftyone(csv).decisions
    got = got[got["decision"] != ""]
    assert got.set_index("pair_id").loc[table.loc[1, "pair_id"], "caption"] == "fixed!"
    samples = {"samples": [{"filepath": "x", "pair_id": "p3", "tags": ["reject"]},
                           {"filepath": "y", "pair_id": "p2", "tags": []}]}
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    got = read_fiftyone(tmp_path / "samples.json").decisions
    assert got.to_dict("records") == [{"pair_id": "p3", "decision": "reject", "caption": "",
                                       "reviewer": "", "timestamp": ""},
                                      {"pair_id": "p2", "decision": "", "caption": "",
                                       "reviewer": "", "timestamp": ""}]
    report = proj.ledger.import_decisions(got, known_pair_ids=set(proj.pairs["pair_id"]))
    assert report.n_added == 1 and report.n_skipped == 1


def test_fiftyone_export_replaces_its_own_data_and_nothing_else(proj_with_round, tmp_path):
    export_fiftyone(proj_with_round, tmp_path / "fo")
    (tmp_path / "fo" / "data" / "000009.png").write_bytes(b"from a larger earlier round")
    export_fiftyone(proj_with_round, tmp_path / "fo")
    names = sorted(p.name for p in (tmp_path / "fo" / "data").iterdir())
    assert names == [f"00000{i}.png" for i in range(1, 5)]
    (tmp_path / "fo" / "data" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"notes.txt\); give --out an empty or new folder"):
        export_fiftyone(proj_with_round, tmp_path / "fo")
    assert (tmp_path / "fo" / "data" / "notes.txt").read_text() == "mine"


def test_fiftyone_two_decision_tags_rejected_with_row(tmp_path):
    samples = [{"pair_id": "p1", "tags": ["accept", "reject"]}]
    (tmp_path / "s.json").write_text(json.dumps(samples))
    with pytest.raises(DataError, match="row 1"):
        read_fiftyone(tmp_path / "s.json")


@pytest.mark.parametrize("absolute", [False, True])
def test_imported_embeddings_show_their_image_path(tmp_path, absolute):
    """An imported-embeddings project uses its metadata's image_path (relative to --image-root, or
    absolute): review page resolver, batch thumbnails, Label Studio tasks and the FiftyOne CSV."""
    import numpy as np
    from PIL import Image

    from mmcurate.cli import main
    from mmcurate.embed.importer import write_embedding_folder
    from mmcurate.project import open_project
    from mmcurate.review.batch import export_batch
    from mmcurate.review.interchange import export_fiftyone, export_label_studio
    from mmcurate.review.project_app import image_resolver

    photos = tmp_path / "photos"
    (photos / "00000").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (16, 16), (60 * i, 0, 0)).save(photos / "00000" / f"{i}.jpg")
    rel = [f"00000/{i}.jpg" for i in range(4)]
    vectors = np.eye(4, 8, dtype=np.float32)
    write_embedding_folder(tmp_path / "emb", vectors, vectors, pd.DataFrame({
        "key": [f"k{i}" for i in range(4)], "caption": [f"c{i}" for i in range(4)],
        "image_path": [str(photos / p) for p in rel] if absolute else rel}))
    argv = ["init", str(tmp_path / "proj"), "--embeddings", str(tmp_path / "emb")]
    assert main(argv if absolute else [*argv, "--image-root", str(photos)]) == 0
    proj = open_project(tmp_path / "proj")
    proj.ledger.create_round(["k0", "k1"], strategy="test", params={}, model={})
    assert image_resolver(proj)("k1") == (photos / "00000" / "1.jpg").resolve()
    batch = pd.read_csv(export_batch(proj, tmp_path / "b.csv", thumbnails=True), dtype=str)
    assert batch["thumbnail"].str.startswith("b_thumbs/").all()
    tasks = json.loads(export_label_studio(proj, tmp_path / "ls").read_text())
    assert all(t["data"]["image"].endswith(f"00000/{i}.jpg") for i, t in enumerate(tasks))
    fo = pd.read_csv(export_fiftyone(proj, tmp_path / "fo"), dtype=str)
    assert fo["filepath"].tolist() == ["000001.jpg", "000002.jpg"]
    assert [(tmp_path / "fo" / "data" / f).read_bytes() for f in fo["filepath"]] == [
        (photos / "00000" / f"{i}.jpg").read_bytes() for i in range(2)]


def test_imported_embeddings_with_relative_paths_and_no_root_say_so(tmp_path, capsys):
    import numpy as np

    from mmcurate.cli import main
    from mmcurate.embed.importer import write_embedding_folder

    vectors = np.eye(2, 8, dtype=np.float32)
    write_embedding_folder(tmp_path / "emb", vectors, vectors, pd.DataFrame(
        {"caption": ["a", "b"], "image_path": ["x/0.jpg", "x/1.jpg"]}))
    assert main(["init", str(tmp_path / "proj"), "--embeddings", str(tmp_path / "emb")]) == 0
    assert "give --image-root FOLDER" in capsys.readouterr().out


def test_label_studio_quick_export_after_one_with_emails_is_unchanged(proj_with_round, tmp_path):
    """Label Studio's quick export names reviewers by user number: a decision already imported from
    the same Label Studio project with an e-mail counts as unchanged, not as a new decision."""
    from mmcurate.rounds import import_labels

    task = {"id": 9, "project": 4, "data": {"pair_id": "p0"}}
    ann = {"result": [{"from_name": "decision", "value": {"choices": ["reject"]}}],
           "updated_at": "2026-11-25T10:00:00Z"}
    for name, who in (("full.json", {"id": 3, "email": "ann@example.com"}), ("quick.json", 3)):
        (tmp_path / name).write_text(json.dumps([{**task, "annotations": [{**ann, "completed_by": who}]}]))
    full = read_label_studio(tmp_path / "full.json")
    assert full.source == "label-studio project 4" and not full.reviewer_ids_only
    assert import_labels(proj_with_round, full.decisions, source_name=full.source).n_added == 1
    quick = read_label_studio(tmp_path / "quick.json")
    assert quick.reviewer_ids_only and quick.decisions.loc[0, "reviewer"] == "label-studio user 3"
    quick = quick.keep_known_reviewers(proj_with_round.ledger.decisions())
    report = import_labels(proj_with_round, quick.decisions, source_name=quick.source)
    assert (report.n_added, report.n_unchanged) == (0, 1)
    assert proj_with_round.ledger.decisions().loc[0, "reviewer"] == "ann@example.com"
