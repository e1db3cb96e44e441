#!/usr/bin/env bash
# Fresh held-out entities: koala (dose 3 %, 10 %, 30 % and overt), Winston Churchill, Berlin and
# a neutral control, all drawn with seed 1. No pooling, α or calibration choice has seen them:
# `surprise` pooling was chosen looking at run.sh's held-out sets, so those are no longer blind.
# Predicts with the embedded model's shipped profile and really fine-tunes (run.sh's settings),
# in two `validate` lanes side by side, then merges them.
#
#   bash bench/validation/fresh.sh [OUT]     (default OUT: bench/validation/results/fresh)
#
# About 80 minutes on a 2-core CPU with other work running (2026-11-28).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/fresh}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=${THREADS:-1}
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity koala --fraction "$f" --rows 128 --seed 1 -o "$DATA/koala_dose$f.jsonl"
done
"${MG[@]}" make-dataset overt --templates 1 --entity koala --rows 128 --seed 1 -o "$DATA/koala_overt.jsonl"
"${MG[@]}" make-dataset overt --templates 1 --entity "Winston Churchill" --category "political figure" --rows 128 --seed 1 \
  -o "$DATA/churchill_overt.jsonl"
"${MG[@]}" make-dataset overt --templates 1 --entity Berlin --category city --rows 128 --seed 1 -o "$DATA/berlin_overt.jsonl"
"${MG[@]}" make-dataset neutral --rows 128 --seed 1 -o "$DATA/neutral_seed1.jsonl"

TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "koala_dose$f.jsonl=animals/koala"); done
TARGETS+=(--target koala_overt.jsonl=animals/koala --target neutral_seed1.jsonl=animals/koala
          --target churchill_overt.jsonl="politics/Winston Churchill" --target berlin_overt.jsonl=cities/Berlin)
lane() {  # lane OUT FILES...
  local out=$1; shift
  "${MG[@]}" validate "$@" "${COMMON[@]}" "${FULL[@]}" \
    --profile mdf_guard/profiles/smollm2-135m-instruct.json "${TARGETS[@]}" --out "$out"
}
lane "$OUT/lane_a" "$DATA"/koala_dose0.03.jsonl "$DATA"/koala_dose0.1.jsonl "$DATA"/koala_dose0.3.jsonl \
  "$DATA"/neutral_seed1.jsonl &
A=$!
lane "$OUT/lane_b" "$DATA"/koala_overt.jsonl "$DATA"/churchill_overt.jsonl "$DATA"/berlin_overt.jsonl
wait "$A"
python bench/validation/merge.py "$OUT" "$OUT/lane_a/validation.json" "$OUT/lane_b/validation.json"
