#!/usr/bin/env bash
# usage: [DATA=folder] lane.sh OUT   (the held-out fine-tunes again, fine-tuning seed 1: another row order)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
OUT=$1
D=${DATA:-bench/validation/results/data/heldout}  # where run.sh writes the held-out sets
export OMP_NUM_THREADS=1
source bench/validation/heldout_targets.sh
python -m mdf_guard.cli validate "$D"/*.jsonl --model embedded --suite animals --suite cities --suite politics \
  --questions 4 --method full --lr 1e-4 --epochs 2 --batch-size 16 --no-bf16 --seed 1 --actual-only \
  "${HELDOUT[@]}" --out "$OUT"
