"""Without weights: `init` says so at once, and every suggested command line parses with the parser
of the command it names (no suggestion of a flag the command rejects)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mmcurate.cli import build_parser, main
from mmcurate.project import open_project

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """The CLI in a fresh process with an empty home and Hugging Face cache (no weights anywhere)."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_OFFLINE", None)  # mmcurate must stay offline by itself
    return subprocess.run([sys.executable, "-m", "mmcurate.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def _suggestions(text: str) -> list[list[str]]:
    """Every ``mmcurate ...`` command line suggested in ``text`` (comments after ``#`` dropped)."""
    found = []
    for line in text.splitlines():
        m = re.match(r"\s*(mmcurate\s.*?)(\s+#.*)?$", line)
        if m and not line.lstrip().startswith("mmcurate: "):
            found.append(shlex.split(m.group(1))[1:])
    return found


def _assert_parses(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit as err:  # argparse: unrecognized arguments / missing required ones
        raise AssertionError(f"suggested `mmcurate {shlex.join(argv)}` does not parse") from err


def test_no_weights_walkthrough_suggests_only_accepted_flags(png_pairs, tmp_path):
    init = _run(["init", "proj", "--pairs", str(png_pairs)], tmp_path)
    assert init.returncode == 0, init.stderr
    assert "weights missing" in init.stdout and "ViT-B-32" in init.stdout
    assert open_project(tmp_path / "proj").model_spec.model == "ViT-B-32"  # saved for later
    embed = _run(["embed", "proj", "--no-progress"], tmp_path)
    assert embed.returncode == 2 and "not on this machine" in embed.stderr
    simulate = _run(["simulate", "--pairs", str(png_pairs), "--out", "sim", "--no-progress"], tmp_path)
    assert simulate.returncode == 2
    for out, command in ((init.stdout, "init"), (embed.stderr, "embed"), (simulate.stderr, "simulate")):
        suggested = _suggestions(out)
        assert len(suggested) >= 4, (command, out)
        assert any("--pretrained" in argv for argv in suggested)
        assert any(a.startswith("local-dir:") for argv in suggested for a in argv)
        for argv in suggested:
            _assert_parses(argv)
    # the embed suggestion that switches the model names the project it was run on
    assert ["embed", "proj", "--model", "local-dir:DIR"] in _suggestions(embed.stderr)


def test_suggestion_check_catches_a_rejected_flag():
    """The check above is not vacuous: the old advice (`embed --pretrained` before embed took it)
    and an unknown flag fail to parse."""
    with pytest.raises(AssertionError, match="does not parse"):
        _assert_parses(["embed", "proj", "--no-such-flag", "x"])
    with pytest.raises(AssertionError, match="does not parse"):
        _assert_parses(["status", "proj", "--pretrained", "FILE"])


def test_embed_model_switches_and_embeds(png_pairs, tmp_path, micro_clip_dir, capsys):
    assert main(["init", str(tmp_path / "p"), "--pairs", str(png_pairs),
                 "--model", f"local-dir:{tmp_path / 'not-yet'}"]) == 0
    assert "weights missing" in capsys.readouterr().out
    assert main(["embed", str(tmp_path / "p"), "--model", f"local-dir:{micro_clip_dir}",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "model switched to local-dir:" in out and "embedded 12 pairs" in out
    proj = open_project(tmp_path / "p")
    assert proj.model_spec.model == f"local-dir:{micro_clip_dir}" and proj.n_embedded == 12
    # switching again while vectors exist asks for --reembed and changes nothing
    other = tmp_path / "other"
    other.mkdir()
    for f in micro_clip_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    assert main(["embed", str(tmp_path / "p"), "--model", f"local-dir:{other}", "--no-progress"]) == 2
    assert "--reembed" in capsys.readouterr().err
    assert open_project(tmp_path / "p").model_spec.model == f"local-dir:{micro_clip_dir}"
    # a model whose weights are missing changes nothing either
    assert main(["embed", str(tmp_path / "p"), "--model", f"local-dir:{tmp_path / 'nope'}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err
    for argv in _suggestions(err):
        _assert_parses(argv)
    assert open_project(tmp_path / "p").model_spec.model == f"local-dir:{micro_clip_dir}"
