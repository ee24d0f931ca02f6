"""WebDataset shards of the curated pairs: ``<key>.<ext>`` image bytes with ``.txt`` and ``.json``.

Keys are file-name safe and dot-free (:func:`sample_key`: WebDataset splits a member name at its
first dot), so the ``webdataset`` package reads back exactly the samples written.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from mmcurate._fileio import atomic_path, to_jsonable
from mmcurate._util import sample_key
from mmcurate.data.images import ImageRefError, _to_rgb, read_image_bytes

__all__ = ["sample_key", "write_webdataset"]

def _image_reader(image_root: Path) -> Callable[[str], bytes]:
    """``ref -> bytes`` of a stored image (a file under ``image_root``, a ``shard.tar::member`` or a
    ``table.parquet::row``); raises ``OSError`` when the image cannot be read, a reference outside
    the root included."""

    def read(ref: str) -> bytes:
        try:
            return read_image_bytes(ref, image_root=image_root)
        except ImageRefError as err:
            raise OSError(str(err)) from err

    return read


def write_webdataset(curated: pd.DataFrame, out_dir: str | os.PathLike, *,
                     read_image: Callable[[str], bytes], refs: pd.Series,
                     shard_size: int = 1000, image_format: str = "original",
                     ) -> tuple[list[Path], dict[str, str]]:
    """Write curated pairs as WebDataset tar shards ``curated-NNNNNN.tar``.

    Each sample is ``<key>.<ext>`` (the original image bytes; ``ext`` from the stored name, e.g.
    ``jpg``/``png``; with ``image_format="jpg"`` every image re-encoded as ``<key>.jpg``),
    ``<key>.txt`` (the caption, UTF-8) and ``<key>.json``: ``key``, ``url`` (the source's ``url``
    column when it has one, else the image's path) and ``caption`` as img2dataset writes them, then
    every other column, ``pair_id`` included (a source column ``key`` as ``source_key``). ``key`` is
    :func:`sample_key` of the pair id. ``refs`` maps ``pair_id`` to the stored image reference given
    to ``read_image``. Shards left from an earlier, larger export are removed. Returns the shard
    paths and ``{pair_id: error}`` for images that could not be read
    (those samples are skipped).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        shards, unreadable = write_webdataset(cur.curated, "out/", read_image=read,
                                              refs=proj.pairs.set_index("pair_id")["image"])
    """
    out_dir = Path(out_dir)
    records = curated.to_dict("records")
    unreadable: dict[str, str] = {}
    shards: list[Path] = []
    stamp = int(time.time())
    position = 0
    while position < len(records) or not shards:
        path = out_dir / f"curated-{len(shards):06d}.tar"
        with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            n_in_shard = 0
            while position < len(records) and n_in_shard < shard_size:
                record = records[position]
                position += 1
                try:
                    _add_sample(tar, record, read_image, str(refs.get(record["pair_id"], "")), stamp,
                                image_format)
                    n_in_shard += 1
                except OSError as err:
                    unreadable[str(record["pair_id"])] = str(err)
        shards.append(path)
    for old in out_dir.glob("curated-*.tar"):
        if old not in shards:
            old.unlink()
    return shards, unreadable


def _as_jpeg(data: bytes) -> bytes:
    try:
        with Image.open(io.BytesIO(data)) as im:
            out = io.BytesIO()
            _to_rgb(im).save(out, format="JPEG", quality=95)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise OSError(f"cannot re-encode as JPEG: {err}") from err
    return out.getvalue()


def _add_sample(tar: tarfile.TarFile, record: dict[str, Any], read_image, ref: str, stamp: int,
                image_format: str = "original") -> None:
    data = read_image(ref)  # before any member is added: an unreadable image leaves no trace
    key = sample_key(str(record["pair_id"]))
    ext = Path(ref.split("::")[-1]).suffix.lower().lstrip(".") or "jpg"
    ext = "jpg" if ext == "jpeg" else ext
    if image_format == "jpg" and ext != "jpg":
        data, ext = _as_jpeg(data), "jpg"
    url = record.get("url")
    meta = {"key": key, "url": url if isinstance(url, str) and url else record.get("image"),
            "caption": str(record["caption"])}
    meta.update({("source_key" if k == "key" else k): to_jsonable(v) for k, v in record.items()
                 if k not in ("caption", "url")})
    meta["image_ref"] = ref
    for name, payload in ((f"{key}.{ext}", data), (f"{key}.txt", str(record["caption"]).encode()),
                          (f"{key}.json", json.dumps(meta, ensure_ascii=False, default=str).encode())):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), stamp, 0o644
        tar.addfile(info, io.BytesIO(payload))
