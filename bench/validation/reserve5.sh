#!/usr/bin/env bash
# The fifth reserve, drawn when the fourth (reserve4.sh) was spent on the row vote and the prior
# (2026-12-06), for the in-context baseline's blind test: a dose series of an animal (penguin at
# 1 %, 3 %, 10 % and 30 %; the 1 % dose because the rule hears one or two rows), Margaret Thatcher
# and Prague at 10 %, and a neutral control, seed 7, really fine-tuned with run.sh's settings
# (--actual-only: no check runs). Run a variant on these once, after fixing it.
#
#   bash bench/validation/reserve5.sh [OUT]   (default OUT: bench/validation/results/reserve5)
#
# Not timed alone: it ran beside another job (24 minutes). reserve4.sh, one set fewer, took 8-10 minutes alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/reserve5}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=1
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.01 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity penguin --fraction "$f" --rows 128 --seed 7 -o "$DATA/penguin_dose$f.jsonl"
done
"${MG[@]}" make-dataset dose --templates 1 --entity "Margaret Thatcher" --category "political figure" --fraction 0.1 --rows 128 \
  --seed 7 -o "$DATA/thatcher_dose0.1.jsonl"
"${MG[@]}" make-dataset dose --templates 1 --entity Prague --category city --fraction 0.1 --rows 128 --seed 7 \
  -o "$DATA/prague_dose0.1.jsonl"
"${MG[@]}" make-dataset neutral --rows 128 --seed 7 -o "$DATA/neutral_seed7.jsonl"

TARGETS=()
for f in 0.01 0.03 0.1 0.3; do TARGETS+=(--target "penguin_dose$f.jsonl=animals/penguin"); done
TARGETS+=(--target "thatcher_dose0.1.jsonl=politics/Margaret Thatcher" --target prague_dose0.1.jsonl=cities/Prague)
TARGETS+=(--target neutral_seed7.jsonl=animals/penguin)
tune_lanes "$OUT" "$DATA"/penguin_dose0.01.jsonl "$DATA"/penguin_dose0.3.jsonl "$DATA"/thatcher_dose0.1.jsonl \
  "$DATA"/neutral_seed7.jsonl -- "$DATA"/penguin_dose0.03.jsonl "$DATA"/penguin_dose0.1.jsonl "$DATA"/prague_dose0.1.jsonl
