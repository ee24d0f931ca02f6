"""Noise-detection figures: zero-label AUROC / precision@100 of every strategy, and AUROC after
0..3 rounds of 40 labels through the real round machinery (oracle reviewer).

Data: generated scenes embedded with the tiny stand-in model (NOT CLIP: a toy domain) and a
synthetic embedding folder whose aligned-cosine level differs across 20 domains (a stand-in for
CLIP's domain shift, not real embeddings). 20% of captions swapped, at random or within the same
category/domain.

Usage: python scripts/report_noise_detection.py [--n-scenes 1000] [--n-synthetic 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mmcurate.demo import prepare_scene_dataset
from mmcurate.embed.importer import write_embedding_folder
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.tiny import get_tiny_clip
from mmcurate.project import create_project
from mmcurate.rank import STRATEGIES
from mmcurate.rounds import import_labels, rank_project, select_batch, train_project_head
from mmcurate.signals import auroc, precision_at_k
from mmcurate.synth import domain_shift_embeddings


def projects(tmp: Path, n_scenes: int, n_synth: int):
    """Yield (name, project, {pair_id: is_noisy}) for both data sets and both noise kinds."""
    for kind in ("random", "same_category"):
        csv, truth = prepare_scene_dataset(tmp / kind, n=n_scenes, kind=kind)
        proj = create_project(tmp / f"scenes_{kind}", pairs=csv, progress=False,
                              model=ModelSpec(f"local-dir:{get_tiny_clip()}", None))
        proj.embed(progress=False)
        t = pd.read_csv(truth, dtype={"id": str})
        yield f"tiny-model scenes, {kind}", proj, dict(zip(t["id"], t["is_noisy"]))
        img, txt, noisy, _ = domain_shift_embeddings(n_synth, 64, kind=kind)
        meta = pd.DataFrame({"key": [f"k{i}" for i in range(n_synth)],
                             "caption": [f"c{i}" for i in range(n_synth)]})
        folder = write_embedding_folder(tmp / f"emb_{kind}", img, txt, meta)
        proj = create_project(tmp / f"synth_{kind}", embeddings=folder)
        yield f"synthetic folder, {kind}", proj, dict(zip(meta["key"], noisy))


def zero_label(proj, truth) -> list[tuple]:
    ranked = rank_project(proj, STRATEGIES.names()).table
    noisy = ranked["pair_id"].map(truth).to_numpy(bool)
    return [(s, auroc(ranked[s], noisy), precision_at_k(ranked[s], noisy, 100)) for s in STRATEGIES.names()]


def rounds(proj, truth, n_rounds: int = 3, budget: int = 40) -> list[tuple]:
    out = []
    for r in range(n_rounds + 1):
        ranked = rank_project(proj, ["clip_score"]).table
        decided = set(proj.ledger.decisions()["pair_id"]) if r else set()
        pool = ~ranked["pair_id"].isin(decided).to_numpy()
        noisy = ranked["pair_id"].map(truth).to_numpy(bool)[pool]
        out.append((r * budget, auroc(1 - ranked["p_aligned"].to_numpy()[pool], noisy),
                    auroc(ranked["clip_score"].to_numpy()[pool], noisy)))
        if r == n_rounds:
            break
        selected = select_batch(proj, budget=budget, strategy="disagreement", diversity="cluster",
                                random_state=r)
        rid, batch = selected.round, selected.table
        decisions = np.where(batch["pair_id"].map(truth), "reject", "accept")
        import_labels(proj, pd.DataFrame({"pair_id": batch["pair_id"], "decision": decisions}),
                      round_id=rid, source_name=f"oracle-{r}")
        train_project_head(proj)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-scenes", type=int, default=1000)
    parser.add_argument("--n-synthetic", type=int, default=3000)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mmcurate_report_"))
    zl, rr = [], []
    for name, proj, truth in projects(tmp, args.n_scenes, args.n_synthetic):
        zl += [(name, *row) for row in zero_label(proj, truth)]
        rr += [(name, *row) for row in rounds(proj, truth)]
    zl = pd.DataFrame(zl, columns=["data", "strategy", "auroc", "p@100"])
    for value, digits in (("auroc", 3), ("p@100", 2)):
        table = zl.pivot(index="strategy", columns="data", values=value).round(digits)
        print(f"zero-label {value}\n{table.to_string()}")
    rr = pd.DataFrame(rr, columns=["data", "labels", "AUROC head+calibrator (1-P)", "AUROC clip_score"])
    print("after rounds of 40 labels (unlabelled pool)\n", rr.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
