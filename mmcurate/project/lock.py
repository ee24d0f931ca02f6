"""The project's write lock (``PROJECT/.lock``, fcntl): one writing process at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from mmcurate.exceptions import ProjectLockedError
from mmcurate.project.layout import ProjectLayout


@contextlib.contextmanager
def project_lock(root: str | os.PathLike, *, wait: bool = False) -> Iterator[None]:
    """Hold the write lock of the project directory ``root`` (created if missing).

    Raises :class:`ProjectLockedError` when another process holds it and ``wait`` is False.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lock_path = ProjectLayout(root).lock_path
    with open(lock_path, "a+") as fh:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(fh.fileno(), flags)
        except BlockingIOError as err:
            raise ProjectLockedError(
                f"another mmcurate process is writing {root} (lock {lock_path}); "
                f"wait for it to finish."
            ) from err
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
