"""The Ray Data engine writes the same vectors as the local engine and resumes after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project, open_project

ray = pytest.importorskip("ray", reason="Ray engine tests need ray[data] (pip install 'mmcurate[ray]')")

pytestmark = pytest.mark.slow


def test_ray_vectors_equal_local_and_resume(micro_clip_dir, tmp_path, noise_pairs):
    from mmcurate.engine.ray_embed import embed_with_ray

    csv = noise_pairs(tmp_path / "d", 48)
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    local = create_project(tmp_path / "local", pairs=csv, model=spec, progress=False)
    local.embed(progress=False, num_workers=0)
    remote = create_project(tmp_path / "ray", pairs=csv, model=spec, progress=False)
    # pre-embed a few pairs locally so the Ray run has to resume around them
    remote.store.bind(local.store.manifest())
    ids = remote.pairs["pair_id"].tolist()[:10]
    remote.store.write_part(ids, np.asarray(local.image_embeddings()[:10], np.float32),
                            np.asarray(local.text_embeddings()[:10], np.float32))
    result = embed_with_ray(remote, num_workers=2, batch_size=8)
    assert result.n_already == 10 and result.n_embedded == 38 and result.n_failed == 0
    remote = open_project(remote.root)
    np.testing.assert_allclose(remote.image_embeddings().astype(np.float32),
                               local.image_embeddings().astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(remote.text_embeddings().astype(np.float32),
                               local.text_embeddings().astype(np.float32), atol=2e-3)


def test_killed_ray_run_resumes(micro_clip_dir, tmp_path, noise_pairs, private_ray_dir):
    csv = noise_pairs(tmp_path / "d", 600)
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=csv, model=spec, progress=False)
    cmd = [sys.executable, "-m", "mmcurate.cli", "embed", str(proj.root), "--engine", "ray",
           "--batch-size", "4", "--num-workers", "2"]
    env = {**os.environ, "RAY_TMPDIR": private_ray_dir.path}  # its Ray processes are found by this dir
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=env)
    parts = proj.root / "embeddings" / "parts"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(parts.glob("part-*.npz"))) < 10:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes in its group
    proc.wait(timeout=60)
    # and those Ray detached from the group (GCS, raylet), found by the run's private temp dir:
    # never `ray stop`, which would stop another checkout's tests running Ray on this machine
    private_ray_dir.kill()
    done = len(proj.store.stored_ids())
    assert 0 < done < 600, "the kill must land mid-run"
    from mmcurate.engine.ray_embed import embed_with_ray

    result = embed_with_ray(open_project(proj.root), num_workers=2, batch_size=16)
    assert result.n_already == done and result.n_embedded == 600 - done
    assert open_project(proj.root).image_embeddings().shape == (600, 32)
