"""The first hour of a new user (issue 23): advice that names what this machine has, column typos
reported before the model libraries load, an init that accepted nothing says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmcurate.cli import main
from mmcurate.embed.model import supply_weights_help

REPO = Path(__file__).resolve().parents[1]


def test_weights_advice_gives_the_trained_tiny_models_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCURATE_CACHE", str(tmp_path / "cache"))
    assert "mmcurate demo" in supply_weights_help("proj")  # nothing trained yet
    folder = tmp_path / "cache" / "tiny-clip-v2-seed0"
    folder.mkdir(parents=True)
    (folder / "open_clip_model.safetensors").write_bytes(b"trained")  # as the demo leaves it
    advice = supply_weights_help("proj")
    assert f"mmcurate embed proj --model local-dir:{folder}" in advice
    assert "mmcurate demo" not in advice


def test_embed_without_weights_suggests_the_tiny_model_the_demo_trained(tmp_path, png_pairs,
                                                                       monkeypatch, capsys):
    monkeypatch.setenv("MMCURATE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "tiny-clip-v2-seed0"
    folder.mkdir(parents=True)
    (folder / "open_clip_model.safetensors").write_bytes(b"trained")
    assert main(["init", str(tmp_path / "p"), "--pairs", str(png_pairs),
                 "--model", f"local-dir:{tmp_path / 'absent'}"]) == 0
    capsys.readouterr()
    assert main(["embed", str(tmp_path / "p")]) == 2
    assert f"mmcurate embed {tmp_path / 'p'} --model local-dir:{folder}" in capsys.readouterr().err


def test_a_column_typo_is_reported_before_open_clip_or_torch_is_imported(png_pairs, tmp_path):
    code = ("import sys\nfrom mmcurate.cli import main\n"
            f"code = main(['init', {str(tmp_path / 'p')!r}, '--pairs', {str(png_pairs)!r},"
            " '--caption-column', 'captoin'])\n"
            "print(code, 'open_clip' in sys.modules, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.stdout.split() == ["2", "False", "False"], (done.stdout, done.stderr)
    assert "missing column(s) ['captoin']; the file has columns ['id', 'image', 'caption']" in done.stderr
    assert not (tmp_path / "p").exists()


def test_an_init_that_accepted_no_pair_hints_at_the_image_root(png_pairs, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "pairs.csv"
    moved.write_text(png_pairs.read_text())  # the images stay beside the original file
    assert main(["init", str(tmp_path / "p"), "--pairs", str(moved), "--no-check-images",
                 "--model", f"local-dir:{tmp_path / 'absent'}"]) == 0
    out = capsys.readouterr().out
    assert "0 pairs, 12 rejected" in out
    assert f"12 of 12 rows name an image that is not under the image root {elsewhere}" in out
    assert "--image-root FOLDER" in out
    assert "no pair was accepted" in out and "next: mmcurate embed" not in out


def test_a_folder_holding_a_csv_names_it(png_pairs, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "captions.csv").write_text(png_pairs.read_text())
    assert main(["init", str(tmp_path / "p"), "--pairs", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "holds no pairs" in err and f"--pairs {folder / 'captions.csv'}" in err
