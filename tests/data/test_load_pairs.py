"""Pair sources and validation: every format, every reject reason, clear whole-file errors."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pandas as pd
import pytest
from PIL import Image

from mmcurate.data import Columns, load_pairs, open_image
from mmcurate.exceptions import DataError


def _png(path, colour=(200, 10, 10), size=(16, 16), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def root(tmp_path):
    for i in range(4):
        _png(tmp_path / "img" / f"{i}.png", (50 * i, 0, 0))
    return tmp_path


def _reasons(result):
    return dict(zip(result.rejects["row"], result.rejects["reason"]))


def test_csv_with_extra_columns_and_stable_ids(root):
    (root / "p.csv").write_text("image,caption,source\nimg/0.png,a red square,x\nimg/1.png,another,y\n")
    a = load_pairs(root / "p.csv")
    b = load_pairs(root / "p.csv")
    assert a.pairs.columns.tolist() == ["pair_id", "image", "caption", "source"]
    assert a.pairs["pair_id"].tolist() == b.pairs["pair_id"].tolist()
    assert a.pairs["pair_id"].str.len().eq(16).all() and a.rejects.empty


def test_tsv_jsonl_parquet_and_custom_columns(root):
    (root / "p.tsv").write_text("key\tfile\ttext\nk1\timg/0.png\thello\n")
    r = load_pairs(root / "p.tsv", columns=Columns(id="key", image="file", caption="text"))
    assert r.pairs[["pair_id", "image", "caption"]].values.tolist() == [["k1", "img/0.png", "hello"]]
    lines = [json.dumps({"id": 7, "image": "img/1.png", "caption": "j"}), "{not json",
             json.dumps({"id": 8, "image": "img/2.png", "caption": "k", "extra": 1})]
    (root / "p.jsonl").write_text("\n".join(lines) + "\n")
    r = load_pairs(root / "p.jsonl")
    assert r.pairs["pair_id"].tolist() == ["7", "8"] and _reasons(r) == {2: "malformed_row"}
    pd.DataFrame({"id": ["a"], "image": ["img/3.png"], "caption": ["pq"]}).to_parquet(root / "p.parquet")
    assert load_pairs(root / "p.parquet").pairs["pair_id"].tolist() == ["a"]


def test_folder_with_sidecar_captions(root):
    (root / "img" / "0.txt").write_text("\n  first caption \nsecond line\n")
    (root / "img" / "1.txt").write_text("one")
    r = load_pairs(root / "img")
    assert sorted(r.pairs["caption"]) == ["first caption", "one"]
    assert set(r.rejects["reason"]) == {"malformed_row"}  # 2.png and 3.png have no .txt


def _tar(path, samples):
    with tarfile.open(path, "w") as tar:
        for name, data in samples:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_shards(root):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 255)).save(buf, format="PNG")
    _tar(root / "shard-000.tar", [("a.png", buf.getvalue()), ("a.txt", b"blue square"),
                                  ("b.png", buf.getvalue()), ("b.json", b'{"caption": "jb", "w": 8}'),
                                  ("c.txt", b"no image")])
    _tar(root / "shard-001.tar", [("d.png", b"garbage"), ("d.txt", b"broken")])
    r = load_pairs(str(root / "shard-{000..001}.tar"), image_root=root)
    assert sorted(r.pairs["caption"]) == ["blue square", "jb"]
    assert sorted(r.rejects["reason"]) == ["corrupt_image", "malformed_row"]
    ref = r.pairs.loc[r.pairs["caption"] == "blue square", "image"].item()
    assert ref == "shard-000.tar::a.png" and open_image(ref, image_root=root).size == (8, 8)
    assert len(load_pairs(root, image_root=root).pairs) == 2  # a folder of shards


def test_every_reject_reason(root, monkeypatch):
    (root / "img" / "trunc.png").write_bytes((root / "img" / "0.png").read_bytes()[:40])
    (root / "img" / "junk.png").write_bytes(os.urandom(200))
    _png(root / "img" / "big.png", size=(300, 300))
    outside = _png(root.parent / "outside.png")
    os.symlink(outside, root / "img" / "link.png")
    rows = [
        b"id,image,caption",
        b"1,img/0.png,fine",                 # 1 ok
        b"2,img/nope.png,missing file",      # 2
        b"3,img/trunc.png,truncated",        # 3
        b"4,img/junk.png,random bytes",      # 4
        b"5,img/big.png,bomb",               # 5
        b"6,img/1.png,",                     # 6 empty caption
        b"7,img/2.png,caf\xe9 latin-1",       # 7 non-utf8
        b"1,img/3.png,duplicate id",         # 8
        b"9,../outside.png,escape",          # 9
        b"10," + str(outside).encode() + b",absolute",  # 10
        b"11,img/link.png,symlink out",      # 11
        b"12,,no image",                     # 12
    ]
    (root / "bad.csv").write_bytes(b"\n".join(rows) + b"\n")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 // 2 - 1)
    r = load_pairs(root / "bad.csv")
    assert r.pairs["pair_id"].tolist() == ["1"]
    assert _reasons(r) == {2: "missing_file", 3: "corrupt_image", 4: "corrupt_image",
                           5: "decompression_bomb", 6: "empty_caption", 7: "non_utf8_caption",
                           8: "duplicate_id", 9: "outside_root", 10: "outside_root",
                           11: "outside_root", 12: "missing_value"}
    assert (r.rejects["source"] == str(root / "bad.csv")).all()
    assert "row 1" in r.rejects.loc[r.rejects["row"] == 8, "detail"].item()


def test_symlinks_are_followed_by_the_one_path_rule(tmp_path):
    """A folder symlink below the image root that leads outside is rejected like a file symlink
    (validation resolves only what may hold a link); a link that stays inside is kept, as the path
    it leads to; a folder link seen once is not trusted for the next row."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    _png(outside / "secret.png")
    _png(root / "img" / "a.png")
    _png(root / "real" / "b.png")
    os.symlink(outside, root / "img" / "out")           # a folder link out of the root
    os.symlink(root / "real", root / "img" / "inside")   # a folder link within it
    os.symlink(root / "real" / "b.png", root / "b-link.png")
    rows = ["id,image,caption", "1,img/a.png,plain", "2,img/out/secret.png,through a folder link",
            "3,img/inside/b.png,link inside", "4,b-link.png,file link inside",
            "5,img/./out/secret.png,dotted", "6,img/out/../a.png,dotdot after the link",
            f"7,{root / 'img' / 'out' / 'secret.png'},absolute through the link",
            "8,img/out/missing.png,missing behind the link"]
    (root / "p.csv").write_text("\n".join(rows) + "\n")
    for check in (False, True):
        r = load_pairs(root / "p.csv", check_images=check)
        assert _reasons(r) == {2: "outside_root", 5: "outside_root", 6: "outside_root",
                               7: "outside_root", 8: "outside_root"}
        assert r.pairs["image"].tolist() == ["img/a.png", "real/b.png", "real/b.png"]


