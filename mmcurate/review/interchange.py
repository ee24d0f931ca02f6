"""Round trips with the tools reviewers already use: Label Studio and FiftyOne (through files).

Label Studio
    ``export_label_studio(proj, out_dir)`` writes ``tasks.json`` (one task per pair of the round:
    image URL, caption, pair_id, score) and ``label_config.xml`` (image + caption, a single-choice
    accept / reject / fix and a text area for the corrected caption). Label Studio's JSON export of
    that project is read back by ``read_label_studio(path)`` into the decisions table the ledger
    imports (``pair_id, decision, caption, reviewer``), naming the task and annotation of any problem.

FiftyOne
    ``export_fiftyone(proj, out_dir)`` writes a ``FiftyOne`` *CSVDataset*-style folder: ``labels.csv``
    with ``filepath`` plus ``pair_id``, ``caption``, score fields (load it with
    ``fo.Dataset.from_dir(out_dir, dataset_type=fo.types.CSVDataset, fields={...})``).
    ``read_fiftyone(path)`` reads back either such a CSV or a ``samples.json`` (FiftyOneDataset
    export) where decisions are sample tags (``accept``/``reject``/``fix``) or a ``decision`` field,
    with ``fixed_caption`` for fixes. fiftyone itself is never imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate._fileio import (
    atomic_write_frame,
    atomic_write_json,
    atomic_write_text,
    spreadsheet_safe,
    unescape_cell,
)
from mmcurate.review.decisions import DECISIONS, LabelsFileError
from mmcurate.review.project_app import image_resolver

__all__ = [
    "export_fiftyone",
    "export_label_studio",
    "label_studio_config",
    "read_fiftyone",
    "read_label_studio",
]

_COLUMNS = ["pair_id", "decision", "caption", "reviewer"]


def _round_rows(proj, round_id: int | None) -> pd.DataFrame:
    batch = proj.ledger.batch(round_id)
    if batch.empty:
        raise ValueError(f"{proj.root}: no batch to export; run `mmcurate select` first")
    rows = batch.merge(proj.pairs[["pair_id", "image", "caption"]], on="pair_id", how="left")
    resolve = image_resolver(proj)
    rows["filepath"] = [str(p) if (p := resolve(pid)) else "" for pid in rows["pair_id"]]
    return rows


def label_studio_config() -> str:
    """The Label Studio labelling config matching the exported tasks."""
    choices = "".join(f'<Choice value="{d}"/>' for d in DECISIONS)
    return (
        "<View>\n"
        '  <Image name="image" value="$image" maxWidth="480px"/>\n'
        '  <Header value="$caption"/>\n'
        f'  <Choices name="decision" toName="image" choice="single" required="true">{choices}</Choices>\n'
        '  <TextArea name="fixed_caption" toName="image" maxSubmissions="1" editable="true"\n'
        '            placeholder="corrected caption (only for fix)"/>\n'
        "</View>\n"
    )


def export_label_studio(proj, out_dir: str | os.PathLike, *, round_id: int | None = None,
                        url_prefix: str = "/data/local-files/?d=") -> Path:
    """Write ``tasks.json`` and ``label_config.xml`` for a round; returns ``tasks.json``.

    Image URLs are ``url_prefix`` + the path relative to the project's image root, matching
    Label Studio's local-files storage with ``LOCAL_FILES_DOCUMENT_ROOT`` set to that root.
    """
    out = Path(out_dir)
    rows = _round_rows(proj, round_id)
    root = proj.image_root
    tasks = []
    for _, r in rows.iterrows():
        rel = os.path.relpath(r["filepath"], root) if r["filepath"] and root else ""
        tasks.append({"data": {"image": f"{url_prefix}{rel}" if rel else "", "caption": r["caption"],
                               "pair_id": r["pair_id"], "score": float(r["score"]),
                               "reason": r["reason"]}})
    atomic_write_json(out / "tasks.json", tasks)
    atomic_write_text(out / "label_config.xml", label_studio_config())
    return out / "tasks.json"


def _problem(where: str, message: str) -> tuple[int, str, str]:
    return (0, where, message)


def _ls_annotation(task: dict, where: str) -> tuple[dict[str, Any] | None, list]:
    anns = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not anns:
        return None, []  # not annotated yet: skipped, not an error
    ann = max(anns, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    decision, caption = None, ""
    for res in ann.get("result") or []:
        value = res.get("value") or {}
        if res.get("from_name") == "decision" and value.get("choices"):
            decision = str(value["choices"][0]).strip().lower()
        elif res.get("from_name") == "fixed_caption" and value.get("text"):
            caption = str(value["text"][0]).strip()
    pid = (task.get("data") or {}).get("pair_id")
    problems = []
    if not pid:
        problems.append(_problem(where, "task has no data.pair_id"))
    if decision not in DECISIONS:
        problems.append(_problem(where, f"decision {decision!r} is not one of {', '.join(DECISIONS)}"))
    who = ann.get("completed_by")
    reviewer = who.get("email") if isinstance(who, dict) else (str(who) if who is not None else "")
    row = {"pair_id": pid, "decision": decision, "caption": caption, "reviewer": reviewer}
    return row, problems


def read_label_studio(path: str | os.PathLike) -> pd.DataFrame:
    """Decisions from a Label Studio JSON export (``pair_id, decision, caption, reviewer``).

    Raises ``LabelsFileError`` naming each bad task (1-based position and id).
    """
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LabelsFileError(f"{path} is not a Label Studio JSON export: {err}") from err
    if not isinstance(tasks, list):
        raise LabelsFileError(f"{path}: expected a JSON list of tasks, got {type(tasks).__name__}")
    rows, problems = [], []
    for i, task in enumerate(tasks, start=1):
        row, probs = _ls_annotation(task, f"task {i} (id {task.get('id')})")
        problems += [(i, col, msg) for _, col, msg in probs]
        if row and not probs:
            rows.append(row)
    if problems:
        lines = "\n".join(f"  {col}: {msg}" for _, col, msg in problems[:20])
        raise LabelsFileError(f"{path}: {len(problems)} problem(s):\n{lines}", problems)
    return pd.DataFrame(rows, columns=_COLUMNS)


def export_fiftyone(proj, out_dir: str | os.PathLike, *, round_id: int | None = None) -> Path:
    """Write a FiftyOne CSVDataset-style ``labels.csv`` for a round; returns its path."""
    rows = _round_rows(proj, round_id)
    table = rows[["filepath", "pair_id", "caption", "score", "reason"]].assign(decision="",
                                                                            fixed_caption="")
    return atomic_write_frame(spreadsheet_safe(table), Path(out_dir) / "labels.csv", fmt="csv")


def _fo_samples(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False).map(unescape_cell)
        return table.to_dict("records")
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["samples"] if isinstance(data, dict) and "samples" in data else data


def _fo_tags(tags: Any) -> list[str]:
    """Tags as a list: a JSON list, or in a CSV cell ``accept,x``, ``["accept", "x"]`` or ``['accept']``."""
    if isinstance(tags, str):
        text = tags.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        tags = [t.strip().strip("'\"").strip() for t in text.split(",")]
    return [str(t).strip().lower() for t in (tags or []) if str(t).strip()]


def _fo_decision(sample: dict[str, Any]) -> str | None:
    decision = str(sample.get("decision") or "").strip().lower()
    if decision:
        return decision
    found = [t for t in _fo_tags(sample.get("tags")) if t in DECISIONS]
    return found[0] if len(found) == 1 else None if not found else "|".join(found)


def read_fiftyone(path: str | os.PathLike) -> pd.DataFrame:
    """Decisions from a FiftyOne export (``labels.csv`` or ``samples.json``); unlabelled samples skipped."""
    path = Path(path)
    try:
        samples = _fo_samples(path)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError) as err:
        raise LabelsFileError(f"{path} is not a FiftyOne CSV/samples export: {err}") from err
    rows, problems = [], []
    for i, sample in enumerate(samples, start=1):
        decision = _fo_decision(sample)
        if decision is None:
            continue
        pid = str(sample.get("pair_id") or "")
        if not pid:
            problems.append((i, "pair_id", f"sample {i}: no pair_id field"))
        elif decision not in DECISIONS:
            problems.append((i, "decision", f"sample {i} ({pid}): {decision!r} is not one of "
                                            f"{', '.join(DECISIONS)} (one tag per sample)"))
        else:
            rows.append({"pair_id": pid, "decision": decision,
                         "caption": str(sample.get("fixed_caption") or ""),
                         "reviewer": str(sample.get("reviewer") or "")})
    if problems:
        lines = "\n".join(f"  row {r}: {msg}" for r, _, msg in problems[:20])
        raise LabelsFileError(f"{path}: {len(problems)} problem(s):\n{lines}", problems)
    return pd.DataFrame(rows, columns=_COLUMNS)
