"""The real ``webdataset`` package reads what ``export --format webdataset`` writes."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from PIL import Image

from mmcurate.data import load_pairs
from mmcurate.export import sample_key, write_webdataset

wds = pytest.importorskip("webdataset", reason="interop test needs webdataset (pip install webdataset)")


def _jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_webdataset_reads_our_shards(tmp_path):
    images = {"img/a.jpg": _jpeg((255, 0, 0)), "img/b.jpeg": _jpeg((0, 255, 0)),
              "img/c.png": b"", "img/d.jpg": _jpeg((0, 0, 255))}
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, format="PNG")
    images["img/c.png"] = buf.getvalue()
    # ids with a dot or a slash would be split by webdataset at the first dot: they are hashed
    curated = pd.DataFrame({"pair_id": ["p1", "v1.2/x", "p_3", "p-4"],
                            "caption": ["red", "green, with a dot.", "grey", "blue"],
                            "status": ["accepted", "auto", "fixed", "accepted"]})
    refs = pd.Series(list(images), index=curated["pair_id"])
    shards, unreadable = write_webdataset(curated, tmp_path / "out", read_image=images.__getitem__,
                                          refs=refs, shard_size=3)
    assert unreadable == {} and len(shards) == 2
    urls = [str(s) for s in shards]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == [sample_key(p) for p in curated["pair_id"]]
    assert all("." not in s["__key__"] for s in samples)
    exts = [sorted(k for k in s if not k.startswith("__")) for s in samples]
    assert exts == [["jpg", "json", "txt"], ["jpg", "json", "txt"], ["json", "png", "txt"],
                    ["jpg", "json", "txt"]]
    for s, (_, row) in zip(samples, curated.iterrows()):
        assert s["txt"].decode() == row["caption"]
        meta = json.loads(s["json"])
        assert meta["pair_id"] == row["pair_id"] and meta["status"] == row["status"]
    decoded = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False)
                   .decode("pil").to_tuple("jpg;png", "txt"))
    assert decoded[0][0].size == (40, 30) and decoded[0][1] == "red"
    assert decoded[3][0].getpixel((20, 15))[2] > 200
    back = load_pairs(str(tmp_path / "out" / "curated-{000000..000001}.tar"), image_root=tmp_path / "out")
    assert sorted(back.pairs["caption"]) == sorted(curated["caption"]) and back.rejects.empty
