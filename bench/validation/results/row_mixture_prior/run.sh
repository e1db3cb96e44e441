#!/usr/bin/env bash
# How results/row_mixture_prior/ was made (2026-12-06, Intel Xeon, 1 torch thread per process,
# two processes side by side). The rule (row_mixture_prior.py, commit 9f2af9b) was fitted on the
# calibration records alone before any of this ran: α 4, λ 0.001.
#   1. α 4 added to the row mixture's records of the seen sets (held out, fresh, dolphin, reserve);
#   2. α 2 and 4 on reserve2 (results/reserve2/: fine-tuned in session 13, no prediction had been
#      run on it), beside the shipped check on the same sets (reserve2_shipped/);
#   3. scoring: fit.txt (this rule), mixture_alpha2.txt (the row mixture's α 2 rule on reserve2).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DATA=${DATA:-bench/validation/results/data}
V=bench/validation; R=$V/results; REC=$R/row_mixture/records; OUT=$R/row_mixture_prior; F=$R/fresh/data; B=$R/reserve2/data
export OMP_NUM_THREADS=1
(python $V/row_mixture.py 1 $REC 4 $DATA/heldout/*.jsonl $F/koala_dose0.03.jsonl $F/koala_dose0.1.jsonl $F/koala_dose0.3.jsonl
 python $V/row_mixture.py 1 $REC 2,4 $B/tiger_dose0.03.jsonl $B/tiger_dose0.1.jsonl $B/tiger_dose0.3.jsonl) > $OUT/lane_a.log 2>&1 &
(python $V/row_mixture.py 1 $REC 4 $F/neutral_seed1.jsonl $F/koala_overt.jsonl $F/churchill_overt.jsonl $F/berlin_overt.jsonl \
   $R/blind_clusters/data/*.jsonl $R/reserve/data/*.jsonl
 python $V/row_mixture.py 1 $REC 2,4 $B/mandela_dose0.1.jsonl $B/sydney_dose0.1.jsonl $B/neutral_seed4.jsonl) > $OUT/lane_b.log 2>&1 &
wait
source $V/settings.sh     # the shipped check on reserve2, against its fine-tunes (as row_mixture/run.sh on the reserve)
TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "tiger_dose$f.jsonl=animals/tiger"); done
TARGETS+=(--target "mandela_dose0.1.jsonl=politics/Nelson Mandela" --target "sydney_dose0.1.jsonl=cities/Sydney"
          --target neutral_seed4.jsonl=animals/tiger)
OMP_NUM_THREADS=2 python -m mdf_guard.cli validate $B/tiger_dose0.03.jsonl $B/tiger_dose0.1.jsonl $B/tiger_dose0.3.jsonl \
  $B/mandela_dose0.1.jsonl $B/sydney_dose0.1.jsonl $B/neutral_seed4.jsonl "${COMMON[@]}" "${FULL[@]}" \
  --outcomes $R/reserve2/validation.json "${TARGETS[@]}" --out $OUT/reserve2_shipped
python $V/row_mixture_prior.py $REC $R/calibration_predicted/validation.json /tmp/row_mixture_prior \
  $R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json $R/fresh/validation.json \
  $R/blind_clusters/shipped/validation.json $R/row_mixture/reserve_shipped/validation.json \
  $OUT/reserve2_shipped/validation.json | tee $OUT/fit.txt
# the row mixture's own rule (α 2, fixed in session 13 before reserve2 existed), blind on reserve2 too
python $V/row_mixture_fit.py $REC $R/calibration_predicted/validation.json /tmp/row_mixture_fit \
  $OUT/reserve2_shipped/validation.json > $OUT/mixture_alpha2.txt
