"""Batch export for annotators, the curated set (csv/jsonl/parquet/webdataset) and the report."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.exceptions import ProjectError
from mmcurate.export import curate_pairs, export_curated, sample_key
from mmcurate.project import create_project
from mmcurate.review.batch import export_batch

N, D = 200, 16
SCRIPT = "<script>alert('x')</script> & | pipes"


def _vectors(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image = rng.normal(size=(n, D))
    text = image + 0.3 * rng.normal(size=(n, D))
    swapped = np.arange(0, n, 10)  # planted misaligned pairs
    text[swapped] = rng.normal(size=(len(swapped), D))
    return image, text


@pytest.fixture
def ext_proj(tmp_path):
    """An imported-embeddings project: 200 pairs + 2 input rejects (duplicate key, empty caption)."""
    rng = np.random.default_rng(0)
    image, text = _vectors(N + 2, rng)
    captions = [f"caption {i}" for i in range(N)] + ["duplicate", ""]
    captions[5] = SCRIPT
    meta = pd.DataFrame({"key": [f"k{i:03d}" for i in range(N)] + ["k000", "k_empty"],
                         "caption": captions, "image_path": [f"s/{i}.jpg" for i in range(N + 2)],
                         "width": np.arange(N + 2)})
    write_embedding_folder(tmp_path / "emb", image, text, meta)
    return create_project(tmp_path / "proj", embeddings=tmp_path / "emb")


def _review(proj):
    """Round 1 (20 pairs) fully decided, round 2 (10 pairs) half decided, one head recorded."""
    ids = proj.pairs["pair_id"].tolist()
    ledger = proj.ledger
    ledger.create_round(ids[:20], strategy="margin", params={"budget": 20}, model={},
                        scores=np.linspace(1, 0, 20).tolist(), reasons=["margin"] * 20)
    for i, pid in enumerate(ids[:20]):
        if i % 10 == 0:
            ledger.record(pid, "reject", reviewer="ana")
        elif i % 10 == 5:
            ledger.record(pid, "fix", caption=f"fixed {i}", reviewer="ana")
        else:
            ledger.record(pid, "accept", reviewer="ana")
    ledger.record_head(checkpoint="", n_labels=20,  # a model round that uses no head file
                       metrics={"cv_accuracy": 0.9, "cv_accuracy_identity": 0.7, "loss_curve": [1.0, 0.5],
                                "cv_auroc": float("nan"),
                                "model": {"accepted": True, "use_head": False, "reason": "test"}})
    ledger.create_round(ids[20:30], strategy="disagreement", params={"budget": 10}, model={},
                        head_round=1, scores=[0.5] * 10, reasons=["disagreement=0.5"] * 10)
    for pid in ids[20:25]:
        ledger.record(pid, "accept", reviewer="bo")
    return ids


# -- batch export -----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_batch_round_trips_through_the_importer(ext_proj, tmp_path, suffix):
    ids = _review(ext_proj)
    out = export_batch(ext_proj, tmp_path / f"round2{suffix}")
    if suffix == ".csv":
        df = pd.read_csv(out, dtype=str, keep_default_na=False)
    else:
        df = pd.read_json(out, lines=True, dtype={"pair_id": str, "caption": str})
    assert df["pair_id"].tolist() == ids[20:30]
    assert {"pair_id", "decision", "caption", "reviewer", "image", "score", "reason"} <= set(df.columns)
    assert (df["decision"].fillna("") == "").all()
    assert df["caption"].tolist() == ext_proj.pairs["caption"].tolist()[20:30]
    assert df["image"].tolist() == [f"s/{i}.jpg" for i in range(20, 30)]  # external: stored path
    # a reviewer fills the file in: reject, fix (edited caption), leave the rest undecided
    df["decision"] = ["reject", "fix"] + [""] * 8
    df.loc[1, "caption"] = "a corrected caption"
    df["reviewer"] = "cy"
    if suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        df.to_json(out, orient="records", lines=True)
    report = ext_proj.ledger.import_decisions(out, known_pair_ids=set(ids))
    assert (report.n_added, report.n_skipped, report.n_conflicts) == (2, 8, 2)  # both were accepted before
    latest = ext_proj.ledger.decisions().set_index("pair_id")
    assert latest.loc[ids[20], "decision"] == "reject" and latest.loc[ids[20], "round"] == 2
    assert latest.loc[ids[21], ["decision", "caption", "reviewer"]].tolist() == [
        "fix", "a corrected caption", "cy"]


def test_batch_export_arguments(ext_proj, tmp_path):
    with pytest.raises(ProjectError, match="no round"):
        export_batch(ext_proj, tmp_path / "b.csv")
    _review(ext_proj)
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl"):
        export_batch(ext_proj, tmp_path / "b.xlsx")
    first = pd.read_csv(export_batch(ext_proj, tmp_path / "b.csv", round_id=1), dtype=str)
    assert len(first) == 20 and set(first["round"]) == {"1"}
    with pytest.raises(ValueError, match="round 7 does not exist"):
        export_batch(ext_proj, tmp_path / "b.csv", round_id=7)


# -- curated set --------------------------------------------------------------------------------------
def test_curated_and_dropped_contents(ext_proj, tmp_path):
    ids = _review(ext_proj)
    summary = export_curated(ext_proj, tmp_path / "out", fmt="csv", threshold=None)
    curated = pd.read_csv(summary.curated_path, dtype={"pair_id": str})
    dropped = pd.read_csv(summary.dropped_path, dtype={"pair_id": str})
    fixed_ids = [ids[5], ids[15]]
    rejected_ids = [ids[0], ids[10]]
    accepted_ids = [p for p in ids[:25] if p not in fixed_ids + rejected_ids]
    assert sorted(curated["pair_id"]) == sorted(accepted_ids + fixed_ids)
    by_id = curated.set_index("pair_id")
    assert set(by_id.loc[fixed_ids, "status"]) == {"fixed"}
    assert by_id.loc[ids[5], "caption"] == "fixed 5" and by_id.loc[ids[5], "original_caption"] == SCRIPT
    assert by_id.loc[ids[1], "status"] == "accepted" and pd.isna(by_id.loc[ids[1], "original_caption"])
    assert by_id.loc[ids[7], "width"] == 7  # extra columns kept
    review = dropped[dropped["stage"] == "review"]
    assert sorted(review["pair_id"]) == sorted(rejected_ids)
    assert set(review["reason"]) == {"rejected by reviewer"}
    assert review["detail"].str.contains("by ana, round 1").all()
    inputs = dropped[dropped["stage"] == "input"]
    assert sorted(inputs["reason"]) == ["duplicate_id", "empty_caption"]
    expected = {"pairs": N, "rejected_at_input": 2, "reviewed": 25, "accepted": 21, "rejected": 2,
                "fixed": 2, "auto": 0, "left_out": N - 25, "curated": 23, "dropped": 4}
    assert {k: getattr(summary, k) for k in expected} == expected


def test_table_formats_hold_the_same_rows(ext_proj, tmp_path):
    _review(ext_proj)
    csv = export_curated(ext_proj, tmp_path / "csv", fmt="csv")
    base = pd.read_csv(csv.curated_path, dtype={"pair_id": str})
    jsonl = pd.read_json(export_curated(ext_proj, tmp_path / "j", fmt="jsonl").curated_path, lines=True,
                         dtype={"pair_id": str})
    parquet = pd.read_parquet(export_curated(ext_proj, tmp_path / "p", fmt="parquet").curated_path)
    for other in (jsonl, parquet):
        assert other["pair_id"].tolist() == base["pair_id"].tolist()
        assert other["caption"].tolist() == base["caption"].tolist()
    assert (tmp_path / "p" / "dropped.parquet").is_file() and (tmp_path / "j" / "dropped.jsonl").is_file()
    with pytest.raises(ValueError, match="csv, jsonl, parquet, webdataset"):
        export_curated(ext_proj, tmp_path / "x", fmt="tsv")
    with pytest.raises(ProjectError, match="no image files"):
        export_curated(ext_proj, tmp_path / "x", fmt="webdataset")


def test_threshold_keeps_confident_unreviewed_pairs(ext_proj, tmp_path):
    ids = _review(ext_proj)
    rng = np.random.default_rng(1)
    scores = pd.DataFrame({"pair_id": ids, "p_aligned": rng.uniform(size=N), "cosine": rng.normal(size=N)})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        curate_pairs(ext_proj, threshold=1.5, strategy_scores=scores)
    summary = export_curated(ext_proj, tmp_path / "out", threshold=0.6, strategy_scores=scores)
    curated = pd.read_csv(summary.curated_path, dtype={"pair_id": str})
    dropped = pd.read_csv(summary.dropped_path, dtype={"pair_id": str})
    unreviewed = scores.iloc[25:]
    auto = set(unreviewed.loc[unreviewed["p_aligned"] >= 0.6, "pair_id"])
    below = set(unreviewed.loc[unreviewed["p_aligned"] < 0.6, "pair_id"])
    assert set(curated.loc[curated["status"] == "auto", "pair_id"]) == auto
    assert set(dropped.loc[dropped["stage"] == "threshold", "pair_id"]) == below
    assert set(dropped.loc[dropped["stage"] == "threshold", "reason"]) == {"p_aligned < 0.6"}
    assert summary.auto == len(auto) > 0 and summary.left_out == 0
    assert summary.curated + summary.dropped == N + 2  # every pair and input reject placed once
    with pytest.raises(ValueError, match="p_aligned"):
        curate_pairs(ext_proj, threshold=0.5, strategy_scores=scores[["pair_id"]])


def test_threshold_uses_rank_project(ext_proj, tmp_path):
    from mmcurate.rounds import rank_project, train_project_head

    _review(ext_proj)
    train_project_head(ext_proj)  # a real head replaces _review's placeholder record
    p = rank_project(ext_proj, ["clip_score"]).table.set_index("pair_id")["p_aligned"]
    decided = set(ext_proj.ledger.decisions()["pair_id"])
    open_p = p[~p.index.isin(decided)]
    t = float(np.median(open_p))
    cur = curate_pairs(ext_proj, threshold=t)
    auto = set(cur.curated.loc[cur.curated["status"] == "auto", "pair_id"])
    assert auto == set(open_p.index[open_p >= t]) and 0 < len(auto) < len(open_p)


def test_export_ranks_without_writing_into_the_project(ext_proj, tmp_path):
    """The ranking behind the default threshold is read-only: no state.json, no pool state; every
    file of the project is as it was (SQLite's side files aside)."""
    import hashlib

    from mmcurate.rounds import train_project_head

    def files():
        return {p.relative_to(ext_proj.root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in ext_proj.root.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))}

    _review(ext_proj)
    train_project_head(ext_proj)
    before = files()
    summary = export_curated(ext_proj, tmp_path / "out")  # threshold="auto": ranks every pair
    curated = pd.read_csv(summary.curated_path)
    assert curated["p_aligned"].notna().all()  # the ranking was used (auto-kept or kept unverified)
    assert files() == before
    assert not (ext_proj.root / "state.json").exists() and not (ext_proj.root / "index").exists()


