#!/usr/bin/env bash
# The learning benchmark of issue 22 ("A benchmark you cannot overfit"): scripts/bench_learning.py.
#
#   scripts/bench_learning.sh [RESULTS_DIR] [extra bench_learning.py options]
#                                               (default results/learning; re-run to resume)
#
# Three world families (mmcurate/simulate/worlds.py, scenes_world.py: clip_gap = a CLIP-like space with
# a modality gap, tiny_scenes = the tiny stand-in model on generated scenes with captions wrong in one
# attribute or swapped, mixed = compositional pairs with swapped / boilerplate / half-right captions and
# near duplicates) x swap kinds x reviewers (perfect, 10% wrong) x 5 seeds (0,1 tune; 2-4 report),
# 5,000 pairs, 10 rounds x 100 labels through the CLI (init, select, batch export, label, train, rank,
# export), against a greedy logistic reference loop on the same features. Prints the markdown matrix;
# `python scripts/bench_learning.py --report-only --out DIR` re-prints it from the CSVs.
set -euo pipefail
OUT=${1:-results/learning}
shift || true
PY=${PYTHON:-python}
JOBS=${JOBS:-2}
$PY scripts/bench_learning.py --out "$OUT" --jobs "$JOBS" --seeds 5 --n 5000 --rounds 10 --budget 100 "$@"
