"""The stream threshold keeps the review rate near its target while scores drift."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcurate.stream.threshold import AdaptiveThreshold


def test_rate_tracks_target_under_drift():
    rng = np.random.default_rng(0)
    th = AdaptiveThreshold(0.05, window=3000)
    rates = []
    for b in range(10):
        scores = rng.normal(loc=0.3 * b, scale=1 + 0.1 * b, size=500)  # mean and spread drift
        rates.append(th.update(scores).mean())
    assert all(0.05 * 0.7 <= r <= 0.05 * 1.3 for r in rates[1:]), rates
    assert abs(th.realised_rate - 0.05) < 0.01


def test_queues_the_highest_scores():
    th = AdaptiveThreshold(0.2)
    s = np.arange(50, dtype=float)
    mask = th.update(s)
    assert mask[-10:].all() and not mask[:40].any()


def test_bad_input():
    with pytest.raises(ValueError):
        AdaptiveThreshold(0.0)
    with pytest.raises(ValueError):
        AdaptiveThreshold(0.1).update([np.nan])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=200), st.floats(0.01, 0.5))
def test_mask_shape_and_counts(scores, rate):
    th = AdaptiveThreshold(rate)
    mask = th.update(scores)
    assert mask.shape == (len(scores),) and th.n_queued == int(mask.sum()) <= len(scores)


def test_saved_state_continues_exactly():
    """Saving and restoring between batches (as `mmcurate add` does) changes no decision."""
    import json

    rng = np.random.default_rng(1)
    batches = [rng.normal(loc=0.2 * b, size=120) for b in range(6)]
    straight = AdaptiveThreshold(0.1, window=300)
    expected = [straight.update(s) for s in batches]
    th = AdaptiveThreshold(0.1, window=300)
    for scores, mask in zip(batches, expected):
        th = AdaptiveThreshold.from_dict(json.loads(json.dumps(th.to_dict())))
        np.testing.assert_array_equal(th.update(scores), mask)
        assert (scores > th.score_threshold)[~mask].sum() == 0
    assert th.to_dict() == straight.to_dict()
