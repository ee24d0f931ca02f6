"""The Ray engine's devices: actors get the model on their GPU, or a clear error without GPUs."""

from __future__ import annotations

import pytest
import torch

from mmcurate.cli import main
from mmcurate.embed.model import ModelSpec
from mmcurate.engine.ray_embed import _actor_device
from mmcurate.exceptions import DeviceError
from mmcurate.project import create_project

ray = pytest.importorskip("ray", reason="Ray engine tests need ray[data] (pip install 'mmcurate[ray]')")


def test_actor_device_follows_gpus_per_worker():
    assert _actor_device("auto", 0) == "cpu" and _actor_device("auto", 1) == "cuda"
    assert _actor_device("cuda", 0.5) == "cuda"
    with pytest.raises(ValueError, match="--gpus-per-worker"):
        _actor_device("cuda", 0)
    with pytest.raises(ValueError, match="--device auto or cuda"):
        _actor_device("cpu", 1)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU for Ray's actors")
def test_gpus_per_worker_without_gpus_fails_at_once(micro_clip_dir, png_pairs, tmp_path, capsys):
    from mmcurate.engine.ray_embed import embed_with_ray

    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)
    with pytest.raises(DeviceError, match="the Ray cluster has 0"):
        embed_with_ray(proj, num_workers=1, gpus_per_worker=1)
    assert proj.n_embedded == 0
    assert main(["embed", str(proj.root), "--engine", "ray", "--device", "cuda"]) == 2
    assert "--gpus-per-worker" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_ray_actors_run_on_their_gpu(micro_clip_dir, png_pairs, tmp_path):
    from mmcurate.engine.ray_embed import embed_with_ray

    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)
    result = embed_with_ray(proj, num_workers=1, gpus_per_worker=1)
    assert result.n_embedded == 12 and result.devices == ["cuda:0"]
    assert proj.store.manifest()["device"] == "cuda"
