"""The files of a project directory: ``project.json``, the pairs and rejects tables, the store, the ledger."""

from __future__ import annotations

import contextlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._fileio import atomic_write_json
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import ProjectError
from mmcurate.project.lock import project_lock

_CONFIG = "project.json"


class ProjectFiles:
    """Accessors to a project directory's files and lock (the base of :class:`~mmcurate.project.Project`)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        cfg_path = self.root / _CONFIG
        if not cfg_path.is_file():
            raise ProjectError(
                f"{self.root} is not an mmcurate project (no {_CONFIG}); create one with "
                f"`mmcurate init {self.root} --pairs FILE --image-root DIR` or `--embeddings DIR`."
            )
        self.config: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))

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
        return pd.read_parquet(self.root / "pairs.parquet")

    @property
    def rejects(self) -> pd.DataFrame:
        path = self.root / "rejects.csv"
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()

    @property
    def store(self) -> EmbeddingStore:
        return EmbeddingStore(self.root / "embeddings")

    @cached_property
    def ledger(self):
        """The SQLite labels ledger (rounds, batches, decisions)."""
        from mmcurate.labels import Ledger

        return Ledger(self.root / "labels.sqlite")

    def refresh(self) -> None:
        """Forget the pairs table and faiss indexes read so far, so the next use reads the
        directory again (after a stage rewrote ``pairs.parquet`` or the vectors)."""
        for cached in ("pairs", "index"):
            self.__dict__.pop(cached, None)  # functools.cached_property keeps its value here

    def save_config(self) -> None:
        atomic_write_json(self.root / _CONFIG, self.config)

    # -- locking ----------------------------------------------------------------------------
    def lock(self, *, wait: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the project's write lock (one writing process at a time)."""
        return project_lock(self.root, wait=wait)
