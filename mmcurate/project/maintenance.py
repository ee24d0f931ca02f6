"""Keeping a project safe: :func:`check_project` (``mmcurate check``) reads every stored file and
says which is damaged; :func:`backup_project` (``mmcurate backup``) copies a project, its labels
ledger through SQLite's backup API (a consistent copy, write-ahead log included, even while a review
page writes to it).

Assumption: a project's files other than the ledger change only under the project lock, which
:func:`backup_project` holds while it copies them.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mmcurate._fileio import read_json_object
from mmcurate._integrity import check_npy
from mmcurate.exceptions import MmcurateError, ProjectError
from mmcurate.project import open_project
from mmcurate.project.layout import ProjectLayout
from mmcurate.rounds.model import load_model

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["CheckReport", "backup_project", "check_project"]



@dataclass
class CheckReport:
    """What :func:`check_project` found: ``checked`` (what is fine, one line each) and
    ``problems`` (one line each, naming the file)."""

    root: Path
    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_project(root: str | os.PathLike) -> CheckReport:
    """Read every file of the project at ``root`` and verify it: ``project.json``, the pairs table,
    the vectors (headers, checksums, ids in pairs order), the ledger (SQLite's integrity check,
    decisions naming known pairs), the JSON state files and the trained models.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        report = check_project("my_project")
        report.ok, report.problems
        # (True, [])
    """
    report = CheckReport(Path(root))
    try:
        proj = open_project(root)
        pair_ids = proj.pairs["pair_id"].astype(str)
    except (MmcurateError, OSError, ValueError) as err:
        report.problems.append(str(err))
        return report
    report.checked.append(f"project.json and pairs.parquet: {len(pair_ids)} pairs")
    if pair_ids.duplicated().any():
        report.problems.append(f"{proj.pairs_path} repeats pair_id "
                               f"{pair_ids[pair_ids.duplicated()].iloc[0]!r}")
    for step in (_check_vectors, _check_ledger, _check_state_files, _check_models):
        try:
            step(proj, report, pair_ids)
        except (MmcurateError, OSError, ValueError, sqlite3.Error) as err:
            report.problems.append(str(err))
    return report


def _check_vectors(proj: Project, report: CheckReport, pair_ids: pd.Series) -> None:
    store = proj.store
    manifest = store.manifest()
    if manifest is None:
        report.checked.append("embeddings: none yet")
        return
    verified = store.verify()
    try:  # a copy that did not keep modification times is hashed at each open until re-recorded
        with proj.lock():
            store.record_checksums()
    except (ProjectError, OSError):
        pass
    if not store.array_path("ids").is_file():
        report.checked.append(f"embeddings: not compacted yet ({proj.n_embedded} of {len(pair_ids)} "
                              f"pairs embedded)")
        return
    ids = store.compacted_ids()
    if not (len(ids) == len(pair_ids) and (ids == pair_ids.to_numpy(str)).all()):
        report.problems.append(f"{store.array_path('ids')} does not list the pairs of "
                               f"{proj.pairs_path} in their order ({len(ids)} ids, "
                               f"{len(pair_ids)} pairs)")
    for kind in ("image", "text"):
        shape = check_npy(store.array_path(kind))[0]
        if shape != (len(ids), int(manifest.get("dim") or shape[1])):
            report.problems.append(f"{store.array_path(kind)} has shape {shape}, expected "
                                   f"({len(ids)}, {manifest.get('dim')})")
    sums = (f"checksums verified: {', '.join(verified)}" if verified else
            "no checksums were recorded (an older project): recorded now, so later damage is found")
    report.checked.append(f"embeddings: {len(ids)} x {manifest.get('dim')} vectors ({sums})")


def _check_ledger(proj: ProjectFiles, report: CheckReport, pair_ids: pd.Series) -> None:
    path = proj.ledger_path
    if not proj.has_ledger():
        report.checked.append(f"{path.name}: none yet")
        return
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as err:
        result = [str(err)]
    finally:
        conn.close()
    if result != ["ok"]:
        report.problems.append(f"{path} is damaged: SQLite integrity check says {result[0]}; "
                               f"restore it from a backup (`mmcurate backup` makes one)")
        return
    decided = proj.ledger.decisions(history=True)
    unknown = sorted(set(decided["pair_id"].astype(str)) - set(pair_ids))
    if unknown:
        report.problems.append(f"{path} holds decisions for {len(unknown)} pair(s) not in "
                               f"{proj.pairs_path} (first: {unknown[0]!r})")
    report.checked.append(f"{path.name}: {len(proj.ledger.rounds())} rounds, {len(decided)} "
                          f"decisions (integrity ok)")


def _check_state_files(proj: ProjectFiles, report: CheckReport, pair_ids: pd.Series) -> None:
    found = [path for path in (proj.state_path, proj.stream_state_path, proj.store.manifest_path)
             if path.is_file()]
    names = [path.relative_to(proj.root).as_posix() for path in found]
    for path, name in zip(found, names):
        read_json_object(path, what=name)
    if names:
        report.checked.append(f"state files: {', '.join(names)}")


def _check_models(proj: ProjectFiles, report: CheckReport, pair_ids: pd.Series) -> None:
    heads = proj.heads_dir
    if not heads.is_dir():
        return
    for sidecar in sorted(heads.glob("*.json")):
        read_json_object(sidecar, what="a trained model's record")
    for weights in sorted(heads.glob("head-*.safetensors")):
        from mmcurate.head import ProjectionHead  # heavy: torch

        ProjectionHead.load(weights)
    model = load_model(proj)
    report.checked.append(f"heads: {len(list(heads.glob('*.json')))} model file(s) readable; "
                          f"model in use: {'round ' + str(model.round) if model.round else 'none'}")


def backup_project(root: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy the project at ``root`` to the new folder ``dest``: every file under the project lock,
    the ledger with SQLite's backup API (every committed decision, even those still in
    ``labels.sqlite-wal`` while a review page runs). ``dest`` appears only when complete.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        backup_project("my_project", "backups/my_project-monday")
    """
    proj = open_project(root)
    dest = Path(dest)
    if dest.exists():
        raise ProjectError(f"{dest} already exists; give a new folder for the backup")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        with proj.lock(wait=True):
            shutil.copytree(proj.root, tmp, dirs_exist_ok=True, ignore=_skipped(proj))
            if proj.has_ledger():
                _backup_sqlite(proj.ledger_path, ProjectLayout(tmp).ledger_path)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _skipped(layout: ProjectLayout) -> Callable[[str, list[str]], list[str]]:
    """What ``copytree`` leaves out: the lock, the cache and the ledger's files (the ledger is
    copied through SQLite's backup API)."""
    ledger = layout.ledger_path.name
    skip = {layout.lock_path.name, layout.cache_dir.name, ledger, *(f"{ledger}-{suffix}"
                                                                    for suffix in ("wal", "shm", "journal"))}

    def ignored(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if n in skip]

    return ignored


def _backup_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE").fetchall()
    finally:
        dst.close()
        src.close()
