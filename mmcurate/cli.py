"""Command-line interface: a thin layer over the library (``main(argv=None) -> int``).

Every command builds plain arguments and calls a library function; nothing here holds logic a
notebook could not reach.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmcurate import __version__
from mmcurate.data import Columns
from mmcurate.data.formats import format_names
from mmcurate.exceptions import MmcurateError, ModelNotAvailableError
from mmcurate.learn import DEFAULT_STRATEGY, EXPLORE, TARGET_NOISE
from mmcurate.plugins import ENV_VAR, load_plugins, plugin_specs
from mmcurate.select import SELECTORS

if TYPE_CHECKING:
    from mmcurate.project.files import ProjectFiles

__all__ = ["main"]


def _add_init(sub) -> None:
    p = sub.add_parser("init", help="create a project from a pairs source or an embedding folder")
    p.add_argument("project", type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="CSV/TSV/JSONL/Parquet file (image paths or image bytes), image "
                                     "folder with .txt captions, WebDataset .tar shard(s), an "
                                     "img2dataset output folder, or a Hugging Face save_to_disk folder")
    src.add_argument("--embeddings", help="clip-retrieval folder (img_emb/, text_emb/, metadata/)")
    p.add_argument("--image-root", help="folder image paths are relative to (default: the file's folder; "
                                        "with --embeddings: the folder the metadata's relative "
                                        "image_path values are relative to)")
    p.add_argument("--format", dest="fmt", choices=format_names(),
                   help="override format detection (formats added by a --plugin included)")
    p.add_argument("--id-column", default=Columns.id)
    p.add_argument("--image-column", default=Columns.image)
    p.add_argument("--caption-column", default=Columns.caption)
    p.add_argument("--model", default=None, help="open_clip model name, local-dir:DIR or hf-hub:ORG/NAME "
                                                 "(default ViT-B-32)")
    p.add_argument("--pretrained", default=None, help="pretrained tag or weights file "
                                                      "(default laion2b_s34b_b79k)")
    p.add_argument("--no-check-images", action="store_true", help="skip checking every image")
    p.add_argument("--full-check-images", action="store_true",
                   help="decode every image fully (default: header and structure only; embed "
                        "reports images that fail to decode)")
    p.add_argument("--force", action="store_true", help="replace an existing project")


def _add_embed(sub) -> None:
    p = sub.add_parser("embed", help="embed every pair not embedded yet (resumable)")
    p.add_argument("project", type=Path)
    p.add_argument("--batch-size", type=int, default=None,
                   help="pairs per batch (default 32 on CPU, 256 on CUDA)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding worker processes (default: sized to the machine)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA if present, else CPU) | cpu | cuda | cuda:N | mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="auto: bf16/fp16 autocast on CUDA, fp32 elsewhere")
    p.add_argument("--decode", default="cpu", choices=["cpu", "gpu"],
                   help="gpu: decode JPEGs with nvJPEG on the GPU (torchvision.io.decode_jpeg)")
    p.add_argument("--full-decode", action="store_true",
                   help="decode JPEGs at full size (default: the smallest scale covering the model input)")
    p.add_argument("--model", default=None, help="switch the project's model (saved in project.json): "
                                                 "open_clip name, local-dir:DIR or hf-hub:ORG/NAME")
    p.add_argument("--pretrained", default=None, help="with --model: pretrained tag or weights file")
    p.add_argument("--reembed", action="store_true", help="discard vectors of a different model")
    p.add_argument("--allow-download", action="store_true",
                   help="permit fetching weights from the Hugging Face hub")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--address", default=None, help="Ray cluster (auto | ray://HOST:PORT); "
                                                   "default: start a local Ray")
    p.add_argument("--num-workers", type=int, default=2, help="Ray encoder actors")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="Ray: GPUs per encoder actor (the actors run the model on their GPU)")
    p.add_argument("--no-progress", action="store_true")


def _add_loop(sub) -> None:
    p = sub.add_parser("status", help="what the project holds")
    p.add_argument("project", type=Path)
    p.add_argument("--json", action="store_true")
    sub.add_parser("strategies", help="list the query strategies and diversity modes")
    p = sub.add_parser("rank", help="score every pair with one or more strategies")
    p.add_argument("project", type=Path)
    p.add_argument("--strategy", nargs="+", default=[DEFAULT_STRATEGY],
                   help=f"query strategies (mmcurate strategies); default {DEFAULT_STRATEGY}, as select")
    p.add_argument("--out", type=Path, help=".csv or .parquet")
    p.add_argument("--k", type=int, default=10, help="neighbours per pair")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=10, help="rows to print")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: score with Ray tasks over shards (pip install 'mmcurate[ray]')")
    p.add_argument("--address", default=None, help="Ray cluster (auto | ray://HOST:PORT); "
                   "default: start a local Ray")
    p = sub.add_parser("select", help="choose the next review batch and save it as a round")
    p.add_argument("project", type=Path)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--strategy", default=DEFAULT_STRATEGY,
                   help="query strategy (mmcurate strategies); default p_misaligned: the current model's "
                        "P(misaligned), which finds the most noise per label")
    p.add_argument("--diversity", default="none",
                   help=" | ".join(name for name, _ in SELECTORS.describe()) + " (mmcurate strategies)")
    p.add_argument("--explore", type=float, default=EXPLORE,
                   help=f"share of the batch drawn at random from the rest of the pool (default "
                        f"{EXPLORE}); it keeps the learned model honest and estimates the noise left")
    p.add_argument("--balance", choices=["none", "categories"], default="none",
                   help="categories: every value of the pairs' `category` column gets a share")
    p.add_argument("--balance-mode", choices=["uniform", "proportional"], default="uniform",
                   help="uniform: equal shares; proportional: by candidates, at least 1 each")
    p.add_argument("--exclude", type=Path, default=None,
                   help="a file of pair ids never to select (one per line, or a CSV/Parquet with a pair_id "
                        "column): e.g. a held-out evaluation set")
    p.add_argument("--query", default=None,
                   help="focus the batch on a concept: pairs whose images match this text come first "
                        "(encoded with the project's model; the explored share stays random)")
    p.add_argument("--allow-undecided", action="store_true",
                   help="open a new round even though the latest one still has undecided pairs "
                        "(by default select stops and says how many)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("review", help="review a round in the browser (127.0.0.1)")
    p.add_argument("project", type=Path)
    p.add_argument("--round", type=int, default=None)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--reviewer", default=None)
    p.add_argument("--no-browser", action="store_true")
    p = sub.add_parser("batch", help="export a round for outside annotators")
    bsub = p.add_subparsers(dest="batch_command", required=True)
    b = bsub.add_parser("export", help="write a round's batch as CSV or JSONL")
    b.add_argument("project", type=Path)
    b.add_argument("--out", type=Path, required=True, help="file (.csv/.jsonl) or folder")
    b.add_argument("--format", dest="fmt", default="auto",
                   choices=["auto", "csv", "jsonl", "label-studio", "fiftyone"],
                   help="auto = by the --out suffix; label-studio/fiftyone write a folder")
    b.add_argument("--round", type=int, default=None)
    b.add_argument("--thumbnails", action="store_true", help="write thumbnails next to the file")
    b.add_argument("--document-root", type=Path, default=None,
                   help="label-studio: your Label Studio's LOCAL_FILES_DOCUMENT_ROOT (default: the parent "
                        "of the image folder); image URLs are paths below it")
    p = sub.add_parser("label", help="import decisions (pair_id, decision, caption, reviewer)")
    p.add_argument("project", type=Path)
    p.add_argument("--import", dest="import_path", type=Path, required=True)
    p.add_argument("--from", dest="source_format", default="table",
                   choices=["table", "label-studio", "fiftyone"],
                   help="table = our CSV/JSONL; or a Label Studio JSON / FiftyOne export")
    p.add_argument("--round", type=int, default=None)
    p = sub.add_parser("train", help="fit a new model on every decision so far (used only if it wins on "
                                        "held-back labels)")
    p.add_argument("project", type=Path)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", action="store_true",
                   help="also fit the projection head (used only if its model wins on held-back labels; "
                        "off by default: in the learning benchmark it cost recall at 4x the time)")
    p = sub.add_parser("export", help="write the curated pairs and a report")
    p.add_argument("project", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--format", dest="fmt", default="csv", choices=["csv", "jsonl", "parquet", "webdataset"])
    p.add_argument("--image-format", choices=["original", "jpg"], default="original",
                   help="webdataset: keep each image's bytes and extension (default), or re-encode "
                        "every image as <key>.jpg so that to_tuple('jpg', 'txt') reads every sample")
    p.add_argument("--threshold", type=float, default=None,
                   help="keep unreviewed pairs with P(aligned) >= this (default: chosen from the labels, "
                        "see --target-noise)")
    p.add_argument("--target-noise", type=float, default=TARGET_NOISE,
                   help="the default threshold keeps unreviewed pairs down to an estimated noise rate "
                        f"of this among them (default {TARGET_NOISE})")
    p.add_argument("--reviewed-only", action="store_true",
                   help="write only the reviewed pairs (no verdict for the others)")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="keep every member of a duplicate group (default: the best pair per group; "
                        "the others are listed in dropped with their reason)")


def _add_groups(sub) -> None:
    from mmcurate.commands_groups import add_duplicates_parser, add_search_parser  # lazy: start-up

    add_duplicates_parser(sub)
    add_search_parser(sub)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="build the sample data and run every stage on it")
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument("--n-scenes", type=int, default=400)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--no-tuxpaint", action="store_true")
    p.add_argument("--allow-download", action="store_true")


def _threshold_arg(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a score (a number), got {text!r}") from err


def _stream_options(p) -> None:
    p.add_argument("--strategy", default="disagreement", help="scores the arrivals (mmcurate strategies)")
    p.add_argument("--threshold", type=_threshold_arg, default="auto",
                   help="auto = adaptive, keeps the review rate at --rate; a number = fixed score threshold")
    p.add_argument("--rate", type=float, default=0.05, help="target review rate for --threshold auto")
    p.add_argument("--image-root", help="folder the arriving image paths are relative to "
                                        "(default: the pairs file's folder)")
    p.add_argument("--k", type=int, default=10, help="neighbours per pair")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-check-images", action="store_true", help="skip decoding every arriving image")


def _add_stream(sub) -> None:
    p = sub.add_parser("add", help="add arriving pairs: validate, embed, score, queue for review or pass")
    p.add_argument("project", type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", type=Path, help="pairs file or folder (image projects)")
    src.add_argument("--embeddings", type=Path, help="clip-retrieval folder (imported-embedding projects)")
    p.add_argument("--format", dest="fmt", choices=format_names(),
                   help="override format detection of --pairs")
    _stream_options(p)
    p = sub.add_parser("stream", help="watch a folder and add each complete batch once")
    p.add_argument("project", type=Path)
    p.add_argument("--watch", type=Path, required=True, help="folder new batches arrive in")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks")
    p.add_argument("--once", action="store_true", help="add what is complete now, then exit")
    _stream_options(p)


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="label-efficiency benchmark: an oracle replays the review loop "
                                        "on data with swapped captions")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", help="pair source (CSV/JSONL/Parquet/folder) embedded with --model")
    src.add_argument("--embeddings", help="clip-retrieval folder (img_emb/, text_emb/, metadata/)")
    src.add_argument("--scenes", type=int, help="N generated scenes embedded with the tiny stand-in "
                                                "model (a toy, not CLIP)")
    p.add_argument("--image-root", help="folder --pairs image paths are relative to")
    p.add_argument("--model", default=None, help="for --pairs: open_clip name, local-dir:DIR or "
                                                 "hf-hub:ORG/NAME (default ViT-B-32)")
    p.add_argument("--pretrained", default=None, help="for --pairs: pretrained tag or weights file")
    p.add_argument("--noise", type=float, default=0.2, help="fraction of captions swapped")
    p.add_argument("--noise-kind", default="random", choices=["random", "same-category"])
    p.add_argument("--strategies", default="random,clip-score,margin", help="comma-separated")
    p.add_argument("--diversity", default="none", help="comma-separated: none, cluster, coreset, sample")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--budget", type=int, default=20, help="labels per round")
    p.add_argument("--seeds", type=int, default=5, help="runs per strategy (seeds 0..N-1)")
    p.add_argument("--holdout", type=float, default=0.1, help="fraction held out to measure the head")
    p.add_argument("--k", type=int, default=10, help="neighbours per pair")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the caption swaps")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--mode", default="pool", choices=["pool", "stream", "both"],
                   help="pool: every pair available each round; stream: pairs arrive in --rounds "
                        "batches and are queued or passed on arrival (mmcurate add); both: compare")
    p.add_argument("--note", default=None, help="a line about the data for summary.md")
    p.add_argument("--out", type=Path, required=True, help="results folder (re-run to resume)")
    p.add_argument("--no-progress", action="store_true")


_DESCRIPTION = "Curate image-caption datasets: CLIP embeddings, a ranked review queue, active learning."
_EPILOG = """\
one round, start to finish:
  mmcurate init PROJECT --pairs captions.csv --image-root images/
  mmcurate embed PROJECT
  mmcurate duplicates PROJECT                optional: copies and boilerplate get one decision per group
  mmcurate select PROJECT --budget 40        then  mmcurate review PROJECT
  mmcurate train PROJECT                     then  select again: it ranks with what was learned
  mmcurate export PROJECT --out curated/
