"""Distributed scoring on Ray equals the local engine's approximate path, with and without a head."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import create_project
from mmcurate.rank import compute_ranking
from mmcurate.signals import auroc
from mmcurate.synth import domain_shift_embeddings

ray = pytest.importorskip("ray", reason="Ray engine tests need ray[data] (pip install 'mmcurate[ray]')")

pytestmark = pytest.mark.slow

STRATEGIES = ["disagreement", "density", "margin", "vote_entropy", "egl"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("data", ["domains", "clip-gap"])
def test_shards_give_the_local_answer(local_ray, tmp_path, data):
    from mmcurate.engine.ray_score import rank_with_ray

    if data == "domains":
        img, txt, noisy, _ = domain_shift_embeddings(3000, 48, kind="same_category")
    else:  # a modality gap like CLIP's: cross-modal queries are centred with their own mean
        from mmcurate.simulate.worlds import clip_gap_world

        world = clip_gap_world(3000, dim=48, n_concepts=20, random_state=1)
        img, txt, noisy = world.image, world.text, world.truth["noisy"].to_numpy().astype(bool)
    np.save(tmp_path / "i.npy", img.astype(np.float16))
    np.save(tmp_path / "t.npy", txt.astype(np.float16))
    image = np.load(tmp_path / "i.npy", mmap_mode="r")
    text = np.load(tmp_path / "t.npy", mmap_mode="r")
    labelled = np.arange(0, 300, 3)
    y = (~noisy[labelled]).astype(int)
    local = compute_ranking(image, text, strategies=STRATEGIES, approximate=True,
                            indices_labeled=labelled, labels=y)
    distributed = rank_with_ray(tmp_path / "i.npy", tmp_path / "t.npy", strategies=STRATEGIES,
                                indices_labeled=labelled, labels=y, n_shards=5)
    for column in [*STRATEGIES, "cosine", "p_aligned", "score"]:
        np.testing.assert_allclose(distributed[column], local[column], atol=1e-9, err_msg=column)
    assert auroc(distributed["disagreement"], noisy) > 0.85


def test_cli_rank_with_ray_after_a_head(local_ray, tmp_path):
    # same-category swaps: the prior leaves headroom, so 200 labels give a model the gate accepts
    img, txt, noisy, _ = domain_shift_embeddings(1500, 32, kind="same_category")
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(1500)], "caption": [f"c{i}" for i in range(1500)]})
    folder = write_embedding_folder(tmp_path / "emb", img, txt, meta)
    proj = create_project(tmp_path / "proj", embeddings=folder)
    decisions = pd.DataFrame({"pair_id": meta["key"][:200],
                              "decision": np.where(noisy[:200], "reject", "accept")})
    decisions.to_csv(tmp_path / "d.csv", index=False)
    # a reviewer's batch of the first 200 pairs (decisions are taken for queued pairs only)
    proj.ledger.create_round(meta["key"][:200].tolist(), strategy="random", params={}, model={})
    assert main(["label", str(proj.root), "--import", str(tmp_path / "d.csv")]) == 0
    assert main(["train", str(proj.root)]) == 0
    out_ray, out_local = tmp_path / "ray.csv", tmp_path / "local.csv"
    assert main(["rank", str(proj.root), "--strategy", "disagreement", "margin", "--engine", "ray",
                 "--out", str(out_ray)]) == 0
    from mmcurate.project import open_project
    from mmcurate.rounds import current_embeddings, labelled_arrays, load_model

    proj = open_project(proj.root)
    image, text, head_round = current_embeddings(proj)
    assert head_round == 1
    model = load_model(proj)
    assert model.round == 1 and model.calibrator is not None
    rows, y, _ = labelled_arrays(proj)
    local = compute_ranking(image, text, strategies=["disagreement", "margin"], approximate=True,
                            indices_labeled=rows, labels=y, calibrator=model.calibrator)
    local.insert(0, "pair_id", proj.pairs["pair_id"].to_numpy())
    ranked = pd.read_csv(out_ray, dtype={"pair_id": str}).set_index("pair_id").loc[local["pair_id"]]
    np.testing.assert_allclose(ranked["disagreement"], local["disagreement"], atol=1e-4)
    np.testing.assert_allclose(ranked["p_aligned"], local["p_aligned"], atol=1e-4)
    assert main(["rank", str(proj.root), "--strategy", "disagreement", "--out", str(out_local)]) == 0


def test_a_killed_task_is_retried_and_the_result_is_unchanged(local_ray, tmp_path):
    from mmcurate.engine.ray_score import rank_with_ray

    img, txt, _, _ = domain_shift_embeddings(2000, 32, kind="same_category")
    np.save(tmp_path / "i.npy", img.astype(np.float16))
    np.save(tmp_path / "t.npy", txt.astype(np.float16))
    run = {"strategies": ["disagreement", "margin"], "n_shards": 4, "num_cpus": 0.5}
    undisturbed = rank_with_ray(tmp_path / "i.npy", tmp_path / "t.npy", **run)
    marker = tmp_path / "killed"
    disturbed = rank_with_ray(tmp_path / "i.npy", tmp_path / "t.npy", fault_marker=marker, **run)
    for stage in ("index", "shard"):  # a worker of each stage really killed itself (SIGKILL) once
        pid = int((tmp_path / f"killed.{stage}").read_text())
        assert pid > 0 and not _alive(pid), stage
    pd.testing.assert_frame_equal(disturbed, undisturbed)
    with pytest.raises(ray.exceptions.WorkerCrashedError):  # no retry left: the kill is real
        for stage in ("index", "shard"):
            (tmp_path / f"killed.{stage}").unlink()
        rank_with_ray(tmp_path / "i.npy", tmp_path / "t.npy", fault_marker=marker, max_retries=0, **run)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
