"""A plugin as a user writes one, outside the package: a query strategy, a batch selector and an
input format, registered when the module is imported (``mmcurate --plugin`` / ``MMCURATE_PLUGINS``
import it for the CLI; tests/test_extension.py uses it). Not a test module itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate import register_format, register_selector, register_strategy

STRATEGY, SELECTOR, FORMAT = "low_cosine", "lowest_rows", "lines"


def low_cosine(view, power=1.0):
    """(1 - cosine(image, caption)) ** power: the CLIP-score filter, sharpened."""
    return (1.0 - np.asarray(view.cosine, dtype=np.float64)) ** power


def lowest_rows(scores, *, n, embeddings=None, indices_labeled=None, exclude=None, random_state=None):
    """The n candidates first in table order, whatever their scores."""
    taken = np.zeros(len(scores), bool)
    for rows in (indices_labeled, exclude):
        if rows is not None:
            taken[np.asarray(rows, dtype=np.int64)] = True
    return np.flatnonzero(~taken)[:n]


def read_lines(source, *, image_root, columns):
    """Lines of `image path|caption`, no header."""
    rows = [line.split("|", 1) for line in Path(source).read_text().splitlines() if line.strip()]
    return pd.DataFrame({
        "_row": range(1, len(rows) + 1), "id": None, "image": [r[0] for r in rows],
        "caption": [r[1] if len(r) > 1 else None for r in rows],
        "_error": [None if len(r) > 1 else "no '|' between image and caption" for r in rows]})


register_strategy(STRATEGY, low_cosine, needs=("cosine",), objective="find")
register_selector(SELECTOR, lowest_rows)
register_format(FORMAT, read_lines, suffixes=[".lines"])
