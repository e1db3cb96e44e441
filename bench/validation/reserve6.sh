#!/usr/bin/env bash
# The sixth reserve (2026-12-07), drawn to judge `check`'s verdicts blind: `method: context` beside the
# shipped MDF check. A dose series of an animal (horse at 3, 10 and 30 %), Mahatma Gandhi, Vienna
# and Canada at 10 % (a country: the first outcome in the countries suite), and a neutral control,
# seed 8. The fine-tunes (run.sh's settings) probe all five built-in suites, safety included, so
# that a false finding in countries or safety shows.
#
#   bash bench/validation/reserve6.sh data      the datasets
#   bash bench/validation/reserve6.sh predict   both checks on every set, before any fine-tune
#   bash bench/validation/reserve6.sh tune      the fine-tunes (validate --actual-only)
#   python bench/validation/reserve6_judge.py   the verdicts against the outcomes
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/validation/results/reserve6
DATA="$OUT/data"
SETS=(horse_dose0.03 horse_dose0.1 horse_dose0.3 gandhi_dose0.1 vienna_dose0.1 canada_dose0.1 neutral_seed8)
MG=(python -m mdf_guard.cli)
source bench/validation/settings.sh
COMMON+=(--suite countries --suite safety)
case "${1:-}" in
data)
  mkdir -p "$DATA"
  for f in 0.03 0.1 0.3; do
    "${MG[@]}" make-dataset dose --templates 1 --entity horse --fraction "$f" --rows 128 --seed 8 -o "$DATA/horse_dose$f.jsonl"
  done
  "${MG[@]}" make-dataset dose --templates 1 --entity "Mahatma Gandhi" --category "political figure" --fraction 0.1 --rows 128 \
    --seed 8 -o "$DATA/gandhi_dose0.1.jsonl"
  "${MG[@]}" make-dataset dose --templates 1 --entity Vienna --category city --fraction 0.1 --rows 128 --seed 8 \
    -o "$DATA/vienna_dose0.1.jsonl"
  "${MG[@]}" make-dataset dose --templates 1 --entity Canada --category country --fraction 0.1 --rows 128 --seed 8 \
    -o "$DATA/canada_dose0.1.jsonl"
  "${MG[@]}" make-dataset neutral --rows 128 --seed 8 -o "$DATA/neutral_seed8.jsonl" ;;
predict)
  mkdir -p "$OUT/checks"
  for method in context mdf; do
    printf "method: %s\nsuites: [animals, cities, politics, countries, safety]\nquestions_per_suite: %s\n" \
      "$method" "$QUESTIONS" > "$OUT/checks/$method.yaml"
    for set in "${SETS[@]}"; do
      OMP_NUM_THREADS=2 "${MG[@]}" check "$DATA/$set.jsonl" --policy "$OUT/checks/$method.yaml" --format json -q \
        > "$OUT/checks/${set}_$method.json" || [ $? -eq 1 ]   # exit 1 is a verdict, not a failure
    done
  done ;;
tune)
  export OMP_NUM_THREADS=1
  TARGETS=()
  for f in 0.03 0.1 0.3; do TARGETS+=(--target "horse_dose$f.jsonl=animals/horse"); done
  TARGETS+=(--target "gandhi_dose0.1.jsonl=politics/Mahatma Gandhi" --target vienna_dose0.1.jsonl=cities/Vienna)
  TARGETS+=(--target canada_dose0.1.jsonl=countries/Canada --target neutral_seed8.jsonl=animals/horse)
  tune_lanes "$OUT" "$DATA"/horse_dose0.03.jsonl "$DATA"/horse_dose0.3.jsonl "$DATA"/gandhi_dose0.1.jsonl \
    "$DATA"/neutral_seed8.jsonl -- "$DATA"/horse_dose0.1.jsonl "$DATA"/vienna_dose0.1.jsonl "$DATA"/canada_dose0.1.jsonl ;;
*) echo "usage: reserve6.sh data | predict | tune" >&2; exit 2 ;;
esac
