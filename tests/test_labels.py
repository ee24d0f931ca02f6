"""The SQLite labels ledger: rounds, decisions, imports (validation, idempotency, atomicity), heads."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcurate.exceptions import DataError, LedgerLockedError, ProjectError
from mmcurate.labels import DECISIONS, ImportReport, LabelsFileError, Ledger
from mmcurate.labels import connection as ledger_connection

PAIRS = {f"p{i}" for i in range(100)}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "labels.sqlite") as led:
        yield led


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def _count(path: Path, table: str = "decisions") -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# -- schema ---------------------------------------------------------------------------------------
def test_schema_is_wal_with_foreign_keys_and_versioned(tmp_path, ledger):
    conn = ledger._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"rounds", "batch_items", "batch_design", "decisions", "heads", "second_opinions"} <= tables
    ledger.record("p1", "accept")
    ledger.close()
    with Ledger(tmp_path / "labels.sqlite") as again:  # reopening keeps the data
        assert again.decisions()["pair_id"].tolist() == ["p1"]


def test_version1_ledger_is_migrated_and_keeps_its_rounds(tmp_path, ledger):
    round_id = ledger.create_round(["p1", "p2"], strategy="margin", params={}, model={})
    ledger.record("p1", "accept", round_id=round_id)
    ledger.close()
    path = tmp_path / "labels.sqlite"
    with sqlite3.connect(path) as conn:  # make it a version-1 file: no design table
        conn.execute("DROP TABLE batch_design")
        conn.execute("PRAGMA user_version = 1")
    with Ledger(path) as again:
        assert again._conn.execute("PRAGMA user_version").fetchone()[0] == 4
        design = again.design()
        assert design["stratum"].tolist() == ["exploit", "exploit"]
        assert design["inclusion"].tolist() == [1.0, 1.0]
        assert again.decisions()["pair_id"].tolist() == ["p1"]
        r2 = again.create_round(["p3", "p4"], strategy="margin", params={}, model={},
                                strata=["exploit", "explore"], inclusion=[1.0, 0.01])
        assert again.batch(r2)["stratum"].tolist() == ["exploit", "explore"]
        assert again.design().set_index("pair_id").loc["p4", "inclusion"] == 0.01


def test_design_values_are_checked(ledger):
    with pytest.raises(ValueError, match="inclusion"):
        ledger.create_round(["p1"], strategy="margin", params={}, model={}, strata=["explore"],
                            inclusion=[0.0])
    with pytest.raises(ValueError, match="strata"):
        ledger.create_round(["p1"], strategy="margin", params={}, model={}, strata=["other"])
    assert ledger.latest_round() is None


def test_newer_schema_version_is_refused(tmp_path):
    path = tmp_path / "labels.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ProjectError, match=r"schema version 99.*upgrade mmcurate"):
        Ledger(path)


def test_decisions_table_is_append_only(ledger):
    ledger.record("p1", "accept")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger._conn.execute("UPDATE decisions SET decision = 'reject'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger._conn.execute("DELETE FROM decisions")


# -- rounds ---------------------------------------------------------------------------------------
def test_rounds_and_batches(ledger):
    assert ledger.latest_round() is None and ledger.rounds().empty
    r1 = ledger.create_round(["p3", "p1", "p2"], strategy="margin", params={"budget": np.int64(3)},
                             model={"name": "ViT-B-32"}, scores=[0.9, 0.5, 0.1], reasons=["a", "b", "c"])
    r2 = ledger.create_round(["p4"], strategy="random", params={}, model={}, head_round=1)
    assert (r1, r2) == (1, 2) and ledger.latest_round() == 2
    assert ledger.queued_pair_ids() == {"p1", "p2", "p3", "p4"}
    batch = ledger.batch(1)
    assert list(batch.columns) == ["round", "position", "pair_id", "score", "reason", "decision",
                                   "caption_fixed", "stratum"]
    assert batch["pair_id"].tolist() == ["p3", "p1", "p2"]
    assert batch["position"].tolist() == [0, 1, 2] and batch["score"].tolist() == [0.9, 0.5, 0.1]
    assert batch["decision"].tolist() == [None, None, None]
    assert ledger.batch()["pair_id"].tolist() == ["p4"]  # latest round by default
    ledger.record("p1", "fix", caption="a red cube")
    ledger.record("p3", "accept")
    batch = ledger.batch(1)
    assert batch["decision"].tolist() == ["accept", "fix", None]
    assert batch["caption_fixed"].tolist() == [None, "a red cube", None]
    rounds = ledger.rounds()
    assert rounds["params"][0] == {"budget": 3} and rounds["model"][0] == {"name": "ViT-B-32"}
    assert rounds["n_items"].tolist() == [3, 1] and rounds["n_decided"].tolist() == [2, 0]
    assert pd.isna(rounds["head_round"][0]) and rounds["head_round"][1] == 1
    with pytest.raises(ValueError, match="round 7 does not exist"):
        ledger.batch(7)


def test_create_round_refuses_repeats_and_requeues_atomically(ledger):
    with pytest.raises(ValueError, match="no rounds yet"):
        ledger.batch()
    with pytest.raises(ValueError, match="at least one pair id"):
        ledger.create_round([], strategy="s", params={}, model={})
    ledger.create_round(["p1", "p2"], strategy="s", params={}, model={})
    with pytest.raises(ValueError, match=r"repeat.*\['p5'\]"):
        ledger.create_round(["p5", "p6", "p5"], strategy="s", params={}, model={})
    with pytest.raises(ValueError, match=r"queued in an earlier round: p2 \(round 1\)"):
        ledger.create_round(["p9", "p2"], strategy="s", params={}, model={})
    with pytest.raises(ValueError, match="scores has 1 entries"):
        ledger.create_round(["p9", "p8"], strategy="s", params={}, model={}, scores=[1.0])
    assert ledger.latest_round() == 1 and ledger.queued_pair_ids() == {"p1", "p2"}
    assert ledger.create_round(["p9"], strategy="s", params={}, model={}) == 2


# -- record ---------------------------------------------------------------------------------------
def test_record_validates_and_latest_wins(ledger):
    round_id = ledger.create_round(["p1", "p2"], strategy="s", params={}, model={})
    with pytest.raises(ValueError, match="'maybe' is not one of accept, reject, fix"):
        ledger.record("p1", "maybe")
    with pytest.raises(ValueError, match="needs the corrected caption"):
        ledger.record("p1", "fix", caption="   ")
    with pytest.raises(ValueError, match="round 5 does not exist"):
        ledger.record("p1", "accept", round_id=5)
    with pytest.raises(ValueError, match="not ISO-8601"):
        ledger.record("p1", "accept", timestamp="yesterday-ish")
    assert ledger.decisions().empty
    assert ledger.record("p1", " Accept ", reviewer="ana", caption="ignored for accept")
    assert not ledger.record("p1", "accept", reviewer="ana")  # identical to latest: not appended
    assert ledger.record("p1", "reject", reviewer="bo", timestamp="2025-03-01T12:00:00+02:00")
    assert ledger.record("p7", "accept")  # never queued: no round
    latest = ledger.decisions().set_index("pair_id")
    assert latest.loc["p1", "decision"] == "reject" and latest.loc["p1", "reviewer"] == "bo"
    assert latest.loc["p1", "timestamp"] == "2025-03-01T10:00:00.000Z"
    assert latest.loc["p1", "round"] == round_id and pd.isna(latest.loc["p7", "round"])
    history = ledger.decisions(history=True)
    assert history["decision"].tolist() == ["accept", "reject", "accept"]
    assert history["caption"].tolist() == [None, None, None]
    assert all(ts.endswith("Z") and "T" in ts for ts in history["timestamp"])
    conflicts = ledger.conflicts()
    assert conflicts.to_dict("records") == [
        {"pair_id": "p1", "n_decisions": 2, "decisions": ["accept", "reject"], "latest": "reject"}]
    assert set(DECISIONS) == {"accept", "reject", "fix"}


def test_record_from_threads(ledger):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: ledger.record(f"p{i}", "accept"), range(40)))
    assert len(ledger.decisions()) == 40


def test_two_processes_record_at_once_without_lock_errors(tmp_path):
    path = tmp_path / "labels.sqlite"
    Ledger(path).close()
    script = textwrap.dedent(f"""
        import pathlib, sys, time
        from mmcurate.labels import Ledger
        who = sys.argv[1]
        with Ledger({str(path)!r}) as led:
            pathlib.Path({str(tmp_path)!r}, "ready-" + who).touch()
            while not pathlib.Path({str(tmp_path)!r}, "go").exists():
                time.sleep(0.005)
            for i in range(300):
                led.record(f"{{who}}-{{i}}", "accept", reviewer=who)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, who], env=env, stderr=subprocess.PIPE)
             for who in ("a", "b")]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{who}").exists() for who in ("a", "b")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "writers did not start"
        time.sleep(0.01)
    (tmp_path / "go").touch()  # both start writing at the same moment
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert _count(path) == 600