def test_embed_failures_are_dropped_unless_reviewed(ext_proj, tmp_path):
    ids = _review(ext_proj)
    pd.DataFrame({"pair_id": [ids[2], ids[100], "k_gone"], "image": "x.jpg", "reason": "unreadable_image",
                  "detail": "cannot identify image file"}).to_csv(ext_proj.root / "embed_failures.csv",
                                                                  index=False)
    # these ids have vectors (the import stored them), so the failures are stale: nothing moves
    cur = curate_pairs(ext_proj, threshold=None)
    assert cur.counts["embed_failures"] == 0
    ext_proj.store.root.joinpath("ids.npy").rename(ext_proj.store.root / "ids.bak.npy")  # no vectors now
    cur = curate_pairs(ext_proj, threshold=None)
    embed = cur.dropped[cur.dropped["stage"] == "embed"]
    assert embed["pair_id"].tolist() == [ids[100]]  # ids[2] was accepted by a reviewer: kept
    assert embed["reason"].tolist() == ["unreadable_image"] and cur.counts["embed_failures"] == 1


# -- report -------------------------------------------------------------------------------------------
def test_report_files_and_escaping(ext_proj, tmp_path):
    _review(ext_proj)
    summary = export_curated(ext_proj, tmp_path / "out", threshold=None)
    html_text = (tmp_path / "out" / "report.html").read_text()
    md_text = (tmp_path / "out" / "report.md").read_text()
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text
    assert "<script>" not in md_text
    plots = sorted(p.rsplit("/", 1)[-1] for p in summary.plots)
    assert plots == ["alignment_histogram.png", "rounds.png"]
    for name in plots:
        assert (tmp_path / "out" / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](plots/{name})" in md_text
    assert html_text.count("src='data:image/png;base64,") == 2  # self-contained
    assert "rejected by reviewer" in html_text and "disagreement" in html_text
    assert "0.900" in html_text and "cv_accuracy_identity" in md_text  # head metrics per round
    assert "| rejected by reviewer | 2 |" in md_text


