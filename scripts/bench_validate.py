"""Benchmark validation's path rule: rows/s of ``validate`` before and after issue 26 (item 8).

Writes ``--rows`` tiny PNG files (100 folders below an image root a few levels deep) and a CSV
naming them, reads the CSV once into the raw table (as ``init`` does: ``read_source``), then times
``mmcurate.data.validate.validate`` on it, alternating:

- **before**: the per-row path rule as it was (copied below): ``os.path.realpath`` of the root and
  of the reference in every ``resolve_image_ref`` call, again in ``_normalise_refs``, and again for
  each image read by the image check;
- **after**: the package's code: the root resolved once per call (:class:`ImageRoot`), ``realpath``
  only for a reference that is not normalised or crosses a symlink.

Both must give the same pairs and rejects (checked). ``--check-images off`` times the path rule
alone (``check_images=False``); ``header`` also reads every image's header, as ``init`` does by
default. Prints the median rows/s over ``--runs`` runs (and the range), the speed-up and the load.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python scripts/bench_validate.py [--rows 100000] \
        [--runs 3] [--check-images off header]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from PIL import Image

from mmcurate.data.formats import read_source
from mmcurate.data.images import ImageRefError, read_tar_member
from mmcurate.data.sources import Columns

validate_mod = importlib.import_module("mmcurate.data.validate")  # the module (mmcurate.data.validate
# is also the name of the function mmcurate.data exports)


# -- before: the path rule as it was before issue 26 (one copy, for the baseline only) -----------
def old_resolve_image_ref(ref: str, image_root) -> tuple[Path, str | None]:
    root = os.path.realpath(image_root if image_root else ".")
    name, member = ref.split("::", 1) if "::" in ref else (ref, None)
    if member is not None and not member.strip():
        raise ImageRefError("missing_value", f"{ref} names no member after '::'")
    target = os.path.realpath(name if os.path.isabs(name) else os.path.join(root, name))
    if os.path.commonpath([target, root]) != root:
        raise ImageRefError("outside_root", f"{ref} resolves to {target}, outside the image root "
                                            f"{root}; give paths inside --image-root")
    return Path(target), member


def old_read_image_bytes(ref: str, *, image_root) -> bytes:
    path, member = old_resolve_image_ref(ref, image_root)
    if member is not None:
        return read_tar_member(path, member)
    return path.read_bytes()


def old_normalise_refs(df: pd.DataFrame, root: str) -> pd.DataFrame:
    def rel(ref: str) -> str:
        if "::" in ref:
            return ref
        full = os.path.realpath(ref if os.path.isabs(ref) else os.path.join(root, ref))
        return Path(os.path.relpath(full, root)).as_posix()

    return df.assign(image=df["image"].map(rel))


@contextlib.contextmanager
def before() -> Iterator[None]:
    """``validate`` with the old per-row path rule (root resolved as a string, per call)."""
    saved = {name: getattr(validate_mod, name) for name in
             ("ImageRoot", "resolve_image_ref", "read_image_bytes", "_normalise_refs")}
    validate_mod.ImageRoot = os.path.realpath  # type: ignore[assignment]  # the root as a plain string
    validate_mod.resolve_image_ref = old_resolve_image_ref  # type: ignore[assignment]
    validate_mod.read_image_bytes = old_read_image_bytes  # type: ignore[assignment]
    validate_mod._normalise_refs = old_normalise_refs  # type: ignore[assignment]
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(validate_mod, name, value)


# -- the data --------------------------------------------------------------------------------------
def write_source(folder: Path, n_rows: int) -> tuple[Path, Path]:
    """``n_rows`` tiny PNGs in 100 sub-folders of ``folder/data/set/images`` and a CSV naming them."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    png = buf.getvalue()
    root = folder / "data" / "set" / "images"
    for d in range(100):
        (root / f"d{d:03d}").mkdir(parents=True)
    refs = [f"d{i % 100:03d}/{i:07d}.png" for i in range(n_rows)]
    for ref in refs:
        (root / ref).write_bytes(png)
    csv = root / "pairs.csv"
    pd.DataFrame({"id": [f"p{i}" for i in range(n_rows)], "image": refs,
                  "caption": [f"a red square, number {i}" for i in range(n_rows)]}).to_csv(csv, index=False)
    return csv, root


def time_validate(raw: pd.DataFrame, root: Path, check: bool) -> tuple[float, pd.DataFrame, pd.DataFrame]:
    start = time.perf_counter()
    pairs, rejects = validate_mod.validate(raw, image_root=root, check_images=check)
    return time.perf_counter() - start, pairs, rejects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--check-images", nargs="+", choices=["off", "header"], default=["off", "header"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        csv, root = write_source(Path(tmp), args.rows)
        raw = read_source(csv, image_root=root, columns=Columns())
        print(f"{args.rows} rows and PNG files written and read in {time.perf_counter() - start:.1f} s; "
              f"image root {root} ({len(root.parts)} levels)")
        for mode in args.check_images:
            check = mode == "header"
            seconds: dict[str, list[float]] = {"before": [], "after": []}
            results = {}
            for _ in range(args.runs):
                for label in ("before", "after"):  # alternated: a change of load hits both
                    with before() if label == "before" else contextlib.nullcontext():
                        took, pairs, rejects = time_validate(raw, root, check)
                    seconds[label].append(took)
                    results[label] = (pairs, rejects)
            pd.testing.assert_frame_equal(results["before"][0], results["after"][0])
            pd.testing.assert_frame_equal(results["before"][1], results["after"][1])
            assert len(results["after"][0]) == args.rows, "every generated row must be valid"
            rates = {k: [args.rows / s for s in v] for k, v in seconds.items()}
            med = {k: statistics.median(v) for k, v in rates.items()}
            print(f"check_images={'header' if check else 'False'}: rows/s, median of {args.runs} (range)")
            for label in ("before", "after"):
                low, high = min(rates[label]), max(rates[label])
                print(f"  {label:<6} {med[label]:>10,.0f}  ({low:,.0f}-{high:,.0f}); "
                      f"{1000 * statistics.median(seconds[label]) / args.rows:.3f} ms a row")
            print(f"  speed-up {med['after'] / med['before']:.1f}x (same pairs and rejects); "
                  f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
