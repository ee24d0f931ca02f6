"""mmcurate simulate: metrics file, random review's expected recall, determinism, resume, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.simulate import load_results, run_simulation, summarize
from mmcurate.synth import domain_shift_embeddings

FAST_HEAD = {"min_steps": 5, "max_steps": 5, "hard_negatives": 2}
COLUMNS = {"strategy", "diversity", "seed", "detection_score", "round", "labels", "n_pool", "n_noisy",
           "found", "recall", "batch_precision", "auroc", "auprc", "auroc_p_misaligned",
           "auroc_round0_model", "learning_gain",
           "holdout_accuracy", "holdout_balanced_accuracy", "holdout_auroc", "head_round", "seconds",
           "seconds_total"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A clean synthetic clip-retrieval folder (400 pairs, 20 domains as categories)."""
    image, text, _, domain = domain_shift_embeddings(400, 16, rate=0.0, random_state=3)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(400)], "caption": [f"c{i}" for i in range(400)],
                         "category": domain})
    return write_embedding_folder(tmp_path_factory.mktemp("emb") / "folder", image, text, meta)


def _run(out, folder, **options):
    defaults = {"strategies": ["random", "margin"], "rounds": 2, "budget": 20, "seeds": 2,
                "head": FAST_HEAD, "progress": False}
    return run_simulation(out, embeddings=folder, **{**defaults, **options})


def test_metrics_file_summary_and_plots(tmp_path, folder):
    metrics = _run(tmp_path / "a", folder, noise_kind="same-category")
    on_disk = load_results(tmp_path / "a")
    assert COLUMNS <= set(on_disk.columns)
    assert len(on_disk) == 2 * 2 * 3  # strategies x seeds x rounds 0..2
    assert set(on_disk["strategy"]) == {"random", "margin"}
    curves = on_disk.sort_values("round").groupby(["strategy", "seed"])["labels"].apply(tuple)
    # round 2 may show up to 2 decided pairs again (second opinions: 10% of a batch of 20)
    assert all(c[:2] == (0, 20) and 38 <= c[2] <= 40 for c in curves), set(curves)
    assert set(on_disk.loc[on_disk["strategy"] == "margin", "detection_score"]) == {"1-p_aligned"}
    assert on_disk["batch_precision"].isna().sum() == 4  # the last round picks no batch
    pd.testing.assert_frame_equal(on_disk, metrics, check_dtype=False)
    # 10% held out of 400: 360 selectable pairs, never picked
    assert (on_disk.loc[on_disk["round"] == 0, "n_pool"] == 360).all()
    assert ((on_disk["n_pool"] + on_disk["labels"]) == 360).all()
    assert (on_disk["found"] <= on_disk["labels"]).all()
    # learning gain: 0 at round 0 and the difference of the two AUROCs, each a real AUROC
    round0 = on_disk[on_disk["round"] == 0]
    assert (round0["learning_gain"] == 0).all()
    assert (round0["auroc_round0_model"] == round0["auroc_p_misaligned"]).all()
    np.testing.assert_allclose(on_disk["learning_gain"],
                               on_disk["auroc_p_misaligned"] - on_disk["auroc_round0_model"])
    assert on_disk["auroc_round0_model"].between(0, 1).all()
    summary = summarize(on_disk, at_labels=20)
    assert set(summary["strategy"]) == {"random", "margin"}
    assert summary["n_seeds"].eq(2).all()
    for col in ("learning_gain_final", "learning_gain_min", "learning_gain_from3_min"):
        assert {f"{col}_mean", f"{col}_std", f"{col}_min"} <= set(summary.columns)
    assert np.isfinite(summary["learning_gain_final_mean"]).all()
    assert summary["learning_gain_from3_min_mean"].isna().all()  # only rounds 0..2 here
    text = (tmp_path / "a" / "summary.md").read_text()
    assert "imported embedding folder" in text and "same_category" in text
    assert "## Learning gain of the model" in text and "| round 1 | round 2 |" in text
    assert "comparison against `random`" in text
    for png in ("recall.png", "auroc.png", "labels_to_target.png", "score_histograms.png"):
        assert (tmp_path / "a" / png).stat().st_size > 1000


def test_random_review_recall_grows_linearly(tmp_path, folder):
    """E[recall after L labels] = L / pool size; tolerance from the hypergeometric std."""
    metrics = _run(tmp_path / "r", folder, strategies=["random"], rounds=3, budget=30, seeds=16,
                   report=False)
    pool0 = metrics.loc[metrics["round"] == 0].set_index("seed")["n_pool"]
    for r, rows in metrics[metrics["round"] > 0].groupby("round"):
        L = rows["labels"].to_numpy(float)
        N = pool0.loc[rows["seed"]].to_numpy(float)
        K = rows["n_noisy"].to_numpy(float)
        expected = L / N
        var = L * (K / N) * (1 - K / N) * (N - L) / (N - 1) / K**2
        z = (rows["recall"].to_numpy() - expected).sum() / np.sqrt(var.sum())
        assert abs(z) < 4, f"round {r}: mean recall {rows['recall'].mean():.3f} vs {expected.mean():.3f}"
    assert metrics.groupby("round")["recall"].mean().is_monotonic_increasing


