"""Round trips with the tools reviewers already use: Label Studio and FiftyOne (through files).

Label Studio
    ``export_label_studio(proj, out_dir)`` writes ``tasks.json`` (one task per pair of the round:
    image URL, caption, pair_id, score), ``label_config.xml`` (image + caption, a single-choice
    accept / reject / fix and a text area for the corrected caption) and ``label_studio.json`` (the
    local-files set-up those URLs need: ``LOCAL_FILES_DOCUMENT_ROOT`` and the Local Files storage
    path, a folder *below* the document root, since Label Studio serves only files inside a
    storage). Image URLs are percent-encoded (``&``, ``#``, ``+``, spaces). Label Studio's JSON
    export is read back by ``read_label_studio(path)``.

FiftyOne
    ``export_fiftyone(proj, out_dir)`` writes a *CSVDataset* folder: ``data/`` with one file per pair
    (a hard link, or a copy across file systems: two pairs sharing an image stay two samples),
    ``labels.csv`` (``filepath`` relative to ``data/``, ``pair_id``, ``caption``, ``score``,
    ``reason``, ``decision``, ``fixed_caption``) and ``load_fiftyone.py``, the loader that gives
    ``score`` as a float and declares the empty ``decision`` / ``fixed_caption`` fields (FiftyOne's
    CSV importer reads every column as text and drops empty cells). ``read_fiftyone(path)`` reads
    back such a CSV (as FiftyOne's CSV exporter writes it) or a ``samples.json`` (FiftyOneDataset
    export) where decisions are sample tags (``accept``/``reject``/``fix``) or a ``decision`` field,
    with ``fixed_caption`` for fixes. fiftyone itself is never imported.

Both readers return a :class:`ToolDecisions`: one row per task/sample, in file order (so a problem
the ledger finds is named by the task, :meth:`ToolDecisions.name_rows`), the tasks skipped in the
tool, and a source name that stays the same across exports of one tool project (a later,
cumulative export re-imports its unchanged decisions as unchanged).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd

from mmcurate._fileio import (
    atomic_write_frame,
    atomic_write_json,
    atomic_write_text,
    spreadsheet_safe,
    unescape_cell,
)
from mmcurate.labels.decision_files import DECISIONS, LabelsFileError, describe_problems
from mmcurate.review.project_app import image_resolver

if TYPE_CHECKING:
    from mmcurate.project.files import ProjectFiles

__all__ = [
    "LOCAL_FILES_URL",
    "ToolDecisions",
    "export_fiftyone",
    "export_label_studio",
    "fiftyone_loader",
    "label_studio_config",
    "read_fiftyone",
    "read_label_studio",
]

_COLUMNS = ["pair_id", "decision", "caption", "reviewer", "timestamp"]
LOCAL_FILES_URL = "/data/local-files/?d="


@dataclass(frozen=True)
class ToolDecisions:
    """Decisions read from a tool's export.

    ``decisions``: one row per task / sample in file order (``pair_id, decision, caption, reviewer,
    timestamp``; ``decision`` empty = not decided yet), ready for ``import_labels``; ``where``: how
    each row is named in messages (``"task 3 (Label Studio id 57)"``); ``skipped``: pair ids of
    tasks the reviewer skipped in the tool (no decision); ``source``: the ledger's source name;
    ``reviewer_ids_only``: the export named reviewers by the tool's user number, not e-mail.
    """

    decisions: pd.DataFrame
    where: list[str]
    source: str
    skipped: list[str] = field(default_factory=list)
    reviewer_ids_only: bool = False

    def keep_known_reviewers(self, latest: pd.DataFrame) -> ToolDecisions:
        """Rows naming their reviewer by user number only take the reviewer of the pair's latest
        ledger decision when that came from the same source with the same decision and caption
        (a quick export after one with e-mails: unchanged, not new). ``latest``: the ledger's
        latest decisions (``pair_id, decision, caption, reviewer, source``)."""
        same = latest[latest["source"] == self.source].set_index("pair_id")
        rows = self.decisions.copy()
        for i, row in rows.iterrows():
            if row["pair_id"] not in same.index or not str(row["reviewer"]).startswith("label-studio user "):
                continue
            before = same.loc[row["pair_id"]]
            caption = "" if pd.isna(before["caption"]) else str(before["caption"])
            keep = row["caption"] if row["decision"] == "fix" else ""
            if (before["decision"], caption) == (row["decision"], keep) and not pd.isna(before["reviewer"]):
                rows.at[i, "reviewer"] = before["reviewer"]
        return replace(self, decisions=rows)

    def name_rows(self, err: LabelsFileError, label: str) -> LabelsFileError:
        """``err`` (raised for ``decisions``, rows 1-based) re-worded with each row's task name."""
        return LabelsFileError(describe_problems(label, err.problems, row_names=self.where), err.problems)


