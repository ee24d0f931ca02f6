"""Noise injection keeps the truth aside and swaps only what it says it swaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcurate.noise import inject_noise


@pytest.mark.parametrize("kind", ["random", "same_category"])
def test_rate_truth_and_determinism(kind):
    cats = np.repeat(np.arange(5), 40)
    src, noisy = inject_noise(200, rate=0.2, kind=kind, categories=cats, random_state=3)
    assert noisy.sum() == 40
    assert (src[~noisy] == np.flatnonzero(~noisy)).all()
    assert (src[noisy] != np.flatnonzero(noisy)).all()
    src2, noisy2 = inject_noise(200, rate=0.2, kind=kind, categories=cats, random_state=3)
    assert (src == src2).all() and (noisy == noisy2).all()
    if kind == "same_category":
        assert (cats[src] == cats).all()


def test_identical_captions_are_not_noise():
    caps = np.array(["a red circle"] * 10)
    _, noisy = inject_noise(10, rate=0.5, captions=caps, random_state=0)
    assert not noisy.any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="same_category"):
        inject_noise(10, rate=0.1, kind="nope")
    with pytest.raises(ValueError, match="rate"):
        inject_noise(10, rate=1.5)


def _check_permutation(src, noisy, n):
    """The injection permutes captions: no caption duplicated, no noisy pair keeps its own."""
    caps = np.array([f"caption {i}" for i in range(n)], dtype=object)
    assert len(np.unique(src)) == n and sorted(src.tolist()) == list(range(n))
    assert len(set(caps[src])) == n
    assert (src[noisy] != np.flatnonzero(noisy)).all()
    assert (src[~noisy] == np.flatnonzero(~noisy)).all()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), rate=st.floats(0.0, 1.0), n_cats=st.integers(1, 40),
       seed=st.integers(0, 10_000), kind=st.sampled_from(["random", "same_category"]))
def test_injection_is_a_permutation(n, rate, n_cats, seed, kind):
    cats = np.random.default_rng(seed).integers(0, n_cats, n)
    src, noisy = inject_noise(n, rate=rate, kind=kind, categories=cats, random_state=seed)
    _check_permutation(src, noisy, n)
    target = round(rate * n)
    if kind == "random" and n >= 2:
        # exact, except that a single swap is impossible: two pairs swap instead
        assert noisy.sum() == (2 if target == 1 else target)
    if kind == "same_category":
        sizes = np.bincount(cats, minlength=n_cats)[cats]
        assert (cats[src] == cats)[sizes >= 2].all()
        assert noisy.sum() <= target + 1
    caps = np.array([f"caption {i}" for i in range(n)], dtype=object)
    src2, noisy2 = inject_noise(n, rate=rate, kind=kind, categories=cats, captions=caps,
                                random_state=seed)
    assert (src2 == src).all() and (noisy2 == noisy).all()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
@pytest.mark.parametrize("kind", ["random", "same_category"])
def test_no_duplicated_caption_and_exact_count(kind, rate, seed):
    cats = np.repeat(np.arange(8), 25)
    caps = np.array([f"caption {i}" for i in range(200)], dtype=object)
    src, noisy = inject_noise(200, rate=rate, kind=kind, categories=cats, captions=caps,
                              random_state=seed)
    assert len(np.unique(caps[src])) == 200 and len(np.unique(src)) == 200
    assert noisy.sum() == round(rate * 200)
    if kind == "same_category":
        assert (cats[src] == cats).all()


@pytest.mark.parametrize(("n_cats", "size", "rate", "n_seeds", "expected", "no_lone"), [
    # three categories of three pairs, three chosen: (1, 1, 1) and (2, 1, 0) draws are repaired
    # into (0, 3, 0)-like ones, keeping the count and the categories
    (3, 3, 1 / 3, 30, 3, True),
    # categories of two pairs and an odd count: no repair keeps it, one more pair is swapped
    (4, 2, 3 / 8, 10, 4, False),
    # two lone categories trade a row: the count stays exact
    (10, 10, 0.12, 20, 12, True),
])
def test_category_with_one_chosen_row(n_cats, size, rate, n_seeds, expected, no_lone):
    """A category holding one chosen pair cannot permute within itself: the draw is repaired."""
    cats = np.repeat(np.arange(n_cats), size)
    n = len(cats)
    for seed in range(n_seeds):
        src, noisy = inject_noise(n, rate=rate, kind="same_category", categories=cats, random_state=seed)
        _check_permutation(src, noisy, n)
        assert (cats[src] == cats).all() and noisy.sum() == expected
        assert not no_lone or not (np.bincount(cats[noisy], minlength=n_cats) == 1).any()


def test_single_member_categories_swap_among_themselves():
    cats = np.array([0, 0, 0, 0, 1, 2, 3])  # 1, 2, 3 have one pair each
    for seed in range(20):
        src, noisy = inject_noise(7, rate=1.0, kind="same_category", categories=cats,
                                  random_state=seed)
        _check_permutation(src, noisy, 7)
        assert noisy.all()
        assert (cats[src[:4]] == 0).all() and set(src[4:]) == {4, 5, 6}
    # one single-member category alone can never be swapped
    src, noisy = inject_noise(5, rate=1.0, kind="same_category", categories=[0, 0, 1, 1, 2],
                              random_state=0)
    assert src[4] == 4 and not noisy[4] and noisy[:4].all()


def test_single_swap_becomes_a_pair():
    src, noisy = inject_noise(20, rate=0.05, random_state=0)  # round(0.05 * 20) == 1
    _check_permutation(src, noisy, 20)
    assert noisy.sum() == 2