def test_same_seed_same_metrics_and_resume(tmp_path, folder):
    first = _run(tmp_path / "x", folder, report=False)
    second = _run(tmp_path / "y", folder, report=False)
    wall = ["seconds", "seconds_total"]
    pd.testing.assert_frame_equal(first.drop(columns=wall), second.drop(columns=wall))
    done = tmp_path / "x" / "runs" / "margin__none__s1" / "metrics.csv"
    stamp = done.stat().st_mtime_ns
    again = _run(tmp_path / "x", folder, strategies=["random", "margin", "clip_score"])
    assert done.stat().st_mtime_ns == stamp  # finished runs are not redone
    assert set(again["strategy"]) == {"random", "margin", "clip_score"}
    clip = again[again["strategy"] == "clip_score"]
    assert clip["head_round"].isna().all()  # the no-learning baseline never trains a head
    with pytest.raises(Exception, match="same parameters"):
        _run(tmp_path / "x", folder, budget=10)


@pytest.mark.slow
def test_cli_on_generated_scenes(tmp_path, tiny_clip_dir):
    from mmcurate.cli import main

    out = tmp_path / "scenes"
    code = main(["simulate", "--scenes", "150", "--strategies", "random,clip-score", "--rounds", "2",
                 "--budget", "10", "--seeds", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    metrics = load_results(out)
    assert len(metrics) == 2 * 3 and metrics["n_noisy"].gt(0).all()
    assert "not CLIP" in (out / "summary.md").read_text()


def test_stream_mode_against_pool_mode_at_equal_labels(tmp_path, folder):
    from mmcurate.project import open_project

    metrics = _run(tmp_path / "s", folder, strategies=["clip_score", "margin"], seeds=1, rounds=3,
                   budget=15, mode="both")
    stream = metrics[metrics["diversity"] == "stream"]
    pool = metrics[metrics["diversity"] == "none"]
    assert set(stream["strategy"]) == set(pool["strategy"]) == {"clip_score", "margin"}
    assert len(stream) == len(pool) == 2 * 4
    for _, run in stream.groupby("strategy"):
        run = run.sort_values("round")
        assert run["labels"].iloc[0] == 0 and run["recall"].is_monotonic_increasing
        # the adaptive threshold keeps the review rate near budget / batch size (±30%)
        assert 0.7 * 45 <= run["labels"].iloc[-1] <= 1.3 * 45
        assert run["auroc"].isna().all()  # pool-only measures do not apply
        assert run["learning_gain"].isna().all()
    assert np.isfinite(summarize(metrics)["aulc_recall_mean"]).all()
    proj = open_project(tmp_path / "s" / "runs" / "margin__stream__s0" / "project")
    decided = proj.ledger.decisions()["pair_id"]
    final_labels = int(stream[stream["strategy"] == "margin"]["labels"].iloc[-1])
    assert decided.is_unique and len(decided) == final_labels


def test_stream_mode_alone_writes_the_report(tmp_path, folder):
    metrics = _run(tmp_path / "so", folder, strategies=["clip_score"], seeds=1, rounds=2, budget=15,
                   mode="stream")
    assert set(metrics["diversity"]) == {"stream"} and (metrics["n_pool"] == 360 - metrics["labels"]).all()
    assert "clip_score" in (tmp_path / "so" / "summary.md").read_text()


def test_summaries_on_known_curves():
    """AULC, labels-to-target and paired wins on hand-made curves (pure functions)."""
    from mmcurate.simulate import compare, per_run

    rows = []
    for seed, bump in ((0, 0.0), (1, 0.4)):
        for strategy, recall in (("random", [0.0, 0.1, 0.2]), ("good", [0.0, 0.5, 0.95])):
            for r, value in enumerate(recall):
                rows.append({"strategy": strategy, "diversity": "none", "seed": seed, "round": r,
                             "labels": 10 * r, "recall": value + (bump if strategy == "good" and r else 0),
                             "auroc": 0.5 + 0.1 * r, "auroc_p_misaligned": 0.9,
                             "holdout_accuracy": 0.8, "seconds_total": 1.0})
    runs = per_run(pd.DataFrame(rows), recall_target=0.9, at_labels=15).set_index(["strategy", "seed"])
    assert runs.loc[("random", 0), "aulc_recall"] == pytest.approx((0.05 + 0.15) / 2)
    assert runs.loc[("good", 0), "labels_to_recall"] == 20
    assert runs.loc[("good", 1), "labels_to_recall"] == 10
    assert np.isnan(runs.loc[("random", 0), "labels_to_recall"])
    assert runs.loc[("random", 1), "recall_at"] == pytest.approx(0.15)
    table = compare(pd.DataFrame(rows), baseline=("random", "none")).set_index("quantity")
    assert table.loc["aulc_recall", "wins"] == 2 and table.loc["aulc_recall", "losses"] == 0
    assert table.loc["aulc_auroc", "ties"] == 2


def test_round_metrics_learning_gain_against_the_round0_model():
    """The gain compares two scores on the *current* pool (pure function, hand-made ranking)."""
    from mmcurate.results import Ranking
    from mmcurate.signals import auroc
    from mmcurate.simulate.metrics import round_metrics

    noisy = np.array([1, 1, 0, 0, 0, 0, 1, 0], bool)
    p_now = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.7, 0.2])  # P(misaligned), ranks perfectly
    p_first = np.array([0.9, 0.2, 0.1, 0.8, 0.3, 0.1, 0.4, 0.5])
    ranked = Ranking(pd.DataFrame({"score": p_now, "p_aligned": 1 - p_now}), {"head_round": None},
                     ("margin",))
    labelled, held = np.zeros(8, bool), np.zeros(8, bool)
    labelled[[0, 2]] = True
    held[7] = True
    common = {"noisy": noisy, "labelled": labelled, "held_out": held, "batch_rows": None,
              "strategy": "margin"}
    row, _ = round_metrics(ranked, **common, round0_p_misaligned=p_first)
    pool = ~(labelled | held)
    assert row["auroc_p_misaligned"] == 1.0
    assert row["auroc_round0_model"] == pytest.approx(auroc(p_first[pool], noisy[pool]))
    assert row["learning_gain"] == pytest.approx(1.0 - row["auroc_round0_model"]) and row["learning_gain"] > 0
    row0, _ = round_metrics(ranked, **common)  # round 0: the model is its own reference
    assert row0["learning_gain"] == 0 and row0["auroc_round0_model"] == row0["auroc_p_misaligned"]
    with pytest.raises(ValueError, match="round0_p_misaligned"):
        round_metrics(ranked, **common, round0_p_misaligned=p_first[:5])