def _round_rows(proj: ProjectFiles, round_id: int | None) -> pd.DataFrame:
    batch = proj.ledger.batch(round_id)
    if batch.empty:
        raise ValueError(f"{proj.root}: no batch to export; run `mmcurate select` first")
    rows = batch.merge(proj.pairs[["pair_id", "image", "caption"]], on="pair_id", how="left")
    resolve = image_resolver(proj)
    rows["filepath"] = [str(p) if (p := resolve(pid)) else "" for pid in rows["pair_id"]]
    return rows


def _need_images(rows: pd.DataFrame, tool: str) -> list[Path]:
    """Every pair's image file; raises ``ValueError`` naming the pairs that have none."""
    missing = rows.loc[rows["filepath"] == "", "pair_id"].tolist()
    if missing:
        raise ValueError(f"{tool} shows one image per pair, but {len(missing)} pair(s) of the round have no "
                         f"readable image file (first: {', '.join(map(repr, missing[:5]))}); give the "
                         f"project its images (`init --image-root`) or use `--format csv`")
    return [Path(p).resolve() for p in rows["filepath"]]


# -- Label Studio ---------------------------------------------------------------------------------
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


def _storage_folder(files: list[Path], image_root: Path | None) -> Path:
    """The Local Files storage folder: the image root when it holds every image (the same set-up
    for every round), else the deepest folder holding them all."""
    root = image_root.resolve() if image_root is not None else None
    if root is not None and root.parent != root and all(f.is_relative_to(root) for f in files):
        return root
    return Path(os.path.commonpath([str(f.parent) for f in files]))


def export_label_studio(proj: ProjectFiles, out_dir: str | os.PathLike, *, round_id: int | None = None,
                        document_root: str | os.PathLike | None = None) -> Path:
    """Write ``tasks.json``, ``label_config.xml`` and ``label_studio.json`` for a round; returns
    ``tasks.json``.

    Label Studio serves a file only from inside a Local Files storage whose folder lies below
    ``LOCAL_FILES_DOCUMENT_ROOT`` (never the root itself). The storage folder is the project's
    image root (or, for images elsewhere, the deepest folder holding them all); the document root
    is ``document_root`` or that folder's parent. Image URLs are
    ``/data/local-files/?d=<path below the document root>``, percent-encoded.
    ``label_studio.json`` records both folders. Raises ``ValueError`` when a pair has no image file
    or an image lies outside ``document_root``.
    """
    out = Path(out_dir)
    rows = _round_rows(proj, round_id)
    files = _need_images(rows, "Label Studio")
    storage = _storage_folder(files, proj.image_root)
    doc_root = Path(document_root).resolve() if document_root is not None else storage.parent
    if storage == doc_root or not storage.is_relative_to(doc_root):
        raise ValueError(f"Label Studio serves files only from a storage folder below "
                         f"LOCAL_FILES_DOCUMENT_ROOT; the images are in {storage}, which is not below "
                         f"{doc_root}: give a document root above it")
    tasks = []
    for (_, r), path in zip(rows.iterrows(), files):
        url = LOCAL_FILES_URL + quote(path.relative_to(doc_root).as_posix(), safe="/")
        tasks.append({"data": {"image": url, "caption": r["caption"], "pair_id": r["pair_id"],
                               "score": float(r["score"]), "reason": r["reason"]}})
    atomic_write_json(out / "tasks.json", tasks)
    atomic_write_text(out / "label_config.xml", label_studio_config())
    atomic_write_json(out / "label_studio.json", {
        "LOCAL_FILES_SERVING_ENABLED": "true", "LOCAL_FILES_DOCUMENT_ROOT": str(doc_root),
        "local_files_storage_path": str(storage), "label_config": "label_config.xml",
        "tasks": "tasks.json"})
    return out / "tasks.json"


