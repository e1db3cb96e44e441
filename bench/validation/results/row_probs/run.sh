#!/usr/bin/env bash
# How results/row_probs/ was made (2026-12-06, Intel Xeon, 1 torch thread per process, two
# processes side by side): every seen set's per-row steered answers at α 4, then reserve4's
# (fine-tuned in session 14, no prediction run on it; row_probs.py prints only timings, and no
# rule was scored on reserve4 before the rule fixed on the seen sets was committed).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DATA=${DATA:-bench/validation/results/data}
V=bench/validation; R=$V/results; OUT=$R/row_probs; H=$DATA/heldout; Q=$R/reserve4/data
export OMP_NUM_THREADS=1
(python $V/row_probs.py 1 $OUT 4 $DATA/calibration/*.jsonl $R/reserve3/data/*.jsonl $R/reserve/data/*.jsonl \
   $H/lincoln_overt.jsonl $H/neutral.jsonl $H/panda_dose0.01.jsonl $H/panda_dose0.03.jsonl $H/panda_dose0.1.jsonl $H/panda_dose0.3.jsonl
 python $V/row_probs.py 1 $OUT 4 $Q/fox_dose0.03.jsonl $Q/fox_dose0.1.jsonl $Q/fox_dose0.3.jsonl) > $OUT/lane_a.log 2>&1 &
(python $V/row_probs.py 1 $OUT 4 $R/reserve2/data/*.jsonl $R/fresh/data/*.jsonl $R/blind_clusters/data/*.jsonl \
   $H/panda_dose1.0.jsonl $H/panda_indirect.jsonl $H/paris_overt.jsonl
 python $V/row_probs.py 1 $OUT 4 $Q/lisbon_dose0.1.jsonl $Q/neutral_seed6.jsonl $Q/roosevelt_dose0.1.jsonl) > $OUT/lane_b.log 2>&1 &
wait