no data yet? mmcurate demo. Every command: mmcurate COMMAND --help."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmcurate", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help=f"import a module (or .py file) that registers strategies, selectors or "
                             f"formats, before the command (repeatable; also {ENV_VAR}=a,b)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_init(sub)
    _add_embed(sub)
    _add_loop(sub)
    _add_groups(sub)
    _add_demo(sub)
    _add_stream(sub)
    _add_simulate(sub)
    from mmcurate.commands_maintenance import add_maintenance_parsers  # lazy: start-up

    add_maintenance_parsers(sub)
    return parser


def _version() -> str:
    return f"mmcurate {__version__}"


def _check_mode(args) -> bool | str:
    return False if args.no_check_images else ("full" if args.full_check_images else True)


def _missing_weights(model) -> str | None:
    """Why ``model``'s weights cannot be loaded here, or None when they can (no loading, no network)."""
    from mmcurate.embed.model import resolve_model  # lazy: start-up

    try:
        resolve_model(model)
    except ModelNotAvailableError as err:
        return err.reason
    return None


def _image_root_hint(proj: ProjectFiles, args) -> None:
    """Most rows rejected because their image is not under the image root: say which root was
    used and how to give another."""
    if proj.kind != "images" or not len(proj.rejects):
        return
    missing = proj.rejects["reason"].isin(["missing_file", "outside_root"])
    if missing.sum() * 2 <= len(proj.rejects) + len(proj.pairs):
        return
    how = "" if args.image_root else " (by default the pairs file's folder)"
    print(f"note: {int(missing.sum())} of {len(proj.rejects) + len(proj.pairs)} rows name an image "
          f"that is not under the image root {proj.image_root}{how}, e.g. "
          f"{proj.rejects.loc[missing, 'detail'].iloc[0]}; give the folder the image paths are "
          f"relative to with --image-root FOLDER (and --force)")