def _reviewer(who: Any) -> tuple[str, bool]:
    """(reviewer, named by number only): Label Studio's ``completed_by`` is a user number unless
    the export expanded it to ``{"id", "email", ...}``."""
    if isinstance(who, dict):
        email = str(who.get("email") or "").strip()
        return (email, False) if email else (f"label-studio user {who.get('id')}", True)
    return ("", False) if who is None else (f"label-studio user {who}", True)


def _ls_task(task: Any) -> tuple[dict[str, Any], str | None, list[tuple[str, str]]]:
    """(row, what happened: None | "skipped" | "open" | "ids", (column, problem)s) of one task."""
    row = {"pair_id": "", "decision": "", "caption": "", "reviewer": "", "timestamp": ""}
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        return row, None, [("data", "not a Label Studio task (no `data` object)")]
    row["pair_id"] = str(task["data"].get("pair_id") or "")
    anns = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
    done = [a for a in anns if not a.get("was_cancelled")]
    if not done:
        return row, ("skipped" if anns else "open"), []
    problems = [] if row["pair_id"] else [("pair_id", "task has no data.pair_id")]
    ann = max(done, key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    decision = None
    for res in ann.get("result") or []:
        value = res.get("value") if isinstance(res, dict) else None
        if not isinstance(value, dict):
            continue
        if res.get("from_name") == "decision" and value.get("choices"):
            decision = str(value["choices"][0]).strip().lower()
        elif res.get("from_name") == "fixed_caption" and value.get("text"):
            row["caption"] = str(value["text"][0]).strip()
    if decision not in DECISIONS:
        problems.append(("decision", f"decision {decision!r} is not one of {', '.join(DECISIONS)}"))
    row["decision"] = decision or ""
    row["reviewer"], ids_only = _reviewer(ann.get("completed_by"))
    row["timestamp"] = str(ann.get("updated_at") or ann.get("created_at") or "")
    return row, ("ids" if ids_only else None), problems


def read_label_studio(path: str | os.PathLike) -> ToolDecisions:
    """Decisions from a Label Studio JSON export (a later, cumulative export may be read again).

    Each annotated task gives its latest annotation's choice, corrected caption, the annotator
    (e-mail when the export carries it, else ``label-studio user <n>``) and time; tasks skipped in
    Label Studio are listed in ``skipped``. The source is ``label-studio project <id>``. Raises
    ``LabelsFileError`` naming each bad task (position in the export and Label Studio id).
    """
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise LabelsFileError(f"{path}: cannot read the Label Studio export ({err.strerror or err})") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LabelsFileError(f"{path} is not a Label Studio JSON export: {err}") from err
    if not isinstance(tasks, list):
        raise LabelsFileError(f"{path}: expected a JSON list of tasks, got {type(tasks).__name__}")
    rows, where, skipped, problems, ids_only = [], [], [], [], False
    for i, task in enumerate(tasks, start=1):
        tid = task.get("id") if isinstance(task, dict) else None
        name = f"task {i}" + (f" (Label Studio id {tid})" if tid is not None else "")
        row, what, probs = _ls_task(task)
        problems += [(i, col, msg) for col, msg in probs]
        rows.append(row)
        where.append(name)
        skipped += [row["pair_id"]] if what == "skipped" else []
        ids_only = ids_only or what == "ids"
    if problems:
        raise LabelsFileError(describe_problems(str(path), problems, row_names=where), problems)
    projects = {t.get("project") for t in tasks if isinstance(t, dict)} - {None}
    source = f"label-studio project {projects.pop()}" if len(projects) == 1 else "label-studio"
    return ToolDecisions(pd.DataFrame(rows, columns=_COLUMNS), where, source, skipped, ids_only)


# -- FiftyOne -------------------------------------------------------------------------------------
_FO_FIELDS = {"pair_id": "None", "caption": "None", "score": "float", "reason": "None",
              "decision": "None", "fixed_caption": "None"}


def fiftyone_loader() -> str:
    """The Python that loads an ``export_fiftyone`` folder into FiftyOne (``load_fiftyone.py``)."""
    fields = ", ".join(f'"{k}": {v}' for k, v in _FO_FIELDS.items())
    return (
        '"""Load this folder into FiftyOne: python -i load_fiftyone.py (or exec it in a session)."""\n'
        "import os\n\n"
        "import fiftyone as fo\n\n"
        "folder = os.path.dirname(os.path.abspath(__file__))\n"
        "dataset = fo.Dataset.from_dir(folder, dataset_type=fo.types.CSVDataset,\n"
        f"                               fields={{{fields}}})\n"
        "for name in (\"decision\", \"fixed_caption\"):  # empty cells are not loaded: declare them\n"
        "    if name not in dataset.get_field_schema():\n"
        "        dataset.add_sample_field(name, fo.StringField)\n"
    )


_FO_MEDIA = re.compile(r"\d{6}(\.[A-Za-z0-9]+)?")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dst)