def test_report_without_ledger(ext_proj, tmp_path):
    summary = export_curated(ext_proj, tmp_path / "out", threshold=None)
    assert not (ext_proj.root / "labels.sqlite").exists()  # exporting does not create a ledger
    assert summary.curated == 0 and summary.left_out == N
    assert "No rounds yet" in (tmp_path / "out" / "report.md").read_text()


# -- image projects -----------------------------------------------------------------------------------
@pytest.fixture
def img_proj(tmp_path):
    """12 PNGs (one 600x300, one with alpha) with vectors written straight into the store."""
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(12):
        size, mode = ((600, 300), "RGB") if i == 0 else ((24, 24), "RGBA" if i == 1 else "RGB")
        Image.new(mode, size, (20 * i, 100, 200, 128)[: len(mode)]).save(tmp_path / "img" / f"{i}.png")
        rows.append({"id": f"p{i}" if i != 3 else "p.3/x", "image": f"img/{i}.png", "caption": f"square {i}"})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "pairs.csv", image_root=tmp_path,
                          progress=False)
    ids = proj.pairs["pair_id"].tolist()
    image, text = _vectors(len(ids), rng)
    proj.store.bind({"kind": "open_clip", "model": "test", "pretrained": None, "weights_sha256": "0" * 64,
                     "dim": D})
    proj.store.write_part(ids, image, text)
    proj.store.compact(ids)
    return proj