def _cmd_init(args) -> int:
    from mmcurate.embed.model import ModelSpec, supply_weights_help  # lazy: start-up
    from mmcurate.project import create_project  # lazy: start-up

    model = ModelSpec.from_names(args.model, args.pretrained) if args.pairs else None
    proj = create_project(  # the source's columns are checked before open_clip is imported
        args.project, pairs=args.pairs, embeddings=args.embeddings, image_root=args.image_root,
        model=model, fmt=args.fmt, check_images=_check_mode(args), overwrite=args.force,
        columns={"id": args.id_column, "image": args.image_column, "caption": args.caption_column},
    )
    print(f"created {proj.root}: {len(proj.pairs)} pairs, {len(proj.rejects)} rejected"
          + (f" (rows and reasons: {proj.rejects_path})" if len(proj.rejects) else ""))
    missing = _missing_weights(model) if model is not None else None
    _image_root_hint(proj, args)
    renamed = proj.config.get("renamed_columns") or {}
    if renamed:
        print("note: source column(s) named like mmcurate's own were renamed: "
              + ", ".join(f"{old} -> {new}" for old, new in renamed.items()))
    if not len(proj.pairs):
        print(f"no pair was accepted: fix the rows listed in {proj.rejects_path}, then run "
              f"init again with --force")
    elif proj.kind == "external":
        if proj.image_root is None and proj.pairs["image"].astype(bool).any():
            print("note: the metadata's image_path values are relative: give --image-root FOLDER "
                  "(with --force) to show the images in reviews and exports")
        print(f"embeddings imported; next: mmcurate select {proj.root} --budget 40")
    elif missing:
        print(f"weights missing: {missing}")
        print(f"The project is saved; it needs weights before `mmcurate embed {proj.root}`.")
        print(supply_weights_help(str(proj.root)))
    else:
        print(f"model {model.model if model else None}: weights found; next: mmcurate embed {proj.root}")
    return 0


