#!/usr/bin/env bash
# How results/decomposition/decomposition.txt was made (2026-12-06; no model pass: it reads the
# committed outcomes files and row mixture records).
set -euo pipefail
cd "$(dirname "$0")/../../../.."
V=bench/validation; R=$V/results
python $V/decomposition.py $R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json \
  $R/fresh/validation.json $R/blind_clusters/shipped/validation.json $R/row_mixture/reserve_shipped/validation.json \
  $R/row_mixture_prior/reserve2_shipped/validation.json $R/row_mixture_prior/reserve3_shipped/validation.json \
  $R/row_vote/reserve4_shipped/validation.json > $R/decomposition/decomposition.txt
