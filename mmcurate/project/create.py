"""Creating a project: read and validate a pairs source or import an embedding folder, start over safely."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from mmcurate._fileio import atomic_write_frame, atomic_write_json
from mmcurate.data import Columns, load_pairs
from mmcurate.embed.importer import import_embedding_folder
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import DataError, ProjectError
from mmcurate.project.directory import Project
from mmcurate.project.layout import ProjectLayout
from mmcurate.project.lock import project_lock

FORMAT_VERSION = 1


def create_project(
    root: str | os.PathLike,
    *,
    pairs: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    embeddings: str | os.PathLike | None = None,
    model: ModelSpec | None = None,
    columns: dict[str, str] | None = None,
    fmt: str | None = None,
    check_images: bool | str = True,
    progress: bool = True,
    overwrite: bool = False,
) -> Project:
    """Create a project from a pairs source (``pairs=``) or an embedding folder (``embeddings=``).

    Validation problems never stop the load: bad rows go to ``rejects.csv`` with file, row and
    reason. The new source is read and validated before anything of an old project is touched;
    with ``overwrite`` the old state is then moved to ``replaced-<time>/``, all under the project
    lock (a running ``embed`` makes this raise :class:`ProjectLockedError`). Returns the opened
    project.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        proj = create_project("proj", pairs="captions.csv", image_root="images/")
        proj = create_project("proj2", embeddings="laion_embeddings/")
    """
    if (pairs is None) == (embeddings is None):
        raise ValueError("give exactly one of pairs= (a pairs file/folder) or embeddings= (a folder)")
    root = Path(root)
    new = not root.exists()
    with project_lock(root):
        try:
            _create(root, pairs, image_root, embeddings, model, columns, fmt, check_images, progress,
                    overwrite)
        except BaseException:
            if new:  # the folder this call made (under its lock) holds nothing of value: no empty
                shutil.rmtree(root, ignore_errors=True)  # project is left behind
            raise
    return Project(root)


def _create(root: Path, pairs, image_root, embeddings, model, columns, fmt, check_images, progress,
            overwrite) -> None:
    """The work of :func:`create_project`, under the project lock."""
    layout = ProjectLayout(root)
    if layout.config_path.exists() and not overwrite:
        raise ProjectError(f"{root} already holds a project; open it, or pass overwrite=True (CLI: "
                           f"--force) to start over (the old state is moved to replaced-<time>/).")
    config: dict[str, Any] = {"format_version": FORMAT_VERSION,
                              "created": time.strftime("%FT%TZ", time.gmtime())}
    staging = ProjectLayout(root / f".incoming-{os.getpid()}")
    try:
        if embeddings is not None:
            table, rejects = _import_source(config, embeddings, staging.embeddings_dir, image_root)
        else:
            table, rejects, config = _load_source(config, pairs, image_root, columns, fmt,
                                                  check_images, progress, model)
        # written before anything old is touched: a table that cannot be stored stops here
        staging.root.mkdir(parents=True, exist_ok=True)
        atomic_write_frame(table.reset_index(drop=True), staging.pairs_path)
        atomic_write_frame(rejects, staging.rejects_path)
        _set_aside(layout)  # an old project (overwrite) or leftovers of a failed init
        for made, final in ((staging.embeddings_dir, layout.embeddings_dir),
                            (staging.pairs_path, layout.pairs_path),
                            (staging.rejects_path, layout.rejects_path)):
            if made.exists():
                os.replace(made, final)
    finally:
        shutil.rmtree(staging.root, ignore_errors=True)
    atomic_write_json(layout.config_path, config)


def _external_image_root(table, image_root) -> str | None:
    """Where an imported project's ``image_path`` values point: ``image_root`` when given (for
    relative paths), else ``/`` when every path is absolute, else None (no images shown)."""
    if image_root is not None:
        root = Path(image_root)
        if not root.is_dir():
            raise DataError(f"--image-root {root} is not a folder; give the folder the metadata's "
                            f"image_path values are relative to")
        return str(root.resolve())
    paths = [p for p in table["image"].tolist() if isinstance(p, str) and p]
    return "/" if paths and all(os.path.isabs(p) for p in paths) else None


def _import_source(config: dict[str, Any], embeddings, store_dir: Path, image_root=None):
    """Import an embedding folder into the store at ``store_dir``; the pairs and rejects tables."""
    result = import_embedding_folder(embeddings, EmbeddingStore(store_dir))
    if result.pairs.empty:
        raise DataError(f"{embeddings} holds no usable pairs ({len(result.rejects)} rejected); "
                        f"expected at least one row with finite vectors and a caption")
    config.update(kind="external", source=str(Path(embeddings).resolve()),
                  image_root=_external_image_root(result.pairs, image_root), model=None)
    if result.renamed_columns:
        config["renamed_columns"] = result.renamed_columns
    return result.pairs, result.rejects


def _set_aside(layout: ProjectLayout) -> Path | None:
    """Starting over: move the old project's state into ``replaced-<time>/`` (never deleted).

    Stored vectors are keyed by pair_id, so keeping them would silently reuse vectors of changed
    captions; labels and heads belong to the old pairs. Moving is a rename, so it is cheap.
    """
    present = [path for path in (*layout.derived_paths(), layout.pairs_path, layout.rejects_path,
                                 layout.config_path) if path.exists()]
    if not present:
        return None
    root = layout.root
    aside = root / time.strftime("replaced-%Y%m%dT%H%M%S")
    n = 0
    while aside.exists():
        n += 1
        aside = root / (time.strftime("replaced-%Y%m%dT%H%M%S") + f"-{n}")
    aside.mkdir()
    for path in present:
        os.replace(path, aside / path.name)
    return aside


def _load_source(config, pairs, image_root, columns, fmt, check_images, progress, model):
    cols = Columns(**(columns or {}))
    src = Path(pairs)
    if image_root is None:
        image_root = src if src.is_dir() else src.parent
    result = load_pairs(src, image_root=image_root, columns=cols, fmt=fmt,
                        check_images=check_images, progress=progress)
    spec = model or ModelSpec()
    config.update(kind="images", source=str(src.resolve()), image_root=str(Path(image_root).resolve()),
                  columns={"id": cols.id, "image": cols.image, "caption": cols.caption},
                  model={"model": spec.model, "pretrained": spec.pretrained})
    if result.renamed_columns:
        config["renamed_columns"] = result.renamed_columns
    return result.pairs, result.rejects, config
