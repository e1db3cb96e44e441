#!/usr/bin/env bash
# The held-out predictions again under another `self` reference: another seeded sample of 64
# prompts (seed1.yaml) and every prompt answered (all128.yaml), reusing heldout_batched's
# fine-tunes. usage: DATA=folder-of-the-held-out-sets run.sh   (then: python compare.py ...)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../../.."
source bench/validation/settings.sh
source bench/validation/heldout_targets.sh
export OMP_NUM_THREADS=1
for variant in seed1 all128; do
  python -m mdf_guard.cli validate "${DATA:?set DATA to the held-out sets}"/*.jsonl "${COMMON[@]}" "${FULL[@]}" \
    "${HELDOUT[@]}" --outcomes bench/validation/results/heldout_batched/validation.json \
    --policy "$HERE/$variant.yaml" --out "$HERE/$variant"
done
python "$HERE/compare.py" bench/validation/results/heldout_batched/validation.json "$HERE"/seed1/validation.json \
  "$HERE"/all128/validation.json > "$HERE/compare.txt"
