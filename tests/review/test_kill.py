"""Killing `mmcurate review` or `mmcurate label` midway loses no recorded decision."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from mmcurate.labels import Ledger

pytestmark = pytest.mark.slow


def _start(proj_root):
    proc = subprocess.Popen([sys.executable, "-m", "mmcurate.cli", "review", str(proj_root), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        if m:
            return proc, m.group(1), m.group(2)
    proc.kill()
    raise AssertionError("review server did not print its URL")


def _post(base, token, pair_id, decision):
    req = urllib.request.Request(base + "api/decision", method="POST",
                                 data=json.dumps({"pair_id": pair_id, "decision": decision}).encode(),
                                 headers={"Content-Type": "application/json", "X-Token": token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_killed_review_server_keeps_decisions(review_project):
    proc, base, token = _start(review_project.root)
    _post(base, token, "p0", "accept")
    _post(base, token, "p1", "reject")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc2, base2, token2 = _start(review_project.root)
    try:
        assert token2 != token
        assert _post(base2, token2, "p2", "accept")["decided"] == 3
    finally:
        proc2.kill()
        proc2.wait(timeout=10)
    latest = Ledger(review_project.root / "labels.sqlite").decisions()
    assert sorted(latest["pair_id"]) == ["p0", "p1", "p2"]


def test_killed_label_import_writes_nothing_then_succeeds(review_project, tmp_path):
    n = 200_000  # large enough that the import is still running when killed
    ids = ["p0", "p1", "p2", "p3"]
    rows = pd.DataFrame({"pair_id": [ids[i % 4] for i in range(n)],
                         "decision": ["accept"] * n, "reviewer": [f"r{i}" for i in range(n)]})
    path = tmp_path / "big.csv"
    rows.to_csv(path, index=False)
    proc = subprocess.Popen([sys.executable, "-m", "mmcurate.cli", "label", str(review_project.root),
                             "--import", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    before = Ledger(review_project.root / "labels.sqlite").decisions(history=True)
    assert len(before) in (0, n) or before.empty, "a killed import must write all or nothing"
    small = tmp_path / "small.csv"
    pd.DataFrame({"pair_id": ["p0", "p1"], "decision": ["accept", "reject"]}).to_csv(small, index=False)
    assert subprocess.run([sys.executable, "-m", "mmcurate.cli", "label", str(review_project.root),
                           "--import", str(small)], capture_output=True).returncode == 0
    latest = Ledger(review_project.root / "labels.sqlite").decisions().set_index("pair_id")
    assert latest.loc["p1", "decision"] == "reject"


def test_a_review_server_stopped_with_ctrl_c_leaves_every_decision_in_labels_sqlite(review_project,
                                                                                  tmp_path):
    import shutil
    import sqlite3

    review_project.ledger.close()
    proc, base, token = _start(review_project.root)
    try:
        _post(base, token, "p0", "accept")
        _post(base, token, "p1", "reject")
        copy = tmp_path / "while-running.sqlite"
        shutil.copy(review_project.root / "labels.sqlite", copy)  # the main file alone, mid-session
        with sqlite3.connect(copy) as conn:
            assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 2
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=30)
    wal = review_project.root / "labels.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed when the server stopped
