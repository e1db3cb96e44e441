# Sourced by run.sh, fresh.sh and blind_clusters.sh: the model, suites and fine-tune settings they
# share, so that their results compare. The environment overrides documented in run.sh (MODEL,
# QUESTIONS, LR, EPOCHS, SEED, BF16=1) apply to every script that sources this file.
# Defines the bash arrays COMMON (model, suites, questions), FULL and LORA (fine-tune settings).
MODEL=${MODEL:-embedded}; QUESTIONS=${QUESTIONS:-4}; LR=${LR:-1e-4}; EPOCHS=${EPOCHS:-2}; SEED=${SEED:-0}
if [ "${BF16:-0}" = 1 ]; then BF16_ARG=--bf16; else BF16_ARG=--no-bf16; fi
COMMON=(--model "$MODEL" --suite animals --suite cities --suite politics --questions "$QUESTIONS")
FULL=(--method full --lr "$LR" --epochs "$EPOCHS" --batch-size 16 "$BF16_ARG" --seed "$SEED")
LORA=(--method lora --lr 2e-4 --lora-r 16 --epochs 3 --batch-size 16 "$BF16_ARG" --seed "$SEED")
