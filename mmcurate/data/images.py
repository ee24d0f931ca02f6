"""Opening and checking images: plain files, WebDataset tar members (``shard.tar::member``) and
image bytes in a Parquet/Arrow table row (``file.parquet::row``, see :mod:`mmcurate.data.hf`)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from mmcurate.data.hf import read_table_image

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageRefError",
    "ImageRoot",
    "check_image",
    "check_image_header",
    "member_bytes",
    "open_image",
    "read_image_bytes",
    "read_tar_member",
    "ref_thumbnail_jpeg",
    "resolve_image_ref",
    "thumbnail_jpeg",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@lru_cache(maxsize=8)
def _tar_index(path: str, mtime: float) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers() if m.isfile()}


class ImageRefError(ValueError):
    """An image reference that names no file inside the image root (``reason``: a reject code)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class ImageRoot:
    """An image root resolved once, for checking many references against it (one validation).

    :meth:`resolve` applies the path rule of :func:`resolve_image_ref`. A reference whose joined
    path is already normalised (no ``.``, ``..`` or doubled ``/``), lies under the root and has no
    symlink among its components below the root (each directory checked once per root, the file
    itself each time) resolves to that joined path without ``os.path.realpath``; every other
    reference (a symlink, ``..``, a missing file, an absolute path elsewhere) goes through
    ``realpath`` as before, so what escapes the root is rejected exactly as by a full resolve.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> _ = (Path(tmp) / "a").mkdir(), (Path(tmp) / "a" / "0.png").write_bytes(b"")
    >>> root = ImageRoot(tmp)
    >>> root.relative("a/0.png"), root.resolve("a/0.png")[0] == Path(root.path, "a", "0.png")
    ('a/0.png', True)
    >>> root.resolve("a/../../x.png")
    Traceback (most recent call last):
    mmcurate.data.images.ImageRefError: a/../../x.png resolves to ..., outside the image root ...
    >>> import shutil; shutil.rmtree(tmp)
    """

    __slots__ = ("_prefix", "_real_dirs", "path")

    def __init__(self, image_root: str | os.PathLike | None) -> None:
        self.path = os.path.realpath(image_root if image_root else ".")
        """The root, symlinks resolved (``str``)."""
        self._prefix = self.path if self.path.endswith(os.sep) else self.path + os.sep
        self._real_dirs: set[str] = set()  # folders below the root seen to be real (not symlinks)

    def resolve(self, ref: str) -> tuple[Path, str | None]:
        """``(file, member)`` of ``ref`` inside the root (see :func:`resolve_image_ref`)."""
        name, member = ref.split("::", 1) if "::" in ref else (ref, None)
        if member is not None and not member.strip():
            raise ImageRefError("missing_value", f"{ref} names no member after '::'")
        return Path(self._target(name, ref)), member

    def relative(self, ref: str) -> str:
        """The file of a plain (not ``::``) reference, resolved as :meth:`resolve` does, as a POSIX
        path relative to the root."""
        target = self._target(ref, ref)
        if target.startswith(self._prefix):
            return target[len(self._prefix):].replace(os.sep, "/")
        return Path(os.path.relpath(target, self.path)).as_posix()

    def _target(self, name: str, ref: str) -> str:
        target = self._without_links(name)
        if target is not None:
            return target  # under the root by construction
        target = os.path.realpath(name if os.path.isabs(name) else os.path.join(self.path, name))
        if os.path.commonpath([target, self.path]) != self.path:
            raise ImageRefError("outside_root", f"{ref} resolves to {target}, outside the image root "
                                                f"{self.path}; give paths inside --image-root")
        return target

    def _without_links(self, name: str) -> str | None:
        """The joined path of ``name`` when ``realpath`` would return it unchanged, else None."""
        joined = name if os.path.isabs(name) else os.path.join(self.path, name)
        if not joined.startswith(self._prefix) or os.path.normpath(joined) != joined:
            return None
        try:
            if stat.S_ISLNK(os.lstat(joined).st_mode):
                return None
        except (OSError, ValueError):  # missing, not a folder on the way, a NUL byte: realpath decides
            return None
        return joined if self._real_dir(os.path.dirname(joined)) else None

    def _real_dir(self, folder: str) -> bool:
        """Whether ``folder`` (under or equal to the root) and its parents below the root are real
        folders, not symlinks; checked once per folder."""
        unseen = []
        while folder != self.path and folder not in self._real_dirs:
            unseen.append(folder)
            folder = os.path.dirname(folder)
        for path in unseen:
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):  # lstat: a symlink is not a folder
                    return False
            except (OSError, ValueError):
                return False
        self._real_dirs.update(unseen)
        return True


def resolve_image_ref(ref: str, image_root: str | os.PathLike | ImageRoot | None) -> tuple[Path, str | None]:
    """The one path rule for image references: ``(file, member)`` inside ``image_root``.

    ``ref`` is a path (relative to ``image_root``, or absolute) or ``shard.tar::member``; the file
    part (the shard for a member) must resolve, symlinks followed, inside ``image_root``.
    ``member`` is None for plain files. Raises :class:`ImageRefError` with reason
    ``outside_root`` otherwise, or ``missing_value`` for an empty member name. Existence is not
    checked here. Pass an :class:`ImageRoot` to check many references against one root (the root
    is then resolved once).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        resolve_image_ref("a/0.png", "/data")
        # (PosixPath('/data/a/0.png'), None)
    """
    return (image_root if isinstance(image_root, ImageRoot) else ImageRoot(image_root)).resolve(ref)