@pytest.fixture
def hold_lock(tmp_path):
    """Start a second process that holds a ledger's write lock (``BEGIN IMMEDIATE``) until the test ends."""
    release = tmp_path / "release"
    procs = []

    def start(path: Path) -> None:
        Ledger(path).close()
        ready = tmp_path / f"locked-{len(procs)}"
        script = textwrap.dedent(f"""
            import pathlib, sqlite3, time
            conn = sqlite3.connect({str(path)!r}, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO heads VALUES (99, 'now', 'x', '{{}}', 0)")
            pathlib.Path({str(ready)!r}).touch()
            while not pathlib.Path({str(release)!r}).exists():
                time.sleep(0.01)
            conn.execute("ROLLBACK")
        """)
        procs.append(subprocess.Popen([sys.executable, "-c", script]))
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert procs[-1].poll() is None and time.monotonic() < deadline, "lock holder did not start"
            time.sleep(0.01)

    yield start
    release.touch()
    for proc in procs:
        proc.wait(timeout=30)


def test_second_writer_waits_then_gets_a_clear_error(tmp_path, hold_lock):
    path = tmp_path / "labels.sqlite"
    hold_lock(path)
    with Ledger(path, timeout=0.5) as ledger:
        # it waits for the lock before giving up: SQLite's own busy timeout, read back (not timed)
        assert ledger._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 500
        with pytest.raises(LedgerLockedError, match=r"being written by another process.*waited 0.5 s"):
            ledger.record("p1", "accept")
        assert ledger.decisions().empty
        assert ledger.rounds().empty  # reads go on while another process writes (WAL)
    assert issubclass(LedgerLockedError, ProjectError)
    (tmp_path / "release").touch()
    with Ledger(path, timeout=30) as ledger:  # waits for the holder to finish, then writes
        assert ledger.record("p1", "accept")
        assert ledger.heads().empty  # the holder's write was rolled back, not mixed in


