"""The real Label Studio (PyPI ``label-studio``, its own venv) opens what ``batch export --format
label-studio`` writes and its exports come back through ``mmcurate label``: the README's steps.

Label Studio is started on 127.0.0.1 with an explicit free port, a temporary data folder and
local-files serving set from ``label_studio.json``; it is stopped by its process group in the
fixture's teardown. Everything goes through its HTTP API as a user with an e-mail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tool_venvs import LABEL_STUDIO, free_port, need, project_with_round

from mmcurate.cli import main

pytestmark = pytest.mark.slow

EMAIL, PASSWORD, TOKEN = "reviewer@example.com", "not-a-secret-42", "mmcurate-test-token-0123456789"
READY_S = 600  # first start runs Django's migrations: minutes on a busy 2-core machine


class Api:
    """Label Studio's REST API with legacy token auth (``Authorization: Token ...``)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def raw(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def __call__(self, method: str, path: str, body=None):
        status, payload = self.raw(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: HTTP {status}: {payload[:400]!r}"
        return json.loads(payload or b"null")


@contextlib.contextmanager
def running_label_studio(setup: dict, data_dir: Path, log: Path):
    """Label Studio serving local files as ``label_studio.json`` says; stopped by PID on exit."""
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "LATEST_VERSION_CHECK": "false",
           "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",  # nothing phones out
           "LOCAL_FILES_SERVING_ENABLED": setup["LOCAL_FILES_SERVING_ENABLED"],
           "LOCAL_FILES_DOCUMENT_ROOT": setup["LOCAL_FILES_DOCUMENT_ROOT"]}
    cmd = [str(LABEL_STUDIO), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir), "--username", EMAIL, "--password", PASSWORD,
           "--user-token", TOKEN, "--enable-legacy-api-token"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        api = Api(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + READY_S
        while True:
            assert proc.poll() is None, f"label-studio exited {proc.returncode}: {log.read_text()[-2000:]}"
            with contextlib.suppress(OSError):
                if api.raw("GET", "/health")[0] == 200:
                    break
            assert time.monotonic() < deadline, f"not ready in {READY_S} s: {log.read_text()[-2000:]}"
            time.sleep(2)
        yield api
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _annotate(api: Api, task_id: int, decision: str | None, caption: str | None = None) -> None:
    """One annotation as the token's user; ``decision=None`` skips the task (``was_cancelled``)."""
    result = [] if decision is None else [{"from_name": "decision", "to_name": "image", "type": "choices",
                                           "value": {"choices": [decision]}}]
    if caption:
        result.append({"from_name": "fixed_caption", "to_name": "image", "type": "textarea",
                       "value": {"text": [caption]}})
    api("POST", f"/api/tasks/{task_id}/annotations/", {"result": result, "was_cancelled": decision is None})


def _export_with_emails(api: Api, project: int, out: Path) -> Path:
    """The README's export: a snapshot whose annotations carry the annotator (id and e-mail)."""
    snap = api("POST", f"/api/projects/{project}/exports/", {
        "title": out.stem, "serialization_options": {"annotations__completed_by": {"only_id": False}}})
    for _ in range(120):
        if api("GET", f"/api/projects/{project}/exports/{snap['id']}")["status"] == "completed":
            break
        time.sleep(0.5)
    status, payload = api.raw("GET", f"/api/projects/{project}/exports/{snap['id']}/download?exportType=JSON")
    assert status == 200, payload[:400]
    out.write_bytes(payload)
    return out


def _label(proj, export: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["label", str(proj.root), "--from", "label-studio", "--import", str(export)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _count(out: str, what: str) -> int:
    line = next(ln for ln in out.splitlines() if what in ln)
    return int(line.split()[0])


def test_label_studio_round_trip_with_the_real_program(tmp_path, capsys):
    need(LABEL_STUDIO)
    proj = project_with_round(tmp_path)
    argv = ["batch", "export", str(proj.root), "--format", "label-studio", "--out", str(tmp_path / "ls")]
    assert main(argv) == 0
    setup = json.loads((tmp_path / "ls" / "label_studio.json").read_text())
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    with running_label_studio(setup, tmp_path / "ls-data", tmp_path / "label-studio.log") as api:
        config = (tmp_path / "ls" / "label_config.xml").read_text()
        project = api("POST", "/api/projects", {"title": "mmcurate round 1", "label_config": config})["id"]
        api("POST", "/api/storages/localfiles", {"project": project, "title": "images",
                                                 "use_blob_urls": False,
                                                 "path": setup["local_files_storage_path"]})
        assert api("POST", f"/api/projects/{project}/import", tasks)["task_count"] == 6
        listed = api("GET", f"/api/tasks?project={project}&page_size=100")
        listed = listed["tasks"] if isinstance(listed, dict) else listed
        ids = {t["data"]["pair_id"]: t["id"] for t in listed}
        assert sorted(ids) == [f"p{i}" for i in range(6)]

        # every image URL serves the pair's file: & # + and spaces included
        for task in listed:
            status, body = api.raw("GET", task["data"]["image"])
            image = dict(zip(proj.pairs["pair_id"], proj.pairs["image"]))[task["data"]["pair_id"]]
            assert status == 200, task["data"]["image"]
            assert body == (tmp_path / "data" / image).read_bytes()
        assert api.raw("GET", "/data/local-files/?d=data/img/x&y.png")[0] == 404  # unencoded: not served

        _annotate(api, ids["p0"], "reject")
        _annotate(api, ids["p1"], "fix", "a corrected caption")
        _annotate(api, ids["p2"], None)  # skipped in Label Studio
        code, out = _label(proj, _export_with_emails(api, project, tmp_path / "export-1.json"), capsys)
        assert code == 0, out
        assert _count(out, "new decisions") == 2 and "skipped in the tool" in out and "p2" in out
        latest = proj.ledger.decisions().set_index("pair_id")
        assert latest.loc["p0", "decision"] == "reject" and latest.loc["p0", "reviewer"] == EMAIL
        assert latest.loc["p1", "caption"] == "a corrected caption"

        # a later, cumulative export: the two decisions above come back unchanged, three are new
        _annotate(api, ids["p3"], "accept")
        _annotate(api, ids["p4"], "accept")
        _annotate(api, ids["p5"], "reject")
        code, out = _label(proj, _export_with_emails(api, project, tmp_path / "export-2.json"), capsys)
        assert code == 0, out
        assert _count(out, "new decisions") == 3 and _count(out, "unchanged") == 2, out
        history = proj.ledger.decisions(history=True)
        assert sorted(history["pair_id"]) == ["p0", "p1", "p3", "p4", "p5"]  # no decision twice
        assert set(history["reviewer"]) == {EMAIL}

        # the quick export (user numbers only) is read, and says how to get e-mails
        status, payload = api.raw("GET", f"/api/projects/{project}/export?exportType=JSON")
        (tmp_path / "quick.json").write_bytes(payload)
        from mmcurate.review.interchange import read_label_studio

        quick = read_label_studio(tmp_path / "quick.json")
        assert quick.reviewer_ids_only and set(quick.decisions["reviewer"]) - {""} == {"label-studio user 1"}
        code, out = _label(proj, tmp_path / "quick.json", capsys)  # after the e-mail export: all unchanged
        assert code == 0 and _count(out, "new decisions") == 0 and _count(out, "unchanged") == 5, out
        assert "Label Studio user number" in out

        # a task for a pair queued in no round: the error names that task as Label Studio shows it
        extra = api("POST", f"/api/projects/{project}/import", [
            {"data": {**tasks[0]["data"], "pair_id": "p6", "caption": "not queued"}}])
        assert extra["task_count"] == 1
        listed = api("GET", f"/api/tasks?project={project}&page_size=100")
        listed = listed["tasks"] if isinstance(listed, dict) else listed
        p6_id = next(t["id"] for t in listed if t["data"]["pair_id"] == "p6")
        _annotate(api, p6_id, "accept")
        export3 = _export_with_emails(api, project, tmp_path / "export-3.json")
    position = 1 + [t["id"] for t in json.loads(export3.read_text())].index(p6_id)
    code, out = _label(proj, export3, capsys)
    assert code == 2 and f"task {position} (Label Studio id {p6_id})" in out and "'p6'" in out, out
    assert len(proj.ledger.decisions(history=True)) == 5  # nothing imported