def _cmd_embed(args) -> int:
    from mmcurate.commands import open_settled  # lazy: start-up

    proj = open_settled(args.project)
    if args.model or args.pretrained:
        from mmcurate.embed.model import ModelSpec  # lazy: start-up

        current = proj.model_spec or ModelSpec()
        spec = ModelSpec.from_names(args.model or current.model,
                                    args.pretrained or (None if args.model else current.pretrained))
        if proj.set_model(spec, reembed=args.reembed, allow_download=args.allow_download):
            print(f"model switched to {spec.model}" + (f" / {spec.pretrained}" if spec.pretrained else "")
                  + " (saved in project.json)")
    if args.engine == "ray":
        from mmcurate.engine.ray_embed import embed_with_ray  # lazy: start-up

        r = embed_with_ray(proj, address=args.address, num_workers=args.num_workers,
                           batch_size=args.batch_size, reembed=args.reembed, device=args.device,
                           precision=args.precision, gpus_per_worker=args.gpus_per_worker)
        print(f"embedded {r.n_embedded} pairs on Ray ({r.n_already} already done, "
              f"{r.n_failed} failed) in {r.seconds:.1f} s")
        return 0
    report = proj.embed(batch_size=args.batch_size, num_workers=args.workers, reembed=args.reembed,
                        allow_download=args.allow_download, progress=not args.no_progress,
                        device=args.device, precision=args.precision, decode=args.decode,
                        reduced_decode=not args.full_decode)
    print(f"embedded {report.n_embedded} pairs ({report.n_already} already done, {report.n_failed} "
          f"failed) in {report.seconds:.1f} s ({report.pairs_per_second:.1f} pairs/s)")
    if report.n_failed:
        print(f"{report.n_failed} pairs could not be embedded and are set aside (listed in "
              f"{proj.rejects_path} and {proj.embed_failures_path}); fix their images "
              f"and add them again with `mmcurate add`")
    return 0


