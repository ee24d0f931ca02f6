"""Importing clip-retrieval / LAION embedding folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.embed.importer import import_embedding_folder, write_embedding_folder
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import DataError


def _folder(tmp_path, n=250, d=16, shard_size=100, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n, d)).astype(np.float32) * 3
    txt = img + 0.1 * rng.normal(size=(n, d)).astype(np.float32)
    meta = pd.DataFrame({"key": [f"k{i:04d}" for i in range(n)],
                         "caption": [f"caption {i}" for i in range(n)],
                         "image_path": [f"imgs/{i}.jpg" for i in range(n)],
                         "category": rng.integers(0, 3, n)})
    return write_embedding_folder(tmp_path / "emb_in", img, txt, meta, shard_size=shard_size), img, meta


def test_import_roundtrip_renormalised(tmp_path):
    folder, img, meta = _folder(tmp_path)
    store = EmbeddingStore(tmp_path / "proj" / "embeddings")
    result = import_embedding_folder(folder, store)
    assert len(result.pairs) == 250 and result.rejects.empty
    assert result.pairs["pair_id"].tolist() == meta["key"].tolist()
    assert {"caption", "image", "category"} <= set(result.pairs.columns)
    vecs = store.load("image", result.pairs["pair_id"].tolist())
    assert vecs.dtype == np.float16 and vecs.shape == (250, 16)
    expect = img / np.linalg.norm(img, axis=1, keepdims=True)
    np.testing.assert_allclose(vecs.astype(np.float32), expect, atol=3e-3)
    assert store.manifest()["kind"] == "external"


def test_mismatched_row_counts_rejected(tmp_path):
    folder, _, _ = _folder(tmp_path, n=150)
    np.save(folder / "text_emb" / "text_emb_1.npy", np.zeros((10, 16), np.float16))
    with pytest.raises(DataError, match="row counts differ"):
        import_embedding_folder(folder, EmbeddingStore(tmp_path / "e"))


def test_missing_shard_and_layout_errors(tmp_path):
    folder, _, _ = _folder(tmp_path, n=150)
    (folder / "metadata" / "metadata_1.parquet").unlink()
    with pytest.raises(DataError, match="shard numbers differ"):
        import_embedding_folder(folder, EmbeddingStore(tmp_path / "e"))
    with pytest.raises(DataError, match="missing img_emb"):
        import_embedding_folder(tmp_path, EmbeddingStore(tmp_path / "e2"))


def test_bad_rows_go_to_rejects(tmp_path):
    folder, _, meta = _folder(tmp_path, n=50, shard_size=50)
    bad = meta.copy()
    bad.loc[3, "caption"] = "  "
    bad.loc[7, "key"] = "k0001"  # duplicate id
    bad.to_parquet(folder / "metadata" / "metadata_0.parquet", index=False)
    img = np.load(folder / "img_emb" / "img_emb_0.npy").astype(np.float32)
    img[9, 0] = np.nan
    np.save(folder / "img_emb" / "img_emb_0.npy", img.astype(np.float16))
    store = EmbeddingStore(tmp_path / "e")
    result = import_embedding_folder(folder, store)
    assert sorted(result.rejects["reason"]) == ["duplicate_id", "empty_caption", "non_finite_vector"]
    assert sorted(result.rejects["row"]) == [4, 8, 10]
    assert len(result.pairs) == 47
    assert store.load("text", result.pairs["pair_id"].tolist()).shape == (47, 16)
    assert np.isfinite(store.load("image").astype(np.float32)).all()


def test_dimension_mismatch_between_shards(tmp_path):
    folder, _, _ = _folder(tmp_path, n=150)
    np.save(folder / "img_emb" / "img_emb_1.npy", np.zeros((50, 8), np.float16))
    np.save(folder / "text_emb" / "text_emb_1.npy", np.zeros((50, 8), np.float16))
    with pytest.raises(DataError, match="D=8"):
        import_embedding_folder(folder, EmbeddingStore(tmp_path / "e"))
