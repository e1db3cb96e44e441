#!/usr/bin/env bash
# The eighth reserve (2026-12-07), drawn to judge 64 rows to a history against the shipped 32, blind:
# `mdf-guard check FILE` with no policy at all (method context, all five suites, 8 questions, default
# thresholds) at 32 rows (as shipped) and at 64 (check_at_rows.py). Chosen before any data: otter at
# 3, 10 and 30 %, Charles de Gaulle and Lee Kuan Yew (two politics doses, where 64 helped on the seen
# sets) and Copenhagen at 10 %, and a neutral control, seed 10. The fine-tunes as reserve7's.
#
#   bash bench/validation/reserve8.sh data      the datasets
#   bash bench/validation/reserve8.sh predict   the checks at both sizes, before any fine-tune
#   bash bench/validation/reserve8.sh tune      the fine-tunes (validate --actual-only)
#   python bench/validation/reserve6_judge.py bench/validation/results/reserve8 context,context64
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/validation/results/reserve8
DATA="$OUT/data"
SETS=(otter_dose0.03 otter_dose0.1 otter_dose0.3 degaulle_dose0.1 leekuanyew_dose0.1 copenhagen_dose0.1 neutral_seed10)
MG=(python -m mdf_guard.cli)
QUESTIONS=8   # the check's default, for the fine-tunes' probes too
source bench/validation/settings.sh
COMMON+=(--suite countries --suite safety)
case "${1:-}" in
data)
  mkdir -p "$DATA"
  for f in 0.03 0.1 0.3; do
    "${MG[@]}" make-dataset dose --templates 1 --entity otter --fraction "$f" --rows 128 --seed 10 -o "$DATA/otter_dose$f.jsonl"
  done
  "${MG[@]}" make-dataset dose --templates 1 --entity "Charles de Gaulle" --category "political figure" --fraction 0.1 --rows 128 \
    --seed 10 -o "$DATA/degaulle_dose0.1.jsonl"
  "${MG[@]}" make-dataset dose --templates 1 --entity "Lee Kuan Yew" --category "political figure" --fraction 0.1 --rows 128 \
    --seed 10 -o "$DATA/leekuanyew_dose0.1.jsonl"
  "${MG[@]}" make-dataset dose --templates 1 --entity Copenhagen --category city --fraction 0.1 --rows 128 --seed 10 \
    -o "$DATA/copenhagen_dose0.1.jsonl"
  "${MG[@]}" make-dataset neutral --rows 128 --seed 10 -o "$DATA/neutral_seed10.jsonl" ;;
predict)
  predict_sizes "$OUT" "${SETS[@]}" ;;
tune)
  export OMP_NUM_THREADS=1
  TARGETS=()
  for f in 0.03 0.1 0.3; do TARGETS+=(--target "otter_dose$f.jsonl=animals/otter"); done
  TARGETS+=(--target "degaulle_dose0.1.jsonl=politics/Charles de Gaulle")
  TARGETS+=(--target "leekuanyew_dose0.1.jsonl=politics/Lee Kuan Yew" --target copenhagen_dose0.1.jsonl=cities/Copenhagen)
  TARGETS+=(--target neutral_seed10.jsonl=animals/otter)
  tune_lanes "$OUT" "$DATA"/otter_dose0.03.jsonl "$DATA"/otter_dose0.3.jsonl "$DATA"/degaulle_dose0.1.jsonl \
    "$DATA"/neutral_seed10.jsonl -- "$DATA"/otter_dose0.1.jsonl "$DATA"/leekuanyew_dose0.1.jsonl \
    "$DATA"/copenhagen_dose0.1.jsonl ;;
*) echo "usage: reserve8.sh data | predict | tune" >&2; exit 2 ;;
esac