def _cmd_status(args) -> int:
    from mmcurate.commands import open_settled  # lazy: start-up

    status = open_settled(args.project).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        from mmcurate.commands import status_lines  # lazy: start-up

        print("\n".join(status_lines(status)))
    return 0


def _cmd_duplicates(args) -> int:
    from mmcurate.commands_groups import cmd_duplicates  # lazy: start-up

    return cmd_duplicates(args)


def _cmd_search(args) -> int:
    from mmcurate.commands_groups import cmd_search  # lazy: start-up

    return cmd_search(args)


def _dispatch(args) -> int:
    from mmcurate import commands, commands_maintenance  # lazy: start-up

    handlers = {
        "init": _cmd_init, "embed": _cmd_embed, "status": _cmd_status,
        "strategies": commands.cmd_strategies, "rank": commands.cmd_rank,
        "select": commands.cmd_select, "review": commands.cmd_review, "batch": commands.cmd_batch,
        "label": commands.cmd_label, "train": commands.cmd_train, "export": commands.cmd_export,
        "demo": commands.cmd_demo, "add": commands.cmd_add, "stream": commands.cmd_stream,
        "simulate": commands.cmd_simulate, "duplicates": _cmd_duplicates,
        "search": _cmd_search, "check": commands_maintenance.cmd_check,
        "backup": commands_maintenance.cmd_backup,
    }
    return handlers[args.command](args)


def _describe_error(err: BaseException) -> str:
    """The one-line message for an error the CLI reports instead of a traceback."""
    if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
        return (f"the labels database is locked by another process ({err}); wait for the other "
                f"mmcurate command (or program holding labels.sqlite) to finish, then re-run")
    if isinstance(err, sqlite3.Error):
        return f"the labels database failed: {err}; if labels.sqlite is damaged, restore it from a copy"
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.errno is not None:
        where = f" ({err.filename})" if err.filename else ""
        hint = ("; free some disk space and re-run (finished work is kept)"
                if err.errno in (errno.ENOSPC, errno.EDQUOT) else "")
        return f"{err.strerror or err}{where}{hint}"
    return str(err)


def _error_text(err: Exception, args) -> str:
    """The message, with a missing model's fixes given as commands of the command that failed."""
    if not isinstance(err, ModelNotAvailableError) or not err.how_to:
        return _describe_error(err)
    from mmcurate.embed.model import format_fixes, supply_weights_help  # lazy: start-up

    if args.command == "simulate":
        fixes = [("mmcurate simulate --pairs FILE --model ViT-B-32 --pretrained FILE --out DIR",
                  "a local weights file"),
                 ("mmcurate simulate --pairs FILE --model local-dir:DIR --out DIR",
                  "a folder: open_clip_config.json + weights"),
                 ("mmcurate simulate --embeddings DIR --out DIR", "or existing embeddings"),
                 ("mmcurate simulate --scenes 400 --out DIR", "offline: the tiny stand-in model (not CLIP)")]
        return f"{err.reason}\n{format_fixes('Supply weights with one of:', fixes)}"
    project = getattr(args, "project", None)
    return f"{err.reason}\n{supply_weights_help(str(project) if project else 'PROJECT')}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 2 a user-facing error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        load_plugins(plugin_specs(argv))  # first: a plugin's names are valid choices below
    except ValueError as err:
        if os.environ.get("MMCURATE_DEBUG"):
            raise
        print(f"mmcurate: error: {err}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (MmcurateError, ValueError, OSError, sqlite3.Error) as err:
        if os.environ.get("MMCURATE_DEBUG"):
            raise
        print(f"mmcurate: error: {_error_text(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmcurate: interrupted; finished work is saved, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
