#!/usr/bin/env bash
# A reserve for judging the next variant of a predictor blind: dose series of a city and a
# political figure that no prediction has been run on (Rome at 3 %, 10 % and 30 %, Angela Merkel
# at 10 %) and a neutral control, seed 3, really fine-tuned with run.sh's settings
# (--actual-only: no check runs). Every dose series before it (panda, koala, dolphin) has
# been looked at while choosing a variant. Run a variant on these once, after fixing it.
#
#   bash bench/validation/reserve.sh [OUT]   (default OUT: bench/validation/results/reserve)
#
# About 15 minutes on a 2-core CPU with nothing else running (2026-12-06).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/reserve}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=1
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity Rome --category city --fraction "$f" --rows 128 --seed 3 \
    -o "$DATA/rome_dose$f.jsonl"
done
"${MG[@]}" make-dataset dose --templates 1 --entity "Angela Merkel" --category "political figure" --fraction 0.1 --rows 128 \
  --seed 3 -o "$DATA/merkel_dose0.1.jsonl"
"${MG[@]}" make-dataset neutral --rows 128 --seed 3 -o "$DATA/neutral_seed3.jsonl"

TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "rome_dose$f.jsonl=cities/Rome"); done
TARGETS+=(--target "merkel_dose0.1.jsonl=politics/Angela Merkel" --target neutral_seed3.jsonl=cities/Rome)
tune_lanes "$OUT" "$DATA"/rome_dose0.03.jsonl "$DATA"/rome_dose0.3.jsonl "$DATA"/neutral_seed3.jsonl \
  -- "$DATA"/rome_dose0.1.jsonl "$DATA"/merkel_dose0.1.jsonl