def export_fiftyone(proj: ProjectFiles, out_dir: str | os.PathLike, *, round_id: int | None = None) -> Path:
    """Write a FiftyOne CSVDataset folder for a round (``data/``, ``labels.csv``,
    ``load_fiftyone.py``); returns ``labels.csv``.

    ``data/`` holds one file per pair, named by its position in the batch (``000001.jpg``): FiftyOne
    keys samples by file, so pairs sharing an image would otherwise merge. Raises ``ValueError``
    when a pair has no image file.
    """
    out = Path(out_dir)
    rows = _round_rows(proj, round_id)
    files = _need_images(rows, "FiftyOne")
    data = out / "data"
    earlier = sorted(data.iterdir()) if data.is_dir() else []
    foreign = [p.name for p in earlier if not (p.is_file() and _FO_MEDIA.fullmatch(p.name))]
    if foreign or (data.exists() and not data.is_dir()):
        shown = ", ".join(foreign[:3])
        raise ValueError(f"{data} holds files that no FiftyOne export of mmcurate wrote ({shown}); "
                         f"give --out an empty or new folder")
    for old in earlier:  # an earlier export's links: replaced, never appended to
        old.unlink()
    data.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}{src.suffix.lower()}" for i, src in enumerate(files, start=1)]
    for src, name in zip(files, names):
        _link_or_copy(src, data / name)
    table = rows[["pair_id", "caption", "score", "reason"]].assign(decision="", fixed_caption="")
    table.insert(0, "filepath", names)
    atomic_write_text(out / "load_fiftyone.py", fiftyone_loader())
    return atomic_write_frame(spreadsheet_safe(table), out / "labels.csv", fmt="csv")


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


def _fo_decision(sample: dict[str, Any]) -> str:
    decision = str(sample.get("decision") or "").strip().lower()
    if decision:
        return decision
    found = [t for t in _fo_tags(sample.get("tags")) if t in DECISIONS]
    return "|".join(found)


def read_fiftyone(path: str | os.PathLike) -> ToolDecisions:
    """Decisions from a FiftyOne export (``labels.csv`` or ``samples.json``); samples without a
    decision stay empty (not decided yet). Raises ``LabelsFileError`` naming each bad sample."""
    path = Path(path)
    try:
        samples = _fo_samples(path)
    except OSError as err:
        raise LabelsFileError(f"{path}: cannot read the FiftyOne export ({err.strerror or err})") from err
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, pd.errors.ParserError) as err:
        raise LabelsFileError(f"{path} is not a FiftyOne CSV/samples export: {err}") from err
    if not isinstance(samples, list):
        raise LabelsFileError(f"{path} is not a FiftyOne CSV/samples export: expected a list of samples")
    rows, where, problems = [], [], []
    for i, sample in enumerate(samples, start=1):
        sample = sample if isinstance(sample, dict) else {}
        decision = _fo_decision(sample)
        pid = str(sample.get("pair_id") or "")
        where.append(f"sample {i}" + (f" ({pid})" if pid else ""))
        if decision and not pid:
            problems.append((i, "pair_id", f"sample {i}: no pair_id field"))
        elif decision and decision not in DECISIONS:
            problems.append((i, "decision", f"sample {i} ({pid}): {decision!r} is not one of "
                                            f"{', '.join(DECISIONS)} (one tag per sample)"))
        rows.append({"pair_id": pid, "decision": decision,
                     "caption": str(sample.get("fixed_caption") or ""),
                     "reviewer": str(sample.get("reviewer") or ""), "timestamp": ""})
    if problems:
        lines = "\n".join(f"  row {r}: {msg}" for r, _, msg in problems[:20])
        raise LabelsFileError(f"{path}: {len(problems)} problem(s):\n{lines}", problems)
    return ToolDecisions(pd.DataFrame(rows, columns=_COLUMNS), where, "fiftyone")
