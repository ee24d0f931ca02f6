"""CLI handlers for the active-learning loop (argparse namespace in, library calls, text out)."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd

from mmcurate._fileio import atomic_write_frame, atomic_write_json
from mmcurate.demo import run_demo
from mmcurate.embed.model import ModelSpec
from mmcurate.exceptions import ProjectLockedError, UndecidedRoundError
from mmcurate.export import export_curated, model_display_name
from mmcurate.labels.decision_files import LabelsFileError
from mmcurate.project import open_project as _open_project
from mmcurate.project.files import ProjectFiles
from mmcurate.rank import STRATEGIES
from mmcurate.results import reviewer_words
from mmcurate.review import interchange
from mmcurate.review.batch import export_batch
from mmcurate.review.project_app import serve_project
from mmcurate.rounds import import_labels, rank_project, select_batch, train_project_head
from mmcurate.rounds.status import undecided_in_latest_round
from mmcurate.select import SELECTORS
from mmcurate.simulate import run_simulation, summarize
from mmcurate.stream import add_pairs, stream_state, watch
from mmcurate.stream.add import has_pending, recover_stream

__all__ = [
    "cmd_add",
    "cmd_batch",
    "cmd_demo",
    "cmd_export",
    "cmd_label",
    "cmd_rank",
    "cmd_review",
    "cmd_select",
    "cmd_simulate",
    "cmd_strategies",
    "cmd_stream",
    "cmd_train",
    "open_settled",
    "status_lines",
]


def open_settled(root):
    """Open a project after finishing (or rolling back) an ``add`` that was interrupted: every
    command settles it first, so no later command works on a half-added batch."""
    proj = _open_project(root)
    if not has_pending(proj):
        return proj
    try:
        finished = recover_stream(proj)
    except ProjectLockedError:  # the add is still running in another process: its journal is live
        return proj
    if finished is not None:
        print(f"finished an interrupted add: batch {finished.batch_id} "
              f"({len(finished)} pairs, round {finished.round})", file=sys.stderr)
    else:
        print("rolled back an interrupted add that had not committed (run it again)", file=sys.stderr)
    proj.refresh()
    return proj


open_project = open_settled


def _print_table(df: pd.DataFrame, n: int) -> None:
    with pd.option_context("display.max_colwidth", 60, "display.width", 160):
        print(df.head(n).to_string(index=False))


def _model_words(model: dict) -> str:
    if model.get("kind") == "external":
        return f"imported embeddings ({model.get('dim')}-d)"
    name = model_display_name({"model": model.get("name"), "pretrained": model.get("pretrained")})
    return f"{name}, {model['dim']}-d" if model.get("dim") else f"{name} (not embedded yet)"


def _ranking_words(model: dict) -> str:
    if model.get("latest") is None:
        return "the zero-label prior (no model trained yet)"
    words = (f"model {model['in_use']}" + (" with the projection head" if model.get("uses_head") else "")
             if model.get("in_use") else "the zero-label prior")
    if model.get("latest") != model.get("in_use"):
        words += f"; model {model['latest']} was not used ({model.get('latest_reason')})"
    elif model.get("latest_reason"):
        words += f" ({model['latest_reason']})"
    return words


def _next_step(status: dict) -> str:
    root = status["project"]
    if status["embedded"] < status["pairs"] - status["embed_failures"]:
        return f"mmcurate embed {root}"
    if not status.get("rounds"):
        return f"mmcurate select {root} --budget 40"
    if status["model"].get("labels_not_yet_used"):
        return f"mmcurate train {root}"
    return f"mmcurate select {root} --budget 40   or   mmcurate export {root} --out curated/"


def status_lines(status: dict) -> list[str]:
    """``Project.status()`` as short aligned lines for a person (``--json`` prints it whole)."""
    model = status.get("model") or {}
    rows = [("project", f"{status['project']} ({status['kind']})"),
            ("pairs", f"{status['pairs']} ({status['rejected']} rejected at init)"),
            ("embedded", f"{status['embedded']} of {status['pairs']}"
             + (f" ({status['embed_failures']} unreadable images)" if status["embed_failures"] else "")),
            ("model", _model_words(model))]
    if model.get("weights_sha256"):
        rows.append(("weights", f"{model.get('weights_path')} (sha256 {model['weights_sha256'][:12]})"))
    if "rounds" in status:
        dec = status["decisions"]
        rows.append(("rounds", str(status["rounds"])))
        rows.append(("decisions", f"{dec['total']}: {dec['accept']} accepted, {dec['reject']} rejected, "
                     f"{dec['fix']} fixed" + (f"; {status['conflicts']} changed later"
                                               if status["conflicts"] else "")))
        rows.append(("ranking with", _ranking_words(model)))
        reviewer = status.get("reviewer") or {}
        if reviewer.get("n"):
            rows.append(("reviewer", reviewer_words(reviewer)))
        if model.get("labels_not_yet_used"):
            rows.append(("not yet used", f"{model['labels_not_yet_used']} decisions (train to use them)"))
        noise = [f"{name} {status[key]:.1%}" for key, name in (("reviewed_noise_rate", "among reviewed"),
                                                               ("estimated_noise_rate", "estimated overall"))
                 if status.get(key) is not None]
        if noise:
            rows.append(("noise", ", ".join(noise)))
        est = status.get("estimated_noise") or {}
        if status.get("estimated_noise_rate") is not None and est.get("how"):
            low, high = est.get("low"), est.get("high")
            sure = (f"95% interval {low:.1%}-{high:.1%}" if low is not None and high is not None
                    and low == low and high == high else "no interval")
            rows += [("", line) for line in textwrap.wrap(f"estimate: {est['how']} ({sure})", 90)]
    if status.get("duplicates"):
        rows.append(("groups", _groups_words(status["duplicates"])))
    rows.append(("next", _next_step(status)))
    width = max(len(k) for k, _ in rows)
    return [f"{k:<{width}}  {v}" for k, v in rows]


def _groups_words(groups: dict) -> str:
    counts = ", ".join(f"{c['groups']} {kind} ({c['pairs']} pairs)"
                       for kind, c in groups["counts"].items() if c.get("groups"))
    return (counts or "none found") + ("" if groups["current"] else
                                       "; stale (vectors changed): recomputed at next use")


def cmd_strategies(args) -> int:
    titles = {"find": "find the noise (review the likely-wrong pairs first; select's default is "
                      "p_misaligned)",
              "train": "train the filter (ask for the labels the model is least sure of: mostly clean "
                       "pairs near the boundary, so they find little noise)",
              "baseline": "baseline"}
    print("strategies (--strategy):")
    for objective, title in titles.items():
        print(f" {title}:")
        for strategy in STRATEGIES:
            if strategy.objective == objective:
                print(f"  {strategy.name:<18} {strategy.description}")
    print("diversity (--diversity):")
    for name, line in SELECTORS.describe():
        print(f"  {name:<18} {line}")
    return 0


def _write_table(df: pd.DataFrame, out: Path, provenance: dict) -> None:
    if out.suffix not in (".parquet", ".csv", ".tsv"):
        raise ValueError(f"--out must end in .csv, .tsv or .parquet, got {out.name}")
    atomic_write_frame(df, out)
    atomic_write_json(out.with_name(out.name + ".provenance.json"), provenance)


def cmd_rank(args) -> int:
    proj = open_project(args.project)
    ranking = rank_project(proj, args.strategy, k=args.k, random_state=args.seed, engine=args.engine,
                           address=args.address)
    ordered = ranking.review_order(proj.pairs[["pair_id", "caption"]])
    print("\n".join(ranking.headline()))
    if args.out:
        _write_table(ordered, args.out, ranking.provenance)
        print(f"wrote every row and column to {args.out} (+ .provenance.json)")
    print(ranking.top(ordered, args.top))
    print(f"next: mmcurate select {args.project} --budget 40")
    return 0


def _pair_id_file(path: Path, proj: ProjectFiles) -> set[str]:
    """Pair ids from a file: one per line, or a CSV/TSV/Parquet with a ``pair_id`` column."""
    if not path.is_file():
        raise ValueError(f"--exclude {path}: no such file (expected one pair id per line, or a CSV with a "
                         f"pair_id column)")
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix in (".csv", ".tsv"):
        table = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str,
                            keep_default_na=False)
    else:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        table = pd.DataFrame({"pair_id": [line for line in lines if line]})
    if "pair_id" not in table.columns:
        columns = ", ".join(map(str, table.columns))
        raise ValueError(f"--exclude {path}: no pair_id column (columns: {columns})")
    ids = set(table["pair_id"].astype(str))
    unknown = ids - set(proj.pairs["pair_id"])
    if unknown:
        raise ValueError(f"--exclude {path}: {len(unknown)} pair ids are not in the project, e.g. "
                         f"{sorted(unknown)[:3]}")
    return ids


def _check_positive(option: str, value: int) -> None:
    """Refuse a count option below 1, naming the option as the user typed it (the library's
    message would name its own argument)."""
    if value < 1:
        raise ValueError(f"{option} must be positive, got {value}")


def cmd_select(args) -> int:
    _check_positive("--budget", args.budget)
    proj = open_project(args.project)
    balance = None if args.balance == "none" else args.balance
    exclude = _pair_id_file(args.exclude, proj) if args.exclude is not None else None
    _check_latest_round_decided(proj, args)
    batch = select_batch(proj, budget=args.budget, strategy=args.strategy,
                         diversity=args.diversity, k=args.k, random_state=args.seed,
                         explore=args.explore, balance=balance, exclude=exclude,
                         balance_mode=args.balance_mode, query=getattr(args, "query", None))
    print(batch.summary())
    print(f"next: mmcurate review {args.project}   or   mmcurate batch export {args.project} --out "
          f"round{batch.round}.csv")
    return 0


def _check_latest_round_decided(proj: ProjectFiles, args) -> None:
    """Stop before opening a round while the latest one waits for decisions (unless asked to)."""
    waiting = undecided_in_latest_round(proj)
    if waiting is None:
        return
    round_id, n_open, n_items = waiting
    message = (f"round {round_id} still has {n_open} of {n_items} pairs undecided; decide them first "
               f"(mmcurate review {args.project} --round {round_id}, or mmcurate label {args.project} "
               f"--import FILE)")
    if not getattr(args, "allow_undecided", False):
        raise UndecidedRoundError(f"{message}, or pass --allow-undecided to open round {round_id + 1} "
                                  f"anyway.")
    print(f"warning: {message}; opening round {round_id + 1} anyway (--allow-undecided).",
          file=sys.stderr)


def cmd_review(args) -> int:
    serve_project(open_project(args.project), round_id=args.round, port=args.port,
                  reviewer=args.reviewer, open_browser=not args.no_browser)
    return 0


def cmd_batch(args) -> int:
    proj = open_project(args.project)
    if args.fmt == "label-studio":
        path = interchange.export_label_studio(proj, args.out, round_id=args.round,
                                               document_root=args.document_root)
        setup = json.loads((path.parent / "label_studio.json").read_text(encoding="utf-8"))
        print(f"wrote {path}, label_config.xml and label_studio.json. In Label Studio:")
        print(f"  1. start it with LOCAL_FILES_SERVING_ENABLED=true "
              f"LOCAL_FILES_DOCUMENT_ROOT={setup['LOCAL_FILES_DOCUMENT_ROOT']}")
        print("  2. create a project with label_config.xml as its labeling config")
        print(f"  3. add a Local Files source storage with path {setup['local_files_storage_path']} "
              f"(\"treat every file as a source\" off; do not sync it)")
        print("  4. import tasks.json; review; export JSON")
        print(f"then: mmcurate label {args.project} --from label-studio --import EXPORT.json")
        return 0
    if args.fmt == "fiftyone":
        path = interchange.export_fiftyone(proj, args.out, round_id=args.round)
        loader = path.parent / "load_fiftyone.py"
        print(f"wrote {path}, data/ and load_fiftyone.py; load it with: python -i {loader}")
        print("tag samples accept/reject/fix (or set `decision`, `fixed_caption`), export with "
              "dataset.export(export_dir=DIR, dataset_type=fo.types.CSVDataset, export_media=False, "
              "fields=['pair_id', 'decision', 'fixed_caption', 'tags'])")
        print(f"then: mmcurate label {args.project} --from fiftyone --import DIR/labels.csv")
        return 0
    out = args.out if args.fmt == "auto" else args.out.with_suffix(f".{args.fmt}")
    path = export_batch(proj, out, round_id=args.round, thumbnails=args.thumbnails)
    print(f"wrote {path}: one row per pair of the round.")
    print("fill in `decision` (accept | reject | fix; leave empty = not reviewed yet) and, for fix, the "
          "corrected `caption`.")
    if path.suffix.lower() == ".csv":
        print("in pandas, read `decision` as text (an empty column reads as float64 and refuses strings):")
        print(f"  df = pd.read_csv({str(path)!r}, dtype={{'decision': 'string', 'reviewer': 'string'}})")
        print("  df.loc[df['pair_id'] == 'ID', 'decision'] = 'reject'")
        print(f"  df.to_csv({str(path)!r}, index=False)")
    print(f"then: mmcurate label {args.project} --import {path}")
    return 0


def cmd_label(args) -> int:
    proj = open_project(args.project)
    if args.source_format == "table":
        report = import_labels(proj, args.import_path, round_id=args.round,
                               source_name=args.import_path.name)
        tool = None
    else:
        if args.source_format == "label-studio":
            tool = interchange.read_label_studio(args.import_path)
        else:
            tool = interchange.read_fiftyone(args.import_path)
        if tool.reviewer_ids_only:
            tool = tool.keep_known_reviewers(proj.ledger.decisions())
        try:
            report = import_labels(proj, tool.decisions, round_id=args.round, source_name=tool.source)
        except LabelsFileError as err:
            raise tool.name_rows(err, str(args.import_path)) from err
    print(f"{args.import_path}: {report.n_rows} rows")
    rows = [("new decisions", report.n_added, ""),
            ("unchanged", report.n_unchanged, "already in the ledger"),
            ("changed", report.n_conflicts, "a new decision for a pair decided before (latest wins)"),
            ("no decision yet", report.n_skipped, "decision empty or NaN: skipped, import again later")]
    for what, n, why in rows:
        print(f"  {n:>6}  {what:<16}{'  ' + why if why and n else ''}".rstrip())
    if tool is not None and tool.skipped:
        shown = ", ".join(tool.skipped[:10]) + (" ..." if len(tool.skipped) > 10 else "")
        print(f"  {len(tool.skipped):>6}  skipped in the tool  no decision recorded; review again: {shown}")
    if tool is not None and tool.reviewer_ids_only:
        print("  note: the export names reviewers by Label Studio user number; for their e-mails export "
              "with annotations__completed_by expanded (README: Interchange)")
    print(f"next: mmcurate train {args.project}")
    return 0


def cmd_train(args) -> int:
    from mmcurate.head import HeadConfig  # heavy: torch

    proj = open_project(args.project)
    config = HeadConfig(random_state=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    trained = train_project_head(proj, config=config, with_head=args.head or None)
    print(trained.summary())
    print(f"next: mmcurate select {args.project} --budget 40")
    return 0


def cmd_export(args) -> int:
    proj = open_project(args.project)
    threshold = None if args.reviewed_only else ("auto" if args.threshold is None else args.threshold)
    summary = export_curated(proj, args.out, fmt=args.fmt, threshold=threshold,
                             target_noise=args.target_noise, image_format=args.image_format,
                             keep_duplicates=getattr(args, "keep_duplicates", False))
    print(f"exported {summary.pairs} pairs of {proj.root} ({args.fmt})")
    print(summary.summary())
    print(f"next: open the report; less noise: another round (mmcurate select {args.project} --budget 40)")
    return 0


def cmd_demo(args) -> int:
    _check_positive("--budget", args.budget)
    run_demo(args.out, n_scenes=args.n_scenes, rounds=args.rounds, budget=args.budget,
             use_tuxpaint=not args.no_tuxpaint, allow_download=args.allow_download,
             stream=sys.stdout)
    return 0


def _stream_kwargs(args) -> dict:
    return {"strategy": args.strategy, "threshold": args.threshold, "rate": args.rate,
            "image_root": args.image_root, "k": args.k, "random_state": args.seed,
            "check_images": not args.no_check_images}


def cmd_add(args) -> int:
    proj = open_project(args.project)
    if args.embeddings is not None and proj.kind != "external":
        raise ValueError(f"{proj.root} embeds its own images; give the new pairs with --pairs FILE")
    if args.pairs is not None and proj.kind == "external":
        raise ValueError(f"{proj.root} was built from imported embeddings; give the new batch as an "
                         f"embedding folder with --embeddings DIR")
    added = add_pairs(proj, args.pairs or args.embeddings, fmt=args.fmt, **_stream_kwargs(args))
    print(added.summary())
    if added.round:
        print(f"next: mmcurate review {args.project} --round {added.round}")
    return 0


def cmd_stream(args) -> int:
    proj = open_project(args.project)
    stop = threading.Event()

    def on_interrupt(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("stopping after the current batch (Ctrl-C again to abort it; it is journalled)",
              file=sys.stderr)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_interrupt) if main_thread else None
    try:
        print(f"watching {args.watch} (poll {args.poll} s){'' if args.once else '; Ctrl-C stops'}")
        batches = watch(proj, args.watch, once=args.once, poll=args.poll, stop=stop, log=print,
                        **_stream_kwargs(args))
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    state = stream_state(proj)
    rate = state["realised_rate"]
    print(f"{len(batches)} batch(es) added now; {state['n_batches']} in all, {state['n_seen']} pairs "
          f"seen, {state['n_queued']} queued" + (f" (review rate {rate:.3f})" if rate is not None else ""))
    return 0


def cmd_simulate(args) -> int:
    model = ModelSpec.from_names(args.model, args.pretrained) if args.pairs else None
    metrics = run_simulation(
        args.out, pairs=args.pairs, embeddings=args.embeddings, scenes=args.scenes, model=model,
        image_root=args.image_root, progress=not args.no_progress,
        strategies=[s for s in args.strategies.split(",") if s.strip()],
        diversity=[d for d in args.diversity.split(",") if d.strip()], rounds=args.rounds,
        budget=args.budget, seeds=args.seeds, holdout=args.holdout, noise=args.noise,
        noise_kind=args.noise_kind, k=args.k, data_seed=args.data_seed, jobs=args.jobs, note=args.note,
        mode=args.mode)
    summary = summarize(metrics)
    cols = ["strategy", "diversity", "aulc_recall_mean", "recall_at_mean", "auroc_at_mean",
            "labels_to_recall_mean"]
    _print_table(summary.sort_values("aulc_recall_mean", ascending=False)[cols], len(summary))
    print(f"wrote {args.out / 'metrics.csv'}, {args.out / 'summary.md'} and plots in {args.out}")
    return 0
