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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mmcurate._fileio import read_json_object
from mmcurate._integrity import check_npy
from mmcurate.exceptions import MmcurateError, ProjectError

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["CheckReport", "backup_project", "check_project"]

_SKIP = (".lock", "labels.sqlite", "labels.sqlite-wal", "labels.sqlite-shm", "labels.sqlite-journal")


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
    from mmcurate.project import open_project

    report = CheckReport(Path(root))
    try:
        proj = open_project(root)
        pair_ids = proj.pairs["pair_id"].astype(str)
    except (MmcurateError, OSError, ValueError) as err:
        report.problems.append(str(err))
        return report
    report.checked.append(f"project.json and pairs.parquet: {len(pair_ids)} pairs")
    if pair_ids.duplicated().any():
        report.problems.append(f"{proj.root / 'pairs.parquet'} repeats pair_id "
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
    if not (store.root / "ids.npy").is_file():
        report.checked.append(f"embeddings: not compacted yet ({proj.n_embedded} of {len(pair_ids)} "
                              f"pairs embedded)")
        return
    ids = store.compacted_ids()
    if not (len(ids) == len(pair_ids) and (ids == pair_ids.to_numpy(str)).all()):
        report.problems.append(f"{store.root / 'ids.npy'} does not list the pairs of "
                               f"{proj.root / 'pairs.parquet'} in their order ({len(ids)} ids, "
                               f"{len(pair_ids)} pairs)")
    for kind in ("image", "text"):
        shape = check_npy(store.root / f"{kind}.npy")[0]
        if shape != (len(ids), int(manifest.get("dim") or shape[1])):
            report.problems.append(f"{store.root / f'{kind}.npy'} has shape {shape}, expected "
                                   f"({len(ids)}, {manifest.get('dim')})")
    sums = (f"checksums verified: {', '.join(verified)}" if verified else
            "no checksums were recorded (an older project): recorded now, so later damage is found")
    report.checked.append(f"embeddings: {len(ids)} x {manifest.get('dim')} vectors ({sums})")


def _check_ledger(proj: ProjectFiles, report: CheckReport, pair_ids: pd.Series) -> None:
    path = proj.root / "labels.sqlite"
    if not path.is_file():
        report.checked.append("labels.sqlite: none yet")
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
                               f"{proj.root / 'pairs.parquet'} (first: {unknown[0]!r})")
    report.checked.append(f"labels.sqlite: {len(proj.ledger.rounds())} rounds, {len(decided)} "
                          f"decisions (integrity ok)")


def _check_state_files(proj: ProjectFiles, report: CheckReport, pair_ids: pd.Series) -> None:
    names = ["state.json", "stream/state.json", "embeddings/manifest.json"]
    found = [name for name in names if (proj.root / name).is_file()]
    for name in found:
        read_json_object(proj.root / name, what=name)
    if found:
        report.checked.append(f"state files: {', '.join(found)}")


def _check_models(proj: ProjectFiles, report: CheckReport, pair_ids: pd.Series) -> None:
    heads = proj.root / "heads"
    if not heads.is_dir():
        return
    from mmcurate.rounds.model import load_model

    for sidecar in sorted(heads.glob("*.json")):
        read_json_object(sidecar, what="a trained model's record")
    for weights in sorted(heads.glob("head-*.safetensors")):
        from mmcurate.head import ProjectionHead

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
    from mmcurate.project import open_project

    proj = open_project(root)
    dest = Path(dest)
    if dest.exists():
        raise ProjectError(f"{dest} already exists; give a new folder for the backup")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        with proj.lock(wait=True):
            shutil.copytree(proj.root, tmp, dirs_exist_ok=True, ignore=_ignored)
            ledger = proj.root / "labels.sqlite"
            if ledger.is_file():
                _backup_sqlite(ledger, tmp / "labels.sqlite")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _ignored(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in _SKIP or n == ".cache"]


def _backup_sqlite(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE").fetchall()
    finally:
        dst.close()
        src.close()