def test_batch_thumbnails(img_proj, tmp_path):
    ids = img_proj.pairs["pair_id"].tolist()
    img_proj.ledger.create_round(ids[:4], strategy="margin", params={}, model={})
    out = export_batch(img_proj, tmp_path / "batch" / "r1.csv", thumbnails=True)
    df = pd.read_csv(out, dtype=str)
    assert df["image"].tolist() == [str(tmp_path / "img" / f"{i}.png") for i in range(4)]
    sizes = []
    for rel in df["thumbnail"]:
        with Image.open(out.parent / rel) as im:
            assert im.format == "JPEG" and rel.startswith("r1_thumbs/")
            sizes.append(im.size)
    assert sizes[0] == (256, 128) and sizes[1] == (24, 24)


def test_webdataset_shards(img_proj, tmp_path):
    ids = img_proj.pairs["pair_id"].tolist()
    img_proj.ledger.create_round(ids[:6], strategy="margin", params={}, model={})
    img_proj.ledger.record(ids[0], "reject")
    img_proj.ledger.record(ids[1], "fix", caption="a translucent square")
    for pid in ids[2:6]:
        img_proj.ledger.record(pid, "accept")
    (tmp_path / "wds").mkdir()
    (tmp_path / "wds" / "curated-000009.tar").write_bytes(b"stale")
    summary = export_curated(img_proj, tmp_path / "wds", fmt="webdataset", shard_size=2, threshold=None)
    shards = sorted((tmp_path / "wds").glob("curated-*.tar"))
    assert [str(s) for s in shards] == list(summary.shards) and len(shards) == 3  # 5 samples, 2 per shard
    members: dict[str, bytes] = {}
    for shard in shards:
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            assert len(names) <= 6
            members.update({name: tar.extractfile(name).read() for name in names})
    keys = [sample_key(p) for p in ids[1:6]]
    assert "p.3/x" in ids and sample_key("p.3/x").startswith("id-")  # dots and slashes: hashed key
    assert sorted(members) == sorted(f"{k}.{ext}" for k in keys for ext in ("png", "txt", "json"))
    assert members[f"{keys[0]}.png"] == (tmp_path / "img" / "1.png").read_bytes()  # original bytes
    assert members[f"{keys[0]}.txt"].decode() == "a translucent square"
    meta = json.loads(members[f"{keys[0]}.json"])
    assert meta["pair_id"] == ids[1] and meta["status"] == "fixed" and meta["original_caption"] == "square 1"
    assert Image.open(io.BytesIO(members[f"{keys[2]}.png"])).size == (24, 24)
    dropped = pd.read_csv(summary.dropped_path, dtype=str)
    assert dropped["pair_id"].tolist() == [ids[0]]


