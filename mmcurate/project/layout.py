"""Where a project's files live: :class:`ProjectLayout`, the one place each name is spelled.

Every stage reaches a project file through these names (``proj.ledger_path``,
``proj.has_ledger()``, ``proj.heads_dir``, ...): :class:`~mmcurate.project.files.ProjectFiles`
(and so :class:`~mmcurate.project.Project`) is a layout. A layout is only paths: it reads
nothing when made, so it also names the files of a folder that is not a project yet
(``create_project``'s staging folder, a benchmark's run project before it opens).

Examples
--------
>>> layout = ProjectLayout("my_project")
>>> layout.ledger_path.as_posix(), layout.head_path(3).name
('my_project/labels.sqlite', 'head-0003.safetensors')
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ProjectLayout"]


class ProjectLayout:
    """The paths of the project directory ``root`` (see :mod:`mmcurate.project` for what each holds)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # -- tables and settings ----------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        """``project.json``: kind, source, image root, columns, model spec."""
        return self.root / "project.json"

    @property
    def pairs_path(self) -> Path:
        """``pairs.parquet``: the pairs table (row i = vector i)."""
        return self.root / "pairs.parquet"

    @property
    def rejects_path(self) -> Path:
        """``rejects.csv``: rows that did not make it in, with their reasons."""
        return self.root / "rejects.csv"

    @property
    def embed_failures_path(self) -> Path:
        """``embed_failures.csv``: pairs whose image could not be embedded."""
        return self.root / "embed_failures.csv"

    @property
    def state_path(self) -> Path:
        """``state.json``: the last ranking's noise estimate (what ``status`` reports)."""
        return self.root / "state.json"

    # -- vectors and indexes ----------------------------------------------------------------
    @property
    def embeddings_dir(self) -> Path:
        """``embeddings/``: the :class:`~mmcurate.embed.store.EmbeddingStore` (its own layout)."""
        return self.root / "embeddings"

    def has_embeddings(self) -> bool:
        """Whether the embeddings folder exists (something was embedded or imported)."""
        return self.embeddings_dir.is_dir()

    @property
    def index_dir(self) -> Path:
        """``index/``: the saved faiss indexes (:class:`~mmcurate.project_index.ProjectIndex`)."""
        return self.root / "index"

    @property
    def pool_state_dir(self) -> Path:
        """``index/pool/``: the pool state that ``add`` / ``stream`` score arrivals against."""
        return self.index_dir / "pool"

    # -- labels and models ------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        """``labels.sqlite``: rounds, batches, decisions and heads (the ledger)."""
        return self.root / "labels.sqlite"

    def has_ledger(self) -> bool:
        """Whether the project has a labels ledger yet (none before the first ``select``)."""
        return self.ledger_path.is_file()

    @property
    def heads_dir(self) -> Path:
        """``heads/``: trained heads and model records."""
        return self.root / "heads"

    def head_path(self, head_round: int) -> Path:
        """The projection head trained in model round ``head_round``."""
        return self.heads_dir / f"head-{head_round:04d}.safetensors"

    def model_record_path(self, model_round: int) -> Path:
        """The model record (calibrator, validation) of model round ``model_round``."""
        return self.heads_dir / f"model-{model_round:04d}.json"

    def checkpoint_path(self, checkpoint: str | os.PathLike) -> Path:
        """A head checkpoint as the ledger records it (relative to the project, or absolute)."""
        path = Path(checkpoint)
        return path if path.is_absolute() else self.root / path

    def checkpoint_name(self, path: Path) -> str:
        """What the ledger records for the head file ``path`` (relative to the project)."""
        return path.relative_to(self.root).as_posix()

    def decisions_file_path(self, round_id: int) -> Path:
        """A decisions file for round ``round_id`` kept in the project (the demo's simulated reviewer
        writes one)."""
        return self.root / f"round{round_id}_decisions.csv"

    # -- groups -----------------------------------------------------------------------------
    @property
    def duplicates_path(self) -> Path:
        """``duplicates.parquet``: the duplicate and boilerplate groups."""
        return self.root / "duplicates.parquet"

    @property
    def duplicates_meta_path(self) -> Path:
        """``duplicates.json``: the groups' parameters, vectors fingerprint and counts."""
        return self.root / "duplicates.json"

    @property
    def duplicate_splits_path(self) -> Path:
        """``duplicate_splits.json``: pairs taken out of their duplicate groups for good."""
        return self.root / "duplicate_splits.json"

    # -- stream, caches, lock ---------------------------------------------------------------
    @property
    def stream_dir(self) -> Path:
        """``stream/``: stream-based selection (:mod:`mmcurate.stream`; its own layout inside)."""
        return self.root / "stream"

    @property
    def stream_state_path(self) -> Path:
        """``stream/state.json``: the stream's saved state."""
        return self.stream_dir / "state.json"

    @property
    def legacy_stream_state_path(self) -> Path:
        """``stream_state.json``: where older versions kept the stream's state (set aside on
        ``init --force`` only)."""
        return self.root / "stream_state.json"

    @property
    def cache_dir(self) -> Path:
        """``.cache/``: derived files that are never backed up."""
        return self.root / ".cache"

    @property
    def review_cache_dir(self) -> Path:
        """``.cache/review_images/``: the review page's reduced images."""
        return self.cache_dir / "review_images"

    @property
    def lock_path(self) -> Path:
        """``.lock``: the write lock (:func:`~mmcurate.project.lock.project_lock`)."""
        return self.root / ".lock"

    def derived_paths(self) -> tuple[Path, ...]:
        """What the stages made from the source (set aside when a project starts over)."""
        return (self.embeddings_dir, self.index_dir, self.ledger_path, self.heads_dir, self.state_path,
                self.embed_failures_path, self.stream_dir, self.legacy_stream_state_path)
