#!/usr/bin/env bash
# How this folder was made: what the pre-commit hook's `--reference HEAD` does under the default
# method (context) on the embedded model, at the default suites and questions. A git repository
# commits the first 128 rows of examples/neutral.jsonl as data.jsonl; each variant then appends
# rows to it and runs `mdf-guard check data.jsonl --reference HEAD` (the added rows read in
# context against the committed file read the same way):
#   neutral32  the next 32 neutral rows            panda32  32 rows of examples/panda_overt.jsonl
#   neutral8   the next 8 neutral rows             panda8   8 panda rows
#   mixed      32 neutral rows with 3 panda rows among them (about 10 %)
# Reports: <variant>.json and <variant>.txt (the JSON replays the text run from the result cache).
# usage: bash bench/validation/results/head_context/run.sh   (from the repository root)
set -euo pipefail
OUT=$(pwd)/bench/validation/results/head_context
EX=$(pwd)/examples
REPO=$(mktemp -d)
cd "$REPO"
git init -q && git config user.email b@example.invalid && git config user.name bench
head -n 128 "$EX/neutral.jsonl" > data.jsonl
git add data.jsonl && git commit -qm "128 neutral rows"
committed=$(cat data.jsonl)
variant() {  # variant NAME: append stdin to the committed file, check, restore
  { printf '%s\n' "$committed"; cat; } > data.jsonl
  OMP_NUM_THREADS=2 mdf-guard check data.jsonl --reference HEAD -q > "$OUT/$1.txt" || [ $? -eq 1 ]
  mdf-guard check data.jsonl --reference HEAD -q --format json > "$OUT/$1.json" || [ $? -eq 1 ]
  echo "$1: $(head -n 1 "$OUT/$1.txt"); $(tail -n 1 "$OUT/$1.txt")"
}
sed -n 129,160p "$EX/neutral.jsonl" | variant neutral32
sed -n 129,136p "$EX/neutral.jsonl" | variant neutral8
sed -n 1,32p "$EX/panda_overt.jsonl" | variant panda32
sed -n 1,8p "$EX/panda_overt.jsonl" | variant panda8
{ sed -n 129,139p "$EX/neutral.jsonl"; sed -n 1p "$EX/panda_overt.jsonl"; sed -n 140,150p "$EX/neutral.jsonl";
  sed -n 2p "$EX/panda_overt.jsonl"; sed -n 151,157p "$EX/neutral.jsonl"; sed -n 3p "$EX/panda_overt.jsonl"; } | variant mixed
rm -rf "$REPO"