# the columns clip-retrieval writes from img2dataset input (its `status` among them)
IMG2DATASET_META = {"url": "http://x/{i}.jpg", "status": "success", "error_message": None,
                    "width": 64, "height": 48, "original_width": 640, "original_height": 480,
                    "exif": "{}", "sha256": "ab{i}"}


@pytest.fixture
def collide_proj(tmp_path):
    rng = np.random.default_rng(0)
    image, text = _vectors(30, rng)
    meta = pd.DataFrame({"key": [f"{i:09d}" for i in range(30)],
                         "caption": [f"=cmd|' /C calc'!A{i}" if i == 3 else f"caption {i}"
                                     for i in range(30)],
                         "image_path": [f"00000/{i:09d}.jpg" for i in range(30)],
                         **{k: [v.replace("{i}", str(i)) if isinstance(v, str) else v for i in range(30)]
                            for k, v in IMG2DATASET_META.items()}})
    write_embedding_folder(tmp_path / "emb", image, text, meta)
    proj = create_project(tmp_path / "proj", embeddings=tmp_path / "emb")
    ids = proj.pairs["pair_id"].tolist()
    proj.ledger.create_round(ids[:10], strategy="margin", params={}, model={})
    for i, pid in enumerate(ids[:10]):
        proj.ledger.record(pid, "reject" if i in (3, 4) else "accept", reviewer="ana")
    return proj


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_source_status_column_survives_every_format(collide_proj, tmp_path, fmt):
    assert collide_proj.config["renamed_columns"] == {"status": "source_status"}
    summary = export_curated(collide_proj, tmp_path / "out", fmt=fmt, threshold=None)
    path = summary.curated_path
    curated = (pd.read_csv(path, dtype={"pair_id": str}) if fmt == "csv" else
               pd.read_json(path, lines=True, dtype={"pair_id": str}) if fmt == "jsonl" else
               pd.read_parquet(path))
    assert curated.columns.is_unique and len(curated) == 8
    assert set(curated["status"]) == {"accepted"} and set(curated["source_status"]) == {"success"}
    assert curated["url"].iloc[0] == "http://x/0.jpg" and int(curated["width"].iloc[0]) == 64
    if fmt != "csv":
        assert pd.api.types.is_integer_dtype(curated["original_width"])


