#!/usr/bin/env bash
# usage: lane.sh OUT FILES...   (the guard's JSON report on each file, with validate's suites and questions)
# fixed_alpha4/: code before 620b6a5 (alpha 4 always); answer_mass/: from 620b6a5 (min_answer_mass 0.5);
# surprise/: the embedded profile with surprise pooling (2026-11-28).
# fresh/: the same profile on bench/validation/fresh.sh's sets (koala, Churchill, Berlin, neutral seed 1).
# The examples' files were saved as examples_<name>.json.
set -uo pipefail
OUT=$1; shift
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
for f in "$@"; do
  n=$(basename "$f" .jsonl)
  mdf-guard check "$f" --method mdf --suite animals --suite cities --suite politics --questions 4 --format json -o "$OUT/$n.json" -q
  echo "$n exit $?"
done
