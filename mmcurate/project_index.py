"""A project's saved faiss indexes over image and caption vectors.

Indexes are built on first use, saved under ``PROJECT/index/`` next to a fingerprint of the
embeddings they were built from, and rebuilt only when that fingerprint changes (re-embedding,
new pairs) or extended in place: :meth:`ProjectIndex.add` appends arriving vectors (rows N, N+1, ...)
and :meth:`ProjectIndex.save` records them under the grown pool's fingerprint, so a stream of
arrivals never rebuilds the index. The index type follows :func:`mmcurate.index.build_index`
(exact below its size threshold, approximate above).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate import index as ix
from mmcurate._fileio import atomic_write_json

__all__ = ["ProjectIndex"]


class ProjectIndex:
    """Image and text faiss indexes of one project, with batched cross-modal kNN.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        sims, idx = proj.index.image_to_text(k=10)
        idx.shape  # (N, 10): caption rows nearest to each image, best first
    """

    def __init__(self, folder: Path, image_embeddings: np.ndarray, text_embeddings: np.ndarray, *,
                 fingerprint: str) -> None:
        self.folder = Path(folder)
        self.image_embeddings = image_embeddings
        self.text_embeddings = text_embeddings
        self.fingerprint = fingerprint

    def _load_or_build(self, name: str, vectors: np.ndarray) -> Any:
        path = self.folder / f"{name}.faiss"
        meta_path = self.folder / f"{name}.json"
        if path.is_file() and meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("fingerprint") == self.fingerprint:
                return ix.load_index(path)
        index = ix.build_index(vectors)
        self.folder.mkdir(parents=True, exist_ok=True)
        ix.save_index(index, path)
        atomic_write_json(meta_path, {"fingerprint": self.fingerprint, "n": len(vectors),
                                      "type": type(index).__name__})
        return index

    @cached_property
    def image(self) -> Any:
        """faiss index over image vectors."""
        return self._load_or_build("image", self.image_embeddings)

    @cached_property
    def text(self) -> Any:
        """faiss index over caption vectors."""
        return self._load_or_build("text", self.text_embeddings)

    def image_to_text(self, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k captions nearest to each image: ``(sims (N, k), caption rows (N, k))``."""
        return ix.search(self.text, self.image_embeddings, k)

    def text_to_image(self, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k images nearest to each caption."""
        return ix.search(self.image, self.text_embeddings, k)

    def image_to_image(self, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The k other images nearest to each image (the image itself excluded)."""
        sims, idx = ix.search(self.image, self.image_embeddings, k + 1)
        rows = np.arange(len(idx))[:, None]
        order = np.argsort(idx == rows, axis=1, kind="stable")
        return (np.take_along_axis(sims, order, 1)[:, :k], np.take_along_axis(idx, order, 1)[:, :k])

    def add(self, image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> None:
        """Append vectors ``(M, D)`` to both indexes in memory (they become rows N .. N+M-1)."""
        self.image.add(ix.as_float32(image_embeddings))
        self.text.add(ix.as_float32(text_embeddings))

    def save(self, fingerprint: str) -> None:
        """Write both indexes as they are now, recorded under ``fingerprint``."""
        self.fingerprint = fingerprint
        for name, index in (("image", self.image), ("text", self.text)):
            ix.save_index(index, self.folder / f"{name}.faiss")
            atomic_write_json(self.folder / f"{name}.json", {"fingerprint": fingerprint,
                                                            "n": int(index.ntotal),
                                                            "type": type(index).__name__})
