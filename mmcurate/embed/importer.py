"""Import embeddings computed elsewhere (clip-retrieval / LAION layout); no model needed.

Expected folder::

    img_emb/img_emb_0.npy   (n0, D) float16/float32
    text_emb/text_emb_0.npy (n0, D)
    metadata/metadata_0.parquet  columns: caption, optional image_path, optional key (the id), extras

Shards are matched by their numeric suffix and must agree in row count; all shards must share one
dimension. Vectors are read memory-mapped, checked, renormalised, and streamed into the
store's compacted float16 arrays chunk by chunk, so importing 1M x 512 stays well under 2 GiB.
Rows with an empty caption, a duplicate id, or a vector that is not finite in float32 (NaN, inf,
1e300) or all zeros go to the rejects table (naming the .npy file and row) instead of the project.
Metadata columns named like mmcurate's own (clip-retrieval's ``status``) are renamed
``source_<name>`` (:mod:`mmcurate.data.columns`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate._fileio import (
    NpyWriter,
    atomic_write_frame,
    atomic_write_json,
    iter_npy_rows,
    save_npy_atomic,
)
from mmcurate._integrity import check_npy
from mmcurate.data.columns import rename_reserved
from mmcurate.data.validate import given_id, is_null
from mmcurate.embed.store import EmbeddingStore, normalize_rows
from mmcurate.exceptions import DataError

__all__ = ["ImportResult", "import_embedding_folder", "write_embedding_folder"]

_CHUNK = 65536


@dataclass
class ImportResult:
    """Pairs kept (row i ↔ stored vector i), rows rejected, and the metadata columns renamed because
    mmcurate uses their names itself (:mod:`mmcurate.data.columns`)."""

    pairs: pd.DataFrame
    rejects: pd.DataFrame
    renamed_columns: dict[str, str] = field(default_factory=dict)


def _numbered(folder: Path, prefix: str, suffix: str) -> dict[int, Path]:
    pattern = re.compile(rf"^{prefix}_?(\d+){re.escape(suffix)}$")
    found = {}
    for path in folder.glob(f"{prefix}*{suffix}"):
        m = pattern.match(path.name)
        if m:
            found[int(m.group(1))] = path
    return found


def _discover(root: Path) -> list[tuple[Path, Path, Path]]:
    for sub in ("img_emb", "text_emb", "metadata"):
        if not (root / sub).is_dir():
            raise DataError(
                f"{root} is not a clip-retrieval embedding folder: missing {sub}/ (expected "
                f"img_emb/img_emb_*.npy, text_emb/text_emb_*.npy, metadata/metadata_*.parquet)."
            )
    img = _numbered(root / "img_emb", "img_emb", ".npy")
    txt = _numbered(root / "text_emb", "text_emb", ".npy")
    meta = _numbered(root / "metadata", "metadata", ".parquet")
    if not img:
        raise DataError(f"{root / 'img_emb'} holds no img_emb_<N>.npy files")
    if set(img) != set(txt) or set(img) != set(meta):
        raise DataError(
            f"{root}: shard numbers differ: img_emb {sorted(img)}, text_emb {sorted(txt)}, "
            f"metadata {sorted(meta)}; every shard needs all three files."
        )
    return [(img[i], txt[i], meta[i]) for i in sorted(img)]


def _check_shard(img: tuple, txt: tuple, meta: pd.DataFrame, paths) -> None:
    names = ", ".join(str(p) for p in paths)
    if len(img) != 2 or len(txt) != 2:
        raise DataError(f"{names}: embeddings must be 2-D, got {img} and {txt}")
    if not (img[0] == txt[0] == len(meta)):
        raise DataError(
            f"row counts differ: {paths[0]} has {img[0]} rows, {paths[1]} has {txt[0]}, "
            f"{paths[2]} has {len(meta)}; they must match row for row."
        )
    if img[1] != txt[1]:
        raise DataError(f"dimension differs: {paths[0]} D={img[1]}, {paths[1]} D={txt[1]}; image and "
                        f"text vectors must come from one model (same D)")
    if "caption" not in meta.columns:
        raise DataError(f"{paths[2]} has no 'caption' column (columns: {list(meta.columns)})")


def _pair_ids(meta: pd.DataFrame, shard: int) -> list[str]:
    """The ``key`` column where given (a null key counts as missing), else a hash of path + caption."""
    paths = meta["image_path"].astype(str).tolist() if "image_path" in meta.columns else \
        [f"shard{shard}:row{i}" for i in range(len(meta))]
    hashed = [hashlib.sha1(f"{p}\n{c}".encode()).hexdigest()[:16]
              for p, c in zip(paths, meta["caption"].astype(str).tolist())]
    if "key" not in meta.columns:
        return hashed
    return [h if k is None else k for k, h in zip((given_id(v) for v in meta["key"]), hashed)]


def _vector_problems(path: Path) -> np.ndarray:
    """Per row: ``""`` for a usable vector, else the reason (``non_finite_vector``: NaN, inf or a
    value beyond float32 such as 1e300, which would become NaN once normalised; ``zero_vector``:
    norm 0, no direction)."""
    out = []
    for block in iter_npy_rows(path, _CHUNK):
        with np.errstate(over="ignore", invalid="ignore"):
            as32 = np.asarray(block, dtype=np.float32)
            finite = np.isfinite(as32).all(1)
            norms = np.linalg.norm(np.where(np.isfinite(as32), as32, 0).astype(np.float64), axis=1)
        reason = np.full(len(block), "", dtype=object)
        reason[finite & (norms < 1e-12)] = "zero_vector"
        reason[~finite] = "non_finite_vector"
        out.append(reason)
    return np.concatenate(out) if out else np.zeros(0, dtype=object)


def _npy_shape(path: Path) -> tuple[int, ...]:
    try:
        return check_npy(path)[0]
    except OSError as err:
        raise DataError(f"{path} is not a readable .npy array ({err}); expected a file written "
                        f"by numpy.save with shape (rows, D)") from err
    except ValueError as err:
        raise DataError(f"{err}; expected a file written by numpy.save with shape (rows, D)") from err


def _read_metadata(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable Parquet file ({err})") from err


def _detail(reason: str, in_project: bool, caption) -> str:
    if reason == "duplicate_id" and in_project:
        return "pair_id already in the project"
    if reason == "non_string_caption":
        return f"expected text, got {type(caption).__name__} {caption!r:.60}"
    return ""


_VECTOR_DETAIL = {"non_finite_vector": "the vector holds NaN, inf or a value beyond float32 range",
                  "zero_vector": "the vector is all zeros (no direction to compare)"}


def _vector_reject(problems: tuple[np.ndarray, np.ndarray], paths, i: int) -> tuple[str, str] | None:
    """``(reason, detail)`` naming the .npy file and row of row ``i``'s bad vector, or None."""
    for problem, path, kind in zip(problems, paths[:2], ("image", "text")):
        if problem[i]:
            return problem[i], f"{path} row {i + 1} ({kind} vector): {_VECTOR_DETAIL[problem[i]]}"
    return None


