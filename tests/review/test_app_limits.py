"""The review page under bad requests and surprising images (issue 23): bounded sizes, clear JSON
errors instead of tracebacks or 500s, WebDataset keys with slashes, 16-bit PNGs, bombs."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from mmcurate.cli import main
from mmcurate.project import create_project, open_project
from mmcurate.review.app import MAX_CAPTION_CHARS, MAX_REQUEST_BYTES, create_app
from mmcurate.review.project_app import image_resolver


def _client(proj, round_id=1):
    app = create_app(pairs=proj.pairs, ledger_path=proj.root / "labels.sqlite", round_id=round_id,
                     resolve_image=image_resolver(proj), token="tok", reviewer="tester")
    client = app.test_client()
    client.get("/?token=tok")
    return client


def _history(proj) -> int:
    return len(open_project(proj.root).ledger.decisions(history=True))


@pytest.mark.parametrize(("body", "found"), [
    (b'["p0", "accept"]', "must be a JSON object, got a JSON list"),
    (b'"accept"', "must be a JSON object, got a JSON str"),
    (b'{"pair_id": "p1", "decision": "fix", "caption": 12345}', "'caption' must be text, got int"),
    (b'{"pair_id": ["p0"], "decision": "accept"}', "'pair_id' must be text, got list"),
    (b'{"pair_id": "p0", "decision": {"a": 1}}', "'decision' must be text, got dict"),
    (b"[" * 60_000 + b"]" * 60_000, "must be a JSON object"),  # deeper than Python's recursion
    (b"{not json", "must be a JSON object"),
    ('{"pair_id": "p1", "decision": "fix", "caption": "\u200b\u200b"}'.encode(), "only invisible"),
])
def test_a_post_that_is_not_a_flat_object_of_text_gets_a_400_json_error(review_project, body, found):
    c = _client(review_project)
    before = _history(review_project)
    r = c.post("/api/decision", data=body, content_type="application/json")
    assert r.status_code == 400 and found in r.get_json()["error"], r.get_data(as_text=True)[:300]
    assert _history(review_project) == before


def test_a_request_over_the_bound_gets_413_and_nothing_enters_the_ledger(review_project):
    c = _client(review_project)
    caption = "x" * (10 * 1024 * 1024)  # the 10 MB caption of the issue
    r = c.post("/api/decision", json={"pair_id": "p1", "decision": "fix", "caption": caption})
    assert r.status_code == 413
    assert r.get_json() == {"error": f"the request is over {MAX_REQUEST_BYTES} bytes"}
    long_fix = {"pair_id": "p1", "decision": "fix", "caption": "y" * (MAX_CAPTION_CHARS + 1)}
    r = c.post("/api/decision", json=long_fix)
    assert r.status_code == 400 and f"at most {MAX_CAPTION_CHARS}" in r.get_json()["error"]
    assert _history(review_project) == 0
    ok = {"pair_id": "p1", "decision": "fix", "caption": "z" * MAX_CAPTION_CHARS}
    assert c.post("/api/decision", json=ok).status_code == 200


def _png(mode_array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mode_array).save(buf, format="PNG")
    return buf.getvalue()


def test_webdataset_keys_with_slashes_get_their_thumbnail(tmp_path):
    members = {}
    for key, colour in (("train/00/a", 40), ("train/01/b", 200)):
        members[f"{key}.png"] = _png(np.full((16, 16, 3), colour, np.uint8))
        members[f"{key}.txt"] = f"grey {colour}".encode()
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    proj = create_project(tmp_path / "proj", pairs=shard, progress=False)
    ids = proj.pairs["pair_id"].tolist()
    assert all("/" in pid for pid in ids)
    proj.ledger.create_round(ids, strategy="test", params={}, model={})
    c = _client(proj)
    html = c.get("/?token=tok").get_data(as_text=True)
    for pid in ids:
        assert f'src="/image/{pid}"' in html
        r = c.get(f"/image/{pid}")
        assert r.status_code == 200 and r.data[:2] == b"\xff\xd8"
    assert c.get("/image/train/00").status_code == 404  # a prefix of a key is no key


def test_16_bit_greyscale_is_scaled_not_clipped_to_white(tmp_path):
    from mmcurate.data import open_image
    from mmcurate.data.images import thumbnail_jpeg

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(_png(ramp))
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    rgb = np.asarray(open_image("deep.png", image_root=tmp_path))  # what embedding reads
    assert rgb.shape == (64, 64, 3)
    assert (rgb == 255).mean() < 0.01 and abs(rgb.mean() - 127.5) < 2  # was 99% white
    np.testing.assert_array_equal(rgb[..., 0], (ramp / 257 + 0.5).astype(np.uint8))
    thumb = np.asarray(Image.open(io.BytesIO(thumbnail_jpeg(tmp_path / "deep.png"))))
    assert abs(thumb.mean() - 127.5) < 5


def test_a_decompression_bomb_swapped_in_after_init_is_an_unreadable_image(review_project, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 100x100 image is then a bomb
    Image.new("RGB", (100, 100), (1, 2, 3)).save(review_project.image_root / "img" / "1.png")
    c = _client(review_project)
    assert c.get("/image/p1").status_code == 404
    assert c.get("/image/p0").status_code == 200
    out = tmp_path / "batch.csv"
    assert main(["batch", "export", str(review_project.root), "--out", str(out), "--thumbnails"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    import pandas as pd

    thumbs = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("pair_id")["thumbnail"]
    assert thumbs["p1"] == "" and thumbs["p0"] != ""
