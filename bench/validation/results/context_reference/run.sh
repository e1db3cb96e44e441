#!/usr/bin/env bash
# How results/context_reference/ was made (2026-12-06, Intel Xeon, 2 torch threads, alone):
#   records   records_reserve5/: the in-context reading of reserve5's sets at 32 rows to a history
#             (context_records.py; the seen sets' readings are in results/context/records/);
#   reference references/: each set's `self` reference read in context (context_reference.py);
#   verdict   verdict.txt: both beside the fine-tunes' outcomes (context_verdict.py);
#   cost      cost/: `check` on reserve5's penguin_dose0.1 and neutral_seed7 with method context and with
#             method mdf, one after the other, no cache, the suites and questions above (each report's
#             `timing`);
#   suites    suites/: `check` with `method: context` and every other key at its default (all five
#             built-in suites, 8 questions each) on two neutral sets and a dose: countries and safety.
#   (2026-12-07) the same at 64 rows to a history: records64 (reserve5's records), reference64
#   (references_64/), verdict64 (verdict_64.txt, with ../context/records_64); DATA regenerated
#   with run.sh's make-dataset lines (sha256 identical to the records').
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DATA=${DATA:-bench/validation/results/data}
V=bench/validation; R=$V/results; OUT=$R/context_reference; H=$DATA/heldout
OUTCOMES=($R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json $R/fresh/validation.json
          $R/blind_clusters/shipped/validation.json $R/row_mixture/reserve_shipped/validation.json
          $R/row_mixture_prior/reserve2_shipped/validation.json $R/row_mixture_prior/reserve3_shipped/validation.json
          $R/row_vote/reserve4_shipped/validation.json $R/context/reserve5/validation.json)
export OMP_NUM_THREADS=2
case "${1:-}" in
records) python $V/context_records.py 2 $OUT/records_reserve5 32 $R/reserve5/data/*.jsonl > $OUT/records.log 2>&1 ;;
reference)
  python $V/context_reference.py $OUT/references $DATA/calibration/*.jsonl $H/*.jsonl $R/fresh/data/*.jsonl \
    $R/blind_clusters/data/*.jsonl $R/reserve/data/*.jsonl $R/reserve2/data/*.jsonl $R/reserve3/data/*.jsonl \
    $R/reserve4/data/*.jsonl $R/reserve5/data/*.jsonl > $OUT/reference.log 2>&1 ;;
verdict) python $V/context_verdict.py $R/context/records,$OUT/records_reserve5 $OUT/references "${OUTCOMES[@]}" \
           > $OUT/verdict.txt ;;
cost)
  mkdir -p $OUT/cost
  for set in penguin_dose0.1 neutral_seed7; do
    for method in context mdf; do
      printf "method: %s\nsuites: [animals, cities, politics]\nquestions_per_suite: 4\n" $method > $OUT/cost/$method.yaml
      MDF_GUARD_NO_CACHE=1 python -m mdf_guard.cli check $R/reserve5/data/$set.jsonl --policy $OUT/cost/$method.yaml \
        --format json -q > $OUT/cost/${set}_$method.json || [ $? -eq 1 ]   # exit 1 is a verdict, not a failure
    done
  done ;;
suites)
  mkdir -p $OUT/suites
  printf "method: context\n" > $OUT/suites/policy.yaml
  head -64 examples/neutral.jsonl > $OUT/suites/neutral_examples_64.jsonl
  python -m mdf_guard.cli check $OUT/suites/neutral_examples_64.jsonl --policy $OUT/suites/policy.yaml -q \
    > $OUT/suites/neutral_examples_64.txt
  python -m mdf_guard.cli check $R/reserve4/data/neutral_seed6.jsonl --policy $OUT/suites/policy.yaml -q \
    > $OUT/suites/neutral_seed6.txt
  python -m mdf_guard.cli check $R/reserve5/data/penguin_dose0.1.jsonl --policy $OUT/suites/policy.yaml -q \
    --format json > $OUT/suites/penguin_dose0.1.json || [ $? -eq 1 ]
  rm $OUT/suites/neutral_examples_64.jsonl ;;
records64) python $V/context_records.py 2 $OUT/records_reserve5_64 64 $R/reserve5/data/*.jsonl ;;
reference64)
  python $V/context_reference.py --rows=64 $OUT/references_64 $DATA/calibration/*.jsonl $H/*.jsonl \
    $R/fresh/data/*.jsonl $R/blind_clusters/data/*.jsonl $R/reserve/data/*.jsonl $R/reserve2/data/*.jsonl \
    $R/reserve3/data/*.jsonl $R/reserve4/data/*.jsonl $R/reserve5/data/*.jsonl > $OUT/reference_64.log 2>&1 ;;
verdict64) python $V/context_verdict.py --rows=64 $R/context/records_64,$OUT/records_reserve5_64 \
             $OUT/references_64 "${OUTCOMES[@]}" > $OUT/verdict_64.txt ;;
*) echo "usage: run.sh records | reference | verdict | cost | suites | records64 | reference64 | verdict64" >&2
   exit 2 ;;
esac
