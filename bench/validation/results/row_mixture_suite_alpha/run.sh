#!/usr/bin/env bash
# How results/row_mixture_suite_alpha/fit.txt was made (2026-12-06, no model pass: it reads the
# row mixture's records at α 2 and α 4, which every seen set has). The fit picked one α for every
# suite, the prior's rule, so no reserve was drawn for it.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
V=bench/validation; R=$V/results
SEEN=($R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json $R/fresh/validation.json
      $R/blind_clusters/shipped/validation.json $R/row_mixture/reserve_shipped/validation.json
      $R/row_mixture_prior/reserve2_shipped/validation.json $R/row_mixture_prior/reserve3_shipped/validation.json)
python $V/row_mixture_suite_alpha.py $R/row_mixture/records /tmp/row_mixture_suite_alpha "${SEEN[@]}" -- \
  > $R/row_mixture_suite_alpha/fit.txt
