"""Sources with image bytes in a column, as Hugging Face ``datasets`` writes them (real library)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mmcurate.data import Columns, detect_format, load_pairs, open_image
from mmcurate.exceptions import DataError

datasets = pytest.importorskip("datasets", reason="interop test needs datasets (pip install datasets)")


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)) for _ in range(n)]


def _hf_dataset(images):
    feats = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string"),
                               "score": datasets.Value("float32")})
    captions = [f"noise picture {i}" for i in range(len(images))]
    captions[2] = ""  # an empty caption: a reject
    return datasets.Dataset.from_dict({"image": images, "text": captions,
                                       "score": [float(i) for i in range(len(images))]}, features=feats)


def _check(result, source_name: str):
    pairs, rejects = result.pairs, result.rejects
    assert len(pairs) == 5 and rejects[["row", "reason"]].values.tolist() == [[3, "empty_caption"]]
    assert rejects["source"].str.endswith(source_name).all()
    assert pairs["score"].tolist() == [0.0, 1.0, 3.0, 4.0, 5.0]


def test_parquet_with_image_bytes_from_datasets(tmp_path):
    images = _images(6)
    _hf_dataset(images).to_parquet(str(tmp_path / "train.parquet"))
    r = load_pairs(tmp_path / "train.parquet", columns=Columns(caption="text"))
    _check(r, "train.parquet")
    ref = r.pairs["image"].iloc[3]
    assert ref == "train.parquet::5"
    got = np.asarray(open_image(ref, image_root=tmp_path))
    assert np.array_equal(got, np.asarray(images[4]))  # PNG bytes: exact


def test_save_to_disk_folder(tmp_path):
    images = _images(6)
    _hf_dataset(images).save_to_disk(str(tmp_path / "ds"))
    assert detect_format(tmp_path / "ds") == "hf-disk"
    r = load_pairs(tmp_path / "ds", columns=Columns(caption="text"))
    _check(r, ".arrow")
    assert np.array_equal(np.asarray(open_image(r.pairs["image"].iloc[0], image_root=tmp_path / "ds")),
                          np.asarray(images[0]))
    datasets.DatasetDict({"train": _hf_dataset(images)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"splits \['train'\]"):
        load_pairs(tmp_path / "dd", columns=Columns(caption="text"))


def test_rejects_name_file_and_row(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buf, format="JPEG")
    Image.new("RGB", (10, 10)).save(tmp_path / "side.png")
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    cells = [{"bytes": buf.getvalue(), "path": None}, {"bytes": b"garbage", "path": "x.jpg"},
             {"bytes": None, "path": None}, {"bytes": None, "path": "side.png"},
             {"bytes": None, "path": "gone.png"}]
    table = pa.table({"img": pa.array(cells, type=struct), "caption": [f"c{i}" for i in range(5)]})
    pq.write_table(table, tmp_path / "t.parquet")
    r = load_pairs(tmp_path / "t.parquet", columns=Columns(image="img"))
    assert r.pairs["image"].tolist() == ["t.parquet::1", "side.png"]
    assert r.rejects[["row", "reason"]].values.tolist() == [
        [2, "corrupt_image"], [3, "malformed_row"], [5, "missing_file"]]
    assert "row 3 of t.parquet" in r.rejects.loc[r.rejects["row"] == 3, "detail"].item()
    with pytest.raises(DataError, match=r"missing column.*\['img', 'caption'\]"):
        load_pairs(tmp_path / "t.parquet")
    plain = pd.DataFrame({"image": ["side.png"], "caption": ["a plain parquet still works"]})
    plain.to_parquet(tmp_path / "plain.parquet")
    assert load_pairs(tmp_path / "plain.parquet").pairs["image"].tolist() == ["side.png"]
