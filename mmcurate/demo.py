"""`mmcurate demo`: build the sample data, then run every stage on it and say what happened.

1. Sample data in ``datasets/`` (the repository's folder when run from a checkout, else
   ``OUT/datasets``): generated scenes with 20% of captions swapped (the truth kept aside in
   ``truth.csv``), and Debian's tuxpaint photo set when ``tuxpaint-stamps-default`` is installed.
2. A model: real CLIP weights when they are on this machine; otherwise the project's tiny stand-in
   model trained once into the cache. The tiny model is *not* CLIP: it knows generated shapes only.
3. The loop on the scenes: init → embed → rank (zero labels) → rounds of select → review by a
   **simulated reviewer** that answers from the known truth, imported through the same labels
   file path a person would use → train the head → rank again; then export and a report.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import pandas as pd

from mmcurate._fileio import atomic_write_frame
from mmcurate.data.tuxpaint import STAMPS_ROOT, build_tuxpaint_pairs
from mmcurate.embed.model import ModelSpec, resolve_model
from mmcurate.embed.tiny import get_tiny_clip
from mmcurate.exceptions import ModelNotAvailableError
from mmcurate.export import export_curated
from mmcurate.noise import inject_noise
from mmcurate.project import create_project
from mmcurate.rounds import import_labels, rank_project, select_batch, train_project_head
from mmcurate.signals.metrics import auroc
from mmcurate.synth import write_scene_dataset

if TYPE_CHECKING:
    from mmcurate.embed.model import ModelSpec
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles

__all__ = ["prepare_scene_dataset", "run_demo"]

NOISE_RATE = 0.2


def _datasets_dir(out: Path) -> Path:
    here = Path.cwd() / "datasets"
    return here if here.is_dir() and (Path.cwd() / "pyproject.toml").is_file() else out / "datasets"


def prepare_scene_dataset(folder: Path, *, n: int = 400, rate: float = NOISE_RATE,
                          kind: str = "random", random_state: int = 0) -> tuple[Path, Path]:
    """Generated scenes with a fraction of captions swapped; returns (pairs csv, truth csv).

    The swapped pairs' captions are permuted among them (:func:`mmcurate.noise.inject_noise`), so
    the noisy CSV holds every caption once.
    """
    clean_csv = folder / "pairs.csv"
    if not clean_csv.is_file() or len(pd.read_csv(clean_csv)) != n:
        write_scene_dataset(folder, n, random_state=random_state)
    clean = pd.read_csv(clean_csv)
    source, noisy = inject_noise(len(clean), rate=rate, kind=kind, categories=clean["category"],
                                 captions=clean["caption"], random_state=random_state)
    noisy_df = clean.copy()
    noisy_df["caption"] = clean["caption"].to_numpy()[source]
    pairs_csv = folder / f"pairs_noisy{int(rate * 100)}_{kind}.csv"
    truth_csv = folder / f"truth_noisy{int(rate * 100)}_{kind}.csv"
    atomic_write_frame(noisy_df, pairs_csv, fmt="csv")
    atomic_write_frame(pd.DataFrame({"id": clean["id"].astype(str), "is_noisy": noisy,
                                     "true_caption": clean["caption"]}), truth_csv, fmt="csv")
    return pairs_csv, truth_csv


def _pick_model(allow_download: bool, say) -> tuple[ModelSpec, bool]:
    try:
        resolve_model(ModelSpec(), allow_download=allow_download)
        say("model: real CLIP ViT-B-32 / laion2b_s34b_b79k found on this machine")
        return ModelSpec(), True
    except ModelNotAvailableError:
        pass
    say("model: no real CLIP weights on this machine (see README: bring your own weights).")
    say("       Using mmcurate's tiny stand-in model trained on generated scenes. It is NOT CLIP;")
    say("       it only knows shapes, colours, counts and positions. Training it once (a few minutes; "
        "a progress bar follows)...")
    start = time.perf_counter()
    folder = get_tiny_clip(progress=True)
    say(f"       tiny model ready at {folder} ({time.perf_counter() - start:.0f} s)")
    return ModelSpec(f"local-dir:{folder}", None), False


def _auroc(proj: ProjectFiles, truth: pd.DataFrame, column: str, ranked: pd.DataFrame) -> float:
    noisy = proj.pairs["pair_id"].map(dict(zip(truth["id"], truth["is_noisy"]))).to_numpy(bool)
    return float(auroc(ranked[column].to_numpy(), noisy))


def _simulated_review(proj: ProjectFiles, round_id: int, truth: pd.DataFrame, path: Path) -> Path:
    """Write the decisions file a careful reviewer would (from the known truth)."""
    batch = proj.ledger.batch(round_id)
    t = truth.set_index("id")
    rows = []
    for pid in batch["pair_id"]:
        if bool(t.loc[pid, "is_noisy"]):
            rows.append({"pair_id": pid, "decision": "fix", "caption": t.loc[pid, "true_caption"],
                         "reviewer": "simulated"})
        else:
            rows.append({"pair_id": pid, "decision": "accept", "caption": "", "reviewer": "simulated"})
    atomic_write_frame(pd.DataFrame(rows), path, fmt="csv")
    return path


def _scene_loop(proj: Project, truth, *, rounds: int, budget: int, say) -> None:
    names = ("p_misaligned", "clip_score", "disagreement")
    ranked = rank_project(proj, list(names)).table
    say("zero-label noise-detection AUROC (20% swapped captions): " + ", ".join(
        f"{s}={_auroc(proj, truth, s, ranked):.3f}" for s in names))
    for r in range(rounds):
        selected = select_batch(proj, budget=budget, random_state=r)  # the default queue
        round_id, batch = selected.round, selected.table
        path = _simulated_review(proj, round_id, truth, proj.decisions_file_path(round_id))
        report = import_labels(proj, path, round_id=round_id)
        trained = train_project_head(proj)
        ranked = rank_project(proj, ["p_misaligned", "clip_score"]).table
        noisy_in_batch = int(truth.set_index("id").loc[batch["pair_id"], "is_noisy"].sum())
        verdict = "used" if trained.accepted else "not used (ranking unchanged)"
        say(f"round {round_id}: reviewed {report.n_added}: {noisy_in_batch} wrong captions found "
            f"({int((batch['stratum'] == 'explore').sum())} of the {len(batch)} drawn at random)")
        say(f"         model {trained.round} {verdict}: {trained.reason}")
        say(f"         AUROC now: p_misaligned {_auroc(proj, truth, 'p_misaligned', ranked):.3f}, "
            f"clip_score {_auroc(proj, truth, 'clip_score', ranked):.3f}")


def _tuxpaint(datasets: Path, out: Path, spec, real: bool, say) -> None:
    if not Path(STAMPS_ROOT).is_dir():
        say("tuxpaint photos: not installed (apt-get install -y --no-install-recommends "
            "tuxpaint-stamps-default); skipped")
        return
    csv = build_tuxpaint_pairs(datasets / "tuxpaint" / "pairs.csv")
    proj = create_project(out / "tuxpaint", pairs=csv, image_root=STAMPS_ROOT, model=spec,
                          overwrite=True, progress=False)
    say(f"tuxpaint photos: {len(proj.pairs)} real photo/caption pairs validated, "
        f"{len(proj.rejects)} rejected -> {proj.root}")
    if not real:
        say("  not embedded: the tiny stand-in model knows generated shapes only, so its vectors "
            "for real photos would mean nothing. With real CLIP weights the demo embeds and ranks them.")
        return
    proj.embed(progress=True)
    ranked = rank_project(proj, ["disagreement"]).review_order(proj.pairs[["pair_id", "caption"]])
    say("  most suspicious tuxpaint captions:")
    for _, row in ranked.head(5).iterrows():
        say(f"    {row['score']:.3f}  {row['caption']}")


def run_demo(out: str | Path = "demo_out", *, n_scenes: int = 400, rounds: int = 3, budget: int = 40,
             use_tuxpaint: bool = True, allow_download: bool = False,
             stream: TextIO = sys.stdout) -> Path:
    """Run the demo into ``out``; returns the scenes project directory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        print(msg, file=stream, flush=True)

    start = time.perf_counter()
    datasets = _datasets_dir(out)
    pairs_csv, truth_csv = prepare_scene_dataset(datasets / "generated", n=n_scenes)
    say(f"sample data: {n_scenes} generated scenes, {int(NOISE_RATE * 100)}% captions swapped -> "
        f"{pairs_csv} (truth kept aside in {truth_csv.name})")
    spec, real = _pick_model(allow_download, say)
    proj = create_project(out / "scenes", pairs=pairs_csv, model=spec, overwrite=True, progress=False)
    say(f"project {proj.root}: {len(proj.pairs)} pairs, {len(proj.rejects)} rejected")
    report = proj.embed(progress=True)
    say(f"embedded {report.n_embedded} pairs at {report.pairs_per_second:.0f} pairs/s")
    truth = pd.read_csv(truth_csv, dtype={"id": str})
    _scene_loop(proj, truth, rounds=rounds, budget=budget, say=say)
    summary = export_curated(proj, out / "curated", fmt="csv")
    est = summary.estimates
    curated = pd.read_csv(summary.curated_path, dtype={"pair_id": str})
    true_caption = truth.set_index("id")["true_caption"]
    wrong = int((curated["caption"] != curated["pair_id"].map(true_caption)).sum())
    if est.get("verified", True):
        say(f"export: every pair has a verdict: {summary.curated} curated ({summary.reviewed} "
            f"reviewed, {summary.auto} kept by the model at P(aligned) >= {est['threshold']:.3f}), "
            f"{summary.dropped} dropped")
        say(f"        estimated noise among the kept unreviewed pairs {est['est_noise_kept']:.1%}; the truth "
            f"(known here only): {wrong} of the {len(curated)} curated captions are still wrong "
            f"({wrong / max(1, len(curated)):.1%})")
    else:
        say(f"export: {summary.curated} curated ({summary.reviewed} reviewed, {summary.unverified} "
            f"unreviewed kept as unverified: {est.get('why')}), {summary.dropped} dropped")
        say(f"        the truth (known here only): {wrong} of the {len(curated)} curated captions are still "
            f"wrong ({wrong / max(1, len(curated)):.1%})")
    say(f"        report: {out / 'curated' / 'report.html'}")
    if use_tuxpaint:
        _tuxpaint(datasets, out, spec, real, say)
    say(f"done in {time.perf_counter() - start:.0f} s. Every round so far is decided; to review the "
        f"next one yourself:")  # (`review` alone would open the last round, already decided)
    say(f"  mmcurate select {proj.root} --budget {budget}")
    say(f"  mmcurate review {proj.root}")
    return proj.root
