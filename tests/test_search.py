"""proj.search / mmcurate search: text, example-image and example-pair queries find the planted pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.exceptions import ProjectError
from mmcurate.groups.synthetic import make_duplicate_world
from mmcurate.project import create_project, open_project


def test_pair_query_finds_its_copies_and_text_query_needs_a_model(tmp_path):
    w = make_duplicate_world(300, dim=64, random_state=2, n_boilerplate=0)
    meta = pd.DataFrame({"key": [f"k{i:04d}" for i in range(len(w.captions))], "caption": w.captions})
    folder = write_embedding_folder(tmp_path / "e", w.image, w.text, meta)
    proj = create_project(tmp_path / "p", embeddings=folder)
    ids = proj.pairs["pair_id"].tolist()
    source = int(pd.Series(w.family[w.role == "copy"]).value_counts().index[0])  # the most copied pair
    copies = {ids[i] for i in range(len(ids)) if w.family[i] == source and i != source}
    found = proj.search(pair_id=ids[source], k=len(copies))
    assert set(found["pair_id"]) == copies and ids[source] not in set(found["pair_id"])
    assert found["similarity"].is_monotonic_decreasing and found["rank"].tolist()[0] == 1
    assert len(proj.search(pair_id=ids[source], k=5, on="caption")) == 5
    with pytest.raises(ProjectError, match="imported embeddings"):
        proj.search(text="a dog")
    with pytest.raises(ValueError, match="exactly one"):
        proj.search(text="a", pair_id=ids[0])
    with pytest.raises(ValueError, match="on must be"):
        proj.search(pair_id=ids[0], on="joint")


def test_text_and_image_queries_with_the_projects_model(png_pairs, tmp_path, micro_clip_dir, capsys):
    root = tmp_path / "p"
    assert main(["init", str(root), "--pairs", str(png_pairs), "--model", f"local-dir:{micro_clip_dir}"]) == 0
    assert main(["embed", str(root), "--no-progress"]) == 0
    proj = open_project(root)
    pairs = proj.pairs.set_index("pair_id")
    by_text = proj.search(text=pairs.loc["p3", "caption"], on="caption", k=3)
    assert by_text["pair_id"].iloc[0] == "p3" and by_text["similarity"].iloc[0] > 0.999
    by_image = proj.search(image=png_pairs.parent / pairs.loc["p5", "image"], k=3)
    assert by_image["pair_id"].iloc[0] == "p5" and by_image["similarity"].iloc[0] > 0.99
    capsys.readouterr()
    assert main(["search", str(root), pairs.loc["p7", "caption"], "--on", "caption", "--k", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[2] == "p7"


@pytest.fixture(scope="module")
def scene_proj(tmp_path_factory, tiny_clip_dir):
    from mmcurate.synth import write_scene_dataset

    tmp = tmp_path_factory.mktemp("scenes")
    csv = write_scene_dataset(tmp / "data", 160, random_state=3)
    assert main(["init", str(tmp / "p"), "--pairs", str(csv), "--model", f"local-dir:{tiny_clip_dir}"]) == 0
    assert main(["embed", str(tmp / "p"), "--no-progress", "--workers", "0"]) == 0
    return open_project(tmp / "p")


def test_text_query_finds_the_planted_pairs_and_select_query_focuses_the_batch(scene_proj):
    pairs = scene_proj.pairs.set_index("pair_id")
    planted = pairs.index[::16]  # each pair's own caption as the query: its image among the 5 first
    found = [scene_proj.search(text=pairs.loc[p, "caption"], k=5)["pair_id"].tolist() for p in planted]
    assert np.mean([p in f for p, f in zip(planted, found)]) >= 0.9
    top = pairs.loc[scene_proj.search(text="red shapes", k=10)["pair_id"]]
    assert (top["color"] == "red").sum() >= 5  # a concept query: mostly red scenes (13 of the 160 are red)
    from mmcurate.rounds import select_batch

    batch = select_batch(scene_proj, budget=4, strategy="margin", explore=0.0, query="red shapes").table
    focus = set(scene_proj.search(text="red shapes", k=40)["pair_id"])
    assert set(batch["pair_id"]) <= focus
    assert scene_proj.ledger.rounds()["params"].iloc[-1]["query"] == "red shapes"
