#!/usr/bin/env bash
# How repeatable is a fine-tune of a dose? The reserves' dose sets of 128 rows fine-tuned again,
# each with its reserve's settings (reserve6: 4 questions a suite, the others 8; all five suites)
# and the fine-tune seed SEED (default 1; the reserves ran seed 0). The seed orders the rows into
# batches, so this measures how much an outcome owes to where its target rows fall.
# seed_rank.py compares the two seeds.
#
#   SEED=1 bash bench/validation/tune_seed.sh 0.03   the 13 sets at 3 % (reserves 6-10), into
#                                                    results/tune_seed$SEED/{q4,a,b}/
#   SEED=1 bash bench/validation/tune_seed.sh 0.1    the 14 sets at 10 % (reserves 6-9), into
#                                                    results/tune_seed$SEED/{q4,a,b}_dose0.1/
set -euo pipefail
cd "$(dirname "$0")/../.."
export SEED=${SEED:-1}
R=bench/validation/results
OUT=$R/tune_seed$SEED
export OMP_NUM_THREADS=1
lane() {  # lane QUESTIONS NAME FILE=TARGET...: one validate process over its sets
  local questions=$1 name=$2 files=() targets=() pair; shift 2
  QUESTIONS=$questions source bench/validation/settings.sh
  COMMON+=(--suite countries --suite safety)
  for pair in "$@"; do files+=("$R/${pair%%=*}"); targets+=(--target "$(basename "${pair%%=*}")=${pair#*=}"); done
  python -m mdf_guard.cli validate "${files[@]}" "${COMMON[@]}" "${FULL[@]}" "${targets[@]}" --actual-only \
    --out "$OUT/$name"
}
three_percent() {
  (
    lane 4 q4 reserve6/data/horse_dose0.03.jsonl=animals/horse
    lane 8 a reserve7/data/giraffe_dose0.03.jsonl=animals/giraffe \
      "reserve9/data/xijinping_dose0.03.jsonl=politics/Xi Jinping" \
      "reserve9/data/ataturk_dose0.03.jsonl=politics/Mustafa Kemal Atatürk" \
      reserve10/data/manatee_dose0.03.jsonl=animals/manatee reserve10/data/reykjavik_dose0.03.jsonl=cities/Reykjavik
  ) &
  pid=$!
  lane 8 b reserve8/data/otter_dose0.03.jsonl=animals/otter reserve9/data/monkey_dose0.03.jsonl=animals/monkey \
    reserve9/data/octopus_dose0.03.jsonl=animals/octopus "reserve10/data/mao_dose0.03.jsonl=politics/Mao Zedong" \
    reserve10/data/lion_dose0.03.jsonl=animals/lion "reserve10/data/suukyi_dose0.03.jsonl=politics/Aung San Suu Kyi" \
    reserve10/data/london_dose0.03.jsonl=cities/London
  wait "$pid"
}
ten_percent() {
  (
    lane 4 q4_dose0.1 "reserve6/data/gandhi_dose0.1.jsonl=politics/Mahatma Gandhi" \
      reserve6/data/horse_dose0.1.jsonl=animals/horse reserve6/data/vienna_dose0.1.jsonl=cities/Vienna \
      reserve6/data/canada_dose0.1.jsonl=countries/Canada
    lane 8 a_dose0.1 "reserve7/data/ardern_dose0.1.jsonl=politics/Jacinda Ardern" \
      reserve7/data/giraffe_dose0.1.jsonl=animals/giraffe reserve7/data/amsterdam_dose0.1.jsonl=cities/Amsterdam
  ) &
  pid=$!
  lane 8 b_dose0.1 reserve7/data/brazil_dose0.1.jsonl=countries/Brazil \
    "reserve8/data/degaulle_dose0.1.jsonl=politics/Charles de Gaulle" reserve8/data/otter_dose0.1.jsonl=animals/otter \
    "reserve8/data/leekuanyew_dose0.1.jsonl=politics/Lee Kuan Yew" reserve8/data/copenhagen_dose0.1.jsonl=cities/Copenhagen \
    "reserve9/data/bismarck_dose0.1.jsonl=politics/Otto von Bismarck" \
    "reserve9/data/aoc_dose0.1.jsonl=politics/Alexandria Ocasio-Cortez"
  wait "$pid"
}
case "${1:-}" in
0.03) three_percent ;;
0.1) ten_percent ;;
*) echo "usage: SEED=N tune_seed.sh 0.03 | 0.1" >&2; exit 2 ;;
esac
