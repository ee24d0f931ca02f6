"""Where the real Label Studio and FiftyOne live for the interop tests: their own virtual
environments at the repository root (``make tool-venvs``, a part of ``make test``), because their
pins conflict with the main environment's. A test skips, naming the command, only when the
environment is absent."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABEL_STUDIO = REPO / ".venv-labelstudio" / "bin" / "label-studio"
FIFTYONE_PYTHON = REPO / ".venv-fiftyone" / "bin" / "python"


def need(executable: Path) -> Path:
    """``executable``, or skip the test saying how to install it."""
    if not executable.is_file() or not os.access(executable, os.X_OK):
        pytest.skip(f"{executable.relative_to(REPO)} is absent: run `make tool-venvs` (make test builds it)")
    return executable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project_with_round(base: Path):
    """Six pairs with file names Label Studio URLs must encode (``&``, ``#``, ``+``, space), two
    pairs sharing one image file (p0 and p5; p5 is the most suspect), a seventh pair (p6) queued in
    no round; round 1 queues p0..p5. Images under ``base/data/img``, the CSV in ``base/data``."""
    import pandas as pd
    from PIL import Image

    from mmcurate.project import create_project

    img = base / "data" / "img"
    img.mkdir(parents=True)
    names = ["x&y.png", "c#1.png", "p+q.png", "a b.png", "plain.png", "other.png"]
    for i, name in enumerate(names):
        Image.new("RGB", (24, 16), (40 * i, 200 - 30 * i, 90)).save(img / name)
    rows = [{"id": f"p{i}", "image": f"img/{name}", "caption": f"caption {i}"}
            for i, name in enumerate(names[:5])]
    rows.append({"id": "p5", "image": "img/x&y.png", "caption": "the same picture, another caption"})
    rows.append({"id": "p6", "image": "img/other.png", "caption": "not queued"})
    pd.DataFrame(rows).to_csv(base / "data" / "pairs.csv", index=False)
    proj = create_project(base / "proj", pairs=base / "data" / "pairs.csv", progress=False)
    proj.ledger.create_round([f"p{i}" for i in range(6)], strategy="margin", params={}, model={},
                             scores=[0.61, 0.52, 0.43, 0.34, 0.25, 0.97], reasons=["margin"] * 6)
    return proj
