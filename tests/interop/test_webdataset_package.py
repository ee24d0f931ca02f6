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


def _image_project(tmp_path):
    """Three pairs (two PNGs, one JPEG), img2dataset-like extras (url, status, width), all accepted."""
    from mmcurate.project import create_project

    (tmp_path / "img").mkdir()
    Image.new("RGBA", (20, 10), (255, 0, 0, 128)).save(tmp_path / "img" / "a.png")
    Image.new("RGB", (12, 12), (0, 255, 0)).save(tmp_path / "img" / "b.png")
    (tmp_path / "img" / "c.jpg").write_bytes(_jpeg((0, 0, 255)))
    (tmp_path / "pairs.csv").write_text(
        "key,image,caption,url,status,width\n"
        "k1,img/a.png,a red square,http://x/a.png,success,20\n"
        "k2,img/b.png,=HYPERLINK(\"http://evil\"),http://x/b.png,success,12\n"
        "k3,img/c.jpg,a blue square,,success,40\n")
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "pairs.csv", progress=False,
                          columns={"id": "key"})
    ids = proj.pairs["pair_id"].tolist()
    proj.ledger.create_round(ids, strategy="test", params={}, model={})
    for pid in ids:
        proj.ledger.record(pid, "accept", reviewer="ana")
    return proj


@pytest.mark.parametrize("image_format", ["original", "jpg"])
def test_cli_webdataset_export_reads_as_img2dataset_users_expect(tmp_path, capsys, image_format):
    from mmcurate.cli import main

    proj = _image_project(tmp_path)
    assert proj.pairs["source_status"].tolist() == ["success"] * 3  # renamed, not ours
    out = tmp_path / "wds"
    code = main(["export", str(proj.root), "--out", str(out), "--format", "webdataset",
                 "--reviewed-only", "--image-format", image_format])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err, captured.err
    assert "WebDataset shard(s)" in captured.out
    urls = [str(p) for p in sorted(out.glob("curated-*.tar"))]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert [s["__key__"] for s in samples] == ["k1", "k2", "k3"]
    meta = [json.loads(s["json"]) for s in samples]
    assert [m["key"] for m in meta] == ["k1", "k2", "k3"]
    assert [m["url"] for m in meta] == ["http://x/a.png", "http://x/b.png", str(tmp_path / "img" / "c.jpg")]
    assert meta[1]["caption"] == '=HYPERLINK("http://evil")'  # data, not a spreadsheet: unchanged
    assert [m["source_status"] for m in meta] == ["success"] * 3 and meta[0]["status"] == "accepted"
    assert meta[0]["width"] == 20  # an integer column stays an integer
    tuples = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil")
    if image_format == "jpg":  # every sample has a .jpg: to_tuple("jpg", "txt") reads all three
        decoded = list(tuples.to_tuple("jpg", "txt"))
        assert [t[1] for t in decoded] == ["a red square", '=HYPERLINK("http://evil")', "a blue square"]
        assert decoded[0][0].size == (20, 10) and decoded[0][0].getpixel((0, 0))[1] > 100  # on white
    else:  # original bytes: the PNGs stay .png (documented: use --image-format jpg)
        assert sorted(k for k in samples[0] if not k.startswith("__")) == ["json", "png", "txt"]
        assert samples[0]["png"] == (tmp_path / "img" / "a.png").read_bytes()
