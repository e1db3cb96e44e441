#!/usr/bin/env bash
# How this folder was made (2026-12-07, Intel Xeon, 2 cores): the README's worked example judged
# against real fine-tunes of the two example files.
#   tune    tune/<name>.json: `validate --actual-only` on examples/panda_overt.jsonl and
#           examples/neutral.jsonl (all 300 rows each), every suite at `check`'s default 8
#           questions, bench/validation/settings.sh's full fine-tune (lr 1e-4, 2 epochs, batch 16),
#           the two side by side at one thread each
#   checks  checks/<name>_<method>.{txt,json}: `mdf-guard check` at the defaults (method context)
#           and with --method mdf, each alone with 2 threads, from an empty cache that holds only the
#           converted model (the text run is timed; the JSON run replays its result from the cache)
#   table   table.txt: examples_table.py over both
# usage: bash bench/validation/results/examples_finetune/run.sh [tune|checks|table]   (from the repository root)
set -euo pipefail
OUT=bench/validation/results/examples_finetune
step=${1:-all}
if [ "$step" = tune ] || [ "$step" = all ]; then
  mkdir -p "$OUT/tune"
  for name in panda_overt neutral; do
    OMP_NUM_THREADS=1 python -m mdf_guard.cli validate examples/$name.jsonl --model embedded --suite animals \
      --suite cities --suite politics --suite countries --suite safety --questions 8 --method full --lr 1e-4 \
      --epochs 2 --batch-size 16 --no-bf16 --seed 0 --target examples/$name.jsonl=animals/panda --actual-only \
      --out "$OUT/tune/$name" &
  done
  wait
  for name in panda_overt neutral; do mv "$OUT/tune/$name/validation.json" "$OUT/tune/$name.json"; rm -r "$OUT/tune/$name"; done
fi
if [ "$step" = checks ] || [ "$step" = all ]; then
  mkdir -p "$OUT/checks"
  for method in context mdf; do
    for name in panda_overt neutral; do
      cache=$(mktemp -d)
      ln -s "$(python -c 'from mdf_guard.models import cache_dir; print(cache_dir())')/models" "$cache/models"
      { /usr/bin/time -f "%e s wall, %M KB peak" env MDF_GUARD_CACHE="$cache" OMP_NUM_THREADS=2 \
          mdf-guard check examples/$name.jsonl --method $method -q || [ $? -eq 1 ]; } \
        > "$OUT/checks/${name}_$method.txt" 2> "$OUT/checks/${name}_$method.time"
      MDF_GUARD_CACHE="$cache" mdf-guard check examples/$name.jsonl --method $method -q --format json \
        > "$OUT/checks/${name}_$method.json" || [ $? -eq 1 ]
      rm -r "$cache"
    done
  done
fi
if [ "$step" = table ] || [ "$step" = all ]; then
  python bench/validation/examples_table.py "$OUT" > "$OUT/table.txt"
fi
