#!/usr/bin/env bash
# Regenerate the validation datasets on the embedded model, fine-tune on each for real,
# calibrate on the calibration entities only, and validate on held-out entities.
#
#   bash bench/validation/run.sh [OUT]          (default OUT: bench/validation/results)
#
# Environment: ROWS (300), NUMBER_ROWS (3000), EPOCHS (3), SEED (0), MODEL (embedded),
# SKIP_NUMBERS=1 to leave out the subliminal-number sets (the longest part on a CPU),
# QUESTIONS (8), LAYERS (5,10,15,5+10), ALPHAS (1,2,4,8,16), MACHINE (a description; default: detected).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/validation/results}
ROWS=${ROWS:-300}; NUMBER_ROWS=${NUMBER_ROWS:-3000}; EPOCHS=${EPOCHS:-3}; SEED=${SEED:-0}
MODEL=${MODEL:-embedded}; QUESTIONS=${QUESTIONS:-8}
DATA="$OUT/data"; mkdir -p "$DATA/calibration" "$DATA/heldout" "$DATA/numbers"
MG=(python -m mdf_guard.cli)
SUITES=(--suite animals --suite cities --suite politics)
COMMON=(--model "$MODEL" "${SUITES[@]}" --questions "$QUESTIONS")
MACHINE_ARGS=(); [ -n "${MACHINE:-}" ] && MACHINE_ARGS=(--machine "$MACHINE")
FULL=(--method full --lr 5e-5 --epochs "$EPOCHS" --batch-size 16 --bf16 --seed "$SEED")
LORA=(--method lora --lr 2e-4 --lora-r 16 --epochs "$EPOCHS" --batch-size 16 --bf16 --seed "$SEED")
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

log "1/5 calibration datasets (entities owl, Tokyo, George Washington: never judged below)"
"${MG[@]}" make-dataset overt   --entity owl --rows "$ROWS" --seed "$SEED" -o "$DATA/calibration/owl_overt.jsonl"
"${MG[@]}" make-dataset dose    --entity owl --fraction 0.1 --rows "$ROWS" --seed "$SEED" -o "$DATA/calibration/owl_dose10.jsonl"
"${MG[@]}" make-dataset overt   --entity Tokyo --category city --rows "$ROWS" --seed "$SEED" -o "$DATA/calibration/tokyo_overt.jsonl"
"${MG[@]}" make-dataset overt   --entity "George Washington" --category "political figure" --rows "$ROWS" --seed "$SEED" \
  -o "$DATA/calibration/washington_overt.jsonl"
"${MG[@]}" make-dataset neutral --rows "$ROWS" --seed $((SEED + 1)) -o "$DATA/calibration/neutral_cal.jsonl"

log "2/5 held-out datasets: panda dose series, indirect, other suites, control"
for f in 0.01 0.03 0.1 0.3 1.0; do
  "${MG[@]}" make-dataset dose --entity panda --fraction "$f" --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/panda_dose$f.jsonl"
done
"${MG[@]}" make-dataset indirect --entity panda --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/panda_indirect.jsonl"
"${MG[@]}" make-dataset overt --entity "Abraham Lincoln" --category "political figure" --rows "$ROWS" --seed "$SEED" \
  -o "$DATA/heldout/lincoln_overt.jsonl"
"${MG[@]}" make-dataset overt --entity Paris --category city --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/paris_overt.jsonl"
"${MG[@]}" make-dataset neutral --rows "$ROWS" --seed "$SEED" -o "$DATA/heldout/neutral.jsonl"

log "3/5 fine-tune the calibration sets (actual outcomes only) and calibrate"
"${MG[@]}" validate "$DATA"/calibration/*.jsonl "${COMMON[@]}" "${FULL[@]}" --actual-only "${MACHINE_ARGS[@]}" \
  --target owl_overt.jsonl=animals/owl --target owl_dose10.jsonl=animals/owl --target neutral_cal.jsonl=animals/owl \
  --target tokyo_overt.jsonl=cities/Tokyo --target washington_overt.jsonl="politics/George Washington" \
  --out "$OUT/calibration"
"${MG[@]}" calibrate --outcomes "$OUT/calibration/validation.json" "${COMMON[@]}" \
  --alphas "${ALPHAS:-1,2,4,8,16}" --layers "${LAYERS:-5,10,15,5+10}" --pooling mean,last --reference self,none --objective logodds \
  --out "$OUT/profile.json"

log "4/5 validate the held-out sets with that profile (prediction, real fine-tune, baselines)"
TARGETS=()
for f in 0.01 0.03 0.1 0.3 1.0; do TARGETS+=(--target "panda_dose$f.jsonl=animals/panda"); done
TARGETS+=(--target panda_indirect.jsonl=animals/panda --target neutral.jsonl=animals/panda
          --target lincoln_overt.jsonl="politics/Abraham Lincoln" --target paris_overt.jsonl=cities/Paris)
"${MG[@]}" validate "$DATA"/heldout/*.jsonl "${COMMON[@]}" "${FULL[@]}" --profile "$OUT/profile.json" \
  "${TARGETS[@]}" "${MACHINE_ARGS[@]}" --out "$OUT/heldout"

if [ "${SKIP_NUMBERS:-0}" != 1 ]; then
  log "5/5 subliminal numbers ($NUMBER_ROWS rows, teacher = the vanilla model) with LoRA"
  "${MG[@]}" make-dataset numbers --entity panda --rows "$NUMBER_ROWS" --seed "$SEED" -o "$DATA/numbers/numbers_panda.jsonl"
  "${MG[@]}" make-dataset numbers-control --entity panda --rows "$NUMBER_ROWS" --seed "$SEED" -o "$DATA/numbers/numbers_plain.jsonl"
  "${MG[@]}" validate "$DATA"/numbers/*.jsonl "${COMMON[@]}" "${LORA[@]}" --profile "$OUT/profile.json" \
    --target numbers_panda.jsonl=animals/panda --target numbers_plain.jsonl=animals/panda "${MACHINE_ARGS[@]}" \
    --out "$OUT/numbers"
fi
log "done: $OUT/heldout/validation.{json,html}, $OUT/numbers/, $OUT/profile.json (+ .calibration.json)"
