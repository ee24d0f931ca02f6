"""Wire the review web app to a project directory (`mmcurate review PROJECT`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from mmcurate._fileio import atomic_write_bytes
from mmcurate.data.images import ImageRefError, read_tar_member, resolve_image_ref
from mmcurate.exceptions import ProjectError
from mmcurate.review.app import create_app, make_token, serve
from mmcurate.review.evidence import pair_evidence

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["create_project_app", "image_resolver", "serve_project"]


def image_resolver(proj: ProjectFiles):
    """``pair_id -> Path | None``: the pair's image file inside the project's image root.

    WebDataset members are extracted once into ``PROJECT/.cache/review_images``. Projects built
    from imported embeddings use their ``image_path`` (relative to ``init --image-root``, or
    absolute); without either they have no images (None).
    """
    if proj.image_root is None:
        return lambda pair_id: None
    root = proj.image_root.resolve()
    refs = dict(zip(proj.pairs["pair_id"], proj.pairs["image"]))
    cache = proj.review_cache_dir

    def resolve(pair_id: str) -> Path | None:
        ref = refs.get(pair_id)
        if not ref:
            return None
        try:
            path, member = resolve_image_ref(ref, root)
        except ImageRefError:
            return None
        if member is None:
            return path if path.is_file() else None
        name = hashlib.sha1(pair_id.encode("utf-8")).hexdigest()[:20] + Path(member).suffix
        return _extract_member(path, member, cache / name)

    return resolve


def _extract_member(shard_path: Path, member: str, target: Path) -> Path | None:
    """``target`` holding the member's bytes (extracted once, atomically), or None when unreadable."""
    if target.is_file():
        return target
    try:
        data = read_tar_member(shard_path, member)
    except OSError:  # missing shard or member, not a tar file
        return None
    atomic_write_bytes(target, data)
    return target


def create_project_app(proj: Project, *, round_id: int, token: str, reviewer: str | None = None):
    """The review app of one round of ``proj``, with the evidence of its pairs computed once
    (:func:`mmcurate.review.evidence.pair_evidence`, searched in the project's saved indexes).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        app = create_project_app(proj, round_id=2, token=make_token())
    """
    evidence = pair_evidence(proj, proj.ledger.batch(round_id)["pair_id"].tolist())
    return create_app(pairs=proj.pairs, ledger_path=proj.ledger_path, round_id=round_id,
                      resolve_image=image_resolver(proj), token=token, reviewer=reviewer,
                      title=f"mmcurate review: {proj.root.name}, round {round_id}", evidence=evidence,
                      show_images=proj.image_root is not None)


def serve_project(proj: Project, *, round_id: int | None = None, host: str = "127.0.0.1", port: int = 0,
                  reviewer: str | None = None, open_browser: bool = True) -> None:
    """Serve the review page for a round (latest by default) until interrupted."""
    round_id = round_id or proj.ledger.latest_round()
    if round_id is None:
        raise ProjectError(f"{proj.root} has no round to review yet; run `mmcurate select "
                           f"{proj.root} --budget N` first.")
    token = make_token()
    app = create_project_app(proj, round_id=round_id, token=token, reviewer=reviewer)
    serve(app, host=host, port=port, open_browser=open_browser, token=token)
