"""Decoding that keeps up: reduced-size JPEG decoding, the tensor (nvJPEG) path on CPU, header checks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mmcurate.data import load_pairs, open_image
from mmcurate.data.images import check_image, check_image_header
from mmcurate.embed.decode import decode_jpegs, is_jpeg, tensor_transform
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project


def _big_jpegs(folder: Path, n: int, size=(2000, 1500)) -> Path:
    """Generated scenes upscaled to photo size, saved as JPEG, with their captions in a CSV."""
    from mmcurate.synth import describe_scene, generate_scenes, render_scene

    (folder / "img").mkdir(parents=True)
    rows = []
    for i, scene in enumerate(generate_scenes(n, random_state=5)):
        im = render_scene(scene, size=256).resize(size, Image.BICUBIC)
        im.save(folder / "img" / f"{i}.jpg", quality=90)
        rows.append({"id": f"j{i}", "image": f"img/{i}.jpg",
                     "caption": describe_scene(scene, random_state=i)})
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    return folder / "pairs.csv"


@pytest.fixture
def tiny(tiny_clip_dir):
    return load_encoder(ModelSpec(f"local-dir:{tiny_clip_dir}", None), device="cpu")


def test_draft_decodes_small_and_keeps_vectors(tiny, tmp_path):
    _big_jpegs(tmp_path, 12)
    refs = [f"img/{i}.jpg" for i in range(12)]
    size = tiny.image_size
    small = [open_image(r, image_root=tmp_path, min_size=size) for r in refs]
    full = [open_image(r, image_root=tmp_path) for r in refs]
    assert full[0].size == (2000, 1500)
    assert small[0].size == (250, 188) and min(small[0].size) >= size  # the 1/8 DCT scale
    a, b = tiny.encode_images(full), tiny.encode_images(small)
    cos = (a * b).sum(axis=1)
    assert cos.min() > 0.995, cos.min()
    pix = np.abs(np.stack([tiny.preprocess(x).numpy() for x in full[:4]])
                 - np.stack([tiny.preprocess(x).numpy() for x in small[:4]]))
    assert pix.mean() < 0.05


def test_draft_leaves_png_and_small_jpeg_alone(tmp_path):
    Image.new("RGB", (300, 200), (10, 200, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (100, 80), (10, 200, 30)).save(tmp_path / "b.jpg")
    assert open_image("a.png", image_root=tmp_path, min_size=64).size == (300, 200)
    assert open_image("b.jpg", image_root=tmp_path, min_size=64).size == (100, 80)


def test_tensor_path_matches_pil_path(tiny, tmp_path):
    _big_jpegs(tmp_path, 6, size=(640, 480))
    datas = [(tmp_path / "img" / f"{i}.jpg").read_bytes() for i in range(6)]
    assert all(is_jpeg(d) for d in datas) and not is_jpeg(b"\x89PNG\r\n")
    decoded = decode_jpegs(datas, device="cpu")
    batch = tensor_transform(decoded, size=tiny.image_size, cfg=tiny.info["preprocess"])
    pil = np.stack([tiny.preprocess(open_image(f"img/{i}.jpg", image_root=tmp_path)).numpy()
                    for i in range(6)])
    assert batch.shape == pil.shape
    assert np.abs(batch.numpy() - pil).mean() < 0.03
    cos = (tiny.encode_image_tensors(batch) * tiny.encode_image_tensors(torch.from_numpy(pil))).sum(axis=1)
    assert cos.min() > 0.995


def test_tensor_decode_reports_a_bad_jpeg_alone(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 0, 0)).save(buf, format="JPEG")
    good = buf.getvalue()
    out = decode_jpegs([good, b"\xff\xd8\xff" + b"\x00" * 50, good], device="cpu")
    assert [isinstance(o, str) for o in out] == [False, True, False]
    assert tuple(out[0].shape) == (3, 48, 64)


def test_embed_with_tensor_decode_equals_cpu_decode(tiny_clip_dir, tmp_path):
    csv = _big_jpegs(tmp_path / "d", 10, size=(800, 600))
    cut = tmp_path / "d" / "img" / "9.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    spec = ModelSpec(f"local-dir:{tiny_clip_dir}", None)
    a = create_project(tmp_path / "a", pairs=csv, model=spec, progress=False)
    b = create_project(tmp_path / "b", pairs=csv, model=spec, progress=False)
    assert len(a.pairs) == 10  # the cut-short JPEG passes the header check ...
    ra = a.embed(progress=False, num_workers=0, device="cpu", reduced_decode=False)
    rb = b.embed(progress=False, num_workers=0, device="cpu", decode="gpu", batch_size=4)
    assert ra.n_failed == rb.n_failed == 1  # ... and embedding reports it, on either path
    assert ra.failures[0]["pair_id"] == rb.failures[0]["pair_id"] == "j9"
    ids = [f"j{i}" for i in range(9)]
    ia = a.store.load("image", ids).astype(np.float32)
    ib = b.store.load("image", ids).astype(np.float32)
    assert (ia * ib).sum(axis=1).min() > 0.99


def test_header_check_is_default_and_full_check_opt_in(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (0, 90, 200)).save(buf, format="JPEG")
    (tmp_path / "ok.jpg").write_bytes(buf.getvalue())
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:700])
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    (tmp_path / "p.csv").write_text("id,image,caption\n1,ok.jpg,fine\n2,cut.jpg,cut\n3,junk.jpg,junk\n")
    assert check_image_header(buf.getvalue()[:700]) is None and check_image(buf.getvalue()[:700])
    header = load_pairs(tmp_path / "p.csv")
    assert header.pairs["pair_id"].tolist() == ["1", "2"]
    assert header.rejects[["row", "reason"]].values.tolist() == [[3, "corrupt_image"]]
    full = load_pairs(tmp_path / "p.csv", check_images="full")
    assert full.pairs["pair_id"].tolist() == ["1"]
    assert sorted(full.rejects["row"]) == [2, 3]
    with pytest.raises(ValueError, match="'header' or 'full'"):
        load_pairs(tmp_path / "p.csv", check_images="fast")
