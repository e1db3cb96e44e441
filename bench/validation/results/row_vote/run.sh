#!/usr/bin/env bash
# How results/row_vote/ was made (2026-12-06, Intel Xeon). Needs results/row_probs/ (its run.sh).
#   1. the vote's (γ, λ) fitted on the seen sets' outcomes (fit.txt, the grid and the choice),
#      committed before step 2 ran;
#   2. the shipped check on reserve4 (reserve4_shipped/), reserve4's row mixture records from its
#      row probabilities, then the vote (reserve4.txt) and the prior (prior_reserve4.txt) scored
#      on reserve4, which no prediction had been run on.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
V=bench/validation; R=$V/results; OUT=$R/row_vote; P=$R/row_probs; Q=$R/reserve4/data; REC=$R/row_mixture/records
SEEN=($R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json $R/fresh/validation.json
      $R/blind_clusters/shipped/validation.json $R/row_mixture/reserve_shipped/validation.json
      $R/row_mixture_prior/reserve2_shipped/validation.json $R/row_mixture_prior/reserve3_shipped/validation.json)
if [ "${1:-}" != reserve4 ]; then
  python $V/row_vote.py $P /tmp/row_vote "${SEEN[@]}" -- "${SEEN[@]}" > $OUT/fit.txt
  exit
fi
source $V/settings.sh
TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "fox_dose$f.jsonl=animals/fox"); done
TARGETS+=(--target "roosevelt_dose0.1.jsonl=politics/Theodore Roosevelt" --target lisbon_dose0.1.jsonl=cities/Lisbon)
TARGETS+=(--target neutral_seed6.jsonl=animals/fox)
OMP_NUM_THREADS=2 python -m mdf_guard.cli validate $Q/fox_dose0.03.jsonl $Q/fox_dose0.1.jsonl $Q/fox_dose0.3.jsonl \
  $Q/roosevelt_dose0.1.jsonl $Q/lisbon_dose0.1.jsonl $Q/neutral_seed6.jsonl \
  "${COMMON[@]}" "${FULL[@]}" --outcomes $R/reserve4/validation.json "${TARGETS[@]}" --out $OUT/reserve4_shipped
python $V/row_probs.py records $REC $P/fox_dose0.03.npz $P/fox_dose0.1.npz $P/fox_dose0.3.npz \
  $P/roosevelt_dose0.1.npz $P/lisbon_dose0.1.npz $P/neutral_seed6.npz
python $V/row_vote.py $P /tmp/row_vote "${SEEN[@]}" -- $OUT/reserve4_shipped/validation.json > $OUT/reserve4.txt
python $V/row_mixture_prior.py $REC $R/calibration_predicted/validation.json /tmp/row_mixture_prior \
  $OUT/reserve4_shipped/validation.json > $OUT/prior_reserve4.txt
