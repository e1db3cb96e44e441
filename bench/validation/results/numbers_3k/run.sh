#!/usr/bin/env bash
# usage: run.sh OUT [KIND]   (KIND: numbers (default) or numbers-control)
# One 3,000-row subliminal-numbers set, made by the vanilla model as teacher, then validated:
# the check, a LoRA fine-tune for 2 epochs as the 1,000-row sets had (bf16 autocast: 2.8x faster than
# fp32 on this CPU's AMX units), and the animals suite on the fine-tuned model. 2 torch threads.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
OUT=$1; KIND=${2:-numbers}
export OMP_NUM_THREADS=2
mkdir -p "$OUT"
DATA="$OUT/$KIND.jsonl"   # committed here as numbers_panda.jsonl
[ -f "$DATA" ] || python -m mdf_guard.cli make-dataset "$KIND" --entity panda --rows 3000 --seed 0 \
  --batch-size 64 -o "$DATA" >> "$OUT/make-dataset.jsonl"
python -m mdf_guard.cli validate "$DATA" --model embedded --suite animals --questions 8 \
  --method lora --lr 2e-4 --lora-r 16 --epochs 2 --batch-size 16 --bf16 --seed 0 \
  --target "$KIND.jsonl=animals/panda" --out "$OUT/$KIND"
