"""Run the bad-input corpus (``corpus_cases.py``) through the CLI: exact outcome, no traceback,
nothing stored before changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from corpus_cases import CASES, Accepts, Case, Fails, Rejects, Workspace, vectors

from mmcurate.cli import main
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project

AREAS = {"csv", "tsv", "jsonl", "parquet", "webdataset", "folder", "embeddings", "labels-table",
         "label-studio", "fiftyone", "add"}


@pytest.fixture(scope="session")
def image_project(tmp_path_factory) -> Path:
    """An image project (2 pairs) that a failing ``init --force`` must leave as it was."""
    root = tmp_path_factory.mktemp("image_project")
    Workspace(root).table("pairs.csv", "id,image,caption\np0,img/a.png,red\np1,img/b.png,blue\n")
    return create_project(root / "proj", pairs=root / "pairs.csv", progress=False).root


@pytest.fixture(scope="session")
def labelled_project(tmp_path_factory) -> Path:
    """Imported embeddings e0..e19 (D=8); round 1 queued e0..e3, round 2 e4..e7."""
    root = tmp_path_factory.mktemp("labelled_project")
    meta = pd.DataFrame({"key": [f"e{i}" for i in range(20)], "caption": [f"c{i}" for i in range(20)]})
    folder = write_embedding_folder(root / "emb", vectors(20), vectors(20, seed=1), meta)
    proj = create_project(root / "proj", embeddings=folder)
    for ids in (["e0", "e1", "e2", "e3"], ["e4", "e5", "e6", "e7"]):
        proj.ledger.create_round(ids, strategy="test", params={}, model={})
    proj.ledger.close()
    return proj.root


@pytest.fixture(scope="session")
def embedded_project(tmp_path_factory, micro_clip_dir) -> Path:
    """An image project embedded with the micro CLIP, for ``add --pairs``."""
    root = tmp_path_factory.mktemp("embedded_project")
    Workspace(root).table("pairs.csv", "id,image,caption\np0,img/a.png,red\np1,img/b.png,blue\n")
    proj = create_project(root / "proj", pairs=root / "pairs.csv", progress=False,
                          model=ModelSpec(f"local-dir:{micro_clip_dir}", None))
    proj.embed(progress=False, num_workers=0)
    return proj.root


def snapshot(root: Path) -> dict[str, str]:
    """Content hash of every stored file of a project (lock, caches and SQLite side files aside)."""
    skip = (".lock", "-wal", "-shm")
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(skip)
            and ".cache" not in p.parts}


def _rejects(root: Path) -> pd.DataFrame:
    path = root / "rejects.csv"
    if not path.is_file() or not path.stat().st_size:
        return pd.DataFrame(columns=["source", "row", "pair_id", "column", "reason", "detail"])
    return pd.read_csv(path, dtype={"pair_id": str, "detail": str})


def _pairs(root: Path) -> pd.DataFrame:
    path = root / "pairs.parquet"
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=["pair_id"])


def _target(case: Case, tmp_path: Path, request) -> tuple[Path, list[str]]:
    """The project the case runs against and the argv before the case's own arguments."""
    target = tmp_path / "proj"
    if case.command in ("init", "init-emb"):
        if isinstance(case.expect, Fails):  # must leave an existing project untouched
            shutil.copytree(request.getfixturevalue("image_project"), target)
            return target, ["init", str(target), "--force"]
        return target, ["init", str(target)]
    base = {"label": "labelled_project", "add-emb": "labelled_project", "add": "embedded_project"}
    shutil.copytree(request.getfixturevalue(base[case.command]), target)
    return target, ["label" if case.command == "label" else "add", str(target)]


def _found(rejects: pd.DataFrame) -> list[tuple[str, int | None, str]]:
    return sorted((Path(str(s)).name, None if pd.isna(r) else int(r), str(reason))
                  for s, r, reason in zip(rejects["source"], rejects["row"], rejects["reason"]))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case: Case, tmp_path, request, capsys):
    target, argv = _target(case, tmp_path, request)
    before = snapshot(target) if target.exists() else {}
    old_pairs, old_rejects = _pairs(target), _rejects(target)
    work = tmp_path / "input"
    work.mkdir()
    image_root = json.loads((target / "project.json").read_text()).get("image_root") \
        if case.command == "add" else None
    code = main([*argv, *case.build(Workspace(work, image_root=image_root and Path(image_root)))])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    expect = case.expect
    if isinstance(expect, Fails):
        assert code == 2, err
        assert "mmcurate: error:" in err and expect.match in err, err
        assert snapshot(target) == before
        return
    assert code == 0, err
    pairs, rejects = _pairs(target), _rejects(target)
    if len(old_pairs):  # adding: what was stored stays, new rows come after it
        assert pairs.iloc[: len(old_pairs)].reset_index(drop=True).equals(old_pairs.reset_index(drop=True))
    if len(old_rejects):
        assert rejects.iloc[: len(old_rejects)].astype(str).reset_index(drop=True).equals(
            old_rejects.astype(str).reset_index(drop=True))
    new_rejects, new_pairs = rejects.iloc[len(old_rejects):], pairs.iloc[len(old_pairs):]
    if isinstance(expect, Accepts):
        assert _found(new_rejects) == []
        assert len(new_pairs) == expect.n_pairs
        assert expect.check is None or expect.check(new_pairs), new_pairs
        return
    assert isinstance(expect, Rejects)
    assert _found(new_rejects) == sorted(expect.rows), new_rejects.to_dict("records")
    assert expect.n_pairs is None or len(new_pairs) == expect.n_pairs
    details = [str(d).lower() for d in new_rejects["detail"]]
    assert expect.detail is None or all(expect.detail.lower() in d for d in details), details
    assert not any("object at 0x" in str(d) for d in new_rejects["detail"])


def test_corpus_covers_every_area_with_at_least_50_kinds():
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.area for c in CASES} == AREAS
    assert {type(c.expect) for c in CASES} == {Fails, Rejects, Accepts}
    assert np.all([c.command in ("init", "init-emb", "label", "add", "add-emb") for c in CASES])
