#!/usr/bin/env bash
# Regenerates the files and the runs recorded in ../early_stop_context.txt with the current code
# (about 205 minutes on 2 cores; the record's first run predates MIN_HISTORIES = 16, see there).
set -euo pipefail
cd "$(dirname "$0")"
for f in 0.1 0.03; do
  mdf-guard make-dataset dose --entity panda --fraction "$f" --rows 1024 --seed 0 -o "panda_dose$f.jsonl"
done
mdf-guard make-dataset neutral --rows 1024 --seed 0 -o neutral.jsonl
mdf-guard make-dataset dose --entity panda --fraction 0.1 --rows 4096 --seed 0 -o panda_dose0.1_4096.jsonl
# 5 MB, so not committed (.gitignore); the same seed writes the same file
mdf-guard make-dataset dose --entity panda --fraction 0.1 --rows 24576 --seed 0 -o panda_dose0.1_24576.jsonl
mdf-guard make-dataset neutral --rows 9216 --seed 0 -o neutral_9216.jsonl   # 2 MB, not committed either

BENCH=../../early_stop_context.py
python "$BENCH" panda_dose0.1.jsonl --finetune                  # read whole, 0.05, 0.02, and the fine-tune
python "$BENCH" panda_dose0.03.jsonl panda_dose0.1.jsonl neutral.jsonl --tolerance 0.05
for seed in 0 1 2; do                                            # read whole in each seed's order
  python "$BENCH" panda_dose0.03.jsonl --tolerance 0 --skip-full --seed "$seed"
done
python "$BENCH" panda_dose0.1.jsonl --tolerance 0 --skip-full --seed 1
python "$BENCH" panda_dose0.1_4096.jsonl --tolerance 0.05 --skip-full --finetune   # and its fine-tune (~35 min)
# 24,576 rows: the check, and 128 of the fine-tune's 3,072 steps, its full time projected from them (~20 min)
python "$BENCH" panda_dose0.1_24576.jsonl --tolerance 0.05 --skip-full --finetune --finetune-steps 128
# 9,216 neutral rows: the check and the whole fine-tune (1,152 steps) beside it, no projection (~85 min)
python "$BENCH" neutral_9216.jsonl --tolerance 0.05 --skip-full --finetune
# the projection checked against the 4,096-row file's whole fine-tune above (~8 min)
python -c "
import sys, torch; sys.path.insert(0, '../..'); torch.set_num_threads(2)
from pathlib import Path
from early_stop_context import finetune_seconds
from mdf_guard.check import model_spec; from mdf_guard.data import read_conversations
from mdf_guard.models import load_model; from mdf_guard.policy import Policy
rows = list(read_conversations(Path('panda_dose0.1_4096.jsonl')))
print(finetune_seconds(load_model(model_spec(Policy())), rows, 128)[1])"
# Replayed stops: no model pass once a file's whole reading is in the cache (the first call reads it).
python ../../early_stop_context_resample.py panda_dose0.1.jsonl panda_dose0.03.jsonl
python ../../early_stop_context_resample.py neutral.jsonl --entity cities/Paris --tolerance 0.05
