"""Pixel signatures of images, read only for the rows a check needs (the decode side of pixel
verification; the comparison is :func:`mmcurate.groups.find.pixel_distance`).

A signature is a few tiny colour thumbnails of one image: the whole image and the image cropped by
each pair of margins of :data:`CROPS` (one share of its width from the left and right, one of its
height from the top and bottom), each resized to :data:`THUMB` × :data:`THUMB` cells by area
averaging (alpha composited on white, as everywhere, :func:`mmcurate.data.images.open_image`).
Colour is kept, so scenes that differ only in colour stay apart; the cropped views let a copy
cropped by a few pixels (a larger share of a small or narrow image) and resized meet its source;
8 × 8 cells blur out what JPEG re-encoding and resampling move. A JPEG is decoded at a reduced scale
(PIL ``draft``); no image is read unless a row appears in a candidate edge. 4,800 bytes per image
read (25 views of 8 × 8 × 3).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

from mmcurate.data.images import ImageRoot, open_image

if TYPE_CHECKING:
    from mmcurate.project.files import ProjectFiles

__all__ = ["CROPS", "THUMB", "VIEWS", "image_signature", "project_signature_reader", "read_signatures"]

THUMB = 8
"""Side of each thumbnail, in cells."""
CROPS = (0.0, 0.015, 0.03, 0.05, 0.08)
"""Margins cropped from the sides of the image (share of its width, of its height): one view per
pair, ``(0, 0)`` (the whole image) first."""
VIEWS = tuple((fx, fy) for fx in CROPS for fy in CROPS)
_DECODE_MIN = 64  # a JPEG is decoded at the smallest DCT scale keeping both sides >= this


def image_signature(image: Image.Image) -> npt.NDArray[np.uint8]:
    """``(len(VIEWS), THUMB, THUMB, 3)`` uint8: the RGB ``image`` cropped by each pair of margins
    of :data:`VIEWS` and shrunk to a thumbnail (box filter: each cell the mean of its area).

    Examples
    --------
    >>> image_signature(Image.new("RGB", (40, 30), (255, 0, 0))).shape
    (25, 8, 8, 3)
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    w, h = rgb.size
    # no reducing_gap: its integer pre-reduction shifts the cell borders (a copy resized to 87%
    # drifted several times farther from its source); a JPEG is already decoded small (draft)
    views = [rgb.resize((THUMB, THUMB), Image.Resampling.BOX, box=(fx * w, fy * h, w - fx * w, h - fy * h))
             for fx, fy in VIEWS]
    return np.stack([np.asarray(v, np.uint8) for v in views])


def read_signatures(refs: Sequence[str], *, image_root: str | os.PathLike | ImageRoot | None,
                    workers: int | None = None, progress: bool = False
                    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Signatures of the images ``refs`` (paths, ``shard.tar::member``, ``table.parquet::row``):
    ``(signatures (R, V, S, S, 3), readable (R,))``; an image that cannot be read or decoded has
    ``readable`` False (and zeros), never an error. ``workers``: decoding threads (PIL releases
    the GIL; default up to 4)."""
    root = image_root if isinstance(image_root, ImageRoot) else ImageRoot(image_root)
    out = np.zeros((len(refs), len(VIEWS), THUMB, THUMB, 3), np.uint8)
    readable = np.zeros(len(refs), bool)

    def one(i: int) -> None:
        try:
            out[i] = image_signature(open_image(refs[i], image_root=root.path, min_size=_DECODE_MIN))
            readable[i] = True
        except (OSError, SyntaxError, ValueError, EOFError):  # what PIL raises on a bad file
            pass  # not confirmed: an unreadable image confirms nothing

    from tqdm.auto import tqdm  # heavy: tqdm

    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for _ in tqdm(pool.map(one, range(len(refs))), total=len(refs), desc="pixel check",
                      disable=not progress, unit="img"):
            pass
    return out, readable


def project_signature_reader(proj: ProjectFiles, *, progress: bool = False
                             ) -> Callable[[npt.NDArray[np.int64]], tuple[np.ndarray, np.ndarray]] | None:
    """A reader of the project's pixel signatures by row, for :func:`mmcurate.groups.find_groups`
    (``pixel_signatures``); None for a project without image files (imported embeddings)."""
    if proj.kind == "external" or proj.image_root is None:
        return None
    refs = proj.pairs["image"].astype(str).to_numpy()
    root = ImageRoot(proj.image_root)

    def read(rows: npt.NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray]:
        return read_signatures(refs[np.asarray(rows, np.int64)].tolist(), image_root=root, progress=progress)

    return read
