"""Review fixtures: a project with a round, and Playwright pointed at Debian's chromium."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from PIL import Image

from mmcurate.project import create_project

CHROMIUM = "/usr/bin/chromium"


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
