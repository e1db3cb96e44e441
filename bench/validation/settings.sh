# Sourced by run.sh and the scripts beside it (fresh.sh, blind_clusters.sh, reserve*.sh): the
# model, suites and fine-tune settings they share, so that their results compare. The
# environment overrides documented in run.sh (MODEL, QUESTIONS, LR, EPOCHS, SEED, BF16=1) apply
# to every script that sources this file. Defines the bash arrays COMMON (model, suites,
# questions), FULL and LORA (fine-tune settings), tune_lanes, the reserves' two-lane fine-tune, and
# predict_sizes, the checks at two history sizes of reserves 8 and 9.
MODEL=${MODEL:-embedded}; QUESTIONS=${QUESTIONS:-4}; LR=${LR:-1e-4}; EPOCHS=${EPOCHS:-2}; SEED=${SEED:-0}
if [ "${BF16:-0}" = 1 ]; then BF16_ARG=--bf16; else BF16_ARG=--no-bf16; fi
COMMON=(--model "$MODEL" --suite animals --suite cities --suite politics --questions "$QUESTIONS")
FULL=(--method full --lr "$LR" --epochs "$EPOCHS" --batch-size 16 "$BF16_ARG" --seed "$SEED")
LORA=(--method lora --lr 2e-4 --lora-r 16 --epochs 3 --batch-size 16 "$BF16_ARG" --seed "$SEED")

# tune_lanes OUT FILES_A... -- FILES_B...: the reserves' fine-tunes (`validate --actual-only`
# with FULL and the caller's TARGETS array), lane A and lane B side by side, merged into OUT.
tune_lanes() {
  local out=$1 lane_a=() pid; shift
  while [ "$1" != -- ]; do lane_a+=("$1"); shift; done; shift
  _tune_lane "$out/tune_a" "${lane_a[@]}" &
  pid=$!
  _tune_lane "$out/tune_b" "$@"
  wait "$pid"
  python bench/validation/merge.py "$out" "$out/tune_a/validation.json" "$out/tune_b/validation.json"
  rm -r "$out/tune_a" "$out/tune_b"
}

_tune_lane() {  # _tune_lane OUT FILES...
  local out=$1; shift
  python -m mdf_guard.cli validate "$@" "${COMMON[@]}" "${FULL[@]}" "${TARGETS[@]}" --actual-only --out "$out"
}

# predict_sizes OUT SETS...: `check` of each OUT/data/SET.jsonl with no policy (nothing above the
# data up to the repository root is one) at 32 rows to a history, as shipped, and at 64
# (check_at_rows.py), into OUT/checks/SET_context.json and SET_context64.json.
predict_sizes() {
  local out=$1 rows name set; shift
  mkdir -p "$out/checks"
  for rows in 32 64; do
    name=context; [ "$rows" = 64 ] && name=context64
    for set in "$@"; do
      OMP_NUM_THREADS=2 python bench/validation/check_at_rows.py "$rows" "$out/data/$set.jsonl" --format json -q \
        > "$out/checks/${set}_$name.json" || [ $? -eq 1 ]   # exit 1 is a verdict, not a failure
    done
  done
}
