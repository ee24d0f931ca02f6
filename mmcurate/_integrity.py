"""Integrity of stored files: the one sha256 of a file, the one ``.npy`` header check, and the
checksum record of a folder's arrays (``checksums.json``).

A folder's record maps each file name to a list of accepted ``{"sha256", "size", "mtime_ns",
"write"}`` entries. A writer first records the new files' entries ahead of the old ones
(:func:`expect`, one ``write`` token for the files it writes together), then moves the files into
place, then keeps only the new entries (:func:`settle`): a write killed anywhere in between leaves
every file matching one accepted entry, so a crash never reads as damage, and :func:`writes` tells
whether files that belong together come from the same write. Reading is cheap (:func:`verify` with
``full=False``): a file whose size and modification time are the recorded ones is trusted; any
other is hashed (once per process and file state) and must match. ``full=True`` (``mmcurate
check``) hashes every file, which also finds damage that kept the modification time.

Assumption: one writer at a time (the project lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmcurate._fileio import atomic_write_json
from mmcurate.exceptions import ProjectError

__all__ = ["CHECKSUMS", "check_npy", "expect", "file_sha256", "settle", "verify", "writes"]

CHECKSUMS = "checksums.json"
_HASHED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, this process


def file_sha256(path: str | os.PathLike, *, chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_npy(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file, from its header; raises ``ValueError`` naming the file
    when it is empty, not a ``.npy``, Fortran-ordered, of object or non-numeric dtype, or when its
    size is not the header's (truncated or with bytes after the array)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes); expected a .npy array")
    with open(path, "rb") as fh:
        try:
            major, _ = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if major == 1 else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        except (ValueError, SyntaxError, EOFError) as err:
            raise ValueError(f"{path} is not a readable .npy array ({err})") from err
        offset = fh.tell()
    if fortran:
        raise ValueError(f"{path} holds a Fortran-ordered array; save it C-ordered "
                         f"(numpy.save(path, numpy.ascontiguousarray(x)))")
    if dtype.hasobject or dtype.kind not in "fiuU":
        raise ValueError(f"{path} holds dtype {dtype}, not numbers; save it as float16 or float32")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise ValueError(f"{path} is {state}: {size} bytes, its header {tuple(shape)} {dtype} "
                         f"needs {expected}")
    return tuple(int(s) for s in shape), dtype


def _entry(path: Path, write: str) -> dict[str, Any]:
    st = path.stat()
    return {"sha256": file_sha256(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "write": write}


def _sha(path: Path, *, fresh: bool = False) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if fresh or key not in _HASHED:
        _HASHED[key] = file_sha256(path)
    return _HASHED[key]


def _read(folder: Path) -> dict[str, list[dict[str, Any]]]:
    path = folder / CHECKSUMS
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ProjectError(f"{path} (the checksums of the vectors) is damaged: not readable JSON "
                           f"({err}); delete it to stop checking, or restore it from a backup") from err
    if not isinstance(record, dict) or not all(isinstance(v, list) for v in record.values()):
        raise ProjectError(f"{path} (the checksums of the vectors) is damaged: expected an object of "
                           f"lists; delete it to stop checking, or restore it from a backup")
    return record


def expect(folder: str | os.PathLike, written: Mapping[str, str | os.PathLike]) -> None:
    """Before files are moved into ``folder``: accept ``written`` (name -> temporary file about to
    become ``folder/name``) ahead of what the record accepted before (a rename keeps size and
    modification time)."""
    folder = Path(folder)
    record = _read(folder)
    write = uuid.uuid4().hex[:12]
    for name, tmp in written.items():
        record[name] = [_entry(Path(tmp), write), *record.get(name, [])]
    atomic_write_json(folder / CHECKSUMS, record)


def settle(folder: str | os.PathLike, names: tuple[str, ...] | None = None) -> None:
    """After the files are in place (or were verified together): accept only their current
    content, as one write. A file whose size or time is not its first entry's (a writer that did
    not call :func:`expect`, a copy that changed the times) is hashed now."""
    folder = Path(folder)
    record = _read(folder)
    settled: dict[str, dict[str, Any]] = {}
    for name in names or tuple(record):
        path = folder / name
        if not path.is_file():
            record.pop(name, None)
            continue
        first = record.get(name, [])[:1]
        settled[name] = dict(first[0]) if first and _same_stat(first[0], path) else _entry(path, "")
    tokens = {str(e.get("write", "")) for e in settled.values()}
    write = tokens.pop() if len(tokens) == 1 and "" not in tokens else uuid.uuid4().hex[:12]
    for name, entry in settled.items():
        record[name] = [{**entry, "write": write}]  # the files settled now belong together
    atomic_write_json(folder / CHECKSUMS, record)


def _same_stat(entry: Mapping[str, Any], path: Path) -> bool:
    st = path.stat()
    return entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns


def verify(folder: str | os.PathLike, names: tuple[str, ...], *, full: bool = False,
           fix: str = "") -> list[str]:
    """The files of ``names`` (those recorded) that are verified; raises
    :class:`~mmcurate.exceptions.ProjectError` naming the first damaged one. ``full`` hashes every
    file; otherwise only those whose size or modification time changed. ``fix`` ends the message."""
    folder = Path(folder)
    record = _read(folder)
    checked = []
    for name in names:
        entries, path = record.get(name), folder / name
        if not entries or not path.is_file():
            continue
        if full or not any(_same_stat(e, path) for e in entries):
            got = _sha(path, fresh=full)
            if not any(e.get("sha256") == got for e in entries):
                want = entries[0]
                raise ProjectError(
                    f"{path} is damaged: its content (sha256 {got[:12]}, {path.stat().st_size} bytes) "
                    f"is not what was written (sha256 {str(want.get('sha256'))[:12]}, "
                    f"{want.get('size')} bytes, recorded in {folder / CHECKSUMS}){fix}")
        checked.append(name)
    return checked


def writes(folder: str | os.PathLike, name: str) -> set[str] | None:
    """The write tokens whose entry matches ``folder/name`` now (size and time, else the hash);
    None when the file or its record is absent (nothing to compare)."""
    folder = Path(folder)
    entries, path = _read(folder).get(name), folder / name
    if not entries or not path.is_file():
        return None
    same = {str(e.get("write")) for e in entries if _same_stat(e, path)}
    if same:
        return same
    got = _sha(path)
    return {str(e.get("write")) for e in entries if e.get("sha256") == got}
