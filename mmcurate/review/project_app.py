"""Wire the review web app to a project directory (`mmcurate review PROJECT`)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from mmcurate.exceptions import ProjectError

__all__ = ["image_resolver", "serve_project"]


def image_resolver(proj):
    """``pair_id -> Path | None``: the pair's image file inside the project's image root.

    WebDataset members are extracted once into ``PROJECT/.cache/review_images``. Projects built
    from imported embeddings have no images (None).
    """
    if proj.kind == "external" or proj.image_root is None:
        return lambda pair_id: None
    root = proj.image_root.resolve()
    refs = dict(zip(proj.pairs["pair_id"], proj.pairs["image"]))
    cache = proj.root / ".cache" / "review_images"

    def resolve(pair_id: str) -> Path | None:
        ref = refs.get(pair_id)
        if not ref:
            return None
        if "::" in ref:
            return _extract_member(root, ref, cache / f"{pair_id}{Path(ref).suffix}")
        path = (root / ref).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None

    return resolve


def _extract_member(root: Path, ref: str, target: Path) -> Path | None:
    if target.is_file():
        return target
    shard, member = ref.split("::", 1)
    shard_path = (root / shard).resolve()
    if not shard_path.is_relative_to(root) or not shard_path.is_file():
        return None
    with tarfile.open(shard_path) as tar:
        fh = tar.extractfile(member)
        if fh is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(fh.read())
    return target


def serve_project(proj, *, round_id: int | None = None, host: str = "127.0.0.1", port: int = 0,
                  reviewer: str | None = None, open_browser: bool = True) -> None:
    """Serve the review page for a round (latest by default) until interrupted."""
    from mmcurate.review.app import create_app, make_token, serve

    round_id = round_id or proj.ledger.latest_round()
    if round_id is None:
        raise ProjectError(f"{proj.root} has no round to review yet; run `mmcurate select "
                           f"{proj.root} --budget N` first.")
    token = make_token()
    app = create_app(pairs=proj.pairs, ledger_path=proj.root / "labels.sqlite", round_id=round_id,
                     resolve_image=image_resolver(proj), token=token, reviewer=reviewer,
                     title=f"mmcurate review: {proj.root.name}, round {round_id}")
    serve(app, host=host, port=port, open_browser=open_browser, token=token)
