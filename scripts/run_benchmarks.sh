#!/usr/bin/env bash
# The label-efficiency benchmarks of docs/results/ (mmcurate simulate, oracle reviewer).
#
#   scripts/run_benchmarks.sh [RESULTS_DIR]     (default results/; re-run to resume)
#
# Two data sets x two noise kinds (20% of captions swapped at random / within the same category):
#   scenes1000: 1000 generated scenes embedded with the tiny stand-in model (a toy, NOT CLIP);
#   synth3000:  3000 synthetic 64-d domain-shift vectors (mmcurate.synth; NOT real embeddings).
# Label budget: rounds x budget = the number of swapped captions (a perfect queue could find all).
# Afterwards: clip_score and the best learning strategy (by AULC of recall) with cluster and coreset
# diversity, into the same folders (each summary.md covers every finished run of its folder).
# Takes a few hours on 2 cores.
set -euo pipefail
OUT=${1:-results}
PY=${PYTHON:-python}
STRATEGIES=random,clip-score,p_misaligned,margin,disagreement,density,qbc,egl,eer
mkdir -p "$OUT"

$PY scripts/make_domain_shift_folder.py "$OUT/synth3000_clean" --n 3000 --dim 64 --seed 0

for KIND in random same-category; do
  $PY -m mmcurate.cli simulate --scenes 1000 --noise 0.2 --noise-kind "$KIND" \
      --strategies "$STRATEGIES" --diversity none --rounds 10 --budget 20 --seeds 5 \
      --out "$OUT/scenes1000_$KIND"
  $PY -m mmcurate.cli simulate --embeddings "$OUT/synth3000_clean" --noise 0.2 --noise-kind "$KIND" \
      --strategies "$STRATEGIES" --diversity none --rounds 12 --budget 50 --seeds 5 \
      --note "synthetic 64-d domain-shift vectors (mmcurate.synth.domain_shift_embeddings, 20 domains as categories): not CLIP embeddings" \
      --out "$OUT/synth3000_$KIND"
done

# diversity for the best learning strategy of each set (by mean AULC of recall)
for NAME in scenes1000_random scenes1000_same-category synth3000_random synth3000_same-category; do
  BEST=$($PY - "$OUT/$NAME" <<'PYEOF'
import sys
from mmcurate.simulate import load_results, summarize
s = summarize(load_results(sys.argv[1]))
s = s[~s["strategy"].isin(["random", "clip_score"]) & (s["diversity"] == "none")]
print(s.sort_values("aulc_recall_mean", ascending=False)["strategy"].iloc[0])
PYEOF
)
  case $NAME in
    scenes*) SRC=(--scenes 1000); LOOP=(--rounds 10 --budget 20) ;;
    synth*) SRC=(--embeddings "$OUT/synth3000_clean"); LOOP=(--rounds 12 --budget 50)
            SRC+=(--note "synthetic 64-d domain-shift vectors (mmcurate.synth.domain_shift_embeddings, 20 domains as categories): not CLIP embeddings") ;;
  esac
  KIND=${NAME#*_}
  $PY -m mmcurate.cli simulate "${SRC[@]}" --noise 0.2 --noise-kind "$KIND" \
      --strategies "clip-score,$BEST" --diversity cluster,coreset --seeds 5 "${LOOP[@]}" \
      --out "$OUT/$NAME"
done

# scale: one strategy on 200,000 imported synthetic pairs (time it)
$PY scripts/make_domain_shift_folder.py "$OUT/synth200k_clean" --n 200000 --dim 64 --seed 0
/usr/bin/time -v $PY -m mmcurate.cli simulate --embeddings "$OUT/synth200k_clean" \
    --strategies disagreement --diversity none --rounds 10 --budget 20 --seeds 1 --out "$OUT/scale200k"
