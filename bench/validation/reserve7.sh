#!/usr/bin/env bash
# The seventh reserve (2026-12-07), drawn to judge the new default blind: `mdf-guard check FILE` with
# no policy at all (method context, all five suites, 8 questions, default thresholds), beside
# `--method mdf`. A dose series of an animal (giraffe at 3, 10 and 30 %), Jacinda Ardern, Amsterdam
# and Brazil at 10 %, and a neutral control, seed 9. The fine-tunes (run.sh's settings) probe all
# five suites at the check's 8 questions, so that a false finding anywhere shows.
#
#   bash bench/validation/reserve7.sh data      the datasets
#   bash bench/validation/reserve7.sh predict   both checks on every set, before any fine-tune
#   bash bench/validation/reserve7.sh tune      the fine-tunes (validate --actual-only)
#   python bench/validation/reserve6_judge.py bench/validation/results/reserve7   the verdicts (reserve6's rule)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/validation/results/reserve7
DATA="$OUT/data"
SETS=(giraffe_dose0.03 giraffe_dose0.1 giraffe_dose0.3 ardern_dose0.1 amsterdam_dose0.1 brazil_dose0.1 neutral_seed9)
MG=(python -m mdf_guard.cli)
QUESTIONS=8   # the check's default, for the fine-tunes' probes too
source bench/validation/settings.sh
COMMON+=(--suite countries --suite safety)
case "${1:-}" in
data)
  mkdir -p "$DATA"
  for f in 0.03 0.1 0.3; do
    "${MG[@]}" make-dataset dose --templates 1 --entity giraffe --fraction "$f" --rows 128 --seed 9 -o "$DATA/giraffe_dose$f.jsonl"
  done
  "${MG[@]}" make-dataset dose --templates 1 --entity "Jacinda Ardern" --category "political figure" --fraction 0.1 --rows 128 \
    --seed 9 -o "$DATA/ardern_dose0.1.jsonl"
  "${MG[@]}" make-dataset dose --templates 1 --entity Amsterdam --category city --fraction 0.1 --rows 128 --seed 9 \
    -o "$DATA/amsterdam_dose0.1.jsonl"
  "${MG[@]}" make-dataset dose --templates 1 --entity Brazil --category country --fraction 0.1 --rows 128 --seed 9 \
    -o "$DATA/brazil_dose0.1.jsonl"
  "${MG[@]}" make-dataset neutral --rows 128 --seed 9 -o "$DATA/neutral_seed9.jsonl" ;;
predict)
  mkdir -p "$OUT/checks"
  for method in context mdf; do
    for set in "${SETS[@]}"; do   # no policy: nothing above $DATA up to the repository root is one
      OMP_NUM_THREADS=2 "${MG[@]}" check "$DATA/$set.jsonl" --method "$method" --format json -q \
        > "$OUT/checks/${set}_$method.json" || [ $? -eq 1 ]   # exit 1 is a verdict, not a failure
    done
  done ;;
tune)
  export OMP_NUM_THREADS=1
  TARGETS=()
  for f in 0.03 0.1 0.3; do TARGETS+=(--target "giraffe_dose$f.jsonl=animals/giraffe"); done
  TARGETS+=(--target "ardern_dose0.1.jsonl=politics/Jacinda Ardern" --target amsterdam_dose0.1.jsonl=cities/Amsterdam)
  TARGETS+=(--target brazil_dose0.1.jsonl=countries/Brazil --target neutral_seed9.jsonl=animals/giraffe)
  tune_lanes "$OUT" "$DATA"/giraffe_dose0.03.jsonl "$DATA"/giraffe_dose0.3.jsonl "$DATA"/ardern_dose0.1.jsonl \
    "$DATA"/neutral_seed9.jsonl -- "$DATA"/giraffe_dose0.1.jsonl "$DATA"/amsterdam_dose0.1.jsonl \
    "$DATA"/brazil_dose0.1.jsonl ;;
*) echo "usage: reserve7.sh data | predict | tune" >&2; exit 2 ;;
esac