def test_missing_column_lists_existing_ones(root):
    (root / "p.csv").write_text("path,text\nimg/0.png,x\n")
    with pytest.raises(DataError, match=r"\['path', 'text'\].*--image-column"):
        load_pairs(root / "p.csv")


def test_unknown_format_and_missing_file(root):
    (root / "p.xyz").write_text("x")
    with pytest.raises(DataError, match="csv, tsv, jsonl"):
        load_pairs(root / "p.xyz")
    with pytest.raises(DataError, match="does not exist"):
        load_pairs(root / "nope.csv")


def test_alpha_composited_on_white(tmp_path):
    _png(tmp_path / "a.png", (255, 0, 0, 0), mode="RGBA")
    im = open_image("a.png", image_root=tmp_path)
    assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)


def test_large_csv_without_image_checks_does_bounded_work(root, monkeypatch):
    """Work is bounded, not timed: no image is opened or decoded, each row's path is checked once
    and the file is parsed once (a timed bound failed on a loaded machine)."""
    import importlib

    sources = importlib.import_module("mmcurate.data.sources")
    validate = importlib.import_module("mmcurate.data.validate")  # the module, not the function
    n = 100_000
    df = pd.DataFrame({"id": range(n), "image": [f"img/{i % 4}.png" for i in range(n)],
                       "caption": [f"caption {i}" for i in range(n)]})
    df.to_csv(root / "big.csv", index=False)
    calls = {"resolve": 0, "parse": 0}

    def no_image_read(*args, **kwargs):
        raise AssertionError("check_images=False read an image")

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(validate, "read_image_bytes", no_image_read)
    monkeypatch.setattr(Image, "open", no_image_read)
    monkeypatch.setattr(validate, "resolve_image_ref", counted("resolve", validate.resolve_image_ref))
    monkeypatch.setattr(sources, "_numbered_rows", counted("parse", sources._numbered_rows))
    r = load_pairs(root / "big.csv", check_images=False)
    assert len(r.pairs) == n and r.rejects.empty
    assert calls == {"resolve": n, "parse": 1}


def test_tuxpaint_pairs(tmp_path):
    from mmcurate.data.tuxpaint import STAMPS_ROOT, build_tuxpaint_pairs

    if not os.path.isdir(STAMPS_ROOT):
        pytest.skip("Debian's tuxpaint-stamps-default is not installed")
    csv = build_tuxpaint_pairs(tmp_path / "tux.csv")
    df = pd.read_csv(csv)
    assert len(df) > 300 and not df["category"].isin(["symbols", "cartoon"]).any()
    assert not df["caption"].str.contains(r"\.utf8=").any()
    r = load_pairs(csv, image_root=STAMPS_ROOT, check_images=False)
    assert len(r.pairs) == len(df) and r.rejects.empty
