"""The files of a project directory: ``project.json``, the pairs and rejects tables, the store, the ledger.

Where each file lives is :class:`~mmcurate.project.layout.ProjectLayout`; :class:`ProjectFiles` is
a layout that also reads them."""

from __future__ import annotations

import contextlib
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._fileio import atomic_write_json, read_json_object
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import ProjectError
from mmcurate.labels import Ledger
from mmcurate.project.layout import ProjectLayout
from mmcurate.project.lock import project_lock


class ProjectFiles(ProjectLayout):
    """Accessors to a project directory's files and lock (the base of :class:`~mmcurate.project.Project`)."""

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        cfg_path = self.config_path
        if not cfg_path.is_file():
            raise ProjectError(
                f"{self.root} is not an mmcurate project (no {cfg_path.name}); create one with "
                f"`mmcurate init {self.root} --pairs FILE --image-root DIR` or `--embeddings DIR`."
            )
        self.config: dict[str, Any] = read_json_object(cfg_path, what="the project's settings")
        self._check_ledger()
        self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        """Temporary files a killed ``train`` left in ``heads/`` (``.<name>.*.tmp``) are removed,
        only while no other process holds the project lock (a running writer's are live)."""
        stale = list(self.heads_dir.glob(".*.tmp"))
        if not stale:
            return
        try:
            with project_lock(self.root):
                for path in stale:
                    path.unlink(missing_ok=True)
        except ProjectError:  # another process (or this one) is writing: its files are live
            return

    def _check_ledger(self) -> None:
        """Refuse a project whose labels ledger is gone (missing or zero bytes) while ``heads/``
        holds models trained on its labels: opening it would read as a fresh project with no
        decisions, and the next select or export would go ahead without them."""
        heads = self.heads_dir
        models = sorted(p.name for p in heads.iterdir() if not p.name.startswith(".")) \
            if heads.is_dir() else []
        ledger = self.ledger_path
        if not models or (ledger.is_file() and ledger.stat().st_size > 0):
            return
        state = "is missing" if not ledger.exists() else "is empty (0 bytes)"
        raise ProjectError(
            f"{ledger} {state}, but {heads} holds {len(models)} model file(s) trained on its labels "
            f"({models[0]}, ...): the decisions are lost, not zero. Restore {ledger.name} (with its "
            f"-wal file, if any) from a backup; to start over without them, move {heads} aside.")

    # -- basic properties -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``images`` (pairs with image files, embedded here) or ``external`` (imported vectors)."""
        return str(self.config["kind"])

    @property
    def image_root(self) -> Path | None:
        root = self.config.get("image_root")
        return Path(root) if root else None

    @property
    def model_spec(self) -> ModelSpec | None:
        spec = self.config.get("model")
        return ModelSpec(spec["model"], spec.get("pretrained")) if spec else None

    @cached_property
    def pairs(self) -> pd.DataFrame:
        """The pairs table: ``pair_id``, ``image``, ``caption`` and any extra columns."""
        return pd.read_parquet(self.pairs_path)

    @property
    def rejects(self) -> pd.DataFrame:
        path = self.rejects_path
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()

    @property
    def store(self) -> EmbeddingStore:
        return EmbeddingStore(self.embeddings_dir)

    @cached_property
    def ledger(self):
        """The SQLite labels ledger (rounds, batches, decisions)."""
        return Ledger(self.ledger_path)

    def refresh(self) -> None:
        """Forget the pairs table and faiss indexes read so far, so the next use reads the
        directory again (after a stage rewrote ``pairs.parquet`` or the vectors)."""
        for cached in ("pairs", "index"):
            self.__dict__.pop(cached, None)  # functools.cached_property keeps its value here

    def save_config(self) -> None:
        atomic_write_json(self.config_path, self.config)

    # -- locking ----------------------------------------------------------------------------
    def lock(self, *, wait: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the project's write lock (one writing process at a time)."""
        return project_lock(self.root, wait=wait)
