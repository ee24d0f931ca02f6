"""Real sample data: Debian's ``tuxpaint-stamps-default`` object photos and their captions.

Each stamp is ``<category>/.../NAME.png`` with ``NAME.txt`` whose first line is a human-written
English caption (the following ``xx.utf8=`` lines are translations). ``symbols/`` and
``cartoon/`` are skipped (drawings, not photos), and so are ``*_mirror.png`` variants (no caption
of their own). The images stay where Debian installed them; only the pairs file is written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mmcurate._fileio import atomic_write_frame
from mmcurate.exceptions import DataError

__all__ = ["STAMPS_ROOT", "build_tuxpaint_pairs"]

STAMPS_ROOT = "/usr/share/tuxpaint/stamps"
_SKIP = ("symbols", "cartoon")


def _english_caption(txt: Path) -> str | None:
    for line in txt.read_bytes().decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and "=" not in line.split(" ", 1)[0]:
            return line
    return None


def build_tuxpaint_pairs(out_csv: str | os.PathLike, *, stamps_root: str | os.PathLike = STAMPS_ROOT) -> Path:
    """Write ``id,image,caption,category`` for every captioned stamp photo; returns the CSV path.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        build_tuxpaint_pairs("datasets/tuxpaint/pairs.csv")
        # PosixPath('datasets/tuxpaint/pairs.csv')
    """
    root = Path(stamps_root)
    if not root.is_dir():
        raise DataError(f"{root} not found; install the photos with: apt-get install -y "
                        f"--no-install-recommends tuxpaint-stamps-default")
    rows = []
    for png in sorted(root.rglob("*.png")):
        rel = png.relative_to(root)
        if rel.parts[0] in _SKIP or png.stem.endswith("_mirror"):
            continue
        txt = png.with_suffix(".txt")
        caption = _english_caption(txt) if txt.is_file() else None
        if caption:
            rows.append({"id": "tux-" + rel.with_suffix("").as_posix().replace("/", "-"),
                         "image": rel.as_posix(), "caption": caption, "category": rel.parts[0]})
    return atomic_write_frame(pd.DataFrame(rows), out_csv, fmt="csv")
