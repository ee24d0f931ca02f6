"""Every selector honours one contract; known answers for core-set and cluster quotas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcurate.exceptions import PoolExhaustedError
from mmcurate.select import SELECTORS, get_selector, select_cluster, select_coreset, select_topk


def _data(n=120, d=8, seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return rng.random(n), emb


@pytest.mark.parametrize("name", SELECTORS.names())
def test_selector_contract(name):
    fn = get_selector(name)
    scores, emb = _data()
    exclude = np.arange(0, 120, 7)
    a = fn(scores, n=15, embeddings=emb, exclude=exclude, random_state=3)
    b = fn(scores, n=15, embeddings=emb, exclude=exclude, random_state=3)
    assert a.dtype == np.int64 and len(a) == 15 and len(set(a.tolist())) == 15
    assert ((a >= 0) & (a < 120)).all() and not np.isin(a, exclude).any()
    assert a.tolist() == b.tolist()
    with pytest.raises(PoolExhaustedError):
        fn(scores, n=120 - len(exclude) + 1, embeddings=emb, exclude=exclude, random_state=0)
    with pytest.raises(ValueError):
        fn(scores, n=0, embeddings=emb)


def test_names_and_unknown():
    assert get_selector("none") is select_topk and get_selector("Core-Set".replace("-", "")) is select_coreset
    with pytest.raises(ValueError, match="cluster"):
        get_selector("nope")


def test_topk_equals_argsort():
    scores, _ = _data()
    assert select_topk(scores, n=10).tolist() == np.argsort(-scores, kind="stable")[:10].tolist()


def test_coreset_picks_the_far_point():
    emb = np.array([[1, 0], [0.99, 0.14], [0.98, 0.2], [-1, 0]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    picked = select_coreset(np.ones(4), n=1, embeddings=emb, exclude=[0])
    assert picked.tolist() == [3]


def test_cluster_quotas_give_every_cluster_its_share():
    rng = np.random.default_rng(0)
    centres = np.eye(4, dtype=np.float32)
    emb = np.repeat(centres, 30, axis=0) + 0.01 * rng.normal(size=(120, 4)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scores = np.where(np.arange(120) < 30, 1.0, 0.0) + rng.random(120) * 0.01  # cluster 0 scores best
    picked = select_cluster(scores, n=8, embeddings=emb, n_clusters=4, random_state=0)
    assert np.bincount(picked // 30, minlength=4).tolist() == [2, 2, 2, 2]


@settings(max_examples=40, deadline=None)
@given(n_pool=st.integers(5, 60), budget=st.integers(1, 5), seed=st.integers(0, 1000),
       name=st.sampled_from(["topk", "coreset", "sample"]))
def test_properties(n_pool, budget, seed, name):
    scores, emb = _data(n_pool, 4, seed)
    exclude = np.arange(0, n_pool, 3)
    if n_pool - len(exclude) < budget:
        return
    out = get_selector(name)(scores, n=budget, embeddings=emb, exclude=exclude, random_state=seed)
    assert len(out) == budget == len(np.unique(out)) and not np.isin(out, exclude).any()
