"""Noise injection keeps the truth aside and swaps only what it says it swaps."""

from __future__ import annotations

import numpy as np
import pytest

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