def read_image_bytes(ref: str, *, image_root: str | os.PathLike | ImageRoot | None) -> bytes:
    """The raw bytes of a relative path, a ``shard.tar::member`` or a ``table.parquet::row`` reference.

    Raises :class:`ImageRefError` for a reference outside ``image_root``, ``OSError`` when the
    file or member cannot be read.
    """
    path, member = resolve_image_ref(ref, image_root)
    if member is not None and path.suffix in (".parquet", ".arrow") and member.isdigit():
        return read_table_image(path, int(member))
    if member is not None:
        return read_tar_member(path, member)
    return path.read_bytes()


def read_tar_member(path: str | os.PathLike, member: str) -> bytes:
    """The bytes of the regular-file ``member`` of the tar file ``path`` (the one tar reader).

    The shard's name -> member map is cached per file and modification time, so reading a shard's
    members one by one costs one scan of its headers. Raises ``FileNotFoundError`` when the shard or
    the member is missing (or the member is not a regular file), ``OSError`` when ``path`` is not a
    readable tar file.
    """
    path = Path(path)
    try:
        index = _tar_index(str(path), path.stat().st_mtime)
    except tarfile.TarError as err:
        raise OSError(f"{path} is not a readable tar file ({err})") from err
    if member not in index:
        raise FileNotFoundError(f"{member} not in {path} (as a regular file)")
    with tarfile.open(path) as tar:
        return member_bytes(tar, index[member], where=str(path))


def member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, *, where: str = "the tar file") -> bytes:
    """The bytes of ``info`` in the open ``tar``; ``FileNotFoundError`` when it is not a regular file."""
    fh = tar.extractfile(info)
    if fh is None:
        raise FileNotFoundError(f"{info.name} in {where} is not a file")
    return fh.read()


_WIDE_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB with alpha composited on white; 16-bit and 32-bit greyscale scaled to 8 bits (PIL's
    ``convert`` clips them, which turned 16-bit PNGs white)."""
    if im.mode in _WIDE_GREY:
        values = np.asarray(im, dtype=np.float64)
        peak = float(values.max()) if values.size else 0.0
        if im.mode == "F":
            top = 1.0 if peak <= 1.0 else peak
        else:
            top = 65535.0 if im.mode.startswith("I;16") or peak > 255 else 255.0
        grey = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im.convert("RGB")


def open_image(ref: str, *, image_root: str | os.PathLike | None,
               min_size: int | None = None) -> Image.Image:
    """Open an image reference as RGB, compositing any alpha channel onto white.

    ``min_size``: a JPEG is decoded at the smallest of its 1/1, 1/2, 1/4, 1/8 scales whose both
    sides are still at least ``min_size`` pixels (PIL ``draft``: the DCT does the shrinking, several
    times faster than a full decode for camera-size photos). Other formats decode in full.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        open_image("img/0.png", image_root="data/")
        # <PIL.Image.Image image mode=RGB size=24x24>
    """
    data = read_image_bytes(ref, image_root=image_root)
    return _decode(io.BytesIO(data), ref, min_size)


def _decode(source, where, min_size: int | None = None) -> Image.Image:
    """The one image loader: decode ``source`` as RGB (see :func:`_to_rgb`); an image over PIL's
    pixel limit (a decompression bomb, perhaps swapped in after ``init`` checked it) raises
    ``OSError`` naming ``where``, as an unreadable image does."""
    try:
        with Image.open(source) as im:
            if min_size and im.format == "JPEG":
                im.draft("RGB", (min_size, min_size))
            im.load()
            return _to_rgb(im)
    except Image.DecompressionBombError as err:
        raise OSError(f"{where}: {err}") from err


def _problem(data: bytes, full: bool) -> tuple[str, str] | None:
    """``(reason, detail)`` of what stops PIL from reading ``data`` (decoded if ``full``), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load() if full else im.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return "decompression_bomb", str(err)
    except Image.UnidentifiedImageError:
        return "corrupt_image", "not an image PIL can read (expected PNG, JPEG, WebP, BMP, GIF or TIFF)"
    except (OSError, SyntaxError, ValueError) as err:
        return "corrupt_image", f"{type(err).__name__}: {err}"
    return None


def check_image(data: bytes) -> tuple[str, str] | None:
    """Decode ``data`` fully; ``None`` if fine, else ``(reason, detail)``.

    Reasons: ``decompression_bomb`` (more pixels than ``PIL.Image.MAX_IMAGE_PIXELS``),
    ``corrupt_image`` (unreadable, truncated or not an image).
    """
    return _problem(data, full=True)


def check_image_header(data: bytes) -> tuple[str, str] | None:
    """Check ``data`` without decoding its pixels; ``None`` if fine, else ``(reason, detail)``.

    Reads the header (format, size: ``decompression_bomb`` as in :func:`check_image`) and runs
    PIL's ``verify`` (PNG: every chunk and its CRC, so truncated PNGs are caught). A JPEG whose
    data is cut short after a valid header passes here; embedding then reports it as unreadable.
    """
    return _problem(data, full=False)


def thumbnail_jpeg(path: str | os.PathLike, size: int = 256) -> bytes:
    """JPEG bytes of the image at ``path`` shrunk to fit ``size`` × ``size``, alpha on white."""
    rgb = _decode(path, path)
    return _jpeg(rgb, size)


def ref_thumbnail_jpeg(ref: str, *, image_root: str | os.PathLike | None, size: int = 256) -> bytes:
    """JPEG bytes of an image reference (a file or a tar member, :func:`open_image`) shrunk to fit
    ``size`` × ``size``. Raises ``OSError`` / ``ValueError`` as :func:`open_image` does."""
    return _jpeg(open_image(ref, image_root=image_root, min_size=size), size)


def _jpeg(rgb: Image.Image, size: int, quality: int = 85) -> bytes:
    rgb.thumbnail((size, size))
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
