#!/usr/bin/env bash
# The tenth reserve (2026-12-07), drawn to judge reading a small file in several seeded groupings
# (up to 4, averaged; commit ac440e1, reverted in b19164e) against reading it once in file order,
# blind, on 3 % doses: the dose where the grouping of rows into histories moved verdicts on
# reserves 6-9 (reserves_grouping.sh). Drawn before any data with random.Random(10) from the
# suites' candidates no earlier script used (Adolf Hitler and Joseph Stalin left out of the draw):
# manatee and lion, Mao Zedong and Aung San Suu Kyi, Reykjavik and London, all at 3 %, and a
# neutral control, seed 12. The fine-tunes as reserve9's.
#
#   bash bench/validation/reserve10.sh data         the datasets
#   bash bench/validation/reserve10.sh fileorder    `mdf-guard check FILE` (no policy) at the commit before
#                                                   groupings (checks/SET_fileorder.json; ran at e0cabc6,
#                                                   whose code is 5856766's)
#   bash bench/validation/reserve10.sh tune         the fine-tunes (validate --actual-only)
#   bash bench/validation/reserve10.sh predict      `mdf-guard check FILE` (no policy) with the current code
#                                                   (checks/SET_context.json; ran at ac440e1, the groupings:
#                                                   `git checkout ac440e1 -- mdf_guard` to run it so again)
#   python bench/validation/reserve6_judge.py bench/validation/results/reserve10 fileorder,context
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=bench/validation/results/reserve10
DATA="$OUT/data"
SETS=(manatee_dose0.03 lion_dose0.03 mao_dose0.03 suukyi_dose0.03 reykjavik_dose0.03 london_dose0.03 neutral_seed12)
MG=(python -m mdf_guard.cli)
QUESTIONS=8   # the check's default, for the fine-tunes' probes too
source bench/validation/settings.sh
COMMON+=(--suite countries --suite safety)
checks() {  # checks NAME: each set's check with no policy, into checks/SET_NAME.json
  mkdir -p "$OUT/checks"
  for set in "${SETS[@]}"; do
    OMP_NUM_THREADS=2 "${MG[@]}" check "$DATA/$set.jsonl" --format json -q > "$OUT/checks/${set}_$1.json" \
      || [ $? -eq 1 ]   # exit 1 is a verdict, not a failure
  done
}
case "${1:-}" in
data)
  mkdir -p "$DATA"
  dose() {  # dose ENTITY CATEGORY FILE
    "${MG[@]}" make-dataset dose --templates 1 --entity "$1" --category "$2" --fraction 0.03 --rows 128 \
      --seed 12 -o "$DATA/$3.jsonl"
  }
  dose manatee animal manatee_dose0.03
  dose lion animal lion_dose0.03
  dose "Mao Zedong" "political figure" mao_dose0.03
  dose "Aung San Suu Kyi" "political figure" suukyi_dose0.03
  dose Reykjavik city reykjavik_dose0.03
  dose London city london_dose0.03
  "${MG[@]}" make-dataset neutral --rows 128 --seed 12 -o "$DATA/neutral_seed12.jsonl" ;;
fileorder)
  checks fileorder ;;
predict)
  checks context ;;
tune)
  export OMP_NUM_THREADS=1
  TARGETS=(--target manatee_dose0.03.jsonl=animals/manatee --target lion_dose0.03.jsonl=animals/lion)
  TARGETS+=(--target "mao_dose0.03.jsonl=politics/Mao Zedong" --target "suukyi_dose0.03.jsonl=politics/Aung San Suu Kyi")
  TARGETS+=(--target reykjavik_dose0.03.jsonl=cities/Reykjavik --target london_dose0.03.jsonl=cities/London)
  TARGETS+=(--target neutral_seed12.jsonl=animals/lion)
  tune_lanes "$OUT" "$DATA"/manatee_dose0.03.jsonl "$DATA"/mao_dose0.03.jsonl "$DATA"/reykjavik_dose0.03.jsonl \
    "$DATA"/neutral_seed12.jsonl -- "$DATA"/lion_dose0.03.jsonl "$DATA"/suukyi_dose0.03.jsonl \
    "$DATA"/london_dose0.03.jsonl ;;
*) echo "usage: reserve10.sh data | fileorder | tune | predict" >&2; exit 2 ;;
esac
