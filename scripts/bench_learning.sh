#!/usr/bin/env bash
# The learning benchmark of issue "The loop must learn" (README: "Does the loop learn?").
#
#   scripts/bench_learning.sh [RESULTS_DIR]      (default results/learning; re-run to resume)
#
# Data: 5,000 synthetic 64-d domain-shift pairs (mmcurate.synth.domain_shift_embeddings: 20 domains
# whose aligned-cosine level differs; NOT real CLIP embeddings), 20% of captions swapped as a
# permutation (each donor once), within the same domain or at random. Loop: 10 rounds x 100 labels,
# 5 seeds, 10% held out, through the real round machinery (rank -> select with its default 10%
# exploration -> oracle decisions -> train with validation). Reported per run: recall of swapped
# pairs, learning gain (AUROC of the model in use minus the round-0 model's, same unlabelled pool),
# and what export's default rule keeps after the last round.
set -euo pipefail
OUT=${1:-results/learning}
PY=${PYTHON:-python}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
[ -d "$OUT/synth5000_clean" ] || $PY scripts/make_domain_shift_folder.py "$OUT/synth5000_clean" --n 5000 --dim 64 --seed 0
for KIND in same-category random; do
  $PY -m mmcurate.cli simulate --embeddings "$OUT/synth5000_clean" --noise 0.2 --noise-kind "$KIND" \
      --strategies p_misaligned,disagreement,clip-score,random --diversity none \
      --rounds 10 --budget 100 --seeds 5 --jobs "$JOBS" \
      --note "synthetic 64-d domain-shift vectors (mmcurate.synth.domain_shift_embeddings, 20 domains as categories): not CLIP embeddings" \
      --out "$OUT/synth5000_$KIND"
done
