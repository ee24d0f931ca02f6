"""Poll a folder for arriving batches and add each complete one once (see :func:`watch`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmcurate.data.formats import FORMATS
from mmcurate.embed.encoder import load_encoder
from mmcurate.exceptions import MmcurateError, ProjectLockedError
from mmcurate.results import AddResult
from mmcurate.stream.add import add_pairs, check_options, content_hash, recover_stream, stream_state

if TYPE_CHECKING:
    from mmcurate.project import Project

__all__ = ["watch"]


def _watched_suffixes() -> set[str]:
    """Suffixes of the pairs files a watched folder takes: every format's but WebDataset's ``.tar``
    (formats added with :func:`mmcurate.data.register_format` included)."""
    return {suffix for f in FORMATS if f.name != "webdataset" for suffix in f.suffixes}

_logger = logging.getLogger("mmcurate.stream")


def _candidates(folder: Path, kind: str) -> list[Path]:
    out, suffixes = [], _watched_suffixes()
    for path in folder.iterdir():
        if path.name.startswith((".", "~", "_")) or path.suffix in (".tmp", ".part", ".done"):
            continue
        if kind == "external" and path.is_dir() and (path / "metadata").is_dir():
            out.append(path)
        elif kind != "external" and path.is_file() and path.suffix.lower() in suffixes:
            out.append(path)
    return out


def _signature(path: Path) -> tuple:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)


def _ready(paths: list[Path], now: dict[Path, tuple], before: dict[Path, tuple]) -> list[Path]:
    """Complete files: a ``NAME.done`` marker beside them, or unchanged since the previous poll."""
    done = [p for p in paths if p.with_name(p.name + ".done").exists() or before.get(p) == now[p]]
    return sorted(done, key=lambda p: (max((s[2] for s in now[p]), default=0), p.name))


def watch(proj: Project, folder: str | os.PathLike, *, once: bool = False, poll: float = 2.0,
          stop: threading.Event | None = None, log: Callable[[str], None] | None = None,
          **options: Any) -> list[AddResult]:
    """Poll ``folder`` for arriving batches and add each complete one once.

    Image projects take pairs files (``.csv .tsv .jsonl .ndjson .parquet``; images relative to
    the file's folder unless ``image_root=`` is given); ``external`` projects take embedding
    folders (sub-folders with ``metadata/``). A batch is complete when ``NAME.done`` exists
    beside it or when its size and modification time are unchanged over one poll interval;
    names starting with ``.``, ``_`` or ``~`` and ``.tmp``/``.part`` files are ignored (write
    elsewhere and rename in). A batch whose sha256 was processed before is skipped, whatever its
    name. A batch that cannot be read is reported and retried only once it changes.

    Parameters
    ----------
    once : bool
        Look twice (one poll interval apart), add what is complete, and return.
    poll : float
        Seconds between looks.
    stop : threading.Event, optional
        Set it to stop between batches (the CLI sets it on Ctrl-C).
    log : callable, optional
        Receives one line per event (default: the ``mmcurate.stream`` logger).
    **options
        Passed to :func:`add_pairs` (strategy, threshold, rate, image_root, columns, k, ...).

    Returns
    -------
    list of AddResult
        Each batch added, in order (:class:`~mmcurate.results.AddResult`).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        batches = watch(proj, "incoming/", once=True, rate=0.05)
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"watch folder {folder} does not exist; create it or fix the path")
    check_options(options.get("strategy", "disagreement"), options.get("threshold", "auto"),
                  options.get("rate", 0.05))
    say = log or _logger.info
    stop = stop or threading.Event()
    recover_stream(proj)
    results: list[AddResult] = []
    before: dict[Path, tuple] = {}
    handled: dict[Path, tuple] = {}  # added, seen before or unreadable, as of this signature
    looks = 0
    while not stop.is_set():
        now = {p: _signature(p) for p in _candidates(folder, proj.kind)}
        for path in _ready(list(now), now, before):
            if stop.is_set():
                break
            if handled.get(path) == now[path]:
                continue
            status, decisions = _watch_one(proj, path, options, say)
            if decisions is not None:
                results.append(decisions)
            if status != "locked":
                handled[path] = now[path]
        before, looks = now, looks + 1
        if once and looks >= 2:
            break
        stop.wait(poll)
    return results


def _watch_one(proj: Project, path: Path, options: dict[str, Any], say) -> tuple[str, AddResult | None]:
    """Add one batch: ("added", decisions), or ("seen" | "locked" | "failed", None)."""
    seen = stream_state(proj)["files"].get(content_hash(path))
    if seen is not None:
        say(f"{path.name}: same content as {Path(seen['source']).name} (batch {seen['batch_id']}); "
            f"skipped")
        return "seen", None
    if proj.kind != "external" and options.get("encoder") is None:
        options["encoder"] = load_encoder(proj.model_spec, weights_sha256=proj.weights_sha256)
    try:
        decisions = add_pairs(proj, path, **options)
    except ProjectLockedError as err:
        say(f"{path.name}: {err}; retrying at the next poll")
        return "locked", None
    except (MmcurateError, ValueError, OSError) as err:
        say(f"{path.name}: not added (retried when it changes): {err}")
        return "failed", None
    for line in decisions.brief(path.name):
        say(line)
    return "added", decisions
