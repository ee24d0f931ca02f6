"""Shared data of the engine tests."""

from __future__ import annotations

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
