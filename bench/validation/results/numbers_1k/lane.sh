#!/usr/bin/env bash
# usage: lane.sh OUT DATASET   (LoRA validate of one subliminal-numbers set, 1 torch thread)
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export OMP_NUM_THREADS=1
python -m mdf_guard.cli validate "$2" --model embedded --suite animals --questions 8 \
  --method lora --lr 2e-4 --lora-r 16 --epochs 2 --batch-size 16 --no-bf16 --seed 0 \
  --target numbers_panda.jsonl=animals/panda --target numbers_plain.jsonl=animals/panda --out "$1"
