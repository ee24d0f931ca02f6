"""Every selector honours one contract; known answers for core-set and cluster quotas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmcurate.exceptions import PoolExhaustedError
from mmcurate.select import (
    SELECTORS,
    get_selector,
    select_balanced,
    select_cluster,
    select_coreset,
    select_topk,
)


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
    picked = select_coreset(np.ones(4), n=1, embeddings=emb, indices_labeled=[0])
    assert picked.tolist() == [3]


def test_coreset_centres_are_the_labelled_pairs_not_the_excluded_ones():
    """A held-out pair (``exclude``) is skipped but is no centre: the batch is diverse around
    the labelled pairs only (small-text's greedy_coreset(x, indices_unlabeled, indices_labeled, n))."""
    emb = np.array([[1, 0], [0.99, 0.14], [-1, 0], [-0.999, 0.04]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    held_out_far = select_coreset(np.ones(4), n=1, embeddings=emb, indices_labeled=[0], exclude=[2])
    assert held_out_far.tolist() == [3]  # far from the labelled pair 0; 2 is skipped, not a centre
    both = select_coreset(np.ones(4), n=1, embeddings=emb, indices_labeled=[0, 2])
    assert both.tolist() == [1]  # with 2 labelled too, 3 is close to a centre


@pytest.mark.parametrize("name", SELECTORS.names())
def test_selectors_never_return_labelled_pairs(name):
    scores, emb = _data()
    labelled = np.arange(0, 120, 5)
    out = get_selector(name)(scores, n=20, embeddings=emb, indices_labeled=labelled,
                             exclude=[1, 2], random_state=0)
    assert not np.isin(out, np.r_[labelled, 1, 2]).any()
    with pytest.raises(PoolExhaustedError):
        get_selector(name)(scores, n=120 - len(labelled) - 1, embeddings=emb, indices_labeled=labelled,
                           exclude=[1, 2], random_state=0)


@pytest.mark.parametrize("name", SELECTORS.names())
def test_selectors_take_none_an_int_or_a_generator(name):
    scores, emb = _data()
    a = get_selector(name)(scores, n=10, embeddings=emb, random_state=np.random.default_rng(4))
    b = get_selector(name)(scores, n=10, embeddings=emb, random_state=np.random.default_rng(4))
    assert a.tolist() == b.tolist()  # the same generator state gives the same batch
    assert len(get_selector(name)(scores, n=10, embeddings=emb, random_state=None)) == 10


@pytest.mark.parametrize("name", ["cluster", "sample"])
def test_random_selectors_refuse_other_random_states(name):
    scores, emb = _data()
    with pytest.raises(TypeError, match="random_state"):
        get_selector(name)(scores, n=10, embeddings=emb, random_state="0")


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
    assume(n_pool - len(exclude) >= budget)
    out = get_selector(name)(scores, n=budget, embeddings=emb, exclude=exclude, random_state=seed)
    assert len(out) == budget == len(np.unique(out)) and not np.isin(out, exclude).any()


def _rare_categories(seed=0):
    """Five categories of 200 pairs and one 10x rarer (20 pairs) that also scores low."""
    rng = np.random.default_rng(seed)
    cats = np.r_[np.repeat(np.arange(5), 200), np.full(20, 5)]
    scores = rng.random(len(cats))
    scores[cats == 5] *= 0.3  # the rare category also scores low: topk would starve it
    emb = rng.normal(size=(len(cats), 6)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return scores, cats, emb


@pytest.mark.parametrize("within", SELECTORS.names())
@pytest.mark.parametrize("mode", ["uniform", "proportional"])
def test_balanced_contract(within, mode):
    scores, cats, emb = _rare_categories()
    exclude = np.arange(0, len(cats), 7)
    kw = {"categories": cats, "embeddings": emb, "mode": mode, "within": within}
    a = select_balanced(scores, n=30, exclude=exclude, random_state=3, **kw)
    b = select_balanced(scores, n=30, exclude=exclude, random_state=3, **kw)
    assert a.dtype == np.int64 and len(a) == 30 and len(set(a.tolist())) == 30
    assert ((a >= 0) & (a < len(cats))).all() and not np.isin(a, exclude).any()
    assert a.tolist() == b.tolist()
    assert (np.diff(scores[a]) <= 0).all(), "not best first"
    with pytest.raises(PoolExhaustedError):
        select_balanced(scores, n=len(cats) - len(exclude) + 1, exclude=exclude, **kw)
    with pytest.raises(ValueError):
        select_balanced(scores, n=0, **kw)


def test_balanced_uniform_gives_the_rare_category_its_share():
    scores, cats, _ = _rare_categories()
    assert np.bincount(cats[select_topk(scores, n=60)], minlength=6)[5] == 0  # starved without
    picked = select_balanced(scores, n=60, categories=cats)
    assert np.bincount(cats[picked], minlength=6).tolist() == [10] * 6
    # within a category the best scores are taken
    rare = np.flatnonzero(cats == 5)
    assert set(picked[cats[picked] == 5]) == set(rare[np.argsort(-scores[rare])[:10]])


def test_balanced_uniform_redistributes_unused_quota_by_score():
    scores, cats, _ = _rare_categories()
    exclude = np.flatnonzero(cats == 5)[:16]  # 4 rare candidates left, share would be 10
    picked = select_balanced(scores, n=60, categories=cats, exclude=exclude)
    counts = np.bincount(cats[picked], minlength=6)
    assert counts[5] == 4 and counts.sum() == 60 and (counts[:5] >= 10).all()
    shares = [np.flatnonzero(cats == c)[np.argsort(-scores[cats == c], kind="stable")] for c in range(5)]
    rest = np.concatenate([s[10:] for s in shares])
    expected = np.concatenate([s[:10] for s in shares] + [rest[np.argsort(-scores[rest])[:6]],
                                                          np.flatnonzero(cats == 5)[16:]])
    assert set(picked.tolist()) == set(expected.tolist())


def test_balanced_proportional_floor_and_remainders():
    scores, cats, _ = _rare_categories()
    counts = np.bincount(cats[select_balanced(scores, n=60, categories=cats, mode="proportional")],
                         minlength=6)
    # raw shares 11.76 x 5 and 1.18: floors 11 and 1, the four largest remainders get one more
    assert counts.tolist() == [12, 12, 12, 12, 11, 1]
    counts = np.bincount(cats[select_balanced(scores, n=60, categories=cats, mode="proportional",
                                              floor=5)], minlength=6)
    assert counts.tolist() == [11, 11, 11, 11, 11, 5]
    # a floor the budget cannot meet: one each for the categories with the best top scores
    counts = np.bincount(cats[select_balanced(scores, n=4, categories=cats, mode="proportional")],
                         minlength=6)
    assert counts.max() == 1 and counts.sum() == 4


def test_balanced_coreset_seeds_with_the_category_labelled_pairs():
    emb = np.array([[1, 0], [0.99, 0.14], [-1, 0], [0, 1], [0.1, 0.99], [0, -1]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cats = np.array(["a", "a", "a", "b", "b", "b"])
    picked = select_balanced(np.ones(6), n=2, categories=cats, embeddings=emb, indices_labeled=[0, 3],
                             within="coreset")
    assert sorted(picked.tolist()) == [2, 5]  # the far point of each category


def test_balanced_bad_arguments():
    scores, cats, _ = _rare_categories()
    with pytest.raises(ValueError, match="uniform"):
        select_balanced(scores, n=5, categories=cats, mode="equal")
    with pytest.raises(ValueError, match="one label per score"):
        select_balanced(scores, n=5, categories=cats[:-1])
    with pytest.raises(ValueError, match="valid"):
        select_balanced(scores, n=5, categories=cats, within="nope")


def test_coreset_default_runs_among_the_top_scorers():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(500, 4)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    scores = rng.random(500)
    top = np.argsort(-scores, kind="stable")
    picked = select_coreset(scores, n=5, embeddings=emb)
    assert np.isin(picked, top[:50]).all()  # default candidates = 10 * n
    assert picked.tolist() == select_coreset(scores, n=5, embeddings=emb, candidates=50).tolist()
    whole = select_coreset(scores, n=5, embeddings=emb, candidates=0)  # pure k-center
    assert not np.isin(whole, top[:50]).all()
    with pytest.raises(ValueError, match="candidates"):
        select_coreset(scores, n=5, embeddings=emb, candidates=-1)
