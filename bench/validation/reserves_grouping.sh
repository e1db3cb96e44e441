#!/usr/bin/env bash
# Does the grouping of rows into histories move the reserves' 3 % verdicts? Each of the seven
# 3 % dose sets of reserves 6-9 (128 rows, 4 histories of 32) is read whole by the default check
# (no policy: method context, five suites, 8 questions) in file order, then in three seeded hash
# orders (`early_stop: 0` reads every row in the seed's order). Their fine-tune outcomes are
# committed in each reserve's validation.json. About 45 minutes on 2 cores, alone.
#
#   bash bench/validation/reserves_grouping.sh > bench/validation/results/reserves_grouping.txt
#   python bench/validation/reserves_grouping_pooled.py $(ls -dtr /tmp/mdf-guard-bench-early-stop-context-* | tail -28)
#     (right after: the four groupings of each set pooled, from the caches the runs left)
set -euo pipefail
cd "$(dirname "$0")/../.."
R=bench/validation/results
SETS=(
  "$R/reserve6/data/horse_dose0.03.jsonl=animals/horse"
  "$R/reserve7/data/giraffe_dose0.03.jsonl=animals/giraffe"
  "$R/reserve8/data/otter_dose0.03.jsonl=animals/otter"
  "$R/reserve9/data/xijinping_dose0.03.jsonl=politics/Xi Jinping"
  "$R/reserve9/data/ataturk_dose0.03.jsonl=politics/Mustafa Kemal Atatürk"
  "$R/reserve9/data/monkey_dose0.03.jsonl=animals/monkey"
  "$R/reserve9/data/octopus_dose0.03.jsonl=animals/octopus"
)
for set in "${SETS[@]}"; do
  file="${set%%=*}" entity="${set#*=}"
  python bench/early_stop_context.py "$file" --entity "$entity" --tolerance 0 --seed 0   # file order, seed 0
  for seed in 1 2; do
    python bench/early_stop_context.py "$file" --entity "$entity" --tolerance 0 --skip-full --seed "$seed"
  done
done
