"""Review fixtures: a project with a round, and Playwright pointed at Debian's chromium."""

from __future__ import annotations

import contextlib
import os
import threading

import pandas as pd
import pytest
from PIL import Image

from mmcurate.project import create_project

CHROMIUM = "/usr/bin/chromium"


@contextlib.contextmanager
def _serve_review(proj, round_id: int, *, token: str = "t0k", reviewer: str = "browser"):
    """The review page of ``round_id`` served on 127.0.0.1 (a free port); yields its URL."""
    from werkzeug.serving import make_server

    from mmcurate.review.project_app import create_project_app

    app = create_project_app(proj, round_id=round_id, token=token, reviewer=reviewer)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/?token={token}"
    finally:
        srv.shutdown()


@pytest.fixture
def serve_review():
    """``serve_review(proj, round_id)``: a context manager serving that round's review page."""
    return _serve_review


@pytest.fixture
def review_project(tmp_path):
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(4):
        Image.new("RGBA", (40, 30), (60 * i, 100, 30, 200)).save(tmp_path / "img" / f"{i}.png")
        rows.append({"id": f"p{i}", "image": f"img/{i}.png", "caption": f"caption number {i}"})
    rows[2]["caption"] = "<script>alert(1)</script> tricky"
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "pairs.csv", progress=False)
    proj.ledger.create_round(["p0", "p1", "p2", "p3"], strategy="margin", params={}, model={},
                             scores=[0.9, 0.8, 0.7, 0.6], reasons=["margin=0.9", "margin=0.8",
                                                                  "margin=0.7", "margin=0.6"])
    return proj


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y --no-install-recommends chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-sync"]}
