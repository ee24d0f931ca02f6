"""Fault tests: a damaged project says so (issue 23). A ledger that is gone while heads/ holds
models, JSON damage in the project's files, and temporary files a killed ``train`` left behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import create_project


@pytest.fixture
def labelled(tmp_path) -> Path:
    """Imported embeddings, one decided round and a model file in heads/ (as `train` leaves it)."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    meta = pd.DataFrame({"key": [f"e{i}" for i in range(20)], "caption": [f"c{i}" for i in range(20)]})
    proj = create_project(tmp_path / "proj", embeddings=write_embedding_folder(
        tmp_path / "emb", vectors, vectors, meta))
    proj.ledger.create_round([f"e{i}" for i in range(6)], strategy="test", params={}, model={})
    for i in range(6):
        proj.ledger.record(f"e{i}", "accept" if i % 2 else "reject")
    proj.ledger.close()
    (proj.root / "heads").mkdir()
    (proj.root / "heads" / "head-0001.safetensors").write_bytes(b"weights")
    return proj.root


@pytest.mark.parametrize("damage", ["missing", "zero_bytes"])
@pytest.mark.parametrize("command", [["status"], ["select", "--budget", "2"], ["export", "--out", "X"]])
def test_a_lost_ledger_beside_trained_heads_refuses_naming_the_file(labelled, damage, command, capsys,
                                                                    one_line_error):
    ledger = labelled / "labels.sqlite"
    for side in ("labels.sqlite-wal", "labels.sqlite-shm"):
        (labelled / side).unlink(missing_ok=True)
    if damage == "missing":
        ledger.unlink()
    else:
        ledger.write_bytes(b"")
    argv = [command[0], str(labelled), *[str(labelled.parent / "out") if a == "X" else a
                                          for a in command[1:]]]
    assert main(argv) == 2
    err = one_line_error()
    state = "is missing" if damage == "missing" else "is empty (0 bytes)"
    assert f"{ledger} {state}, but {labelled / 'heads'} holds 1 model file(s)" in err
    assert not (labelled.parent / "out").exists()
    assert not ledger.exists() or ledger.stat().st_size == 0  # nothing was created in its place


def test_a_lost_ledger_without_heads_is_a_fresh_project(labelled, capsys):
    (labelled / "labels.sqlite").unlink()
    for side in ("labels.sqlite-wal", "labels.sqlite-shm"):
        (labelled / side).unlink(missing_ok=True)
    os.replace(labelled / "heads", labelled.parent / "heads.aside")  # the fix the message gives
    assert main(["status", str(labelled)]) == 0


@pytest.mark.parametrize(("name", "text", "found"), [
    ("project.json", "{", "not readable JSON"),
    ("project.json", "[]", "expected a JSON object, found list"),
    ("project.json", "", "not readable JSON"),
    ("embeddings/manifest.json", '{"kind": ', "not readable JSON"),
    ("embeddings/manifest.json", "null", "expected a JSON object, found NoneType"),
])
def test_json_damage_names_the_file(labelled, name, text, found, capsys, one_line_error):
    (labelled / name).write_text(text)
    assert main(["status", str(labelled)]) == 2
    err = one_line_error()
    assert f"{labelled / name} (" in err and f"is damaged: {found}" in err, err


def test_temporary_files_of_a_killed_train_are_removed_on_next_open(labelled, capsys):
    stale = labelled / "heads" / ".head-0002.safetensors.x1y2.tmp"
    stale.write_bytes(b"half a model")
    assert main(["status", str(labelled)]) == 0
    assert not stale.exists()
    assert (labelled / "heads" / "head-0001.safetensors").exists()


def test_temporary_files_stay_while_a_writer_holds_the_lock(labelled):
    from mmcurate.project import open_project
    from mmcurate.project.lock import project_lock

    live = labelled / "heads" / ".head-0002.safetensors.x1y2.tmp"
    live.write_bytes(b"being written")
    with project_lock(labelled):
        open_project(labelled)
    assert live.exists()


def _arrivals(tmp_path, name: str, start: int, n: int) -> Path:
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(n, 8)).astype(np.float32)
    meta = pd.DataFrame({"key": [f"a{i}" for i in range(start, start + n)],
                         "caption": [f"arrival {i}" for i in range(start, start + n)]})
    return write_embedding_folder(tmp_path / name, vectors, vectors + 0.1, meta)


def _add_killed_after_commit(proj, folder, monkeypatch) -> None:
    """`add` dies after pairs.parquet is committed, before its review round is written."""
    from mmcurate.labels import Ledger
    from mmcurate.stream import add_pairs

    def killed(*args, **kwargs):
        raise OSError("killed (injected)")

    monkeypatch.setattr(Ledger, "create_round", killed)
    with pytest.raises(OSError, match="injected"):
        add_pairs(proj, folder, rate=0.2)
    monkeypatch.undo()


def test_any_next_command_finishes_an_add_killed_after_its_commit(labelled, tmp_path, monkeypatch,
                                                                  capsys):
    from mmcurate.project import open_project
    from mmcurate.stream import add_pairs, stream_state

    _add_killed_after_commit(open_project(labelled), _arrivals(tmp_path, "b1", 100, 40), monkeypatch)
    # the add's round waits for review: select says so and opens one anyway when asked
    assert main(["select", str(labelled), "--budget", "3", "--allow-undecided"]) == 0
    assert "finished an interrupted add: batch 1 (40 pairs" in capsys.readouterr().err
    proj = open_project(labelled)
    assert stream_state(proj)["n_batches"] == 1
    stream_rounds = [p for p in proj.ledger.rounds()["params"] if p.get("mode") == "stream"]
    assert len(stream_rounds) == 1  # the add's own round, written before select chose its batch
    later = add_pairs(proj, _arrivals(tmp_path, "b2", 200, 20), rate=0.2)  # later adds go on
    assert later.batch_id == 2


def test_an_add_finished_after_a_select_queued_its_pairs_does_not_fail_for_good(labelled, tmp_path,
                                                                                monkeypatch):
    from mmcurate.project import open_project
    from mmcurate.stream import add_pairs, recover_stream, stream_state

    _add_killed_after_commit(open_project(labelled), _arrivals(tmp_path, "b1", 100, 40), monkeypatch)
    proj = open_project(labelled)  # a library user selects without settling the add first
    proj.ledger.create_round([f"a{i}" for i in range(100, 140)], strategy="test", params={}, model={})
    finished = recover_stream(proj)  # every arrival is queued already: no second round for them
    assert finished is not None and finished.batch_id == 1 and finished.round is None
    assert stream_state(proj)["n_batches"] == 1
    assert add_pairs(proj, _arrivals(tmp_path, "b2", 200, 20), rate=0.2).batch_id == 2
