"""Shared data of the engine tests."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
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


def kill_processes_naming(text: str, *, wait_s: float = 60.0) -> None:
    """SIGKILL every process (but this one) whose command line or environment contains ``text``,
    and wait until they are gone: the Ray processes of one test, found by their private temp dir
    (Ray renames its workers' command lines to ``ray::...``; they keep ``RAY_TMPDIR`` in their
    environment). Never ``ray stop``, which stops every Ray on the machine, another checkout's
    test run included. Waiting matters: a worker still alive after the kill can finish writing a
    part (a resumed run then found 76 pairs stored where the test had counted 70)."""
    needle = text.encode()
    killed = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            found = any(needle in Path(f"/proc/{pid}/{name}").read_bytes() for name in ("cmdline", "environ"))
        except OSError:
            continue
        if found:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + wait_s
    while killed and time.monotonic() < deadline:
        killed = [pid for pid in killed if _alive(pid)]
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone: it writes nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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