def _shard_table(img, txt, meta, paths, shard, seen, existing) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Pairs of one shard, the mask of rows kept, and reject records."""
    ids = _pair_ids(meta, shard)
    textual = [is_null(v) or isinstance(v, str) for v in meta["caption"]]
    captions = pd.Series([v.strip() if isinstance(v, str) else "" for v in meta["caption"]],
                         index=meta.index, dtype=object)
    problems = (_vector_problems(img), _vector_problems(txt))  # img/txt: the .npy paths
    keep = np.ones(len(meta), dtype=bool)
    rejects = []
    for i, (pid, cap) in enumerate(zip(ids, captions)):
        reason = ("non_string_caption" if not textual[i] else "empty_caption" if not cap
                  else "duplicate_id" if pid in seen else None)
        vector = _vector_reject(problems, paths, i) if reason is None else None
        if reason or vector:
            keep[i] = False
            rejects.append({"source": str(paths[2]), "row": i + 1, "pair_id": pid,
                            "column": "vector" if vector else
                            {"empty_caption": "caption", "non_string_caption": "caption"}.get(
                                str(reason), "key"),
                            "reason": vector[0] if vector else reason,
                            "detail": vector[1] if vector else
                            _detail(str(reason), pid in existing, meta["caption"].iloc[i])})
        else:
            seen.add(pid)
    renames = rename_reserved(meta.columns, consumed={"key", "caption", "image_path"})
    table = meta.drop(columns=[c for c in ("key",) if c in meta.columns]).rename(columns=renames)
    table.attrs["renamed_columns"] = renames
    table.insert(0, "pair_id", ids)
    table["caption"] = captions
    table["image"] = meta["image_path"].astype(str) if "image_path" in meta.columns else ""
    return table[keep], keep, rejects


def import_embedding_folder(folder: str | os.PathLike, store: EmbeddingStore, *,
                            existing_ids: Collection[str] = frozenset()) -> ImportResult:
    """Read a clip-retrieval embedding folder into ``store`` (compacted arrays, kind 'external').

    Returns the pairs table (``pair_id``, ``image`` (image_path or ''), ``caption``, extras) whose
    row order matches the stored vectors, and the rejects. Rows whose id is in ``existing_ids``
    (a project's, when adding to it) are rejected as ``duplicate_id``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        result = import_embedding_folder("laion_part/", EmbeddingStore("proj/embeddings"))
        result.pairs.columns[:3].tolist()
        # ['pair_id', 'caption', 'image']
    """
    root = Path(folder)
    shards = _discover(root)
    loaded, total, dim = [], 0, None
    for paths in shards:
        img, txt = _npy_shape(paths[0]), _npy_shape(paths[1])
        meta = _read_metadata(paths[2])
        _check_shard(img, txt, meta, paths)
        if dim is not None and img[1] != dim:
            raise DataError(f"{paths[0]} has D={img[1]}, earlier shards D={dim}")
        dim = img[1]
        loaded.append((paths[0], paths[1], meta, paths))
    existing = existing_ids if isinstance(existing_ids, (set, frozenset)) else set(existing_ids)
    tables, masks, rejects, seen = [], [], [], set(existing)
    renamed: dict[str, str] = {}
    for shard, (img_path, txt_path, meta, paths) in enumerate(loaded):
        table, keep, rej = _shard_table(img_path, txt_path, meta, paths, shard, seen, existing)
        renamed.update(table.attrs.get("renamed_columns", {}))
        tables.append(table)
        masks.append(keep)
        rejects += rej
        total += int(keep.sum())
    pairs = pd.concat(tables, ignore_index=True)
    _write_arrays(store, loaded, masks, total, int(dim or 0))
    atomic_write_json(store.manifest_path, {
        "kind": "external", "model": None, "pretrained": None, "weights_sha256": None,
        "source": str(root.resolve()), "dim": int(dim or 0), "preprocess": None,
    })
    save_npy_atomic(store.array_path("ids"), np.asarray(pairs["pair_id"].tolist(), dtype=str))
    store.record_checksums()
    rej = pd.DataFrame(rejects, columns=["source", "row", "pair_id", "column", "reason", "detail"])
    return ImportResult(pairs=pairs, rejects=rej, renamed_columns=renamed)


def _write_arrays(store: EmbeddingStore, loaded, masks, total: int, dim: int) -> None:
    """Stream every kept row, renormalised, into ``image.npy``/``text.npy`` (float16)."""
    store.root.mkdir(parents=True, exist_ok=True)
    for kind, col in (("image", 0), ("text", 1)):
        with NpyWriter(store.array_path(kind), (total, dim), np.float16) as out:
            for entry, keep in zip(loaded, masks):
                start = 0
                for block in iter_npy_rows(entry[col], _CHUNK):
                    mask = keep[start : start + len(block)]
                    out.write(normalize_rows(block[mask]).astype(np.float16))
                    start += len(block)


def write_embedding_folder(folder: str | os.PathLike, image_embeddings: np.ndarray,
                           text_embeddings: np.ndarray, metadata: pd.DataFrame, *,
                           shard_size: int = 100_000) -> Path:
    """Write vectors + metadata in clip-retrieval's layout (the inverse of the import).

    ``metadata`` needs a ``caption`` column; ``key``/``image_path`` and extra columns are kept.
    Vectors are written as float16. Returns ``folder``.
    """
    root = Path(folder)
    if not (len(image_embeddings) == len(text_embeddings) == len(metadata)):
        raise ValueError("image_embeddings, text_embeddings and metadata must have the same length")
    for sub in ("img_emb", "text_emb", "metadata"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for shard, start in enumerate(range(0, len(metadata), shard_size)):
        stop = start + shard_size
        save_npy_atomic(root / "img_emb" / f"img_emb_{shard}.npy",
                        np.asarray(image_embeddings[start:stop], dtype=np.float16))
        save_npy_atomic(root / "text_emb" / f"text_emb_{shard}.npy",
                        np.asarray(text_embeddings[start:stop], dtype=np.float16))
        atomic_write_frame(metadata.iloc[start:stop], root / "metadata" / f"metadata_{shard}.parquet")
    return root
