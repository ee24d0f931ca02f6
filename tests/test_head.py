"""Projection head: identity at init, learning a planted cross-modal rotation, persistence, fixes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from mmcurate.exceptions import ProjectError
from mmcurate.head import HeadConfig, ProjectionHead, cross_validate_head, train_head
from mmcurate.signals.metrics import auroc

FAST = HeadConfig(n_folds=0)


def make_rotated_pairs(n: int = 2000, d: int = 32, noise_rate: float = 0.2, seed: int = 0):
    """Captions = R·image + noise for a rotation R by 60–100° in every plane of a random basis.

    Plain cosine sees aligned pairs at only ~cos 80°, so it separates them badly from the planted
    swaps (``noise_rate`` of the pairs get another pair's caption). Returns float16 image and text
    vectors, the swapped mask and the clean captions (before swapping).
    """
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(n, d))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    blocks = np.zeros((d, d))
    for k, angle in enumerate(rng.uniform(np.deg2rad(60), np.deg2rad(100), d // 2)):
        blocks[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = [[np.cos(angle), -np.sin(angle)],
                                                        [np.sin(angle), np.cos(angle)]]
    clean = image @ (basis @ blocks @ basis.T).T + 0.3 / np.sqrt(d) * rng.normal(size=(n, d))
    clean /= np.linalg.norm(clean, axis=1, keepdims=True)
    text = clean.copy()
    swapped = np.zeros(n, bool)
    idx = rng.choice(n, int(noise_rate * n), replace=False)
    text[idx], swapped[idx] = clean[np.roll(idx, 1)], True
    return image.astype(np.float16), text.astype(np.float16), swapped, clean.astype(np.float32)


@pytest.fixture(scope="module")
def pairs():
    return make_rotated_pairs()


def _raw_cos(image, text) -> np.ndarray:
    a, b = image.astype(np.float32), text.astype(np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _labelled(swapped, n_labels, seed=1):
    lab = np.random.default_rng(seed).choice(len(swapped), n_labels, replace=False)
    unlabelled = np.setdiff1d(np.arange(len(swapped)), lab)
    return lab[~swapped[lab]], lab[swapped[lab]], unlabelled


@pytest.fixture(scope="module")
def trained(pairs):
    image, text, swapped, _ = pairs
    pos, neg, unlabelled = _labelled(swapped, 200)
    head, metrics = train_head(image, text, positives=pos, negatives=neg, config=HeadConfig(random_state=0))
    return head, metrics, pos, neg, unlabelled


# -- identity at round 0 ---------------------------------------------------------------------------
def test_untrained_head_is_plain_clip_on_memmapped_float16(tmp_path, pairs):
    image = pairs[0] * np.float16(3.0)  # not normalised on purpose
    path = tmp_path / "image.npy"
    np.save(path, image)
    mapped = np.load(path, mmap_mode="r")
    head = ProjectionHead(32)
    out = head.transform_images(mapped, chunk_size=300)  # several chunks
    expected = image.astype(np.float32) / np.linalg.norm(image.astype(np.float32), axis=1, keepdims=True)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(head.transform_texts(pairs[1]), pairs[1] / np.linalg.norm(
        pairs[1].astype(np.float32), axis=1, keepdims=True), rtol=0, atol=1e-6)
    np.testing.assert_allclose(head.cosine(pairs[0], pairs[1]), _raw_cos(pairs[0], pairs[1]), atol=1e-5)
    assert head.transform_images(np.zeros((0, 32), np.float16)).shape == (0, 32)


def test_transform_rejects_wrong_shapes_and_non_finite_rows():
    head = ProjectionHead(8)
    with pytest.raises(ValueError, match=r"shape \(N, 8\), got \(3, 9\)"):
        head.transform_images(np.ones((3, 9)))
    bad = np.ones((5, 8), np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3 is not finite"):
        head.transform_texts(bad)


def test_factorised_training_cosines_match_the_transforms():
    from mmcurate.head.fit import _cos_matrix

    head = ProjectionHead(16, config=HeadConfig(rank=4))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for adapter in (head.module.image, head.module.text):
            adapter.up.copy_(torch.randn(adapter.up.shape, generator=gen) * 0.3)
    x = torch.nn.functional.normalize(torch.randn(7, 16, generator=gen), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(5, 16, generator=gen), dim=-1)
    with torch.no_grad():
        fast = _cos_matrix(head.module, x, t).numpy()
    direct = head.transform_images(x.numpy()) @ head.transform_texts(t.numpy()).T
    np.testing.assert_allclose(fast, direct, atol=1e-5)


# -- learning something real ------------------------------------------------------------------------
def test_head_learns_the_planted_rotation_and_beats_identity(pairs, trained):
    image, text, swapped, _ = pairs
    head, metrics, pos, neg, unlabelled = trained
    aligned = ~swapped[unlabelled]
    identity_auroc = auroc(_raw_cos(image, text)[unlabelled], aligned)
    head_auroc = auroc(head.cosine(image, text)[unlabelled], aligned)
    assert identity_auroc < 0.85  # plain cosine struggles with the rotation ...
    assert head_auroc > 0.95 and head_auroc > identity_auroc + 0.1  # ... the head does not
    assert metrics["n_pos"] == len(pos) and metrics["n_neg"] == len(neg) and metrics["n_fixed"] == 0
    assert metrics["cv_folds"] == 5
    assert metrics["cv_accuracy"] > 0.9 and metrics["cv_accuracy"] > metrics["cv_accuracy_identity"] + 0.05
    assert metrics["cv_auroc"] > metrics["cv_auroc_identity"]
    curve = metrics["loss_curve"]
    assert len(curve) >= 10 and np.mean(curve[-3:]) < 0.5 * curve[0]
    proba = head.predict_proba(image[unlabelled], text[unlabelled])
    assert proba[aligned].mean() > 0.8 and proba[~aligned].mean() < 0.2  # calibrated, not just ranked


def test_save_load_round_trip_is_exact(tmp_path, pairs, trained):
    head = trained[0]
    weights = head.save(tmp_path / "heads" / "head-0001.safetensors")
    sidecar = json.loads((tmp_path / "heads" / "head-0001.json").read_text())
    assert sidecar["dim"] == 32 and sidecar["config"]["random_state"] == 0
    assert sidecar["metrics"]["cv_folds"] == 5
    assert sorted(p.name for p in weights.parent.iterdir()) == ["head-0001.json", "head-0001.safetensors"]
    again = ProjectionHead.load(tmp_path / "heads" / "head-0001.json")
    for fn in ("transform_images", "transform_texts"):
        assert np.array_equal(getattr(head, fn)(pairs[0]), getattr(again, fn)(pairs[0]))
    assert np.array_equal(head.predict_proba(pairs[0], pairs[1]), again.predict_proba(pairs[0], pairs[1]))
    assert again.config == head.config and again.metrics["cv_accuracy"] == head.metrics["cv_accuracy"]
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ProjectError, match="checksum"):
        ProjectionHead.load(weights)
    with pytest.raises(ProjectError, match="cannot read"):
        ProjectionHead.load(tmp_path / "missing.safetensors")


def test_few_labels_do_not_wreck_the_space(pairs):
    image, text, swapped, _ = pairs
    raw = _raw_cos(image, text)
    for seed in (2, 3):
        pos, neg, unlabelled = _labelled(swapped, 5, seed=seed)
        head, metrics = train_head(image, text, positives=pos, negatives=neg,
                                   config=HeadConfig(random_state=seed))
        assert np.isnan(metrics["cv_accuracy"]) or metrics["cv_folds"] >= 2
        aligned = ~swapped[unlabelled]
        assert auroc(head.cosine(image, text)[unlabelled], aligned) > auroc(raw[unlabelled], aligned) - 0.02


def test_fixed_captions_are_used_as_positives(pairs):
    image, text, swapped, clean = pairs
    fixed_rows = np.flatnonzero(swapped)[:150]
    fixed = (fixed_rows, clean[fixed_rows])  # the reviewer typed the right caption
    head, metrics = train_head(image, text, positives=np.zeros(0, np.int64), negatives=fixed_rows,
                               fixed_texts=fixed, config=FAST)
    assert (metrics["n_pos"], metrics["n_fixed"], metrics["n_neg"]) == (0, 150, 150)
    rest = np.setdiff1d(np.arange(len(image)), fixed_rows)
    aligned = ~swapped[rest]
    identity = auroc(_raw_cos(image, text)[rest], aligned)
    assert auroc(head.cosine(image, text)[rest], aligned) > identity + 0.1
    to_fix = head.cosine(image[fixed_rows], fixed[1])
    to_original = head.cosine(image[fixed_rows], text[fixed_rows])
    assert (to_fix > to_original).mean() > 0.95
    # without the corrected captions there is nothing aligned to learn from: the head stays CLIP
    plain, _ = train_head(image, text, positives=np.zeros(0, np.int64), negatives=fixed_rows, config=FAST)
    np.testing.assert_allclose(plain.cosine(image, text), _raw_cos(image, text), atol=1e-5)


def test_training_is_deterministic_for_a_random_state(pairs):
    image, text, swapped, _ = pairs
    pos, neg, _ = _labelled(swapped, 100, seed=4)
    config = HeadConfig(n_folds=0, min_steps=40, max_steps=40)
    first, m1 = train_head(image, text, positives=pos, negatives=neg, config=config)
    second, m2 = train_head(image, text, positives=pos, negatives=neg, config=config)
    other, _ = train_head(image, text, positives=pos, negatives=neg,
                          config=HeadConfig(n_folds=0, min_steps=40, max_steps=40, random_state=1))
    assert np.array_equal(first.transform_texts(text), second.transform_texts(text))
    assert m1["loss_curve"] == m2["loss_curve"] and m1["n_steps"] == 40
    assert not np.array_equal(first.transform_texts(text), other.transform_texts(text))


def test_without_hard_negatives_training_still_runs(pairs):
    image, text, swapped, _ = pairs
    pos, neg, _ = _labelled(swapped, 60, seed=5)
    _, metrics = train_head(image, text, positives=pos, negatives=neg,
                            config=HeadConfig(n_folds=0, hard_negatives=0, min_steps=20, max_steps=20))
    assert metrics["n_steps"] == 20 and np.isfinite(metrics["loss_curve"]).all()


def test_cross_validation_needs_two_labels_per_class(pairs):
    image, text, swapped, _ = pairs
    pos, neg, _ = _labelled(swapped, 40, seed=6)
    result = cross_validate_head(image, text, positives=pos, negatives=neg[:1], config=FAST)
    assert result["cv_folds"] < 2 and np.isnan(result["cv_accuracy"]) and np.isnan(result["cv_auroc"])


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"positives": [1, 2], "negatives": [2, 3]}, ValueError, "both positive and negative"),
    ({"positives": [1, 5000], "negatives": []}, ValueError, r"in \[0, 2000\)"),
    ({"positives": [1.0, 2.0], "negatives": []}, TypeError, "int64 row indices"),
    ({"positives": [1, 1], "negatives": []}, ValueError, "repeats"),
    ({"positives": [1], "negatives": [], "fixed_texts": ([3], np.zeros((1, 5)))}, ValueError,
     r"shape \(1, 32\)"),
])
def test_bad_arguments_say_what_was_expected(pairs, kwargs, error, match):
    with pytest.raises(error, match=match):
        train_head(pairs[0], pairs[1], config=FAST, **kwargs)
    with pytest.raises(ValueError, match="same shape"):
        train_head(pairs[0], pairs[1][:10], positives=[1], negatives=[], config=FAST)


def test_config_values_are_checked():
    with pytest.raises(ValueError, match=r"lr=0\.0.*n_folds=-1"):
        HeadConfig(lr=0.0, n_folds=-1)


def test_non_finite_training_vectors_are_refused(pairs):
    image = pairs[0].copy()
    image[7, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        train_head(image, pairs[1], positives=[7, 8], negatives=[9], config=FAST)


@pytest.mark.slow
def test_five_thousand_labels_train_and_do_not_hurt():
    """Quality on 5,000 labels; the speed figure lives in scripts/bench_head.py (no wall-clock
    assertions in tests: they fail on a loaded machine)."""
    rng = np.random.default_rng(0)
    n, d = 20_000, 512
    image = rng.normal(size=(n, d)).astype(np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text = image + 0.5 / np.sqrt(d) * rng.normal(size=(n, d)).astype(np.float32)
    swapped = rng.choice(n, n // 5, replace=False)
    text[swapped] = text[np.roll(swapped, 1)]
    labelled = rng.choice(n, 5000, replace=False)
    bad = np.isin(labelled, swapped)
    start = time.perf_counter()
    _, metrics = train_head(image.astype(np.float16), text.astype(np.float16),
                            positives=labelled[~bad], negatives=labelled[bad])
    seconds = time.perf_counter() - start
    print(f"5000 labels, N={n}, D={d}: fit {metrics['train_seconds']:.1f}s, with 5-fold CV {seconds:.1f}s")
    assert metrics["cv_accuracy"] >= metrics["cv_accuracy_identity"] - 0.01


def test_transformed_view_reads_like_the_transformed_array():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x + 0.3 * rng.normal(size=x.shape).astype(np.float32)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    head, _ = train_head(x.astype(np.float16), y.astype(np.float16), positives=np.arange(40),
                         negatives=np.arange(40, 60), config=HeadConfig(epochs=2, n_folds=0))
    full = head.transform_images(x)
    view = head.view(x, "image")
    assert view.shape == full.shape and len(view) == 300
    np.testing.assert_allclose(view[10:20], full[10:20], atol=1e-6)
    np.testing.assert_allclose(view[np.array([5, 1, 299])], full[[5, 1, 299]], atol=1e-6)
    np.testing.assert_allclose(view[7], full[7], atol=1e-6)
