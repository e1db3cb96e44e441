#!/usr/bin/env bash
# The prior's second blind test (2026-12-06, Intel Xeon, 1 torch thread per process, two processes
# side by side): row_mixture_prior.py's rule (α 4, λ 0.001, unchanged; row_mixture_blend.py's
# calibration fit picks it again) and the row mixture's α 2 rule on results/reserve3/, which had no
# prediction run on it, beside the shipped check (reserve3_shipped/).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
V=bench/validation; R=$V/results; REC=$R/row_mixture/records; OUT=$R/row_mixture_prior; B=$R/reserve3/data
export OMP_NUM_THREADS=1
python $V/row_mixture.py 1 $REC 2,4 $B/kennedy_dose0.03.jsonl $B/kennedy_dose0.3.jsonl $B/neutral_seed5.jsonl \
  > $OUT/lane_a_reserve3.log 2>&1 &
python $V/row_mixture.py 1 $REC 2,4 $B/kennedy_dose0.1.jsonl $B/wolf_dose0.1.jsonl $B/cairo_dose0.1.jsonl \
  > $OUT/lane_b_reserve3.log 2>&1 &
wait
source $V/settings.sh
TARGETS=()
for f in 0.03 0.1 0.3; do TARGETS+=(--target "kennedy_dose$f.jsonl=politics/John F. Kennedy"); done
TARGETS+=(--target wolf_dose0.1.jsonl=animals/wolf --target cairo_dose0.1.jsonl=cities/Cairo)
TARGETS+=(--target "neutral_seed5.jsonl=politics/John F. Kennedy")
OMP_NUM_THREADS=2 python -m mdf_guard.cli validate $B/kennedy_dose0.03.jsonl $B/kennedy_dose0.1.jsonl \
  $B/kennedy_dose0.3.jsonl $B/wolf_dose0.1.jsonl $B/cairo_dose0.1.jsonl $B/neutral_seed5.jsonl \
  "${COMMON[@]}" "${FULL[@]}" --outcomes $R/reserve3/validation.json "${TARGETS[@]}" --out $OUT/reserve3_shipped
python $V/row_mixture_prior.py $REC $R/calibration_predicted/validation.json /tmp/row_mixture_prior \
  $OUT/reserve3_shipped/validation.json > $OUT/fit_reserve3.txt
python $V/row_mixture_fit.py $REC $R/calibration_predicted/validation.json /tmp/row_mixture_fit \
  $OUT/reserve3_shipped/validation.json > $OUT/mixture_alpha2_reserve3.txt
