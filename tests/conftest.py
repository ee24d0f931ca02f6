"""Shared fixtures. Nothing here downloads: models are built or trained locally."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A suite started in the background of a non-interactive shell (`make test &`) inherits SIGINT ignored,
# and so would every command a test stops with Ctrl-C: give it back its default, which children inherit.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

collect_ignore = ["plugins"]  # user plugins: imported by the tests that load them (importing registers)

MICRO_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def micro_clip_dir(tmp_path_factory) -> Path:
    """A randomly initialised, very small open_clip model in local-dir: format (plumbing tests only)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("micro_clip")
    torch.manual_seed(0)
    model = open_clip.CLIP(**MICRO_CFG)
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": MICRO_CFG,
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "open_clip_model.safetensors"))
    return folder


def pytest_collection_finish(session: pytest.Session) -> None:
    """Train the tiny stand-in model before the first test when a selected test needs it.

    A cold training takes minutes, and tens of minutes on a loaded machine. pytest-timeout's limit
    covers fixture setup, so when the first test to ask for the model trained it, two checkouts
    testing at once timed out mid-training and every later test started over (each an error).
    Here no test's timeout applies; the fixture then finds the model ready."""
    if session.config.option.collectonly:
        return
    if any("tiny_clip_dir" in getattr(item, "fixturenames", ()) for item in session.items):
        from mmcurate.embed.tiny import get_tiny_clip, trained_tiny_clip

        if trained_tiny_clip() is None:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line("training the tiny stand-in model once for the tests "
                                    "(minutes; more on a loaded machine)...")
            get_tiny_clip(progress=False)


@pytest.fixture(scope="session")
def tiny_clip_dir() -> Path:
    """The project's trained tiny stand-in CLIP (trained once into this checkout's ``.cache/mmcurate``,
    or ``$MMCURATE_CACHE``; ~2 min cold)."""
    from mmcurate.embed.tiny import get_tiny_clip

    return get_tiny_clip(progress=False)


@pytest.fixture
def png_pairs(tmp_path) -> Path:
    """A CSV of 12 tiny coloured PNGs with captions; returns the CSV path (images beside it)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    rows = ["id,image,caption"]
    for i in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        Image.new("RGB", (24, 24), colour).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"p{i},img/{i}.png,a square of colour {colour[0]} {colour[1]} {colour[2]}")
    path = tmp_path / "pairs.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def one_line_error(capsys):
    """A reader of the CLI's stderr that checks it is one clear error line (no traceback) and
    returns it."""
    def read() -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert err.startswith("mmcurate: error: ")
        return err

    return read
