"""Shared data of the engine tests."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def _noise_pairs(folder: Path, n: int) -> Path:
    """``n`` random 20×20 PNGs under ``folder/img`` and their ``pairs.csv`` (returned)."""
    from PIL import Image

    (folder / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / "img" / f"{i}.png")
        rows.append({"id": f"r{i}", "image": f"img/{i}.png", "caption": f"noise picture {i}"})
    pd.DataFrame(rows).to_csv(folder / "pairs.csv", index=False)
    return folder / "pairs.csv"


@pytest.fixture
def noise_pairs():
    """The writer of a small image-pairs CSV: ``noise_pairs(folder, n) -> csv path``."""
    return _noise_pairs


def kill_processes_naming(text: str) -> None:
    """SIGKILL every process (but this one) whose command line contains ``text``: the Ray
    processes of one test, found by their private temp dir. Never ``ray stop``, which stops every
    Ray on the machine, another checkout's test run included."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


class PrivateRayDir:
    """A short private directory for Ray's temp files (``RAY_TMPDIR`` / ``--temp-dir``; Ray's
    socket paths must fit) and a way to kill every process started under it."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="mmr", dir="/tmp")

    def kill(self) -> None:
        kill_processes_naming(self.path)


@pytest.fixture
def private_ray_dir():
    """A :class:`PrivateRayDir`; its Ray processes are killed and it is removed afterwards."""
    ray_dir = PrivateRayDir()
    try:
        yield ray_dir
    finally:
        ray_dir.kill()
        shutil.rmtree(ray_dir.path, ignore_errors=True)
