"""The float16 shard store: atomic parts, resume bookkeeping, compaction, model refusal."""

from __future__ import annotations

import numpy as np
import pytest

from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import ModelMismatchError, NotEmbeddedError

INFO = {"kind": "open_clip", "model": "m", "pretrained": "t", "weights_sha256": "abc", "dim": 4}


def _vecs(n, seed):
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_parts_compact_in_pairs_order(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    store.bind(INFO)
    a, b = _vecs(3, 0), _vecs(2, 1)
    store.write_part(["p2", "p0", "p4"], a, a * 2)
    store.write_part(["p1", "p3"], b, b)
    assert store.missing(["p0", "p1", "p5"]) == ["p5"]
    order = ["p0", "p1", "p2", "p3", "p4"]
    store.compact(order)
    img = store.load("image", order)
    assert img.dtype == np.float16 and img.shape == (5, 4)
    expect = a[1] / np.linalg.norm(a[1])
    np.testing.assert_allclose(img[0], expect, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(img.astype(np.float32), axis=1), 1, atol=2e-3)
    assert not list((tmp_path / "emb" / "parts").glob("*.npz"))
    assert store.is_compact_for(order)


def test_compact_refuses_when_pairs_missing(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    store.bind(INFO)
    store.write_part(["a"], _vecs(1, 0), _vecs(1, 1))
    with pytest.raises(NotEmbeddedError, match="mmcurate embed"):
        store.compact(["a", "b"])


def test_new_pairs_after_compaction_are_missing_then_merged(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    store.bind(INFO)
    store.write_part(["a", "b"], _vecs(2, 0), _vecs(2, 1))
    store.compact(["a", "b"])
    assert store.missing(["a", "b", "c"]) == ["c"]
    store.write_part(["c"], _vecs(1, 2), _vecs(1, 3))
    text = store.load("text", ["a", "b", "c"])
    assert text.shape == (3, 4)


def test_other_model_refused_or_reembedded(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    store.bind(INFO)
    store.write_part(["a"], _vecs(1, 0), _vecs(1, 1))
    other = {**INFO, "weights_sha256": "def"}
    with pytest.raises(ModelMismatchError, match="--reembed"):
        store.bind(other)
    assert store.stored_ids() == {"a"}
    store.bind(other, reembed=True)
    assert store.stored_ids() == set()


def test_leftover_tmp_files_are_ignored(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    store.bind(INFO)
    store.write_part(["a"], _vecs(1, 0), _vecs(1, 1))
    (tmp_path / "emb" / "parts" / ".part-123.npz.tmp").write_bytes(b"torn")
    assert store.stored_ids() == {"a"}
