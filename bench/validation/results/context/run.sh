#!/usr/bin/env bash
# How results/context/ was made (2026-12-06, Intel Xeon, 1 torch thread per process):
#   1. records/: the in-context baseline on every seen set at 128 rows to a history (all of a
#      set's rows at once) and at 32, two processes side by side (lane logs; timings only);
#   2. fit.txt: the chunk size chosen on the seen sets' outcomes (context_fit.py), committed
#      before step 3 ran;
#   3. reserve5/: `validate` on reserve5's fine-tunes (reserve5.sh; no prediction had run on
#      them), the shipped check and every baseline, the in-context one at the fitted size;
#      reserve5.txt is table.py's print of it (every set is held out);
#   4. cost/: one `validate` on reserve5's penguin_dose0.1 without --outcomes (2 threads, alone):
#      the check, the baseline and the fine-tune timed in one run.
#   5. (2026-12-07) records_64/: the same seen sets at 64 rows to a history (records64, two lanes of
#      one thread; the datasets regenerated with run.sh's make-dataset lines, sha256 identical to
#      the records'); fit_64.txt: the fit over 32, 64 and 128 (fit64); targets_32_64_128.txt: each
#      target's shift at the three sizes, printed from the merged records.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
DATA=${DATA:-bench/validation/results/data}
V=bench/validation; R=$V/results; OUT=$R/context; H=$DATA/heldout; Q=$R/reserve4/data
SEEN=($R/calibration_predicted/validation.json $R/heldout_batched/second/validation.json $R/fresh/validation.json
      $R/blind_clusters/shipped/validation.json $R/row_mixture/reserve_shipped/validation.json
      $R/row_mixture_prior/reserve2_shipped/validation.json $R/row_mixture_prior/reserve3_shipped/validation.json
      $R/row_vote/reserve4_shipped/validation.json)
case "${1:-}" in
records)
  export OMP_NUM_THREADS=1
  (python $V/context_records.py 1 $OUT/records 128,32 $DATA/calibration/*.jsonl $R/reserve3/data/*.jsonl \
     $R/reserve/data/*.jsonl $H/lincoln_overt.jsonl $H/neutral.jsonl $H/panda_dose0.01.jsonl $H/panda_dose0.03.jsonl \
     $H/panda_dose0.1.jsonl $H/panda_dose0.3.jsonl $Q/fox_dose0.03.jsonl $Q/fox_dose0.1.jsonl $Q/fox_dose0.3.jsonl
  ) > $OUT/lane_a.log 2>&1 &
  (python $V/context_records.py 1 $OUT/records 128,32 $R/reserve2/data/*.jsonl $R/fresh/data/*.jsonl \
     $R/blind_clusters/data/*.jsonl $H/panda_dose1.0.jsonl $H/panda_indirect.jsonl $H/paris_overt.jsonl \
     $Q/lisbon_dose0.1.jsonl $Q/neutral_seed6.jsonl $Q/roosevelt_dose0.1.jsonl) > $OUT/lane_b.log 2>&1 &
  wait ;;
fit)
  python $V/context_fit.py $OUT/records /tmp/context_fit "${SEEN[@]}" -- "${SEEN[@]}" > $OUT/fit.txt ;;
reserve5)
  source $V/settings.sh
  P=$R/reserve5/data
  TARGETS=()
  for f in 0.01 0.03 0.1 0.3; do TARGETS+=(--target "penguin_dose$f.jsonl=animals/penguin"); done
  TARGETS+=(--target "thatcher_dose0.1.jsonl=politics/Margaret Thatcher" --target prague_dose0.1.jsonl=cities/Prague)
  TARGETS+=(--target neutral_seed7.jsonl=animals/penguin)
  OMP_NUM_THREADS=2 python -m mdf_guard.cli validate $P/penguin_dose0.01.jsonl $P/penguin_dose0.03.jsonl \
    $P/penguin_dose0.1.jsonl $P/penguin_dose0.3.jsonl $P/thatcher_dose0.1.jsonl $P/prague_dose0.1.jsonl \
    $P/neutral_seed7.jsonl "${COMMON[@]}" "${FULL[@]}" --outcomes $R/reserve5/validation.json "${TARGETS[@]}" \
    --out $OUT/reserve5 ;;
cost)
  source $V/settings.sh
  OMP_NUM_THREADS=2 python -m mdf_guard.cli validate $R/reserve5/data/penguin_dose0.1.jsonl "${COMMON[@]}" "${FULL[@]}" \
    --target penguin_dose0.1.jsonl=animals/penguin --out $OUT/cost ;;
records64)
  export OMP_NUM_THREADS=1
  (python $V/context_records.py 1 $OUT/records_64 64 $DATA/calibration/*.jsonl $R/reserve3/data/*.jsonl \
     $R/reserve/data/*.jsonl $H/lincoln_overt.jsonl $H/neutral.jsonl $H/panda_dose0.01.jsonl $H/panda_dose0.03.jsonl \
     $H/panda_dose0.1.jsonl $H/panda_dose0.3.jsonl $Q/fox_dose0.03.jsonl $Q/fox_dose0.1.jsonl $Q/fox_dose0.3.jsonl
  ) > $OUT/lane_a64.log 2>&1 &
  (python $V/context_records.py 1 $OUT/records_64 64 $R/reserve2/data/*.jsonl $R/fresh/data/*.jsonl \
     $R/blind_clusters/data/*.jsonl $H/panda_dose1.0.jsonl $H/panda_indirect.jsonl $H/paris_overt.jsonl \
     $Q/lisbon_dose0.1.jsonl $Q/neutral_seed6.jsonl $Q/roosevelt_dose0.1.jsonl) > $OUT/lane_b64.log 2>&1 &
  wait ;;
fit64)
  MERGED=$(mktemp -d)
  python - "$OUT/records" "$OUT/records_64" "$MERGED" <<'PY'
import json, sys
from pathlib import Path
committed, extra, out = map(Path, sys.argv[1:4])
for path in sorted(committed.glob("*.json")):
    record, added = json.loads(path.read_text()), json.loads((extra / path.name).read_text())
    assert added["sha256"] == record["sha256"], path.name
    record["scales"].update(added["scales"])
    (out / path.name).write_text(json.dumps(record))
PY
  python $V/context_fit.py "$MERGED" /tmp/context_fit64 "${SEEN[@]}" -- "${SEEN[@]}" > $OUT/fit_64.txt ;;
*) echo "usage: run.sh records | fit | reserve5 | cost | records64 | fit64" >&2; exit 2 ;;
esac
