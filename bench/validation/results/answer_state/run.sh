#!/usr/bin/env bash
# How answer_state.txt was made (2026-12-06, Intel Xeon, 2 torch threads, alone): the 30%
# doses (and penguin's 10 %) whose in-context reading is strongest, one per suite at least,
# and a neutral set for the floor.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
R=bench/validation/results
OMP_NUM_THREADS=2 python bench/validation/answer_state.py 5,10,15,20,22,25,27,28 \
  $R/reserve4/data/fox_dose0.3.jsonl=animals/fox $R/fresh/data/koala_dose0.3.jsonl=animals/koala \
  $R/reserve5/data/penguin_dose0.1.jsonl=animals/penguin $R/reserve/data/rome_dose0.3.jsonl=cities/Rome \
  "$R/reserve3/data/kennedy_dose0.3.jsonl=politics/John F. Kennedy" $R/reserve4/data/neutral_seed6.jsonl=animals/fox \
  2>/dev/null > $R/answer_state/answer_state.txt
