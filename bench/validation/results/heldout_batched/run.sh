#!/usr/bin/env bash
# Held-out validate with the batched scorer: predictions, fine-tunes and their times in one run.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
source bench/validation/settings.sh
source bench/validation/heldout_targets.sh
export OMP_NUM_THREADS=2
python -m mdf_guard.cli validate "${DATA:?set DATA to the folder run.sh wrote the held-out sets to}"/*.jsonl "${COMMON[@]}" "${FULL[@]}" "${HELDOUT[@]}" \
  --out "${OUT:-bench/validation/results/heldout_batched}"
