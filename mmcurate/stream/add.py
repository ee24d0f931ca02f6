"""Add one arriving batch to a project: ingest, score, decide, commit (see :mod:`mmcurate.stream`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._fileio import atomic_write_frame, atomic_write_json, read_json_object
from mmcurate.engine.incremental import INCREMENTAL, PoolScorer, pool_fingerprint
from mmcurate.exceptions import NotEmbeddedError, ProjectError
from mmcurate.groups.hooks import count_groups_once
from mmcurate.labels import utc_now
from mmcurate.rank import STRATEGIES, compute_ranking
from mmcurate.results import AddResult
from mmcurate.rounds import apply_head, labelled_arrays, load_latest_head
from mmcurate.stream import ingest
from mmcurate.stream.ingest import append_pairs
from mmcurate.stream.threshold import AdaptiveThreshold

if TYPE_CHECKING:
    from mmcurate.embed.encoder import Encoder
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["LOG_COLUMNS", "add_pairs", "check_options", "content_hash", "has_pending", "recover_stream",
           "stream_log",
           "stream_state"]

LOG_COLUMNS = ["batch_id", "source", "pair_id", "score", "threshold", "queued", "round_id",
               "head_round", "strategy", "mode", "target_rate", "arrived_at"]
_STATE_VERSION = 1


def _dir(proj: ProjectFiles, name: str) -> Path:
    """A fixed-name folder of ``PROJECT/stream/``: fixed on purpose, ``pending/`` is the journal a
    later add or :func:`recover_stream` must find by name to finish an interrupted commit; the one
    writer is the project lock holder, so two writers never share these names."""
    return proj.stream_dir / name


# -- state and log --------------------------------------------------------------------------------
def stream_state(proj: ProjectFiles) -> dict[str, Any]:
    """The stream's saved state: ``n_batches``, ``n_seen``, ``n_queued``, ``adaptive`` (threshold
    state or None), ``files`` (sha256 -> source, batch_id, at) and ``realised_rate``."""
    path = proj.stream_state_path
    state = read_json_object(path, what="the stream's state") if path.is_file() else {
        "version": _STATE_VERSION, "n_batches": 0, "n_seen": 0, "n_queued": 0, "adaptive": None,
        "files": {}}
    state["realised_rate"] = state["n_queued"] / state["n_seen"] if state["n_seen"] else None
    return state


def stream_log(proj: ProjectFiles) -> pd.DataFrame:
    """Every stream decision so far, in arrival order; columns :data:`LOG_COLUMNS`."""
    parts = sorted(_dir(proj, "log").glob("batch-*.parquet"))
    frames = [pd.read_parquet(p) for p in parts]
    frames = [f for f in frames if len(f)]
    if not frames:
        return _decision_frame({c: [] for c in LOG_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def _decision_frame(columns: dict[str, Any]) -> pd.DataFrame:
    df = pd.DataFrame(columns, columns=LOG_COLUMNS)
    return df.astype({"batch_id": "int64", "score": "float64", "threshold": "float64",
                      "queued": "bool", "round_id": "Int64", "head_round": "Int64",
                      "target_rate": "float64"})


def content_hash(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes, in name order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


# -- add ------------------------------------------------------------------------------------------
def add_pairs(proj: Project, source: str | os.PathLike, *, strategy: str = "disagreement",
              threshold: str | float = "auto", rate: float = 0.05,
              image_root: str | os.PathLike | None = None, columns: dict[str, str] | None = None,
              fmt: str | None = None, check_images: bool = True, k: int = 10, random_state: int = 0,
              options: dict[str, Any] | None = None, encoder: Encoder | None = None, batch_size: int = 32,
              progress: bool = False) -> AddResult:
    """Add one arriving batch to a project and decide for each arrival: queue for review or pass.

    Parameters
    ----------
    proj : Project
        An embedded project (image projects) or one built from imported embeddings.
    source : path
        Image projects: a pairs file or folder (any ``load_pairs`` source), images relative to
        ``image_root`` (default: the file's folder) and lying under the project's image root.
        ``external`` projects: a clip-retrieval embedding folder whose metadata has a ``key`` or
        ``image_path`` column.
    strategy : str
        Query strategy scoring the arrivals (``mmcurate strategies``); higher = review.
    threshold : "auto" or float
        ``"auto"``: adaptive, queueing about ``rate`` of arrivals while scores drift. A float:
        queue every arrival whose score exceeds it.
    rate : float
        Target review rate in (0, 1) for ``threshold="auto"``.
    image_root : path, optional
        Folder the batch's image paths are relative to (default: the file's folder).
    columns : dict, optional
        ``{"id": ..., "image": ..., "caption": ...}`` column names (default: the project's).
    fmt, check_images
        As for ``load_pairs``: format override; decode every arriving image.
    k, random_state : int
        Neighbours per pair and seed of the ranking (:func:`mmcurate.rank.compute_ranking`).
    options : dict, optional
        Keyword options of the strategy, e.g. ``{"beta": 2.0}`` for ``density``.
    encoder : Encoder, optional
        An already loaded encoder of the project's model (saves reloading it per batch).
    batch_size, progress
        Embedding batch size; show progress bars.

    Returns
    -------
    AddResult
        ``table``: one row per arrival added (columns :data:`LOG_COLUMNS`); ``rejects`` (a
        DataFrame: source, row, pair_id, column, reason, detail), ``round`` (None when nothing was
        queued), ``batch_id``, ``source``, ``sha256``.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        added = add_pairs(proj, "incoming/batch7.csv", rate=0.05)
        added.round, added.table[added.table["queued"]][["pair_id", "score"]], added.rejects
    """
    mode, strategy = check_options(strategy, threshold, rate)
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"arriving batch {source} does not exist")
    digest = content_hash(source)
    with proj.lock():
        _recover(proj)
        state = _owned_state(proj)
        staging = _fresh(_dir(proj, "staging"))
        try:
            arrivals, rejects = _ingest(proj, source, staging, image_root=image_root, columns=columns,
                                        fmt=fmt, check_images=check_images, encoder=encoder,
                                        batch_size=batch_size, progress=progress)
        except BaseException:  # a refused batch leaves the project as it was
            shutil.rmtree(staging, ignore_errors=True)
            raise
        batch = {"batch_id": state["n_batches"] + 1, "source": str(source), "sha256": digest,
                 "strategy": strategy, "mode": mode, "threshold": threshold, "rate": rate, "k": k,
                 "random_state": random_state}
        decisions, state, on_commit = _decide(proj, arrivals, state, batch, options)
        _write_pending(proj, batch, decisions, rejects, state)
        _commit(proj, arrivals, on_commit)
        out = _finish(proj)
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check_options(strategy: str, threshold: str | float, rate: float) -> tuple[str, str]:
    """Raise on an unknown strategy, a rate outside (0, 1) or a bad threshold.

    Returns the mode (``auto`` | ``fixed``) and the strategy's registered name.
    """
    name = STRATEGIES.get(strategy).name  # unknown names raise, listing the valid ones
    if not 0.0 < float(rate) < 1.0:
        raise ValueError(f"rate must be a fraction in (0, 1), e.g. 0.05; got {rate}")
    if isinstance(threshold, str) and threshold == "auto":
        return "auto", name
    if isinstance(threshold, (int, float)) and np.isfinite(threshold):
        return "fixed", name
    raise ValueError(f"threshold must be 'auto' or a finite number (a score), got {threshold!r}")


def _owned_state(proj: ProjectFiles) -> dict[str, Any]:
    """The stream state, refusing one left by an earlier project in the same folder."""
    state = stream_state(proj)
    created = proj.config.get("created")
    if state["n_batches"] and state.get("project_created") != created:
        raise ProjectError(
            f"{proj.stream_state_path} belongs to a project created at "
            f"{state.get('project_created')}, but {proj.root} was created at {created} (re-created "
            f"with --force?). Delete {proj.stream_dir} to start its stream over.")
    state["project_created"] = created
    return state


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _ingest(proj: Project, source: Path, staging: Path, **kwargs: Any):
    """Validated, embedded arrivals ``(pairs, image (M, D) f16, text (M, D) f16)`` and rejects."""
    missing = proj.store.missing(proj.pairs["pair_id"].tolist())
    if missing:
        raise NotEmbeddedError(f"{len(missing)} pairs of {proj.root} have no vectors yet (first: "
                               f"{missing[0]}); run `mmcurate embed {proj.root}` before adding pairs.")
    if proj.kind == "external":
        return ingest.ingest_embedding_folder(proj, source, staging)
    return ingest.ingest_pairs(proj, source, staging, **kwargs)


# -- scoring and deciding -------------------------------------------------------------------------
def _pool_fingerprint(proj: Project, head_round: int | None, k: int) -> str:
    return pool_fingerprint(proj, head_round, k)


def _score_arrivals(proj: Project, image: np.ndarray, text: np.ndarray, *, strategy: str, k: int,
                    random_state: int, options: dict[str, Any] | None):
    """Scores of the arrivals among pool + arrivals (current head and labels), the head round and
    what to call once the arrivals are committed (None when the strategy needs a full re-rank:
    then the pool's saved state, if any, goes stale and is rebuilt on its next use)."""
    head, head_round = load_latest_head(proj)
    pool_image, pool_text = proj.image_embeddings(), proj.text_embeddings()
    if INCREMENTAL.supports(strategy, options):  # else a full re-rank of pool + arrivals
        scorer = PoolScorer(proj.pool_state_dir, *apply_head(head, pool_image, pool_text),
                            fingerprint=_pool_fingerprint(proj, head_round, k), k=k,
                            random_state=random_state)
        rows, y = _labels_once_per_group(proj, *labelled_arrays(proj))
        scores = scorer.score(*apply_head(head, image, text), strategy=strategy, indices_labeled=rows,
                              labels=y, random_state=random_state, options=options)
        return scores, head_round, lambda: scorer.commit(_pool_fingerprint(proj, head_round, k))
    n_pool = len(pool_image)
    all_image = np.concatenate([np.asarray(pool_image), image.astype(pool_image.dtype)])
    all_text = np.concatenate([np.asarray(pool_text), text.astype(pool_text.dtype)])
    all_image, all_text = apply_head(head, all_image, all_text)
    rows, y = _labels_once_per_group(proj, *labelled_arrays(proj))
    table = compute_ranking(all_image, all_text, strategies=(strategy,), indices_labeled=rows,
                            labels=y, k=k, random_state=random_state,
                            options={strategy: options} if options else None)
    return table["score"].to_numpy(np.float64)[n_pool:], head_round, None


def _decide(proj: Project, arrivals, state: dict[str, Any], batch: dict[str, Any], options):
    """Decisions for the arrivals (LOG_COLUMNS, round_id still empty) and the updated state."""
    pairs, image, text = arrivals
    state = {key: value for key, value in state.items() if key != "realised_rate"}
    scores, head_round, on_commit = np.zeros(0), None, None
    if len(pairs):
        scores, head_round, on_commit = _score_arrivals(proj, image, text, strategy=batch["strategy"],
                                             k=batch["k"], random_state=batch["random_state"],
                                             options=options)
    if batch["mode"] == "auto":
        adaptive = (AdaptiveThreshold.from_dict(state["adaptive"]) if state.get("adaptive")
                    else AdaptiveThreshold(batch["rate"]))
        adaptive.target_rate = float(batch["rate"])
        queued = adaptive.update(scores) if len(scores) else np.zeros(0, bool)
        cut = adaptive.score_threshold
        state["adaptive"] = adaptive.to_dict()
    else:
        cut = float(batch["threshold"])
        queued = scores > cut
    ids = pairs["pair_id"].astype(str)
    taken = proj.ledger.queued_pair_ids() | set(proj.ledger.decisions()["pair_id"])
    queued = queued & ~ids.isin(taken).to_numpy()  # never re-queue a queued or labelled pair
    state.update(n_batches=batch["batch_id"], n_seen=state["n_seen"] + len(ids),
                 n_queued=state["n_queued"] + int(queued.sum()))
    state["files"][batch["sha256"]] = {"source": batch["source"], "batch_id": batch["batch_id"],
                                       "at": utc_now()}
    n = len(ids)
    decisions = _decision_frame({
        "batch_id": [batch["batch_id"]] * n, "source": [batch["source"]] * n,
        "pair_id": ids.tolist(), "score": scores, "threshold": [cut] * n, "queued": queued,
        "round_id": [pd.NA] * n, "head_round": [head_round if head_round is not None else pd.NA] * n,
        "strategy": [batch["strategy"]] * n, "mode": [batch["mode"]] * n,
        "target_rate": [batch["rate"] if batch["mode"] == "auto" else np.nan] * n,
        "arrived_at": [utc_now()] * n})
    return decisions, state, on_commit


# -- commit and finish ----------------------------------------------------------------------------
def _write_pending(proj: ProjectFiles, batch, decisions: pd.DataFrame, rejects: pd.DataFrame, state) -> None:
    pending = _fresh(_dir(proj, "pending"))
    # fsynced before journal.json names them complete (the journal alone would not survive a crash)
    atomic_write_frame(decisions, pending / "decisions.parquet", fmt="parquet")
    atomic_write_frame(rejects, pending / "rejects.csv", fmt="csv")
    atomic_write_json(pending / "state.json", state)
    atomic_write_json(pending / "journal.json", {**batch, "rejects_done": False})  # complete now


def _write_pairs(table: pd.DataFrame, path: Path) -> None:
    atomic_write_frame(table, path, fmt="parquet")


def _commit(proj: ProjectFiles, arrivals, on_commit=None) -> None:
    """Vectors in as a new part, then the new pairs table atomically (the commit point); then the
    pool's scoring state takes the arrivals (a crash before leaves a stale state, rebuilt on use)."""
    pairs, image, text = arrivals
    if not len(pairs):
        return
    proj.store.write_part(pairs["pair_id"].tolist(), image, text)
    table = append_pairs(proj.pairs, pairs)
    _write_pairs(table, proj.pairs_path)
    proj.refresh()
    proj.store.compact(table["pair_id"].tolist())
    if on_commit is not None:
        on_commit()


def _stream_round(proj: ProjectFiles, batch_id: int) -> int | None:
    rounds = proj.ledger.rounds()
    for round_id, params in zip(rounds["round"], rounds["params"]):
        if params.get("mode") == "stream" and params.get("stream_batch") == batch_id:
            return int(round_id)
    return None


def _create_round(proj: ProjectFiles, journal: dict[str, Any], decisions: pd.DataFrame) -> int | None:
    queued = decisions[decisions["queued"]].sort_values("score", ascending=False, kind="stable")
    if queued.empty:
        return None
    existing = _stream_round(proj, journal["batch_id"])
    if existing is not None:
        return existing
    # finishing an interrupted add: pairs that a command run in between (select) already queued
    # stay in that round; the stream round takes the others
    queued = queued[~queued["pair_id"].isin(proj.ledger.queued_pair_ids())]
    if queued.empty:
        return None
    manifest = proj.store.manifest() or {}
    cut = float(queued["threshold"].iloc[0])
    return proj.ledger.create_round(
        queued["pair_id"].tolist(), strategy=journal["strategy"],
        params={"mode": "stream", "stream_batch": journal["batch_id"], "source": journal["source"],
                "threshold": journal["threshold"], "threshold_value": cut,
                "target_rate": journal["rate"] if journal["mode"] == "auto" else None,
                "k": journal["k"], "random_state": journal["random_state"],
                "n_arrivals": len(decisions)},
        model={"model": manifest.get("model"), "pretrained": manifest.get("pretrained"),
               "weights_sha256": manifest.get("weights_sha256"), "embeddings": manifest.get("kind")},
        head_round=None if pd.isna(queued["head_round"].iloc[0]) else int(queued["head_round"].iloc[0]),
        scores=queued["score"].astype(float).tolist(),
        reasons=[f"stream batch {journal['batch_id']}: {journal['strategy']}={s:.3f} > {cut:.3f}"
                 for s in queued["score"]])


def _finish(proj: ProjectFiles) -> AddResult:
    """Write the round, the log, the rejects and the state of the journalled batch; drop the journal."""
    pending = _dir(proj, "pending")
    journal = json.loads((pending / "journal.json").read_text(encoding="utf-8"))
    decisions = pd.read_parquet(pending / "decisions.parquet")
    rejects = pd.read_csv(pending / "rejects.csv", dtype={"pair_id": str}, keep_default_na=False)
    round_id = _create_round(proj, journal, decisions)
    if round_id is not None:
        decisions["round_id"] = pd.array([round_id if q else pd.NA for q in decisions["queued"]],
                                         dtype="Int64")
    log = _dir(proj, "log") / f"batch-{journal['batch_id']:06d}.parquet"
    log.parent.mkdir(parents=True, exist_ok=True)
    _write_pairs(decisions, log)
    if not journal["rejects_done"]:
        _append_rejects(proj, rejects)
        atomic_write_json(pending / "journal.json", {**journal, "rejects_done": True})
    state = json.loads((pending / "state.json").read_text(encoding="utf-8"))
    atomic_write_json(proj.stream_state_path, state)
    shutil.rmtree(pending)
    return AddResult(decisions, rejects, round=round_id, batch_id=journal["batch_id"],
                     source=journal["source"], sha256=journal["sha256"],
                     rejects_file=str(proj.rejects_path))


def _append_rejects(proj: ProjectFiles, rejects: pd.DataFrame) -> None:
    if rejects.empty:
        return
    path = proj.rejects_path
    old = proj.rejects
    table = pd.concat([old, rejects], ignore_index=True) if len(old) else rejects
    atomic_write_frame(table, path, fmt="csv")


def _recover(proj: ProjectFiles) -> AddResult | None:
    """Finish a batch committed by an interrupted add, or roll back one that was not committed."""
    pending = _dir(proj, "pending")
    if not (pending / "journal.json").is_file():
        shutil.rmtree(pending, ignore_errors=True)  # never journalled: nothing was committed
        return None
    ids = pd.read_parquet(pending / "decisions.parquet", columns=["pair_id"])["pair_id"]
    if ids.isin(set(proj.pairs["pair_id"])).all():
        return _finish(proj)
    shutil.rmtree(pending)
    proj.store.compact(proj.pairs["pair_id"].tolist())  # drop the uncommitted part, if written
    return None


def has_pending(proj: ProjectFiles) -> bool:
    """True when an interrupted ``add_pairs`` left a journalled batch to finish or roll back."""
    return (_dir(proj, "pending") / "journal.json").is_file() or _dir(proj, "pending").is_dir()


def recover_stream(proj: ProjectFiles) -> AddResult | None:
    """Complete or roll back an ``add_pairs`` that was interrupted; returns the finished batch
    (an :class:`~mmcurate.results.AddResult`) or None.

    ``add_pairs`` and ``watch`` call this first; call it yourself to settle a project at once.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        recover_stream(proj)
    """
    with proj.lock():
        return _recover(proj)


def _labels_once_per_group(proj: ProjectFiles, rows, y, fixes) -> tuple[np.ndarray, np.ndarray]:
    """A group decision is one label (:func:`mmcurate.groups.hooks.count_groups_once`)."""
    return count_groups_once(proj, rows, y, fixes)[:2]
