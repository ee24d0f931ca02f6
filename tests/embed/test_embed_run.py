"""Embedding a project: end to end, resume after a kill, refusal on model change, bad images."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmcurate.cli import main
from mmcurate.embed.model import ModelSpec
from mmcurate.exceptions import ModelMismatchError
from mmcurate.project import create_project, open_project


def _many_pngs(folder: Path, n: int) -> Path:
    (folder / "img").mkdir(parents=True)
    rows = ["id,image,caption"]
    rng = np.random.default_rng(1)
    for i in range(n):
        arr = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / "img" / f"{i}.png")
        rows.append(f"q{i},img/{i}.png,random noise picture number {i}")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder / "pairs.csv"


def test_embed_end_to_end_and_rerun(micro_clip_dir, png_pairs, tmp_path, capsys):
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)
    report = proj.embed(progress=False, num_workers=0)
    assert report.n_embedded == 12 and report.n_failed == 0
    img, txt = proj.image_embeddings(), proj.text_embeddings()
    assert img.shape == txt.shape == (12, 32) and img.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1, atol=3e-3)
    again = proj.embed(progress=False, num_workers=0)
    assert again.n_embedded == 0 and again.n_already == 12
    assert main(["status", str(proj.root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["pairs"] == 12 and status["embedded"] == 12 and status["rejected"] == 0
    assert len(status["model"]["weights_sha256"]) == 64


def test_embed_restores_the_callers_torch_threads(micro_clip_dir, png_pairs, tmp_path, monkeypatch):
    """Every core while the model runs (the cores the workers leave when workers decode), then the
    caller's own thread count again (a library call leaves no process-wide setting changed)."""
    import torch

    from mmcurate.embed import run

    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)
    during = []
    real = run._embed_batch
    monkeypatch.setattr(run, "_embed_batch", lambda *a: (during.append(torch.get_num_threads()), real(*a)))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert proj.embed(progress=False, num_workers=0).n_embedded == 12
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert during and set(during) == {os.cpu_count() or 1}
    during.clear()  # with decoding workers, the cores they leave (at least one)
    torch.set_num_threads(1)
    try:
        other = create_project(tmp_path / "q", pairs=png_pairs, model=spec, progress=False)
        assert other.embed(progress=False, num_workers=2).n_embedded == 12
    finally:
        torch.set_num_threads(before)
    assert during and set(during) == {max(1, (os.cpu_count() or 1) - 2)}


def test_weights_sha256_is_known_until_the_weights_file_changes(micro_clip_dir, png_pairs, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(micro_clip_dir, model)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=ModelSpec(f"local-dir:{model}", None),
                          progress=False)
    assert proj.weights_sha256 is None  # nothing embedded yet: the caller hashes the file
    proj.embed(progress=False, num_workers=0)
    manifest = proj.store.manifest()
    assert proj.weights_sha256 == manifest["weights_sha256"] and len(proj.weights_sha256) == 64
    weights = Path(manifest["weights_path"])
    os.utime(weights, (weights.stat().st_atime, weights.stat().st_mtime + 10))  # touched: hash again
    assert proj.weights_sha256 is None


def test_worker_pipeline_matches_inline(micro_clip_dir, png_pairs, tmp_path):
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    a = create_project(tmp_path / "a", pairs=png_pairs, model=spec, progress=False)
    b = create_project(tmp_path / "b", pairs=png_pairs, model=spec, progress=False)
    a.embed(progress=False, num_workers=0, batch_size=5)
    b.embed(progress=False, num_workers=2, batch_size=3)
    np.testing.assert_allclose(a.image_embeddings().astype(np.float32),
                               b.image_embeddings().astype(np.float32), atol=2e-3)


def test_model_change_is_refused_then_reembeds(micro_clip_dir, png_pairs, tmp_path):
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other_model"
    shutil.copytree(micro_clip_dir, other)
    weights = load_file(str(other / "open_clip_model.safetensors"))
    weights = {k: v * 1.01 if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(other / "open_clip_model.safetensors"))
    proj = create_project(tmp_path / "p", pairs=png_pairs,
                          model=ModelSpec(f"local-dir:{micro_clip_dir}", None), progress=False)
    proj.embed(progress=False, num_workers=0)
    before = np.array(proj.image_embeddings())
    proj.config["model"] = {"model": f"local-dir:{other}", "pretrained": None}
    proj.save_config()
    proj = open_project(proj.root)
    with pytest.raises(ModelMismatchError, match="--reembed"):
        proj.embed(progress=False, num_workers=0)
    np.testing.assert_array_equal(np.array(proj.image_embeddings()), before)  # nothing lost
    report = proj.embed(progress=False, num_workers=0, reembed=True)
    assert report.n_embedded == 12


def test_image_deleted_after_init_is_reported(micro_clip_dir, png_pairs, tmp_path):
    proj = create_project(tmp_path / "p", pairs=png_pairs,
                          model=ModelSpec(f"local-dir:{micro_clip_dir}", None), progress=False)
    (png_pairs.parent / "img" / "3.png").unlink()
    report = proj.embed(progress=False, num_workers=0)
    assert report.n_embedded == 11 and report.n_failed == 1
    assert (proj.root / "embed_failures.csv").read_text().count("p3") == 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_embed_resumes_without_redoing_work(micro_clip_dir, tmp_path, sig):
    csv = _many_pngs(tmp_path / "data", 400)
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=csv, model=spec, progress=False)
    cmd = [sys.executable, "-m", "mmcurate.cli", "embed", str(proj.root), "--batch-size", "2",
           "--workers", "0", "--no-progress"]
    # image 40 becomes a named pipe: the job blocks there, mid-run, however fast or loaded the
    # machine is (polling for parts alone let a starved test see the job finish before its kill)
    blocker = csv.parent / "img" / "40.png"
    real = blocker.read_bytes()
    blocker.unlink()
    os.mkfifo(blocker)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts = proj.root / "embeddings" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("part-*.npz"))) < 5 and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    # until the job has exited, let any reader that reaches the pipe go (it reads an empty file): a
    # decode started before the interrupt may open it after the kill (no reader yet: ENXIO)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            os.close(os.open(blocker, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        time.sleep(0.02)
    _, err = proc.communicate(timeout=60)
    blocker.unlink()
    blocker.write_bytes(real)
    done = proj.store.stored_ids()
    assert 0 < len(done) <= 40, "the kill must land mid-run, while the job waits on image 40"
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "resume" in err
    report = open_project(proj.root).embed(progress=False, num_workers=0)
    assert report.n_already == len(done) and report.n_embedded == 400 - len(done)
    ref = create_project(tmp_path / "ref", pairs=csv, model=spec, progress=False)
    ref.embed(progress=False, num_workers=0)
    np.testing.assert_allclose(open_project(proj.root).text_embeddings().astype(np.float32),
                               ref.text_embeddings().astype(np.float32), atol=2e-3)
