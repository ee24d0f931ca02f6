"""proj.search / mmcurate search: text, example-image and example-pair queries find the planted pairs."""

from __future__ import annotations

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