def test_learning_gain_summaries_on_known_curves():
    from mmcurate.simulate import per_run

    rows = []
    curves = ((0, [0.0, -0.05, 0.02, 0.04, 0.03, 0.06]), (1, [0.0, 0.01, -0.03, 0.02, -0.01, 0.05]))
    for seed, gains in curves:
        for r, gain in enumerate(gains):
            rows.append({"strategy": "margin", "diversity": "none", "seed": seed, "round": r,
                         "labels": 10 * r, "recall": 0.1 * r, "auroc": 0.8, "auroc_p_misaligned": 0.8 + gain,
                         "auroc_round0_model": 0.8, "learning_gain": gain, "holdout_accuracy": 0.8,
                         "seconds_total": 1.0})
    metrics = pd.DataFrame(rows)
    runs = per_run(metrics).set_index("seed")
    assert runs.loc[0, "learning_gain_min"] == pytest.approx(-0.05)
    assert runs.loc[0, "learning_gain_from3_min"] == pytest.approx(0.03)
    assert runs.loc[1, "learning_gain_from3_min"] == pytest.approx(-0.01)
    assert runs.loc[1, "learning_gain_final"] == pytest.approx(0.05)
    row = summarize(metrics).iloc[0]
    assert row["learning_gain_final_mean"] == pytest.approx(0.055)
    assert row["learning_gain_min_min"] == pytest.approx(-0.05)
    assert row["learning_gain_from3_min_min"] == pytest.approx(-0.01)
    # runs recorded before the gain was measured: NaN, not an error
    old = per_run(metrics.drop(columns=["learning_gain", "auroc_round0_model"]))
    assert old["learning_gain_final"].isna().all()


def test_data_from_an_older_noise_draw_is_refused(tmp_path, folder):
    """Data prepared before swaps were a permutation must not be silently reused."""
    import json

    from mmcurate.exceptions import ProjectError
    from mmcurate.simulate.data import prepare_data

    data = prepare_data(tmp_path / "d", embeddings=folder, noise=0.2)
    assert data.info["noise_draw"] == "permutation"
    assert data.truth["caption_source"].is_unique
    meta = tmp_path / "d" / "data.json"
    old = {k: v for k, v in json.loads(meta.read_text()).items() if k != "noise_draw"}
    meta.write_text(json.dumps(old))
    with pytest.raises(ProjectError, match="use another --out"):
        prepare_data(tmp_path / "d", embeddings=folder, noise=0.2)
