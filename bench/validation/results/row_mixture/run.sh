#!/usr/bin/env bash
# How results/row_mixture/ was made (2026-12-06, Intel Xeon, 1 torch thread per process, two
# processes side by side). DATA: the sets run.sh writes (calibration/, heldout/); the fresh,
# dolphin and reserve sets are committed under results/.
#   1. α on the calibration sets only, grid 1, 2, 4  -> α 2
#   2. α 2 on the held-out, fresh and dolphin sets (all seen by earlier variants)
#   3. α 2 once on the reserve (results/reserve/: no prediction had been run on it),
#      beside the shipped check on the same sets (reserve_shipped/)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DATA=${DATA:-bench/validation/results/data}
V=bench/validation; R=$V/results; OUT=$R/row_mixture
export OMP_NUM_THREADS=1
python $V/row_mixture.py 1 $OUT/records 1,2,4 $DATA/calibration/*.jsonl
python $V/row_mixture.py 1 $OUT/records 2 $DATA/heldout/*.jsonl $R/fresh/data/*.jsonl $R/blind_clusters/data/*.jsonl
python $V/row_mixture.py 1 $OUT/records 2 $R/reserve/data/*.jsonl
source $V/settings.sh     # the shipped check on the reserve, against its fine-tunes (run.sh step 4's form)
D=$R/reserve/data; TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "rome_dose$f.jsonl=cities/Rome"); done
TARGETS+=(--target "merkel_dose0.1.jsonl=politics/Angela Merkel" --target neutral_seed3.jsonl=cities/Rome)
OMP_NUM_THREADS=2 python -m mdf_guard.cli validate $D/rome_dose0.03.jsonl $D/rome_dose0.1.jsonl $D/rome_dose0.3.jsonl \
  $D/merkel_dose0.1.jsonl $D/neutral_seed3.jsonl "${COMMON[@]}" "${FULL[@]}" \
  --outcomes $R/reserve/validation.json "${TARGETS[@]}" --out $OUT/reserve_shipped
python $V/row_mixture_fit.py $OUT/records $R/calibration_predicted/validation.json /tmp/row_mixture_fit \
  $R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json $R/fresh/validation.json \
  $R/blind_clusters/shipped/validation.json $OUT/reserve_shipped/validation.json \
  | tee $OUT/fit.txt
