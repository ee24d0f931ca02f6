"""The learning benchmark's worlds, reviewer and reference (mmcurate.simulate.worlds & co.): properties
on small n, not exact numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.simulate.reference import Reviewer, reference_loop
from mmcurate.simulate.worlds import (
    BOILERPLATE,
    HARD_CLIP_GAP,
    clip_gap_world,
    cycle_swaps,
    mixed_world,
    modality_gap,
    write_world,
)


def _check_common(world, n: int) -> None:
    assert world.image.shape == world.text.shape and len(world.image) == n
    assert world.image.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(world.image, axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(world.text, axis=1), 1, atol=1e-4)
    assert list(world.truth["pair_id"]) == list(world.metadata["key"])
    assert world.metadata["key"].is_unique
    assert {"key", "caption", "category"} <= set(world.metadata.columns)
    assert set(world.truth["noisy"].unique()) <= {0, 1}
    assert "noisy" not in world.metadata.columns and "kind" not in world.metadata.columns


def _check_gap(world) -> None:
    clean = world.truth["noisy"].to_numpy() == 0
    gap = modality_gap(world.image[clean], world.text[clean])
    assert 0.2 <= gap["matched_cosine"] <= 0.3
    assert 0.45 <= gap["image_mean_norm"] <= 0.65 and 0.45 <= gap["text_mean_norm"] <= 0.65
    assert gap["means_cosine"] < 0.05  # the two cones point apart


@pytest.mark.parametrize("kind", ["same-category", "random"])
def test_clip_gap_world_properties(kind):
    world = clip_gap_world(1500, dim=128, kind=kind, random_state=3)
    _check_common(world, 1500)
    _check_gap(world)
    assert world.truth["noisy"].mean() == pytest.approx(0.2, abs=0.005)
    assert set(world.truth["kind"]) == {"clean", "swap"}
    cos = np.sum(world.image * world.text, 1)
    clean, swap = (world.truth["kind"] == "clean").to_numpy(), (world.truth["kind"] == "swap").to_numpy()
    assert cos[clean].mean() > cos[swap].mean() + 0.1
    # concept-dependent levels: the matched cosine differs clearly between super-categories
    by_cat = pd.Series(cos[clean]).groupby(world.metadata["category"].to_numpy()[clean]).mean()
    assert by_cat.max() - by_cat.min() > 0.05


def test_clip_gap_same_category_swaps_stay_in_their_category():
    world = clip_gap_world(1000, kind="same-category", random_state=0)
    swapped = world.truth["kind"].eq("swap").to_numpy()
    # each swapped caption names its super-category; it must be the pair's own one
    cats = world.metadata["category"].str.replace("super", "", regex=False).astype(int).to_numpy()
    named = world.metadata["caption"].str.extract(r"super-category (\d+)")[0].astype(int).to_numpy()
    assert (named[swapped] == cats[swapped]).mean() > 0.95
    random_world = clip_gap_world(1000, kind="random", random_state=0)
    named_r = random_world.metadata["caption"].str.extract(r"super-category (\d+)")[0].astype(int).to_numpy()
    assert (named_r[swapped] == cats[swapped]).mean() < 0.5


def test_mixed_world_shares_per_kind_and_gap():
    n = 2000
    world = mixed_world(n, random_state=4)
    _check_common(world, n)
    _check_gap(world)
    shares = world.truth["kind"].value_counts() / n
    for kind, share in {"swap": 0.07, "boilerplate": 0.06, "half_right": 0.06, "duplicate": 0.08}.items():
        assert shares[kind] == pytest.approx(share, abs=0.002)
    boiler = world.truth["kind"].eq("boilerplate").to_numpy()
    assert set(world.metadata["caption"][boiler]) <= set(BOILERPLATE)
    # all pairs with one boilerplate caption share its vector up to small noise
    for text in set(world.metadata["caption"][boiler]):
        rows = np.flatnonzero(world.metadata["caption"].eq(text).to_numpy() & boiler)
        assert (world.text[rows] @ world.text[rows].T).min() > 0.99
    dup = world.truth["kind"].eq("duplicate").to_numpy()
    assert set(world.truth["noisy"][dup]) <= {0, 1} and world.truth["noisy"][dup].mean() < 0.5
    # a duplicate's closest other image is its near copy
    sims = world.image[dup] @ world.image.T
    sims[np.arange(dup.sum()), np.flatnonzero(dup)] = -1
    assert np.median(sims.max(1)) > 0.98


@pytest.mark.parametrize("make", [lambda s: clip_gap_world(300, random_state=s),
                                  lambda s: mixed_world(300, random_state=s)])
def test_worlds_are_deterministic_per_seed(make):
    a, b, c = make(7), make(7), make(8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.text, b.text)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.array_equal(a.image, c.image)


def test_cycle_swaps_never_keeps_own_caption():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(5), 20)
    chosen = np.sort(rng.choice(100, 31, replace=False))
    donors = cycle_swaps(chosen, groups, rng)
    assert (donors != chosen).all()
    assert sorted(donors) == sorted(chosen)  # each donor gives its caption once


def test_write_world_layout_imports(tmp_path):
    from mmcurate.embed.importer import import_embedding_folder  # noqa: F401  (layout is the importer's)

    folder = write_world(tmp_path / "w", clip_gap_world(200, dim=32, random_state=1))
    assert (folder / "img_emb" / "img_emb_0.npy").is_file()
    assert (folder / "text_emb" / "text_emb_0.npy").is_file()
    meta = pd.read_parquet(folder / "metadata" / "metadata_0.parquet")
    truth = pd.read_csv(folder / "truth.csv")
    assert list(meta["key"]) == list(truth["pair_id"]) and "noisy" not in meta.columns
    assert (folder / "world.json").is_file()


def test_reviewer_errs_at_its_rate_and_draws_afresh():
    noisy = np.zeros(20_000, bool)
    reviewer = Reviewer(noisy, error=0.1, random_state=0)
    first = reviewer.decide(np.arange(20_000))
    assert first.mean() == pytest.approx(0.1, abs=0.01)
    second = reviewer.decide(np.arange(20_000))
    assert 0 < (first != second).mean() < 0.3  # a second showing is a fresh draw
    # the same seed gives the same answers to the same showings (the CLI loop and the reference)
    again = Reviewer(noisy, error=0.1, random_state=0)
    np.testing.assert_array_equal(again.decide(np.arange(20_000)), first)


def test_the_hard_clip_gap_setting_is_harder_for_the_prior_and_learnable():
    """clip_hard (the learning benchmark's hard setting): the zero-label prior ranks its
    same-category swaps well below the easy setting, and a logistic fit on a few labels of the same
    features ranks the rest better than the prior (there is something to learn)."""
    from sklearn.linear_model import LogisticRegression

    from mmcurate.signals.metrics import auroc
    from mmcurate.simulate.reference import alignment_features

    result = {}
    for name, options in (("easy", {}), ("hard", HARD_CLIP_GAP)):
        world = clip_gap_world(2000, dim=128, random_state=5, **options)
        noisy = world.truth["noisy"].to_numpy(bool)
        features, prior = alignment_features(world.image, world.text)
        fit = LogisticRegression(max_iter=1000).fit(features[:600], noisy[:600])
        rest = slice(600, None)
        result[name] = (auroc(1 - prior[rest], noisy[rest]),
                        auroc(fit.predict_proba(features[rest])[:, 1], noisy[rest]))
        _check_common(world, 2000)
    assert result["hard"][0] < result["easy"][0] - 0.05, result
    assert 0.7 < result["hard"][0] < 0.93, result
    assert result["hard"][1] > result["hard"][0] + 0.02, result


def test_reference_loop_finds_noise():
    world = clip_gap_world(800, dim=64, kind="random", random_state=2)
    noisy = world.truth["noisy"].to_numpy(bool)
    cos = np.sum(world.image * world.text, 1)
    features = np.column_stack([cos, cos**2])
    prior = 1 / (1 + np.exp(-10 * (cos - 0.1)))
    run = reference_loop(features, prior, Reviewer(noisy, error=0.0, random_state=0), rounds=3, budget=50)
    shown = np.concatenate(run.shown)
    assert len(shown) == 150 and len(np.unique(shown)) == 150
    assert noisy[shown].mean() > 0.5  # the base rate is 0.2
    assert len(run.scores) == 4


def test_reference_loop_spends_labels_off_the_queue_as_asked():
    """``explore`` draws that share of each batch as mmcurate's loop explores (part uniform, part by
    the reference's own P(misaligned)) from the pairs its queue left, never a held-out one; ``plan``
    sets (queued, drawn) per round, each round's queued part the top of the model in use."""
    world = clip_gap_world(3000, dim=64, kind="random", random_state=4)
    noisy = world.truth["noisy"].to_numpy(bool)
    cos = np.sum(world.image * world.text, 1)
    features = np.column_stack([cos, cos**2])
    prior = 1 / (1 + np.exp(-10 * (cos - 0.1)))
    held = np.zeros(len(noisy), bool)
    held[::10] = True

    def reviewer():
        return Reviewer(noisy, error=0.0, random_state=0)

    greedy = reference_loop(features, prior, reviewer(), rounds=4, budget=100, exclude=held)
    mixed = reference_loop(features, prior, reviewer(), rounds=4, budget=100, exclude=held, explore=0.2,
                           random_state=1)
    planned = reference_loop(features, prior, reviewer(), rounds=2, budget=999, exclude=held,
                             plan=[(70, 30), (95, 0)], random_state=1)
    assert [len(s) for s in mixed.shown] == [100] * 4 and [len(s) for s in planned.shown] == [100, 95]
    shown = np.concatenate(mixed.shown)
    assert len(np.unique(shown)) == 400 and not held[shown].any()
    assert not held[np.concatenate(planned.shown)].any()
    for run, n_queue in ((mixed, 80), (planned, 70), (greedy, 100)):  # round 1: the prior's top
        open_rows = np.flatnonzero(~held)
        np.testing.assert_array_equal(run.shown[0][:n_queue],
                                      open_rows[np.argsort(-(1 - prior[open_rows]), kind="stable")[:n_queue]])
    open_rows = np.flatnonzero(~held & ~np.isin(np.arange(len(noisy)), planned.shown[0]))
    top = open_rows[np.argsort(-planned.scores[1][open_rows], kind="stable")[:95]]
    np.testing.assert_array_equal(planned.shown[1], top)  # round 2: the refitted model's top
    drawn = np.concatenate([s[80:] for s in mixed.shown])
    queued = np.concatenate([s[:80] for s in mixed.shown])
    base = noisy[~held].mean()
    assert base < noisy[drawn].mean() < noisy[queued].mean()  # suspicion-weighted, not the queue
    assert noisy[np.concatenate(greedy.shown)].sum() > noisy[shown].sum()


@pytest.mark.slow
def test_tiny_scenes_world(tiny_clip_dir, tmp_path):
    from mmcurate.simulate.scenes_world import tiny_scenes_world

    world = tiny_scenes_world(200, kind="same-category", random_state=1, model_dir=tiny_clip_dir,
                              cache_dir=tmp_path)
    _check_common(world, 200)
    assert world.truth["kind"].value_counts().to_dict() == {"clean": 160, "attribute": 20, "swap": 20}
    attr = world.truth["kind"].eq("attribute").to_numpy()
    assert set(world.truth["attribute"][attr]) <= {"color", "shape", "count", "position"}
    cos = np.sum(world.image * world.text, 1)
    assert cos[~world.truth["noisy"].astype(bool).to_numpy()].mean() > cos[attr].mean()
    again = tiny_scenes_world(200, kind="same-category", random_state=1, model_dir=tiny_clip_dir,
                              cache_dir=tmp_path)  # from the vector cache
    np.testing.assert_allclose(again.image, world.image)
    pd.testing.assert_frame_equal(again.truth, world.truth)
