"""The project directory: creation errors, locking, imported-embedding projects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.exceptions import ProjectError, ProjectLockedError
from mmcurate.project import create_project, open_project


def _emb_folder(tmp_path, n=60, d=8):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(n, d)).astype(np.float32)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(n)], "caption": [f"c {i}" for i in range(n)]})
    return write_embedding_folder(tmp_path / "emb", img, img + 0.1, meta)


def test_external_project_status_and_arrays(tmp_path):
    proj = create_project(tmp_path / "p", embeddings=_emb_folder(tmp_path))
    assert proj.kind == "external"
    status = open_project(proj.root).status()
    assert status["pairs"] == 60 and status["embedded"] == 60 and status["model"]["kind"] == "external"
    assert proj.image_embeddings().shape == (60, 8)
    with pytest.raises(ProjectError, match="imported embeddings"):
        proj.embed()


def test_open_missing_project_says_how_to_create(tmp_path):
    with pytest.raises(ProjectError, match="mmcurate init"):
        open_project(tmp_path)


def test_create_refuses_existing_without_overwrite(tmp_path):
    folder = _emb_folder(tmp_path)
    create_project(tmp_path / "p", embeddings=folder)
    with pytest.raises(ProjectError, match="already holds a project"):
        create_project(tmp_path / "p", embeddings=folder)
    create_project(tmp_path / "p", embeddings=folder, overwrite=True)


def test_lock_excludes_a_second_process(tmp_path):
    proj = create_project(tmp_path / "p", embeddings=_emb_folder(tmp_path))
    code = ("import sys; from mmcurate.project import open_project\n"
            "from mmcurate.exceptions import ProjectLockedError\n"
            "try:\n"
            "    with open_project(sys.argv[1]).lock():\n        print('got')\n"
            "except ProjectLockedError as e:\n    print('locked:', e)\n")
    with proj.lock():
        out = subprocess.run([sys.executable, "-c", code, str(proj.root)], capture_output=True,
                             text=True, check=True).stdout
        assert out.startswith("locked:") and "another mmcurate process" in out
        with pytest.raises(ProjectLockedError):
            with proj.lock():
                pass
    out = subprocess.run([sys.executable, "-c", code, str(proj.root)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "got"


def test_index_knn_matches_bruteforce_and_is_cached(tmp_path):
    proj = create_project(tmp_path / "p", embeddings=_emb_folder(tmp_path))
    img = proj.image_embeddings().astype(np.float32)
    txt = proj.text_embeddings().astype(np.float32)
    sims, idx = proj.index.image_to_text(5)
    ref = np.argsort(-(img @ txt.T), axis=1)[:, :5]
    assert (idx == ref).mean() > 0.98  # ties in float16 may swap neighbours
    np.testing.assert_allclose(sims, np.take_along_axis(img @ txt.T, idx, 1), atol=1e-4)
    _, ii = proj.index.image_to_image(3)
    assert not (ii == np.arange(len(ii))[:, None]).any()
    assert (proj.root / "index" / "text.faiss").is_file()
    again = open_project(proj.root)
    assert again.index.image_to_text(5)[1].tolist() == idx.tolist()


def test_overwrite_sets_the_old_state_aside(tmp_path):
    import numpy as np
    import pandas as pd

    from mmcurate.embed.importer import write_embedding_folder

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(30, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(30)], "caption": [f"c{i}" for i in range(30)]})
    folder = write_embedding_folder(tmp_path / "emb", vecs, vecs, meta)
    proj = create_project(tmp_path / "p", embeddings=folder)
    proj.ledger.import_decisions(pd.DataFrame({"pair_id": ["k1"], "decision": ["accept"]}),
                                 known_pair_ids={"k1"}, source_name="t")
    meta2 = meta.assign(caption=[f"new {i}" for i in range(30)])
    folder2 = write_embedding_folder(tmp_path / "emb2", vecs[::-1].copy(), vecs, meta2)
    with pytest.raises(ProjectError, match="replaced-"):
        create_project(tmp_path / "p", embeddings=folder2)
    proj = create_project(tmp_path / "p", embeddings=folder2, overwrite=True)
    aside = [p for p in (tmp_path / "p").iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and (aside[0] / "labels.sqlite").is_file() and (aside[0] / "embeddings").is_dir()
    assert not (tmp_path / "p" / "labels.sqlite").exists()
    assert proj.pairs["caption"].iloc[0] == "new 0"
    np.testing.assert_allclose(np.asarray(proj.image_embeddings()[0], np.float32), vecs[-1], atol=1e-3)


def test_refresh_reads_the_directory_again(tmp_path):
    proj = create_project(tmp_path / "p", embeddings=_emb_folder(tmp_path))
    assert len(proj.pairs) == 60
    proj.pairs.iloc[:50].to_parquet(proj.root / "pairs.parquet", index=False)  # another stage rewrote it
    assert len(proj.pairs) == 60  # cached until refreshed
    proj.refresh()
    assert len(proj.pairs) == 50
