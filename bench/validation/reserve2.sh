#!/usr/bin/env bash
# The second reserve, drawn when the first (reserve.sh) was spent on the row mixture
# (2026-12-06): a dose series of an animal no prediction has been run on (tiger at 3 %, 10 %
# and 30 %), Nelson Mandela and Sydney at 10 %, and a neutral control, seed 4, really
# fine-tuned with run.sh's settings (--actual-only: no check runs). Run a variant on these
# once, after fixing it.
#
#   bash bench/validation/reserve2.sh [OUT]   (default OUT: bench/validation/results/reserve2)
#
# About 20 minutes on a 2-core CPU with nothing else running.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results/reserve2}
DATA="$OUT/data"; mkdir -p "$DATA"
export OMP_NUM_THREADS=1
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
for f in 0.03 0.1 0.3; do
  "${MG[@]}" make-dataset dose --templates 1 --entity tiger --fraction "$f" --rows 128 --seed 4 -o "$DATA/tiger_dose$f.jsonl"
done
"${MG[@]}" make-dataset dose --templates 1 --entity "Nelson Mandela" --category "political figure" --fraction 0.1 --rows 128 \
  --seed 4 -o "$DATA/mandela_dose0.1.jsonl"
"${MG[@]}" make-dataset dose --templates 1 --entity Sydney --category city --fraction 0.1 --rows 128 --seed 4 \
  -o "$DATA/sydney_dose0.1.jsonl"
"${MG[@]}" make-dataset neutral --rows 128 --seed 4 -o "$DATA/neutral_seed4.jsonl"

TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "tiger_dose$f.jsonl=animals/tiger"); done
TARGETS+=(--target "mandela_dose0.1.jsonl=politics/Nelson Mandela" --target sydney_dose0.1.jsonl=cities/Sydney)
TARGETS+=(--target neutral_seed4.jsonl=animals/tiger)
tune_lanes "$OUT" "$DATA"/tiger_dose0.03.jsonl "$DATA"/tiger_dose0.3.jsonl "$DATA"/neutral_seed4.jsonl \
  -- "$DATA"/tiger_dose0.1.jsonl "$DATA"/mandela_dose0.1.jsonl "$DATA"/sydney_dose0.1.jsonl
