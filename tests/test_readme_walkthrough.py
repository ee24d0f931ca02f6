"""The README's walkthrough runs as written (issue 23): every command of its code block, verbatim,
in a fresh folder holding the tiny model where the README says `make demo` leaves it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mmcurate.cli import main
from mmcurate.data.tuxpaint import STAMPS_ROOT

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def walkthrough_commands() -> list[str]:
    """The command lines of the README's walkthrough block (continuations joined, comments cut)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Walkthrough: one full round from the CLI", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    commands, current = [], ""
    for line in block.splitlines():
        code = re.split(r"\s{2,}#|^#", line, maxsplit=1)[0].rstrip()
        if not code.strip():
            continue
        part = code.strip().removesuffix("\\").strip()
        current = f"{current} {part}" if current else part
        if not code.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def test_the_walkthrough_block_is_what_this_test_runs():
    commands = walkthrough_commands()
    assert commands[0] == "python scripts/make_tuxpaint_pairs.py --out tuxpaint.csv"
    assert commands[1].startswith("mmcurate init proj --pairs tuxpaint.csv --image-root "
                                  "/usr/share/tuxpaint/stamps --model local-dir:.cache/mmcurate/")
    assert [c.split()[1] for c in commands[2:]] == [
        "embed", "status", "duplicates", "rank", "select", "review", "batch", "label", "train",
        "select", "export", "check", "backup"]


@pytest.mark.skipif(not Path(STAMPS_ROOT).is_dir(), reason=f"{STAMPS_ROOT} missing (`make test` "
                    "installs Debian's tuxpaint-stamps)")
def test_the_readme_walkthrough_runs_as_written(tmp_path, tiny_clip_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".cache" / "mmcurate").mkdir(parents=True)
    # where `make demo` leaves the tiny model in a checkout
    (tmp_path / ".cache" / "mmcurate" / tiny_clip_dir.name).symlink_to(tiny_clip_dir)
    for command in walkthrough_commands():
        argv = shlex.split(command)
        if argv[0] == "python":  # scripts/ of the checkout; its output lands here
            subprocess.run([sys.executable, str(REPO / argv[1]), *argv[2:]], check=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
            continue
        if argv[1] == "review":  # a web server for a person; the batch file below stands in for it
            continue
        if argv[1] == "label":  # the reviewer's part: fill in the batch file
            batch = pd.read_csv("round1.csv", dtype={"decision": "string", "reviewer": "string"})
            batch["decision"] = ["reject" if i % 4 == 0 else "accept" for i in range(len(batch))]
            batch.to_csv("round1.csv", index=False)
        assert main(argv[1:]) == 0, (command, capsys.readouterr().err)
        err = capsys.readouterr().err
        assert "Traceback" not in err and "error" not in err, (command, err)
    assert (tmp_path / "curated" / "report.html").is_file()
    assert (tmp_path / "proj-backup" / "labels.sqlite").is_file()
