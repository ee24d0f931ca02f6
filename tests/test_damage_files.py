"""Fault tests (issue 23): vectors damaged on disk, `mmcurate check` / `backup`, a ledger whose
decisions sit in the write-ahead log, and damaged or surprising files that must be named."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project, open_project


@pytest.fixture
def embedded(tmp_path, png_pairs, micro_clip_dir) -> Path:
    """An image project of 12 pairs embedded with the micro CLIP."""
    proj = create_project(tmp_path / "proj", pairs=png_pairs, progress=False,
                          model=ModelSpec(f"local-dir:{micro_clip_dir}", None))
    proj.embed(progress=False, num_workers=0)
    return proj.root


@pytest.fixture
def external(tmp_path) -> Path:
    """A project of imported vectors (400 pairs, D=8: 6.4 KB per array) with one round decided
    (so that `select` goes on to read the vectors)."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 8)).astype(np.float32)
    meta = pd.DataFrame({"key": [f"e{i}" for i in range(400)], "caption": [f"c{i}" for i in range(400)]})
    proj = create_project(tmp_path / "ext", embeddings=write_embedding_folder(
        tmp_path / "emb", vectors, rng.normal(size=(400, 8)).astype(np.float32), meta))
    round_id = proj.ledger.create_round([f"e{i}" for i in range(4)], strategy="test", params={}, model={})
    proj.ledger.record_many([{"pair_id": f"e{i}", "decision": "accept"} for i in range(4)], source="test",
                            round_id=round_id)
    proj.ledger.close()
    return proj.root


