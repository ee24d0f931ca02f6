"""CONTRIBUTING's module map names every module of the package.

The map is the table under "Layout: one module per stage": a row per top-level module (first cell
`` `mmcurate/x.py` `` or `` `x.py` ``) or per package (first cell `` `mmcurate/p/` ``, whose row
names each of its modules as `` `m.py` ``).
"""

from __future__ import annotations

import re
from pathlib import Path

import mmcurate

PACKAGE = Path(mmcurate.__file__).parent
CONTRIBUTING = PACKAGE.parent / "CONTRIBUTING.md"


def map_rows(text: str) -> list[tuple[str, str]]:
    """``(first cell, whole row)`` of each row of the module map."""
    section = text.split("## Layout: one module per stage", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [(row.split(" | ")[0], row) for row in rows]


def missing_from_map(text: str, package: Path) -> list[str]:
    """The modules of ``package`` that the module map in ``text`` does not name."""
    rows = map_rows(text)
    heads = " ".join(head for head, _ in rows)
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if len(rel.parts) == 1:
            if f"`mmcurate/{rel.name}`" not in heads and f"`{rel.name}`" not in heads:
                missing.append(f"mmcurate/{rel.as_posix()}")
            continue
        folder = f"`mmcurate/{rel.parent.as_posix()}/`"
        row = next((row for head, row in rows if folder in head), None)
        if row is None:
            missing.append(f"mmcurate/{rel.parent.as_posix()}/ (no row)")
        elif rel.name != "__init__.py" and not re.search(rf"`{re.escape(rel.name)}`", row):
            missing.append(f"mmcurate/{rel.as_posix()}")
    return missing


def test_every_module_is_in_the_module_map():
    missing = missing_from_map(CONTRIBUTING.read_text(encoding="utf-8"), PACKAGE)
    assert not missing, ("CONTRIBUTING.md's module map (Layout: one module per stage) does not name: "
                         + ", ".join(missing))


def test_the_check_finds_a_missing_module(tmp_path):
    pkg = tmp_path / "mmcurate"
    (pkg / "rounds").mkdir(parents=True)
    for name in ("__init__.py", "learn.py", "report.py", "rounds/__init__.py", "rounds/model.py",
                 "rounds/status.py"):
        (pkg / name).write_text("")
    text = ("## Layout: one module per stage\n\n| module | stage |\n|---|---|\n"
            "| `mmcurate/__init__.py`, `learn.py` | rules |\n"
            "| `mmcurate/rounds/` | `model.py` (the model) |\n\n## Next\n"
            "| `mmcurate/report.py` | not in the map's section |\n")
    assert missing_from_map(text, pkg) == ["mmcurate/report.py", "mmcurate/rounds/status.py"]
