"""Devices: name resolution, the clear error for an absent GPU, half precision on CPU, the manifest."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from mmcurate.cli import main
from mmcurate.embed.device import default_batch_size, resolve_device
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.run import default_workers, model_threads
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import DeviceError
from mmcurate.project import create_project

HAS_CUDA = torch.cuda.is_available()
no_cuda = pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA; the no-CUDA error cannot occur")


def test_auto_is_cuda_when_present_else_cpu():
    choice = resolve_device("auto")
    assert choice.name == ("cuda:0" if HAS_CUDA else "cpu")
    assert choice.precision == ("fp32" if not HAS_CUDA else
                                ("bf16" if torch.cuda.is_bf16_supported() else "fp16"))
    assert resolve_device("CPU").name == "cpu" and resolve_device("cpu").precision == "fp32"


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_clear_error(name):
    with pytest.raises(DeviceError, match=r"no CUDA GPU.*--device cpu"):
        resolve_device(name)


def test_bad_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"auto, cpu, cuda, cuda:N, mps"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match=r"auto, fp32, fp16, bf16"):
        resolve_device("cpu", precision="half")
    with pytest.raises(ValueError, match="bf16"):
        resolve_device("cpu", precision="fp16")


def test_defaults_per_device():
    assert default_batch_size(resolve_device("cpu")) == 32
    assert default_workers("cpu", 2) == 2 and default_workers("cpu", 16) == 8
    assert default_workers("cuda", 16) == 16 and default_workers("cuda", 64) == 16
    assert default_workers("cpu", 1) == 1


def test_model_threads_leave_the_workers_their_cores():
    """On CPU the model gets the cores the decoding workers leave, never more threads than cores."""
    assert model_threads("cpu", 2, n_cores=2) == 1 and model_threads("cpu", 4, n_cores=8) == 4
    assert model_threads("cpu", 0, n_cores=8) == 8  # decoding inline: every core
    assert model_threads("cuda", 16, n_cores=16) == 16  # the cores do not run the model there


@no_cuda
def test_cli_device_cuda_fails_fast_with_exit_2(micro_clip_dir, png_pairs, tmp_path, capsys,
                                                monkeypatch):
    import mmcurate.data
    import mmcurate.data.images
    import mmcurate.embed.encoder

    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)

    def no_work(*args, **kwargs):
        raise AssertionError("a model was loaded or an image read before the device check")

    # "fails fast" as bounded work, not seconds: nothing is loaded or decoded before the error;
    # every module of ours holding one of these functions (imported at its top) gets the stand-in
    guarded = {id(f) for f in (mmcurate.embed.encoder.load_encoder, mmcurate.data.open_image,
                               mmcurate.data.images.read_image_bytes)}
    n_patched = 0
    for module in [m for name, m in sys.modules.items() if name.startswith("mmcurate") and m is not None]:
        for attr, value in list(vars(module).items()):
            if id(value) in guarded:
                monkeypatch.setattr(module, attr, no_work)
                n_patched += 1
    assert n_patched >= 5  # the defining modules and the embed path's (project.embedding, embed.run)
    assert main(["embed", str(proj.root), "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu" in err
    assert proj.n_embedded == 0 and proj.store.manifest() is None


def _bf16_cpu_works() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    except RuntimeError:
        return False


@pytest.mark.skipif(not _bf16_cpu_works(), reason="this torch build has no bf16 autocast on CPU")
def test_bf16_autocast_on_cpu_is_close_to_fp32(tiny_clip_dir):
    from mmcurate.synth import generate_scenes, render_scene

    spec = ModelSpec(f"local-dir:{tiny_clip_dir}", None)
    fp32 = load_encoder(spec, device="cpu")
    bf16 = load_encoder(spec, device="cpu", precision="bf16")
    assert fp32.info["precision"] == "fp32" and bf16.info["precision"] == "bf16"
    images = [render_scene(s, size=64) for s in generate_scenes(16, random_state=3)]
    a, b = fp32.encode_images(images), bf16.encode_images(images)
    assert not np.array_equal(a, b)  # the half-precision path really ran
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.99, cos.min()
    texts = ["two red circles", "a blue square on the left"]
    cos_t = (fp32.encode_texts(texts) * bf16.encode_texts(texts)).sum(axis=1)
    assert cos_t.min() > 0.99


def test_manifest_records_precision_and_a_resumed_mix(micro_clip_dir, png_pairs, tmp_path):
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    proj = create_project(tmp_path / "p", pairs=png_pairs, model=spec, progress=False)
    proj.embed(progress=False, num_workers=0, device="cpu")
    manifest = proj.store.manifest()
    assert manifest["device"] == "cpu" and manifest["precision"] == "fp32"
    store = EmbeddingStore(tmp_path / "s")
    store.bind({**manifest, "precision": "fp32"})
    store.bind({**manifest, "precision": "bf16"})  # nothing stored yet: just replaced
    assert store.manifest()["precision"] == "bf16"
    store.write_part(["a"], np.ones((1, 32)), np.ones((1, 32)))
    store.bind({**manifest, "precision": "fp32"})
    assert store.manifest()["precision"] == "bf16+fp32"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (none on this machine)")
def test_cuda_vectors_match_cpu(tiny_clip_dir, tmp_path):
    from mmcurate.synth import write_scene_dataset

    csv = write_scene_dataset(tmp_path / "scenes", 64, random_state=0, size=256)
    spec = ModelSpec(f"local-dir:{tiny_clip_dir}", None)
    cpu = create_project(tmp_path / "cpu", pairs=csv, model=spec, progress=False)
    assert main(["embed", str(cpu.root), "--device", "cpu", "--no-progress"]) == 0
    runs = {"cuda": [], "cuda-nvjpeg": ["--decode", "gpu"]}
    for name, extra in runs.items():
        gpu = create_project(tmp_path / name, pairs=csv, model=spec, progress=False)
        assert main(["embed", str(gpu.root), "--device", "cuda", "--no-progress", *extra]) == 0
        manifest = gpu.store.manifest()
        assert manifest["device"] == "cuda" and manifest["precision"] in ("bf16", "fp16")
        for kind in ("image", "text"):
            a = getattr(cpu, f"{kind}_embeddings")().astype(np.float32)
            b = getattr(gpu, f"{kind}_embeddings")().astype(np.float32)
            assert (a * b).sum(axis=1).min() > 0.98, (name, kind)
