"""Training the tiny stand-in model shows a progress bar with an ETA and records its recipe."""

from __future__ import annotations

import json

from mmcurate.embed.tiny import train_tiny_clip


def test_training_shows_progress_with_eta(tmp_path, capfd):
    folder = train_tiny_clip(tmp_path / "tiny", steps=3, batch_size=8, pool_size=40, progress=True)
    err = capfd.readouterr().err
    assert "tiny model: rendering scenes" in err and "tiny model: training" in err
    assert "3/3" in err and ("step/s" in err or "s/step" in err)
    assert "<" in err  # tqdm's elapsed<remaining (the ETA)
    training = json.loads((folder / "open_clip_config.json").read_text())["mmcurate"]["training"]
    assert training["steps"] == 3 and training["warmup"] == 1


def test_training_quiet_without_progress(tmp_path, capfd):
    train_tiny_clip(tmp_path / "tiny", steps=2, batch_size=8, pool_size=40, progress=False)
    assert "tiny model" not in capfd.readouterr().err


def test_cache_is_per_checkout_unless_set(monkeypatch, tmp_path):
    """Two clones never share (or wait on) one tiny model under the home folder."""
    from pathlib import Path

    import mmcurate
    from mmcurate.embed import model  # the tiny model's cache location lives in embed.model

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MMCURATE_CACHE", raising=False)
    checkout = Path(mmcurate.__file__).resolve().parents[1]
    assert model._cache_root() == checkout / ".cache" / "mmcurate"
    monkeypatch.setenv("MMCURATE_CACHE", str(tmp_path / "c"))
    assert model._cache_root() == tmp_path / "c"
    monkeypatch.delenv("MMCURATE_CACHE")
    monkeypatch.setattr(model, "_checkout_root", lambda: None)  # an installed copy (site-packages)
    assert model._cache_root() == tmp_path / "home" / ".cache" / "mmcurate"
