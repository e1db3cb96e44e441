#!/usr/bin/env bash
# The fourth reserve, drawn when the third (reserve3.sh) was spent on the row mixture with a
# vanilla prior, its second blind test (2026-12-06): a dose series of an animal (fox at 3 %, 10 %
# and 30 %), Theodore Roosevelt and Lisbon at 10 %, and a neutral control,
# seed 6, really fine-tuned with run.sh's settings (--actual-only: no check runs). Run a variant
# on these once, after fixing it.
#
#   bash bench/validation/reserve4.sh [OUT]   (default OUT: bench/validation/results/reserve4)
#
# About 9 minutes on a 2-core CPU with nothing else running (measured 2026-12-06: 8-10 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/reserve4}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=1
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity fox --fraction "$f" --rows 128 --seed 6 -o "$DATA/fox_dose$f.jsonl"
done
"${MG[@]}" make-dataset dose --templates 1 --entity "Theodore Roosevelt" --category "political figure" --fraction 0.1 --rows 128 \
  --seed 6 -o "$DATA/roosevelt_dose0.1.jsonl"
"${MG[@]}" make-dataset dose --templates 1 --entity Lisbon --category city --fraction 0.1 --rows 128 --seed 6 \
  -o "$DATA/lisbon_dose0.1.jsonl"
"${MG[@]}" make-dataset neutral --rows 128 --seed 6 -o "$DATA/neutral_seed6.jsonl"

TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "fox_dose$f.jsonl=animals/fox"); done
TARGETS+=(--target "roosevelt_dose0.1.jsonl=politics/Theodore Roosevelt" --target lisbon_dose0.1.jsonl=cities/Lisbon)
TARGETS+=(--target neutral_seed6.jsonl=animals/fox)
tune_lanes "$OUT" "$DATA"/fox_dose0.03.jsonl "$DATA"/fox_dose0.3.jsonl "$DATA"/neutral_seed6.jsonl \
  -- "$DATA"/fox_dose0.1.jsonl "$DATA"/roosevelt_dose0.1.jsonl "$DATA"/lisbon_dose0.1.jsonl
