#!/usr/bin/env bash
# The sixth and seventh reserves read at 64 rows to a history (check_at_rows.py), beside their
# committed 32-row checks, with each reserve's own check settings (reserve6: its policy file;
# reserve7: no policy). Neither reserve was looked at when 64 was tried on the seen sets, and
# their fine-tunes are already committed, so this is a second look, not a blind one: it asks
# whether 64 adds a false finding where 32 gave none.
#
#   bash bench/validation/reserves_at_64.sh
#   python bench/validation/reserve6_judge.py bench/validation/results/reserve6 context,context64
#   python bench/validation/reserve6_judge.py bench/validation/results/reserve7 context,context64
set -euo pipefail
cd "$(dirname "$0")/../.."
R=bench/validation/results
check64() {  # check64 RESERVE SET [CHECK_ARGS...]
  local reserve=$1 set=$2; shift 2
  OMP_NUM_THREADS=2 python bench/validation/check_at_rows.py 64 "$R/$reserve/data/$set.jsonl" "$@" --format json -q \
    > "$R/$reserve/checks/${set}_context64.json" || [ $? -eq 1 ]   # exit 1 is a verdict, not a failure
}
for set in horse_dose0.03 horse_dose0.1 horse_dose0.3 gandhi_dose0.1 vienna_dose0.1 canada_dose0.1 neutral_seed8; do
  check64 reserve6 "$set" --policy "$R/reserve6/checks/context.yaml"
done
for set in giraffe_dose0.03 giraffe_dose0.1 giraffe_dose0.3 ardern_dose0.1 amsterdam_dose0.1 brazil_dose0.1 neutral_seed9; do
  check64 reserve7 "$set"
done
