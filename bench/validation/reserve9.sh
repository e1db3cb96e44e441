#!/usr/bin/env bash
# The ninth reserve (2026-12-07), drawn to judge 64 rows to a history against the shipped 32 again,
# blind, where 64 helped on the seen sets: politics doses and 3 % doses. As reserve8.sh: `mdf-guard
# check FILE` with no policy (method context, all five suites, 8 questions, default thresholds) at
# 32 rows and at 64. Drawn before any data with random.Random(9) from the suites' candidates no
# earlier script used (Adolf Hitler and Joseph Stalin left out of the draw): Xi Jinping and Mustafa
# Kemal Atatürk at 3 %, Otto von Bismarck and Alexandria Ocasio-Cortez at 10 %, monkey and octopus
# at 3 %, and a neutral control, seed 11. The fine-tunes as reserve7's.
#
#   bash bench/validation/reserve9.sh data      the datasets
#   bash bench/validation/reserve9.sh predict   the checks at both sizes, before any fine-tune
#   bash bench/validation/reserve9.sh tune      the fine-tunes (validate --actual-only)
#   python bench/validation/reserve6_judge.py bench/validation/results/reserve9 context,context64
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/validation/results/reserve9
DATA="$OUT/data"
SETS=(xijinping_dose0.03 ataturk_dose0.03 bismarck_dose0.1 aoc_dose0.1 monkey_dose0.03 octopus_dose0.03 neutral_seed11)
MG=(python -m mdf_guard.cli)
QUESTIONS=8   # the check's default, for the fine-tunes' probes too
source bench/validation/settings.sh
COMMON+=(--suite countries --suite safety)
case "${1:-}" in
data)
  mkdir -p "$DATA"
  politics() {  # politics NAME FRACTION FILE
    "${MG[@]}" make-dataset dose --templates 1 --entity "$1" --category "political figure" --fraction "$2" --rows 128 \
      --seed 11 -o "$DATA/$3.jsonl"
  }
  politics "Xi Jinping" 0.03 xijinping_dose0.03
  politics "Mustafa Kemal Atatürk" 0.03 ataturk_dose0.03
  politics "Otto von Bismarck" 0.1 bismarck_dose0.1
  politics "Alexandria Ocasio-Cortez" 0.1 aoc_dose0.1
  for animal in monkey octopus; do
    "${MG[@]}" make-dataset dose --templates 1 --entity "$animal" --fraction 0.03 --rows 128 --seed 11 -o "$DATA/${animal}_dose0.03.jsonl"
  done
  "${MG[@]}" make-dataset neutral --rows 128 --seed 11 -o "$DATA/neutral_seed11.jsonl" ;;
predict)
  predict_sizes "$OUT" "${SETS[@]}" ;;
tune)
  export OMP_NUM_THREADS=1
  TARGETS=(--target "xijinping_dose0.03.jsonl=politics/Xi Jinping")
  TARGETS+=(--target "ataturk_dose0.03.jsonl=politics/Mustafa Kemal Atatürk")
  TARGETS+=(--target "bismarck_dose0.1.jsonl=politics/Otto von Bismarck")
  TARGETS+=(--target "aoc_dose0.1.jsonl=politics/Alexandria Ocasio-Cortez")
  TARGETS+=(--target monkey_dose0.03.jsonl=animals/monkey --target octopus_dose0.03.jsonl=animals/octopus)
  TARGETS+=(--target neutral_seed11.jsonl=animals/monkey)
  tune_lanes "$OUT" "$DATA"/xijinping_dose0.03.jsonl "$DATA"/bismarck_dose0.1.jsonl "$DATA"/monkey_dose0.03.jsonl \
    "$DATA"/neutral_seed11.jsonl -- "$DATA"/ataturk_dose0.03.jsonl "$DATA"/aoc_dose0.1.jsonl \
    "$DATA"/octopus_dose0.03.jsonl ;;
*) echo "usage: reserve9.sh data | predict | tune" >&2; exit 2 ;;
esac