def _zero_block(path: Path, *, keep_mtime: bool = False) -> None:
    """Zero 4 KiB inside ``path`` (after the .npy header), as a bad disk block would."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(256)
        fh.write(b"\0" * 4096)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- 6. vectors damaged on disk ------------------------------------------------------------------
@pytest.mark.parametrize("command", [["rank"], ["select", "--budget", "2"], ["export", "--out", "X"]])
def test_zeroed_block_of_vectors_is_named_by_every_reader(external, command, capsys, one_line_error):
    image = external / "embeddings" / "image.npy"
    _zero_block(image)
    argv = [command[0], str(external), *[str(external.parent / "out") if a == "X" else a
                                         for a in command[1:]]]
    assert main(argv) == 2
    err = one_line_error()
    assert f"{image} is damaged: its content (sha256" in err and "restore" in err
    assert not (external.parent / "out").exists()


def test_check_finds_damage_that_kept_the_modification_time(external, capsys):
    assert main(["check", str(external)]) == 0
    assert "checksums verified: ids.npy, image.npy, text.npy" in capsys.readouterr().out
    text = external / "embeddings" / "text.npy"
    _zero_block(text, keep_mtime=True)
    assert main(["rank", str(external)]) == 0  # the cheap check at open trusts size and time
    capsys.readouterr()
    assert main(["check", str(external)]) == 2
    captured = capsys.readouterr()
    assert f"DAMAGED  {text} is damaged" in captured.out
    assert "Traceback" not in captured.err and f"{external} has 1 problem(s)" in captured.err


def _kill_at_rename(monkeypatch, n_done: int) -> None:
    """Kill (KeyboardInterrupt) a compaction after ``n_done`` of its arrays were moved into place."""
    from mmcurate import _fileio

    real_replace, done = os.replace, []

    def replace(src, dst):
        if str(dst).endswith(".npy") and Path(dst).parent.name == "embeddings":
            if len(done) == n_done:
                raise KeyboardInterrupt
            done.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(_fileio.os, "replace", replace)


def test_a_compaction_killed_between_its_renames_is_named_not_misread(embedded, monkeypatch, capsys,
                                                                      one_line_error):
    proj = open_project(embedded)
    before = np.asarray(proj.image_embeddings(), np.float32)
    _kill_at_rename(monkeypatch, 1)  # ids.npy in the new row order, image and text in the old
    with pytest.raises(KeyboardInterrupt):
        proj.store.compact(proj.pairs["pair_id"].tolist()[::-1])
    monkeypatch.undo()
    assert main(["rank", str(embedded)]) == 2
    err = one_line_error()
    assert "come from different writes (a compaction was interrupted)" in err
    shutil.rmtree(embedded / "embeddings")  # the fix the message gives
    assert main(["embed", str(embedded), "--workers", "0"]) == 0
    np.testing.assert_allclose(np.asarray(open_project(embedded).image_embeddings(), np.float32), before,
                               atol=1e-3)


def test_a_write_killed_after_recording_its_checksums_is_not_damage(embedded, monkeypatch):
    proj = open_project(embedded)
    _kill_at_rename(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        proj.store.compact(proj.pairs["pair_id"].tolist()[::-1])  # new checksums recorded, no rename
    monkeypatch.undo()
    record = json.loads((embedded / "embeddings" / "checksums.json").read_text())
    assert all(len(entries) == 2 for entries in record.values())  # old and new accepted
    assert main(["check", str(embedded)]) == 0
    assert len(open_project(embedded).rank("p_misaligned")) == 12


@pytest.mark.parametrize(("damage", "found"), [
    ("zero_bytes", "is empty (0 bytes)"),
    ("truncated", "is truncated"),
    ("fortran", "holds a Fortran-ordered array"),
    ("object", "holds dtype object, not numbers"),
])
def test_a_damaged_stored_array_names_the_file(external, damage, found, capsys, one_line_error):
    image = external / "embeddings" / "image.npy"
    x = np.load(image)
    if damage == "zero_bytes":
        image.write_bytes(b"")
    elif damage == "truncated":
        image.write_bytes(image.read_bytes()[:-100])
    elif damage == "fortran":
        np.save(image, np.asfortranarray(x))
    else:
        np.save(image, x.astype(object), allow_pickle=True)
    assert main(["rank", str(external)]) == 2
    err = one_line_error()
    assert f"{image} {found}" in err and "restore" in err


@pytest.mark.parametrize("lost", ["ids.npy", "image.npy"])
def test_a_lost_array_of_imported_vectors_is_named_not_a_circle(external, lost, capsys, one_line_error):
    (external / "embeddings" / lost).unlink()
    for command in (["rank", str(external)], ["select", str(external), "--budget", "2"]):
        assert main(command) == 2
        err = one_line_error()
        assert f"{external / 'embeddings' / lost} is missing" in err
        assert "run `mmcurate embed" not in err  # embed cannot make imported vectors
        assert "restore" in err


def test_a_lost_ids_file_of_an_image_project_is_embedded_again(embedded, capsys, one_line_error):
    before = np.asarray(open_project(embedded).text_embeddings(), np.float32)
    (embedded / "embeddings" / "ids.npy").unlink()
    assert main(["rank", str(embedded)]) == 2
    assert "ids.npy is missing" in one_line_error()
    assert main(["embed", str(embedded), "--workers", "0"]) == 0
    np.testing.assert_allclose(np.asarray(open_project(embedded).text_embeddings(), np.float32), before,
                               atol=1e-3)  # never zero vectors


# -- 13. JSON damage in the state files -----------------------------------------------------------
@pytest.mark.parametrize(("name", "text", "found"), [
    ("state.json", "", "not readable JSON"),
    ("state.json", "[1]", "expected a JSON object, found list"),
    ("heads/model-0001.json", "{", "not readable JSON"),
    ("heads/model-0001.json", "{}", "no 'calibrator' object"),
])
def test_json_damage_in_state_and_model_files_names_the_file(external, name, text, found, capsys,
                                                             one_line_error):
    from mmcurate.labels import Ledger

    if name.startswith("heads/"):
        (external / "heads").mkdir()
        with Ledger(external / "labels.sqlite") as ledger:
            ledger.record_head(checkpoint="", n_labels=4, metrics={"model": {"accepted": True}})
    (external / name).write_text(text)
    assert main(["status", str(external)]) == 2
    err = one_line_error()
    assert f"{external / name} (" in err and "is damaged" in err and found in err, err


# -- 7. the ledger's write-ahead log and backups --------------------------------------------------
def test_every_write_is_checkpointed_so_the_ledger_file_alone_holds_it(external, tmp_path):
    from mmcurate.labels import Ledger

    ledger = Ledger(external / "labels.sqlite")  # held open, as a running review page holds it
    before = len(ledger.decisions(history=True))
    for i in range(4):
        ledger.record(f"e{i}", "reject", round_id=1)  # the fixture accepted them: 4 new rows
    copy = tmp_path / "copy.sqlite"
    shutil.copy(external / "labels.sqlite", copy)  # the main file alone, no -wal beside it
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == before + 4
    ledger.close()
    assert not (external / "labels.sqlite-wal").exists() or \
        (external / "labels.sqlite-wal").stat().st_size == 0


def test_backup_copies_decisions_still_in_the_write_ahead_log(external, tmp_path, capsys, one_line_error):
    from mmcurate.labels import Ledger

    ledger = Ledger(external / "labels.sqlite")
    ledger.checkpoint = lambda mode="PASSIVE": None  # decisions stay in labels.sqlite-wal
    for i in range(4):
        ledger.record(f"e{i}", "accept", round_id=1)
    assert (external / "labels.sqlite-wal").stat().st_size > 0
    dest = tmp_path / "backups" / "monday"
    assert main(["backup", str(external), str(dest)]) == 0
    assert "backed up" in capsys.readouterr().out
    assert not (dest / "labels.sqlite-wal").exists()
    assert len(open_project(dest).ledger.decisions()) == 4
    assert main(["check", str(dest)]) == 0
    assert main(["backup", str(external), str(dest)]) == 2  # never over an existing folder
    assert "already exists" in one_line_error()
    ledger.close()


def test_check_names_a_damaged_ledger(external, capsys):
    ledger = external / "labels.sqlite"
    data = bytearray(ledger.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the first page after SQLite's header, overwritten
    ledger.write_bytes(bytes(data))
    assert main(["check", str(external)]) == 2
    out = capsys.readouterr().out
    assert f"DAMAGED  {ledger} is damaged: SQLite integrity check says" in out


# -- 11, 12, 13. surprising inputs ---------------------------------------------------------------
class _Trap:
    """Unpickling it would create ``marker``: proof that code in a weights file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickled_weights_file_is_refused_without_running_it(embedded, micro_clip_dir, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(micro_clip_dir / "open_clip_config.json", folder)
    marker = tmp_path / "code-ran"
    state = load_file(str(micro_clip_dir / "open_clip_model.safetensors"))
    torch.save({"state_dict": state, "extra": _Trap(marker)}, folder / "open_clip_pytorch_model.bin")
    assert main(["embed", str(embedded), "--model", f"local-dir:{folder}", "--reembed",
                 "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "weights_only=False" not in err
    assert f"{folder / 'open_clip_pytorch_model.bin'} holds pickled Python objects besides tensors" in err
    assert not marker.exists()


def test_a_failed_init_leaves_no_folder_behind(tmp_path, capsys, one_line_error):
    folder = tmp_path / "emb"
    for sub in ("img_emb", "text_emb", "metadata"):
        (folder / sub).mkdir(parents=True)
    np.save(folder / "img_emb" / "img_emb_0.npy", np.ones((2, 4), np.float32).astype(object),
            allow_pickle=True)
    np.save(folder / "text_emb" / "text_emb_0.npy", np.ones((2, 4), np.float32))
    pd.DataFrame({"caption": ["a", "b"]}).to_parquet(folder / "metadata" / "metadata_0.parquet")
    assert main(["init", str(tmp_path / "new"), "--embeddings", str(folder)]) == 2
    assert "img_emb_0.npy holds dtype object" in one_line_error()
    assert not (tmp_path / "new").exists()


def test_captions_over_128_kib_round_trip_through_the_batch_csv(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    from PIL import Image

    long = "a long caption " * 12_000  # 180 000 characters
    rows = []
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 80, 0, 0)).save(tmp_path / "img" / f"{i}.png")
        rows.append({"id": f"p{i}", "image": f"img/{i}.png", "caption": f"{i} {long}"})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "pairs.csv", progress=False)
    assert (proj.pairs["caption"].str.len() > 128 * 1024).all()
    proj.ledger.create_round(["p0", "p1", "p2"], strategy="test", params={}, model={})
    proj.ledger.close()
    out = tmp_path / "batch.csv"
    assert main(["batch", "export", str(proj.root), "--out", str(out)]) == 0
    batch = pd.read_csv(out, dtype=str, keep_default_na=False)
    batch["decision"] = ["accept", "reject", "fix"]
    batch.loc[2, "caption"] = "fixed " + long
    batch.to_csv(out, index=False)
    capsys.readouterr()
    assert main(["label", str(proj.root), "--import", str(out)]) == 0, capsys.readouterr().err
    latest = open_project(proj.root).ledger.decisions().set_index("pair_id")
    assert latest["decision"].to_dict() == {"p0": "accept", "p1": "reject", "p2": "fix"}
    assert latest.loc["p2", "caption"] == ("fixed " + long).strip()


def test_a_copy_that_changed_file_times_is_verified_then_re_recorded_by_check(external, tmp_path,
                                                                              capsys):
    copy = tmp_path / "copied"
    shutil.copytree(external, copy, copy_function=shutil.copy)  # as `cp -r`: new modification times
    emb = copy / "embeddings"
    original = external / "embeddings" / "text.npy"
    os.utime(emb / "text.npy", ns=(original.stat().st_atime_ns, original.stat().st_mtime_ns))
    assert main(["rank", str(copy)]) == 0  # hashed: same content, so sound
    assert main(["check", str(copy)]) == 0
    capsys.readouterr()
    record = json.loads((emb / "checksums.json").read_text())
    for name in ("ids.npy", "image.npy", "text.npy"):
        (entry,) = record[name]
        assert (entry["size"], entry["mtime_ns"]) == ((emb / name).stat().st_size,
                                                     (emb / name).stat().st_mtime_ns)
    assert len({entry["write"] for (entry,) in record.values()}) == 1  # one write, as copied
    assert main(["rank", str(copy)]) == 0