def test_cli_import_while_locked_exits_2_with_one_line(hold_lock, tmp_path, monkeypatch, capsys):
    from mmcurate.cli import main
    from mmcurate.embed.importer import write_embedding_folder
    from mmcurate.project import create_project

    vectors = np.eye(4, 8, dtype=np.float32)
    meta = pd.DataFrame({"key": [f"k{i}" for i in range(4)], "caption": [f"c{i}" for i in range(4)]})
    proj = create_project(tmp_path / "proj", embeddings=write_embedding_folder(
        tmp_path / "emb", vectors, vectors, meta))
    hold_lock(proj.root / "labels.sqlite")
    pair_id = proj.pairs["pair_id"][0]
    decisions = _write(tmp_path / "d.csv", f"pair_id,decision\n{pair_id},accept\n")
    monkeypatch.setattr(ledger_connection, "BUSY_TIMEOUT_S", 0.5)
    assert main(["label", str(proj.root), "--import", str(decisions)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("mmcurate: error: the labels ledger") and "another process" in err


# -- import ---------------------------------------------------------------------------------------
def test_import_csv_is_idempotent_and_counts_changes(tmp_path, ledger):
    ledger.create_round(["p1", "p2", "p3", "p4"], strategy="s", params={}, model={})
    first = _write(tmp_path / "r1.csv", """
        pair_id,decision,caption,reviewer
        p1 , ACCEPT ,a cat on a mat,ana
        p2,reject,,ana
        p3,fix,  two dogs  ,ana
        p4,,,
    """)
    report = ledger.import_decisions(first, known_pair_ids=PAIRS)
    assert report == ImportReport(n_rows=4, n_added=3, n_unchanged=0, n_conflicts=0, n_skipped=1)
    again = ledger.import_decisions(first, known_pair_ids=PAIRS)
    assert (again.n_added, again.n_unchanged, again.n_conflicts) == (0, 3, 0)
    assert _count(ledger.path) == 3
    latest = ledger.decisions().set_index("pair_id")
    assert latest.loc["p3", "caption"] == "two dogs" and latest.loc["p1", "caption"] is None
    assert (latest["source"] == "r1.csv").all() and (latest["round"] == 1).all()
    second = _write(tmp_path / "r1b.jsonl", """
        {"pair_id": "p1", "decision": "reject", "reviewer": "bo"}
        {"pair_id": "p2", "decision": "reject", "reviewer": "ana"}

        {"pair_id": "p3", "decision": "fix", "caption": "three dogs", "timestamp": "2025-01-02 03:04:05"}
    """)
    report = ledger.import_decisions(second, known_pair_ids=PAIRS, source_name="jsonl-upload")
    # p2 is the same decision from another file: appended, but not a conflict
    assert (report.n_rows, report.n_added, report.n_unchanged, report.n_conflicts) == (3, 3, 0, 2)
    latest = ledger.decisions().set_index("pair_id")
    assert latest.loc["p1", "decision"] == "reject" and latest.loc["p3", "caption"] == "three dogs"
    assert latest.loc["p3", "timestamp"] == "2025-01-02T03:04:05.000Z"
    assert set(ledger.conflicts()["pair_id"]) == {"p1", "p3"}
    assert len(ledger.decisions(history=True)) == 6


def _counted_import(ledger: Ledger, path: Path, known: set[str]) -> int:
    """SQLite VM steps (in thousands) an import takes: machine-independent work, not seconds."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    ledger._conn.set_progress_handler(count, 1000)
    ledger.import_decisions(path, known_pair_ids=known)
    ledger._conn.set_progress_handler(None, 0)
    return steps[0]


def test_reimport_costs_about_what_the_first_import_did(tmp_path, ledger):
    n = 20_000
    ids = [f"q{i:06d}" for i in range(n)]
    first = tmp_path / "first.csv"
    first.write_text("pair_id,decision\n" + "".join(f"{p},accept\n" for p in ids))
    changed = tmp_path / "changed.csv"
    changed.write_text("pair_id,decision\n" + "".join(f"{p},reject\n" for p in ids))
    known = set(ids)
    steps_first = _counted_import(ledger, first, known)
    steps_same = _counted_import(ledger, first, known)  # nothing new: every row looked up
    steps_changed = _counted_import(ledger, changed, known)  # every row appended again
    assert len(ledger.decisions()) == n and len(ledger.decisions(history=True)) == 2 * n
    # SQLite work is machine-independent: a lookup per chunk of the whole ledger would be ~40x
    assert steps_same <= 2 * steps_first and steps_changed <= 2 * steps_first, (
        steps_first, steps_same, steps_changed)


def test_import_dataframe_and_explicit_round(ledger):
    ledger.create_round(["p1"], strategy="s", params={}, model={})
    ledger.create_round(["p2"], strategy="s", params={}, model={})
    df = pd.DataFrame({"pair_id": ["p1", "p2"], "decision": ["accept", "reject"],
                       "caption": [np.nan, None]})
    report = ledger.import_decisions(df, known_pair_ids=list(PAIRS), round_id=2)
    assert report.n_added == 2
    assert ledger.decisions()["round"].tolist() == [2, 2]
    assert ledger.decisions()["source"].tolist() == ["<DataFrame>"] * 2


def test_import_collects_every_problem_and_writes_nothing(tmp_path, ledger):
    bad = _write(tmp_path / "bad.csv", """
        pair_id,decision,caption,timestamp
        p1,accept,,
        nope,accept,,
        p2,maybe,,
        p3,fix,,
        p4,accept,,not-a-time
        p5,accept,,
        p5,reject,,
        p6,accept
    """)
    with pytest.raises(LabelsFileError) as info:
        ledger.import_decisions(bad, known_pair_ids=PAIRS)
    err = info.value
    assert isinstance(err, DataError)
    where = {(row, col) for row, col, _ in err.problems}
    assert where == {(2, "pair_id"), (3, "decision"), (4, "caption"), (5, "timestamp"),
                     (7, "pair_id"), (8, "*")}
    message = str(err)
    assert str(bad) in message and "nothing was imported" in message
    assert "row 2, column 'pair_id': unknown pair_id 'nope'" in message
    assert "row 3, column 'decision'" in message and "'maybe'" in message
    assert "row 7" in message and "already has decision 'accept' in row 6" in message
    assert _count(ledger.path) == 0


def test_import_caps_the_message_but_keeps_all_problems(tmp_path, ledger):
    lines = ["pair_id,decision"] + [f"x{i},accept" for i in range(45)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelsFileError) as info:
        ledger.import_decisions(path, known_pair_ids=PAIRS)
    assert len(info.value.problems) == 45
    assert "and 25 more" in str(info.value) and str(info.value).count("unknown pair_id") == 20


def test_import_missing_columns_lists_found_and_expected(tmp_path, ledger):
    path = _write(tmp_path / "cols.csv", """
        id,verdict,caption
        p1,accept,
    """)
    with pytest.raises(LabelsFileError, match=r"cols\.csv") as info:
        ledger.import_decisions(path, known_pair_ids=PAIRS)
    message = str(info.value)
    assert "['pair_id', 'decision']" in message and "found ['id', 'verdict', 'caption']" in message
    jsonl = _write(tmp_path / "cols.jsonl", """
        {"pair_id": "p1", "decision": "accept"}
        {"pair_id": "p2"}
    """)
    with pytest.raises(LabelsFileError) as info:
        ledger.import_decisions(jsonl, known_pair_ids=PAIRS)
    assert info.value.problems == [(2, "decision", "missing key 'decision'")]
    assert _count(ledger.path) == 0


def test_import_names_the_row_with_non_utf8_bytes(tmp_path, ledger):
    path = tmp_path / "latin1.csv"
    path.write_bytes("pair_id,decision,caption\np1,accept,\np2,fix,un caf\xe9 noir\n".encode("latin-1"))
    with pytest.raises(LabelsFileError, match="not UTF-8") as info:
        ledger.import_decisions(path, known_pair_ids=PAIRS)
    assert info.value.problems == [(2, "caption", "holds bytes that are not UTF-8; re-save the file "
                                    "as UTF-8")]
    assert _count(ledger.path) == 0


@pytest.mark.parametrize(("name", "content", "match"), [
    ("d.txt", "pair_id,decision\n", "unsupported file type '.txt'"),
    ("d.csv", "", "the file is empty"),
    ("d.jsonl", '{"pair_id": "p1", "decision": "accept"}\n[1, 2]\n{oops\n', "JSON object per line"),
])
def test_import_unreadable_files(tmp_path, ledger, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(LabelsFileError, match=match):
        ledger.import_decisions(path, known_pair_ids=PAIRS)
    assert _count(ledger.path) == 0


def test_db_error_mid_import_rolls_back_everything(tmp_path, ledger):
    rows = ["pair_id,decision"] + [f"p{i},accept" for i in range(60)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    ledger.record("p0", "reject")
    ledger._conn.execute("CREATE TEMP TRIGGER boom BEFORE INSERT ON main.decisions "
                         "WHEN NEW.pair_id = 'p40' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    with pytest.raises(sqlite3.IntegrityError, match="disk on fire"):
        ledger.import_decisions(path, known_pair_ids=PAIRS)
    assert _count(ledger.path) == 1  # only the decision recorded before the import
    ledger._conn.execute("DROP TRIGGER temp.boom")
    assert ledger.import_decisions(path, known_pair_ids=PAIRS).n_added == 60  # still usable


@pytest.mark.slow
def test_killed_import_leaves_nothing_partial(tmp_path):
    db = tmp_path / "labels.sqlite"
    rows = ["pair_id,decision"] + [f"p{i},accept" for i in range(100)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    marker = tmp_path / "halfway"
    script = textwrap.dedent(f"""
        import pathlib, time
        from mmcurate.labels import Ledger
        led = Ledger({str(db)!r})
        def pause(pid):
            if pid == "p50":
                pathlib.Path({str(marker)!r}).touch()
                time.sleep(60)
            return 0
        led._conn.create_function("pause", 1, pause)
        led._conn.execute("CREATE TEMP TRIGGER slow BEFORE INSERT ON main.decisions "
                          "BEGIN SELECT pause(NEW.pair_id); END")
        led.import_decisions({str(tmp_path / "big.csv")!r}, known_pair_ids={{f"p{{i}}" for i in range(100)}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "import never reached row 50"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Ledger(db) as ledger:
        assert ledger.decisions(history=True).empty
        assert ledger._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert ledger.import_decisions(tmp_path / "big.csv", known_pair_ids=PAIRS).n_added == 100


# -- heads ----------------------------------------------------------------------------------------
def test_heads_are_numbered_and_metrics_are_json(ledger):
    assert ledger.latest_head() is None and ledger.heads().empty
    metrics = {"cv_accuracy": np.float64(0.9), "loss_curve": np.array([1.0, 0.5]), "auc": float("nan")}
    assert ledger.record_head(checkpoint="heads/head-0001.safetensors", metrics=metrics, n_labels=10) == 1
    assert ledger.record_head(checkpoint="heads/head-0002.safetensors", metrics={}, n_labels=20) == 2
    latest = ledger.latest_head()
    assert latest["head_round"] == 2 and latest["n_labels"] == 20
    first = ledger.heads().iloc[0]
    assert first["metrics"] == {"cv_accuracy": 0.9, "loss_curve": [1.0, 0.5], "auc": None}
    assert json.loads(ledger._conn.execute("SELECT metrics FROM heads").fetchone()[0])["auc"] is None


def test_resolved_decisions_keep_pairs_decided_outside_a_round(tmp_path):
    """A decision recorded without a round (a group decision, the API) is one opinion, not lost."""
    from mmcurate.labels import resolve_opinions

    history = pd.DataFrame({"pair_id": ["a", "b", "a", "a"],
                            "round": pd.array([1, None, 2, 3], dtype="Int64"),
                            "decision": ["accept", "reject", "reject", "reject"], "caption": None,
                            "reviewer": None, "timestamp": "", "source": ""})
    resolved = resolve_opinions(history).set_index("pair_id")
    assert set(resolved.index) == {"a", "b"}
    assert resolved.loc["b", "decision"] == "reject" and resolved.loc["b", "n_opinions"] == 1
    assert resolved.loc["a", "decision"] == "reject" and resolved.loc["a", "n_opinions"] == 3
    assert resolved.loc["a", "agreement"] == pytest.approx(2 / 3)


# -- undo: withdrawals (schema 4) ------------------------------------------------------------------
def test_undo_makes_a_pair_undecided_and_keeps_the_history(ledger):
    r = ledger.create_round(["p1", "p2", "p3"], strategy="margin", params={}, model={})
    ledger.record("p1", "accept", round_id=r)
    ledger.record("p1", "reject", round_id=r)  # a correction within the round
    ledger.record("p2", "fix", caption="two cats", round_id=r)
    assert ledger.undo(["p1", "p3"], round_id=r, reviewer="ana", source="web") == ["p1"]  # p3: none
    assert ledger.decisions()["pair_id"].tolist() == ["p2"]
    assert ledger.batch(r).set_index("pair_id")["decision"].isna().to_dict() == {
        "p1": True, "p2": False, "p3": True}
    assert ledger.rounds()["n_decided"].tolist() == [1]
    assert ledger.resolved()["pair_id"].tolist() == ["p2"]
    assert ledger.decisions(history=True)["pair_id"].tolist() == ["p2"]
    gone = ledger.withdrawals()
    assert gone["decision"].tolist() == ["accept", "reject"] and set(gone["withdrawn_by"]) == {"ana"}
    assert _count(ledger.path) == 3  # nothing deleted: the table is append-only
    assert ledger.undo(["p1"], round_id=r) == []  # nothing left to take back
    assert ledger.record("p1", "accept", round_id=r)  # decided again: appended, not "unchanged"
    assert ledger.decisions().set_index("pair_id").loc["p1", "decision"] == "accept"
    with pytest.raises(ValueError, match="round 9 does not exist"):
        ledger.undo(["p1"], round_id=9)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger._conn.execute("DELETE FROM withdrawals")


def test_undoing_a_second_opinion_keeps_the_first(ledger):
    r1 = ledger.create_round(["p1", "p2"], strategy="margin", params={}, model={})
    ledger.record("p1", "accept", round_id=r1)
    ledger.record("p2", "accept", round_id=r1)
    r2 = ledger.create_round(["p3"], strategy="margin", params={}, model={},
                             second_opinions=[("p1", 0.9, "second opinion: shown again")])
    ledger.record("p1", "reject", round_id=r2)
    assert ledger.resolved().set_index("pair_id").loc["p1", "n_opinions"] == 2
    assert ledger.undo(["p1"], round_id=r2) == ["p1"]
    resolved = ledger.resolved().set_index("pair_id")
    assert resolved.loc["p1", "decision"] == "accept" and resolved.loc["p1", "n_opinions"] == 1
    assert ledger.batch(r2).set_index("pair_id").loc["p1", "decision"] is None  # undecided there
    assert ledger.batch(r1).set_index("pair_id").loc["p1", "decision"] == "accept"
    assert ledger.undo(["p2"]) == ["p2"] and "p2" not in set(ledger.resolved()["pair_id"])


def test_a_second_opinion_that_agrees_is_recorded_as_an_opinion(ledger):
    """The same decision from the same source in a later round (a second opinion or an audit that
    agrees) is a new opinion, not a repeat: dropping it left the audits only the disagreements, and
    the reviewer's error rate read 0.5. The same decision again in the same round stays a repeat."""
    r1 = ledger.create_round(["p1", "p2"], strategy="margin", params={}, model={})
    assert ledger.record("p1", "accept", round_id=r1, source="web")
    assert not ledger.record("p1", "accept", round_id=r1, source="web")  # a repeat: unchanged
    r2 = ledger.create_round(["p3"], strategy="margin", params={}, model={},
                             second_opinions=[("p1", float("nan"), "audit: shown again")])
    report = ledger.import_decisions(pd.DataFrame({"pair_id": ["p1"], "decision": ["accept"]}),
                                     known_pair_ids={"p1", "p2", "p3"}, source_name="web")
    assert report.n_added == 1 and report.n_conflicts == 0
    history = ledger.decisions(history=True)
    assert history.loc[history["pair_id"] == "p1", "round"].tolist() == [r1, r2]
    assert ledger.resolved().set_index("pair_id").loc["p1", "n_opinions"] == 2


def test_undo_takes_back_what_a_representative_passed_to_its_group(ledger):
    r = ledger.create_round(["p1"], strategy="margin", params={}, model={})
    ledger.record("p5", "accept", source="earlier")  # before the representative's decision: stays
    ledger.record("p1", "reject", round_id=r)
    ledger.record_many([{"pair_id": p, "decision": "reject"} for p in ("p5", "p6")], source="via:p1")
    assert ledger.undo(["p1"], round_id=r) == ["p1"]
    latest = ledger.decisions().set_index("pair_id")
    assert latest["decision"].to_dict() == {"p5": "accept"}
    assert sorted(ledger.withdrawals()["pair_id"]) == ["p1", "p5", "p6"]
    ledger.record("p1", "accept", round_id=r)
    ledger.record_many([{"pair_id": "p6", "decision": "accept"}], source="via:p1")
    assert ledger.undo(["p6", "p1"]) == ["p6", "p1"]  # a member undone with its representative: once
    assert ledger.decisions()["pair_id"].tolist() == ["p5"] and len(ledger.withdrawals()) == 5


def test_version3_ledger_is_migrated_for_undo(tmp_path, ledger):
    r = ledger.create_round(["p1", "p2"], strategy="margin", params={}, model={})
    ledger.record("p1", "accept", round_id=r)
    ledger.close()
    path = tmp_path / "labels.sqlite"
    with sqlite3.connect(path) as conn:  # a version-3 file: no withdrawals, no view
        conn.execute("DROP VIEW live_decisions")
        conn.execute("DROP TABLE withdrawals")
        conn.execute("PRAGMA user_version = 3")
    with Ledger(path) as again:
        assert again._conn.execute("PRAGMA user_version").fetchone()[0] == 4
        assert again.decisions()["pair_id"].tolist() == ["p1"]
        assert again.undo(["p1"], round_id=r) == ["p1"] and again.decisions().empty


def test_decided_opinions_keep_every_showing_of_a_pair_shown_again(ledger):
    """What the reviewer's error rate weighs: a pair shown three times keeps all three opinions
    (each showing was chosen on the ones before); a pair re-decided within a round or on a
    person's own initiative keeps its latest decision; a decision taken back is gone."""
    from mmcurate.rounds.labelling import decided_opinions

    r1 = ledger.create_round(["p1", "p2", "p3", "p4"], strategy="margin", params={}, model={})
    for pid, d in (("p1", "accept"), ("p2", "reject"), ("p3", "accept"), ("p4", "accept")):
        ledger.record(pid, d, round_id=r1)
    ledger.record("p2", "fix", round_id=r1, caption="a better caption")  # corrected in its round
    r2 = ledger.create_round(["p5"], strategy="margin", params={}, model={},
                             second_opinions=[("p1", 0.95, "second opinion: shown again")])
    ledger.record("p1", "reject", round_id=r2)
    ledger.record("p5", "accept", round_id=r2)
    r3 = ledger.create_round(["p6"], strategy="margin", params={}, model={},
                             second_opinions=[("p1", 0.9, "second opinion: shown again"),
                                              ("p4", float("nan"), "audit: shown again")])
    ledger.record("p1", "accept", round_id=r3)
    ledger.record("p4", "accept", round_id=r3)
    ledger.record("p3", "reject", round_id=r3, source="changed my mind")  # not shown again
    ledger.undo(["p5"], round_id=r2)
    assert decided_opinions(ledger) == {"p1": ["accept", "reject", "accept"], "p2": ["fix"],
                                        "p3": ["reject"], "p4": ["accept", "accept"]}
