"""``mmcurate check`` and ``mmcurate backup``: parsers and handlers (thin, over
:mod:`mmcurate.project.maintenance`)."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["add_maintenance_parsers", "cmd_backup", "cmd_check"]


def add_maintenance_parsers(sub) -> None:
    p = sub.add_parser("check", help="verify every stored file (vector checksums, ledger, ids, models)")
    p.add_argument("project", type=Path)
    p = sub.add_parser("backup", help="copy a project safely, while a review page runs too "
                                      "(the ledger through SQLite's backup API)")
    p.add_argument("project", type=Path)
    p.add_argument("dest", type=Path, help="a new folder")


def cmd_check(args) -> int:
    from mmcurate.project.maintenance import check_project  # lazy: start-up

    report = check_project(args.project)
    for line in report.checked:
        print(f"ok       {line}")
    for line in report.problems:
        print(f"DAMAGED  {line}")
    if report.ok:
        print(f"{args.project}: every file checked is sound")
        return 0
    print(f"mmcurate: error: {args.project} has {len(report.problems)} problem(s), listed above",
          file=sys.stderr)
    return 2


def cmd_backup(args) -> int:
    from mmcurate.project.maintenance import backup_project  # lazy: start-up

    dest = backup_project(args.project, args.dest)
    print(f"backed up {args.project} to {dest}; `mmcurate check {dest}` verifies the copy")
    return 0