def test_cli_init_says_which_columns_were_renamed(tmp_path, capsys):
    from mmcurate.cli import main

    rng = np.random.default_rng(0)
    image, text = _vectors(3, rng)
    write_embedding_folder(tmp_path / "emb", image, text, pd.DataFrame(
        {"caption": ["a", "b", "c"], "status": ["success"] * 3, "pair_id": ["x", "y", "z"]}))
    assert main(["init", str(tmp_path / "p"), "--embeddings", str(tmp_path / "emb")]) == 0
    assert ("note: source column(s) named like mmcurate's own were renamed: pair_id -> source_pair_id, "
            "status -> source_status") in capsys.readouterr().out


def test_integer_csv_extras_stay_integers_and_jsonl_keeps_full_precision(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "img" / "a.png")
    (tmp_path / "p.csv").write_text("id,image,caption,width,zip,blank\n"
                                    "a,img/a.png,one,640,007,\nb,img/a.png,two,-3,010,5\n")
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "p.csv", progress=False)
    ids = proj.pairs["pair_id"].tolist()
    p = [0.123456789012345678, 0.987654321098765432]
    scores = pd.DataFrame({"pair_id": ids, "p_aligned": p})
    for fmt in ("jsonl", "parquet"):
        out = export_curated(proj, tmp_path / fmt, fmt=fmt, threshold=0.0, strategy_scores=scores)
        back = (pd.read_parquet(out.curated_path) if fmt == "parquet" else
                pd.DataFrame([json.loads(line) for line in open(out.curated_path)]))
        assert back["width"].tolist() == [640, -3]
        assert back["zip"].tolist() == ["007", "010"]  # leading zeros: text, as given
        assert back["blank"].iloc[1] == 5 and pd.isna(back["blank"].iloc[0])
        assert back["p_aligned"].tolist() == p  # exact, not rounded to 10 digits


def test_spreadsheet_files_hold_no_formulas_and_read_back(collide_proj, tmp_path):
    """CSV files a person opens (batch file, FiftyOne CSV, dropped.csv) never start a cell with a
    formula character; mmcurate's own readers undo the quote."""
    from mmcurate.review.interchange import export_fiftyone

    ids = collide_proj.pairs["pair_id"].tolist()
    evil = "=cmd|' /C calc'!A3"
    batch = pd.read_csv(export_batch(collide_proj, tmp_path / "b.csv"), dtype=str, keep_default_na=False)
    assert batch.loc[batch["pair_id"] == ids[3], "caption"].item() == "'" + evil
    with pytest.raises(ValueError, match="FiftyOne shows one image per pair, but 10 pair"):
        export_fiftyone(collide_proj, tmp_path / "fo")  # no images here: FiftyOne could not load it
    (tmp_path / "fo_src" / "img").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "fo_src" / "img" / "a.png")
    pd.DataFrame({"id": ["e"], "image": ["img/a.png"], "caption": [evil]}).to_csv(
        tmp_path / "fo_src" / "p.csv", index=False)
    fo_proj = create_project(tmp_path / "fo_proj", pairs=tmp_path / "fo_src" / "p.csv", progress=False)
    fo_proj.ledger.create_round(["e"], strategy="margin", params={}, model={})
    fo = pd.read_csv(export_fiftyone(fo_proj, tmp_path / "fo"), dtype=str, keep_default_na=False)
    assert fo.loc[fo["pair_id"] == "e", "caption"].item() == "'" + evil
    out = export_curated(collide_proj, tmp_path / "out", fmt="csv", threshold=None)
    dropped = pd.read_csv(out.dropped_path, dtype=str, keep_default_na=False)
    assert dropped.loc[dropped["pair_id"] == ids[3], "caption"].item() == "'" + evil
    curated = pd.read_csv(out.curated_path, dtype=str)
    assert not curated["caption"].str.startswith("'").any()  # training data is left as it is
    batch.loc[batch["pair_id"] == ids[3], ["decision", "reviewer"]] = ["fix", "bo"]
    batch.to_csv(tmp_path / "b.csv", index=False)
    collide_proj.ledger.import_decisions(tmp_path / "b.csv", known_pair_ids=set(ids))
    assert collide_proj.ledger.decisions().set_index("pair_id").loc[ids[3], "caption"] == evil
