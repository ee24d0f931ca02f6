"""On-disk embedding store: float16 vectors keyed by pair_id, written in atomic shards.

Layout of ``embeddings/``::

    manifest.json        model name, pretrained tag/path, weights sha256, preprocessing, dim, kind
    parts/part-*.npz     one per encoded batch: ids, image (B, D) f16, text (B, D) f16
    ids.npy              compacted: pair_ids in pairs order (unicode array)
    image.npy, text.npy  compacted: float16 (N, D), L2-normalised, memory-mapped on read
    checksums.json       sha256, size and modification time of the three compacted arrays

The compacted arrays count only when all three are there (a lost ``image.npy`` means its pairs
are embedded again, never zero vectors). Opening one checks its ``.npy`` header against its size,
and its checksum when its size or modification time changed since it was written (cheap); damage
raises :class:`~mmcurate.exceptions.ProjectError` naming the file. :meth:`EmbeddingStore.verify`
(``mmcurate check``) hashes them all.

Every file is written to a temporary name and moved into place with ``os.replace``, so a killed
job (SIGINT or SIGKILL) loses at most the batch in flight and never leaves a torn shard. Re-running
embeds only the pair_ids found in neither the compacted arrays nor the parts. ``compact`` merges
everything into arrays aligned with the current pairs table.

Assumption: one writer at a time (the project lock guarantees it).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate import _integrity
from mmcurate._fileio import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    read_json_object,
    save_npy_atomic,
)
from mmcurate.exceptions import ModelMismatchError, NotEmbeddedError, ProjectError

__all__ = ["EmbeddingStore", "normalize_rows"]

_IDENTITY_KEYS = ("kind", "model", "pretrained", "weights_sha256")
ARRAYS = ("ids.npy", "image.npy", "text.npy")


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class EmbeddingStore:
    """Float16 image and text vectors for a project's pairs.

    Examples
    --------
    >>> import tempfile
    >>> store = EmbeddingStore(Path(tempfile.mkdtemp()) / "embeddings")
    >>> store.write_part(["a"], np.ones((1, 4)), np.ones((1, 4))).suffix
    '.npz'
    >>> store.missing(["a", "b"])
    ['b']
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.parts_dir = self.root / "parts"

    def array_path(self, kind: str) -> Path:
        """The compacted array ``kind`` (``image``, ``text`` or ``ids``): ``<kind>.npy``."""
        name = f"{kind}.npy"
        if name not in ARRAYS:
            raise ValueError(f"kind must be one of {[a.removesuffix('.npy') for a in ARRAYS]}, got {kind!r}")
        return self.root / name

    # -- manifest -------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        return read_json_object(self.manifest_path, what="the embeddings' model record")

    def bind(self, info: dict[str, Any], *, reembed: bool = False) -> None:
        """Record which model makes these vectors; refuse a different one unless ``reembed``."""
        current = self.manifest()
        if current is not None and not _same_model(current, info):
            if not reembed:
                raise ModelMismatchError(
                    f"{self.root} holds vectors from {_describe(current)}, but the encoder is "
                    f"{_describe(info)}. Mixing them would make scores meaningless. Re-run with "
                    f"--reembed to discard the old vectors, or use the original model."
                )
            self.clear()
            current = None
        self.root.mkdir(parents=True, exist_ok=True)
        info = {**info, "precision": _merged_precision(current, info, self._has_vectors())}
        atomic_write_json(self.manifest_path, {**info, "updated": time.strftime("%FT%TZ",
                                                                           time.gmtime())})

    def clear(self) -> None:
        """Delete every stored vector and the manifest."""
        for path in list(self.parts_dir.glob("part-*.npz")) + [
            self.root / n for n in (*ARRAYS, "manifest.json", _integrity.CHECKSUMS)
        ]:
            path.unlink(missing_ok=True)

    # -- writing --------------------------------------------------------------------------
    def write_part(self, ids: Sequence[str], image: np.ndarray, text: np.ndarray) -> Path:
        """Atomically write one batch of normalised vectors as a new part file."""
        if not (len(ids) == len(image) == len(text)):
            raise ValueError(f"ids/image/text lengths differ: {len(ids)}, {len(image)}, {len(text)}")
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{os.getpid()}.npz"
        path = self.parts_dir / name
        buf = io.BytesIO()
        np.savez(buf, ids=np.asarray(ids, dtype=str), image=normalize_rows(image).astype(np.float16),
                 text=normalize_rows(text).astype(np.float16))
        atomic_write_bytes(path, buf.getvalue())
        return path

    def _has_vectors(self) -> bool:
        return self._compacted() or any(self.parts_dir.glob("part-*.npz"))

    def _compacted(self) -> bool:
        """Whether the compacted arrays are there (all three); raises ``ProjectError`` when their
        checksums show they come from different writes (a compaction killed between renames)."""
        if not all((self.root / name).is_file() for name in ARRAYS):
            return False
        tokens = [_integrity.writes(self.root, name) for name in ARRAYS]
        if all(tokens) and not set.intersection(*[t for t in tokens if t]):
            raise ProjectError(f"{self.root}: ids.npy, image.npy and text.npy come from different "
                               f"writes (a compaction was interrupted), so rows may not match{self._fix()}")
        return True

    def _fix(self) -> str:
        try:
            external = (self.manifest() or {}).get("kind") == "external"
        except ProjectError:
            external = False
        if external:
            return (f"; restore {self.root} from a backup (these vectors were imported: re-importing "
                    f"them with `mmcurate init NEW_PROJECT --embeddings DIR` starts a new project)")
        return (f"; restore {self.root} from a backup, or delete that folder and run `mmcurate embed "
                f"{self.root.parent}` to make the vectors again")

    def _array(self, name: str, *, mmap: bool = False) -> np.ndarray:
        """A compacted array, its header, size and (cheaply) checksum checked; damage names the file."""
        path = self.root / name
        try:
            shape, _ = _integrity.check_npy(path)
        except ValueError as err:
            raise ProjectError(f"{err}{self._fix()}") from err
        _integrity.verify(self.root, (name,), fix=self._fix())
        if name != "ids.npy" and len(shape) != 2:
            raise ProjectError(f"{path} holds shape {shape}, expected (pairs, D){self._fix()}")
        return np.load(path, mmap_mode="r" if mmap else None)

    def compacted_ids(self) -> np.ndarray:
        """The pair_ids of the compacted arrays, in their row order (checked as :meth:`load` does)."""
        return self._array("ids.npy")

    def verify(self) -> list[str]:
        """Hash every compacted array and compare it with ``checksums.json`` (and every header with
        its file's size); returns the names verified, raises ``ProjectError`` naming a damaged one
        (or arrays from different writes)."""
        self._compacted()
        for name in ARRAYS:
            if (self.root / name).is_file():
                self._array(name, mmap=True)
        return _integrity.verify(self.root, ARRAYS, full=True, fix=self._fix())

    def record_checksums(self) -> None:
        """Record the checksums of the compacted arrays as they are now (after a writer that moved
        them into place itself)."""
        _integrity.settle(self.root, ARRAYS)

    def _parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.npz"))

    # -- reading --------------------------------------------------------------------------
    def stored_ids(self) -> set[str]:
        """Every pair_id with vectors, in the compacted arrays or in parts."""
        ids: set[str] = set()
        if self._compacted():
            ids.update(self._array("ids.npy").tolist())
        for part in self._parts():
            with np.load(part) as z:
                ids.update(z["ids"].tolist())
        return ids

    def missing(self, pair_ids: Iterable[str]) -> list[str]:
        """The pair_ids (in the given order) that have no vectors yet."""
        have = self.stored_ids()
        return [p for p in pair_ids if p not in have]

    def is_compact_for(self, pair_ids: Sequence[str]) -> bool:
        """True when the compacted arrays hold exactly ``pair_ids`` in that order and no parts wait."""
        if self._parts() or not self._compacted():
            return False
        ids = self._array("ids.npy")
        return len(ids) == len(pair_ids) and bool(np.array_equal(ids, np.asarray(pair_ids, dtype=str)))

    def compact(self, pair_ids: Sequence[str]) -> None:
        """Merge compacted arrays and parts into ``image.npy``/``text.npy`` in ``pair_ids`` order."""
        missing = self.missing(pair_ids)
        lost = [name for name in ARRAYS if not (self.root / name).is_file()]
        if missing and 0 < len(lost) < len(ARRAYS):
            raise NotEmbeddedError(
                f"{self.root / lost[0]} is missing, so the vectors beside it cannot be matched to "
                f"the pairs{self._fix()}")
        if missing:
            raise NotEmbeddedError(
                f"{len(missing)} of {len(pair_ids)} pairs have no vectors yet (first: {missing[0]}); "
                f"run `mmcurate embed PROJECT`."
            )
        position = {pid: i for i, pid in enumerate(pair_ids)}
        dim = int((self.manifest() or {}).get("dim", 0)) or self._guess_dim()
        parts = self._parts()
        # all three arrays are written (unique temporary names) and their checksums accepted
        # before any replaces the old one
        with (atomic_path(self.root / "image.npy") as image_tmp,
              atomic_path(self.root / "text.npy") as text_tmp,
              atomic_path(self.root / "ids.npy") as ids_tmp):
            for kind, tmp in (("image", image_tmp), ("text", text_tmp)):
                out = np.zeros((len(pair_ids), dim), dtype=np.float16)
                for ids, vecs in self._sources(kind):
                    rows = np.array([position.get(p, -1) for p in ids.tolist()], dtype=np.int64)
                    keep = rows >= 0
                    out[rows[keep]] = vecs[keep]
                save_npy_atomic(tmp, out)
            save_npy_atomic(ids_tmp, np.asarray(pair_ids, dtype=str))
            _integrity.expect(self.root, {"image.npy": image_tmp, "text.npy": text_tmp,
                                          "ids.npy": ids_tmp})
        _integrity.settle(self.root, ARRAYS)
        for part in parts:
            part.unlink(missing_ok=True)

    def _sources(self, kind: str):
        if self._compacted():
            yield self._array("ids.npy"), self._array(f"{kind}.npy", mmap=True)
        for part in self._parts():
            with np.load(part) as z:
                yield z["ids"], z[kind]

    def _guess_dim(self) -> int:
        for _, vecs in self._sources("image"):
            return int(vecs.shape[1])
        raise NotEmbeddedError(f"{self.root} holds no vectors")

    def load(self, kind: str, pair_ids: Sequence[str] | None = None) -> npt.NDArray[np.float16]:
        """Memory-mapped float16 ``(N, D)`` vectors of ``kind`` ('image' or 'text').

        With ``pair_ids`` given, checks the compacted arrays match them (compacting first if parts
        wait and every pair is embedded).
        """
        if kind not in ("image", "text"):
            raise ValueError(f"kind must be 'image' or 'text', got {kind!r}")
        if pair_ids is not None and not self.is_compact_for(pair_ids):
            self.compact(pair_ids)
        if not self._compacted():
            raise NotEmbeddedError(f"no {kind} vectors in {self.root}; run `mmcurate embed PROJECT`.")
        return self._array(f"{kind}.npy", mmap=True)


def _merged_precision(current: dict[str, Any] | None, info: dict[str, Any], has_vectors: bool):
    """The precision(s) the stored vectors were made in: ``"bf16+fp32"`` when a resumed run used
    another precision than the vectors already stored (vectors differ slightly between them)."""
    new = info.get("precision")
    old = (current or {}).get("precision") if has_vectors else None
    if not old or not new:
        return new or old
    return "+".join(sorted(set(str(old).split("+")) | {str(new)}))


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in _IDENTITY_KEYS)


def _describe(info: dict[str, Any]) -> str:
    sha = (info.get("weights_sha256") or "")[:12]
    return f"{info.get('kind')} model {info.get('model')!r} pretrained={info.get('pretrained')!r} " \
           f"(weights sha256 {sha or 'n/a'})"
