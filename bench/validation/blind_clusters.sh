#!/usr/bin/env bash
# Cluster probing (cluster_probe.py), judged on a dose series nothing has seen: dolphin at 3 %,
# 10 % and 30 % of 128 rows, and a neutral control, all drawn with seed 2. Really fine-tunes each
# set (run.sh's settings, --actual-only: no check), runs the shipped check on them (validate
# --outcomes), then cluster_probe.py with --fine-alpha (variant 2) on them and on koala_dose0.1
# (the set that variant 2 was chosen on), and scores it:
#
#   bash bench/validation/blind_clusters.sh [OUT]   (default OUT: bench/validation/results/blind_clusters)
#
# About 90 minutes on a 2-core CPU, estimated from the parts run on 2026-12-06 (bench/validation/README.md,
# "Clusters, judged blind", says which parts ran and which were stopped).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/blind_clusters}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=1
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity dolphin --fraction "$f" --rows 128 --seed 2 -o "$DATA/dolphin_dose$f.jsonl"
done
"${MG[@]}" make-dataset neutral --rows 128 --seed 2 -o "$DATA/neutral_seed2.jsonl"

TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "dolphin_dose$f.jsonl=animals/dolphin"); done
TARGETS+=(--target neutral_seed2.jsonl=animals/dolphin)
tune() {  # tune OUT FILES...
  local out=$1; shift
  "${MG[@]}" validate "$@" "${COMMON[@]}" "${FULL[@]}" \
    --profile mdf_guard/profiles/smollm2-135m-instruct.json "${TARGETS[@]}" --actual-only --out "$out"
}
tune "$OUT/tune_a" "$DATA"/dolphin_dose0.1.jsonl "$DATA"/neutral_seed2.jsonl &
A=$!
tune "$OUT/tune_b" "$DATA"/dolphin_dose0.03.jsonl "$DATA"/dolphin_dose0.3.jsonl
wait "$A"
python bench/validation/merge.py "$OUT/actual" "$OUT/tune_a/validation.json" "$OUT/tune_b/validation.json"
"${MG[@]}" validate "$DATA"/dolphin_dose0.1.jsonl "$DATA"/dolphin_dose0.3.jsonl "$DATA"/dolphin_dose0.03.jsonl \
  "$DATA"/neutral_seed2.jsonl "${COMMON[@]}" "${FULL[@]}" --profile mdf_guard/profiles/smollm2-135m-instruct.json "${TARGETS[@]}" \
  --outcomes "$OUT/actual/validation.json" --out "$OUT/shipped"

python bench/validation/cluster_probe.py 1 "$OUT/probe" --fine-alpha "$DATA"/dolphin_dose0.1.jsonl \
  bench/validation/results/fresh/data/koala_dose0.1.jsonl "$DATA"/neutral_seed2.jsonl &
A=$!
python bench/validation/cluster_probe.py 1 "$OUT/probe" --fine-alpha "$DATA"/dolphin_dose0.3.jsonl \
  "$DATA"/dolphin_dose0.03.jsonl
wait "$A"
python bench/validation/cluster_metrics.py "$OUT/shipped/validation.json" "$OUT/probe" "$OUT/probe/validation.json"
