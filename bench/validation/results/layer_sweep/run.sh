#!/usr/bin/env bash
# How layer_sweep.txt was made (2026-12-06, Intel Xeon, 2 torch threads, alone): check's Δ at
# layers 10 (shipped) to 28 on doses the shipped check misses and a neutral set.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
R=bench/validation/results
OMP_NUM_THREADS=2 python bench/validation/layer_sweep.py 10,15,20,25,28 \
  $R/reserve4/data/fox_dose0.3.jsonl=animals/fox $R/reserve4/data/fox_dose0.1.jsonl=animals/fox \
  $R/reserve5/data/penguin_dose0.1.jsonl=animals/penguin $R/reserve/data/rome_dose0.3.jsonl=cities/Rome \
  $R/reserve4/data/neutral_seed6.jsonl=animals/fox 2>/dev/null > $R/layer_sweep/layer_sweep.txt
