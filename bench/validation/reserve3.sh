#!/usr/bin/env bash
# The third reserve, drawn when the second (reserve2.sh) was spent on the row mixture with a
# vanilla prior (2026-12-06): a dose series of a political figure (John F. Kennedy at 3 %, 10 %
# and 30 %: both politics doses so far were missed), wolf and Cairo at 10 %, and a neutral control,
# seed 5, really fine-tuned with run.sh's settings (--actual-only: no check runs). Run a variant
# on these once, after fixing it.
#
#   bash bench/validation/reserve3.sh [OUT]   (default OUT: bench/validation/results/reserve3)
#
# About 9 minutes on a 2-core CPU with nothing else running (measured 2026-12-06: 8-10 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/reserve3}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=1
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity "John F. Kennedy" --category "political figure" --fraction "$f" --rows 128 \
    --seed 5 -o "$DATA/kennedy_dose$f.jsonl"
done
"${MG[@]}" make-dataset dose --templates 1 --entity wolf --fraction 0.1 --rows 128 --seed 5 -o "$DATA/wolf_dose0.1.jsonl"
"${MG[@]}" make-dataset dose --templates 1 --entity Cairo --category city --fraction 0.1 --rows 128 --seed 5 \
  -o "$DATA/cairo_dose0.1.jsonl"
"${MG[@]}" make-dataset neutral --rows 128 --seed 5 -o "$DATA/neutral_seed5.jsonl"

TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "kennedy_dose$f.jsonl=politics/John F. Kennedy"); done
TARGETS+=(--target wolf_dose0.1.jsonl=animals/wolf --target cairo_dose0.1.jsonl=cities/Cairo)
TARGETS+=(--target "neutral_seed5.jsonl=politics/John F. Kennedy")
tune_lanes "$OUT" "$DATA"/kennedy_dose0.03.jsonl "$DATA"/kennedy_dose0.3.jsonl "$DATA"/neutral_seed5.jsonl \
  -- "$DATA"/kennedy_dose0.1.jsonl "$DATA"/wolf_dose0.1.jsonl "$DATA"/cairo_dose0.1.jsonl
