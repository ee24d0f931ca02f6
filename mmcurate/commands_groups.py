"""``mmcurate duplicates`` and ``mmcurate search``: parsers and handlers (thin, over the library)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from mmcurate.project.files import ProjectFiles

__all__ = ["add_duplicates_parser", "add_search_parser", "cmd_duplicates", "cmd_search", "duplicates_lines"]


def add_duplicates_parser(sub) -> None:
    from mmcurate.groups import GroupParams  # lazy: start-up

    d = GroupParams()
    p = sub.add_parser("duplicates", help="find exact / near duplicates and boilerplate captions "
                                          "(PROJECT/duplicates.parquet)")
    p.add_argument("project", type=Path)
    p.add_argument("--image-threshold", type=float, default=d.image_threshold,
                   help=f"image cosine of a near duplicate (default {d.image_threshold})")
    p.add_argument("--caption-threshold", type=float, default=d.caption_threshold,
                   help=f"caption cosine of a near duplicate (default {d.caption_threshold})")
    p.add_argument("--near", choices=["both", "image", "caption", "none"], default=d.near,
                   help="near duplicates need both vectors near (default), the image only, the caption only")
    p.add_argument("--k", type=int, default=d.k, help=f"neighbours searched per pair (default {d.k})")
    p.add_argument("--boilerplate-threshold", type=float, default=d.boilerplate_threshold,
                   help=f"caption cosine joining boilerplate captions (default {d.boilerplate_threshold})")
    p.add_argument("--boilerplate-min-size", type=int, default=d.boilerplate_min_size,
                   help=f"pairs a caption must be on to be boilerplate (default {d.boilerplate_min_size})")
    p.add_argument("--verify", choices=["auto", "pixels", "none"], default=d.verify,
                   help="confirm near pairs by their images' pixels: auto (default) = when the project "
                        "has image files, pixels = always, none = vectors only")
    p.add_argument("--pixel-threshold", type=float, default=d.pixel_threshold,
                   help=f"largest RMS pixel difference (0-1) of two confirmed copies "
                        f"(default {d.pixel_threshold})")
    p.add_argument("--candidate-threshold", type=float, default=d.candidate_threshold,
                   help=f"with the pixel check, the image cosine that proposes a pair (the lower of it "
                        f"and --image-threshold; captions keep --caption-threshold or equal text; "
                        f"default {d.candidate_threshold})")
    p.add_argument("--boilerplate-text-overlap", type=float, default=d.boilerplate_text_overlap,
                   help=f"share of the shorter caption's words the longer one must hold for near "
                        f"captions to join one boilerplate caption (0: vectors alone; "
                        f"default {d.boilerplate_text_overlap})")
    p.add_argument("--no-exact", action="store_true", help="skip hashing the image files")
    p.add_argument("--split", nargs="+", metavar="PAIR_ID",
                   help="take these pairs out of their duplicate groups (no search)")
    p.add_argument("--reject-boilerplate", type=int, metavar="GROUP_ID",
                   help="reject every pair of this boilerplate group (no search)")
    p.add_argument("--reviewer", default=None, help="with --reject-boilerplate")
    p.add_argument("--show", type=int, default=5, help="groups of each kind to print")
    p.add_argument("--no-progress", action="store_true")


def cmd_duplicates(args) -> int:
    from mmcurate.project import open_project  # lazy: start-up

    proj = open_project(args.project)
    if args.split:
        table = proj.split_group(args.split)
        print(f"took {len(args.split)} pairs out of their groups; {table['group_id'].nunique()} groups left")
        return 0
    if args.reject_boilerplate is not None:
        n = proj.reject_boilerplate(args.reject_boilerplate, reviewer=args.reviewer)
        print(f"boilerplate group {args.reject_boilerplate}: {n} pairs rejected")
        return 0
    groups = proj.duplicates(image_threshold=args.image_threshold, caption_threshold=args.caption_threshold,
                             near=args.near, k=args.k, boilerplate_threshold=args.boilerplate_threshold,
                             boilerplate_min_size=args.boilerplate_min_size, exact=not args.no_exact,
                             verify=args.verify, pixel_threshold=args.pixel_threshold,
                             candidate_threshold=args.candidate_threshold,
                             boilerplate_text_overlap=args.boilerplate_text_overlap,
                             progress=not args.no_progress)
    print("\n".join(duplicates_lines(proj, groups, args.show)))
    return 0


def duplicates_lines(proj: ProjectFiles, groups: pd.DataFrame, show: int) -> list[str]:
    """Counts by kind and the largest groups of each kind, for a person."""
    lines = [f"{proj.duplicates_path}: {groups['group_id'].nunique()} groups, "
             f"{groups['pair_id'].nunique()} pairs"]
    captions = proj.pairs.set_index("pair_id")["caption"]
    for kind, part in groups.groupby("kind", sort=False):
        sizes = part.groupby("group_id").size().sort_values(ascending=False, kind="stable")
        lines.append(f"  {kind}: {len(sizes)} groups, {len(part)} pairs")
        for gid, size in sizes.head(show).items():
            first = part.loc[part["group_id"] == gid, "pair_id"].iloc[0]
            lines.append(f"    group {gid}: {size} pairs, e.g. {first} {str(captions.get(first, ''))[:60]!r}")
    if groups.empty:
        lines.append("  none found")
    lines.append(f"next: mmcurate select {proj.root} --budget 40 (one pair per group is queued)")
    return lines


def add_search_parser(sub) -> None:
    p = sub.add_parser("search", help="the pairs nearest to a text query, an image or a pair")
    p.add_argument("project", type=Path)
    p.add_argument("query", nargs="?", help="text query (encoded with the project's model)")
    p.add_argument("--image", type=Path, help="an example image file instead of text")
    p.add_argument("--pair-id", help="an example pair of the project instead of text")
    p.add_argument("--on", choices=["image", "caption"], default="image",
                   help="compare with the pool's images (default) or captions")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", type=Path, help="write every row (.csv or .parquet)")


def cmd_search(args) -> int:
    from mmcurate.project import open_project  # lazy: start-up

    proj = open_project(args.project)
    found = proj.search(text=args.query, image=args.image, pair_id=args.pair_id, k=args.k, on=args.on)
    if args.out:
        found.to_parquet(args.out) if args.out.suffix == ".parquet" else found.to_csv(args.out, index=False)
    for r in found.itertuples():
        print(f"{r.rank:>4}  {r.similarity:.4f}  {r.pair_id}  {str(r.caption)[:70]}")
    if found.empty:
        print("no pairs")
    return 0
