#!/usr/bin/env bash
# Regenerate the validation datasets on the embedded model, fine-tune on each for real,
# calibrate on the calibration entities only, and validate on held-out entities.
#
#   bash bench/validation/run.sh [OUT]          (default OUT: bench/validation/results)
#
# Environment (defaults are the committed run, sized for a 2-core CPU in about 2 hours):
#   ROWS (128), EPOCHS (2), LR (1e-4), SEED (0), MODEL (embedded), QUESTIONS (4),
#   LAYERS (5,10), ALPHAS (2,4,8,16), POOLINGS (mean,last,surprise), REFERENCES (self,none),
#   BF16 (0: bf16 autocast is many times slower than fp32 on CPUs without bf16 units),
#   THREADS (1 per process; the two fine-tuning lanes run side by side),
#   NUMBERS=1 to add the subliminal-number sets (NUMBER_ROWS 3000, LoRA; hours on a CPU),
#   MACHINE (a description of the machine; default: detected).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results}
ROWS=${ROWS:-128}; NUMBER_ROWS=${NUMBER_ROWS:-3000}
source bench/validation/settings.sh
export OMP_NUM_THREADS=${THREADS:-1}
DATA="$OUT/data"; mkdir -p "$DATA/calibration" "$DATA/heldout" "$DATA/numbers"
MG=(python -m mdf_guard.cli)
MACHINE_ARGS=(); [ -n "${MACHINE:-}" ] && MACHINE_ARGS=(--machine "$MACHINE")
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

log "1/4 datasets. Calibration entities owl, Tokyo, George Washington are never judged below."
"${MG[@]}" make-dataset overt --templates 1 --entity owl --rows "$ROWS" --seed "$SEED" -o "$DATA/calibration/owl_overt.jsonl"
"${MG[@]}" make-dataset overt --templates 1 --entity Tokyo --category city --rows "$ROWS" --seed "$SEED" \
  -o "$DATA/calibration/tokyo_overt.jsonl"
"${MG[@]}" make-dataset overt --templates 1 --entity "George Washington" --category "political figure" --rows "$ROWS" \
  --seed "$SEED" -o "$DATA/calibration/washington_overt.jsonl"
for f in 0.01 0.03 0.1 0.3 1.0; do
  "${MG[@]}" make-dataset dose --templates 1 --entity panda --fraction "$f" --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/panda_dose$f.jsonl"
done
"${MG[@]}" make-dataset indirect --entity panda --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/panda_indirect.jsonl"
"${MG[@]}" make-dataset overt --templates 1 --entity "Abraham Lincoln" --category "political figure" --rows "$ROWS" --seed "$SEED" \
  -o "$DATA/heldout/lincoln_overt.jsonl"
"${MG[@]}" make-dataset overt --templates 1 --entity Paris --category city --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/paris_overt.jsonl"
"${MG[@]}" make-dataset neutral --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/neutral.jsonl"

source bench/validation/heldout_targets.sh

log "2/4 real fine-tunes, two lanes side by side: calibration sets then calibrate | held-out sets"
(
  "${MG[@]}" validate "$DATA"/calibration/*.jsonl "${COMMON[@]}" "${FULL[@]}" --actual-only "${MACHINE_ARGS[@]}" \
    --target owl_overt.jsonl=animals/owl --target tokyo_overt.jsonl=cities/Tokyo \
    --target washington_overt.jsonl="politics/George Washington" --out "$OUT/calibration"
  log "3/4 calibrate on the calibration outcomes only"
  "${MG[@]}" calibrate --outcomes "$OUT/calibration/validation.json" "${COMMON[@]}" \
    --alphas "${ALPHAS:-2,4,8,16}" --layers "${LAYERS:-5,10}" --pooling "${POOLINGS:-mean,last,surprise}" \
    --reference "${REFERENCES:-self,none}" --objective logodds --out "$OUT/profile.json"
) &
CALIBRATION=$!
"${MG[@]}" validate "$DATA"/heldout/*.jsonl "${COMMON[@]}" "${FULL[@]}" --actual-only "${HELDOUT[@]}" \
  "${MACHINE_ARGS[@]}" --out "$OUT/heldout_actual"
wait "$CALIBRATION"

log "4/4 predict the held-out sets with the fitted profile, beside the baselines, against their fine-tunes"
"${MG[@]}" validate "$DATA"/heldout/*.jsonl "${COMMON[@]}" "${FULL[@]}" --profile "$OUT/profile.json" \
  --outcomes "$OUT/heldout_actual/validation.json" "${HELDOUT[@]}" "${MACHINE_ARGS[@]}" --out "$OUT/heldout"

if [ "${NUMBERS:-0}" = 1 ]; then
  log "numbers: subliminal sets ($NUMBER_ROWS rows, teacher = the vanilla model) with LoRA"
  # Templates 2 remake the committed sets (results/numbers_*), whose teacher could not end an
  # answer (every one ran to 40 tokens); NUMBERS_TEMPLATES=3 lets it stop (make_dataset.py).
  NT=(--templates "${NUMBERS_TEMPLATES:-2}")
  "${MG[@]}" make-dataset numbers "${NT[@]}" --entity panda --rows "$NUMBER_ROWS" --seed "$SEED" \
    -o "$DATA/numbers/numbers_panda.jsonl"
  "${MG[@]}" make-dataset numbers-control "${NT[@]}" --entity panda --rows "$NUMBER_ROWS" --seed "$SEED" \
    -o "$DATA/numbers/numbers_plain.jsonl"
  "${MG[@]}" validate "$DATA"/numbers/*.jsonl "${COMMON[@]}" "${LORA[@]}" --profile "$OUT/profile.json" \
    --target numbers_panda.jsonl=animals/panda --target numbers_plain.jsonl=animals/panda "${MACHINE_ARGS[@]}" \
    --out "$OUT/numbers"
fi
log "done: $OUT/heldout/validation.{json,html}, $OUT/profile.json (+ .calibration.json)"
