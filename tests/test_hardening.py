"""Fault tests of the hardening issue: the project lock over ``init --force``, an image that becomes
unreadable after validation, non-finite scores, a locked database and OS errors in the CLI, file
modes, the quiet review server, FiftyOne tags and the one image-reference path rule."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcurate import labels
from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project, open_project
from mmcurate.rank import compute_ranking

_HOLD_LOCK = """
import fcntl, sys
with open(sys.argv[1] + "/.lock", "a+") as fh:  # what a running embed holds
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.readline()
"""


def _external(tmp_path: Path, n: int = 20):
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    meta = pd.DataFrame({"key": [f"e{i}" for i in range(n)], "caption": [f"c{i}" for i in range(n)]})
    return write_embedding_folder(tmp_path / "emb", img.astype(np.float32), txt.astype(np.float32), meta)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_init_force_refuses_while_another_process_holds_the_lock(tmp_path, png_pairs, capsys):
    proj = create_project(tmp_path / "p", pairs=png_pairs, progress=False)
    before = _files(proj.root)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(proj.root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(["init", str(proj.root), "--pairs", str(png_pairs), "--force"])
    finally:
        holder.communicate("\n", timeout=30)
    err = capsys.readouterr().err
    assert code == 2 and "another mmcurate process is writing" in err and "Traceback" not in err
    assert _files(proj.root) == before  # nothing moved aside, nothing written
    assert not [p for p in proj.root.iterdir() if p.name.startswith("replaced-")]
    assert main(["init", str(proj.root), "--pairs", str(png_pairs), "--force"]) == 0  # free again


def test_image_unreadable_after_init_is_set_aside_not_blocking(tmp_path, png_pairs, micro_clip_dir, capsys):
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)
    (png_pairs.parent / "img" / "3.png").write_bytes(b"gone bad after validation")
    assert main(["embed", str(proj.root), "--workers", "0", "--no-progress"]) == 0
    proj = open_project(proj.root)
    assert "p3" not in set(proj.pairs["pair_id"]) and len(proj.pairs) == 11
    rejected = proj.rejects.set_index("pair_id").loc["p3"]
    assert rejected["reason"] == "unreadable_image" and pd.isna(rejected["row"])
    assert proj.status()["rejected"] == 1
    root = str(proj.root)
    assert main(["rank", root, "--strategy", "margin"]) == 0
    assert main(["select", root, "--budget", "6", "--strategy", "margin"]) == 0
    batch = open_project(root).ledger.batch(1)
    decisions = pd.DataFrame({"pair_id": batch["pair_id"],
                              "decision": ["accept", "reject"] * (len(batch) // 2)})
    decisions.to_csv(tmp_path / "d.csv", index=False)
    assert main(["label", root, "--import", str(tmp_path / "d.csv")]) == 0
    assert main(["train", root, "--epochs", "2"]) == 0
    assert main(["export", root, "--out", str(tmp_path / "out"), "--reviewed-only"]) == 0
    dropped = pd.read_csv(tmp_path / "out" / "dropped.csv").set_index("pair_id")
    assert dropped.loc["p3", "stage"] == "embed" and dropped.loc["p3", "reason"] == "unreadable_image"
    assert "Traceback" not in capsys.readouterr().err


def test_non_finite_vectors_raise_naming_rows_instead_of_scoring_zero():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(40, 8))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt = img.copy()
    txt[7] = np.nan
    with pytest.raises(ValueError, match=r"non-finite scores .*rows \[7"):
        compute_ranking(img, txt, strategies=["clip_score"])


def test_locked_database_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    proj = create_project(tmp_path / "p", embeddings=_external(tmp_path))
    proj.ledger.create_round(["e0"], strategy="test", params={}, model={})
    proj.ledger.close()
    (tmp_path / "d.csv").write_text("pair_id,decision\ne0,accept\n")
    monkeypatch.setattr("mmcurate.labels.connection.BUSY_TIMEOUT_S", 0.1)  # the real wait is a minute
    blocker = sqlite3.connect(proj.root / "labels.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        code = main(["label", str(proj.root), "--import", str(tmp_path / "d.csv")])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    err = capsys.readouterr().err
    assert code == 2 and "is being written by another process" in err and "Traceback" not in err
    assert open_project(proj.root).ledger.decisions().empty


def test_os_error_on_output_is_a_message_not_a_traceback(tmp_path, capsys):
    proj = create_project(tmp_path / "p", embeddings=_external(tmp_path))
    (tmp_path / "file").write_text("a file, not a folder")
    code = main(["rank", str(proj.root), "--strategy", "margin", "--out", str(tmp_path / "file" / "r.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "mmcurate: error: File exists" in err and "Traceback" not in err


def test_outputs_get_the_mode_the_umask_gives(tmp_path, png_pairs):
    old = os.umask(0o022)
    try:
        proj = create_project(tmp_path / "p", pairs=png_pairs, progress=False)
    finally:
        os.umask(old)
    for name in ("pairs.parquet", "rejects.csv", "project.json"):
        assert stat.S_IMODE((proj.root / name).stat().st_mode) == 0o644, name


def test_review_server_does_not_log_requests_with_the_token(tmp_path, caplog):
    from mmcurate.review.app import create_app, make_review_server

    pairs = pd.DataFrame({"pair_id": ["a"], "image": [""], "caption": ["x"]})
    ledger_path = tmp_path / "labels.sqlite"
    with labels.Ledger(ledger_path) as led:
        led.create_round(["a"], strategy="test", params={}, model={})
    app = create_app(pairs=pairs, ledger_path=ledger_path, round_id=1, resolve_image=lambda pid: None,
                     token="secret-token")
    server = make_review_server(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            url = f"http://127.0.0.1:{server.server_port}/?token=secret-token"
            assert urllib.request.urlopen(url, timeout=10).status == 200
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert "secret-token" not in caplog.text


@pytest.mark.parametrize("tags", ['["accept"]', "['accept']", "accept"])
def test_fiftyone_csv_tags_written_as_a_list_import(tmp_path, tags, capsys):
    proj = create_project(tmp_path / "p", embeddings=_external(tmp_path))
    proj.ledger.create_round(["e0"], strategy="test", params={}, model={})
    proj.ledger.close()
    pd.DataFrame({"pair_id": ["e0"], "tags": [tags]}).to_csv(tmp_path / "labels.csv", index=False)
    argv = ["label", str(proj.root), "--import", str(tmp_path / "labels.csv"), "--from", "fiftyone"]
    assert main(argv) == 0
    assert open_project(proj.root).ledger.decisions()["decision"].tolist() == ["accept"]


def test_one_path_rule_for_every_reader_of_image_references(tmp_path):
    from mmcurate.data.images import ImageRefError, read_image_bytes
    from mmcurate.export.webdataset import _image_reader

    (tmp_path / "root").mkdir()
    (tmp_path / "outside.tar").write_bytes(b"")
    for ref in ("../outside.tar::secret.png", str(tmp_path / "outside.tar") + "::secret.png"):
        with pytest.raises(ImageRefError, match="outside the image root"):
            read_image_bytes(ref, image_root=tmp_path / "root")
        with pytest.raises(OSError, match="outside the image root"):
            _image_reader(tmp_path / "root")(ref)


_SMALL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from mmcurate.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_write_that_fails_midway_is_a_message_and_leaves_no_project(tmp_path, png_pairs):
    rows = ["id,image,caption"] + [f"q{i},img/{i % 12}.png,{'a long caption ' * 20}{i}" for i in range(200)]
    (png_pairs.parent / "big.csv").write_text("\n".join(rows) + "\n")
    out = subprocess.run([sys.executable, "-c", _SMALL_DISK, "init", str(tmp_path / "p"), "--pairs",
                          str(png_pairs.parent / "big.csv"), "--no-check-images"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 2, out.stderr
    assert "mmcurate: error:" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "p").exists()  # the folder this init made is removed: no project, no .tmp


def test_a_model_giving_non_finite_vectors_sets_its_pairs_aside(tmp_path, png_pairs, micro_clip_dir):
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "nan_clip"
    shutil.copytree(micro_clip_dir, broken)
    weights = load_file(broken / "open_clip_model.safetensors")
    weights = {k: (np.full_like(v, np.nan) if k == "text_projection" else v) for k, v in weights.items()}
    save_file(weights, broken / "open_clip_model.safetensors")
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=ModelSpec(f"local-dir:{broken}", None),
                          progress=False)
    report = proj.embed(progress=False, num_workers=0)
    assert report.n_failed == 12 and report.n_embedded == 0
    proj = open_project(proj.root)
    assert proj.pairs.empty
    assert sorted(proj.rejects["pair_id"]) == sorted(f"p{i}" for i in range(12))
    assert set(proj.rejects["reason"]) == {"non_finite_vector"}
