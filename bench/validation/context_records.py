"""The in-context baseline's records: each set's shifts per chunk size, as `validate` computes them.

Writes OUT_DIR/<file stem>.json in the row mixture's record format (sha256, and under
"scales" one entry per chunk size: each candidate's shift, each suite's answer mass over the
vanilla one, the seconds), so that `context_fit.py` scores them with the same tools.
`incontext.context_rates` with CHUNK_ROWS set to each size in turn; the three suites and
their 4 questions that `bench/validation/run.sh` probes.

    OMP_NUM_THREADS=1 python bench/validation/context_records.py THREADS OUT_DIR CHUNKS FILES...

CHUNKS: comma-separated rows per history, e.g. 32,128 (128: every row of a 128-row set at once).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard import incontext  # noqa: E402
from mdf_guard.data import read_conversations  # noqa: E402
from mdf_guard.models import ModelSpec, load_model  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from mdf_guard.scoring import select_questions  # noqa: E402
from mdf_guard.validate import dataset_sha256, probe_rates  # noqa: E402
from row_mixture import QUESTIONS, SUITES  # noqa: E402   the suites and questions every research line probes


def main(threads: str, out_dir: str, chunks: str, *files: str) -> None:
    torch.set_num_threads(int(threads))
    lm = load_model(ModelSpec(name="embedded"))
    suites = resolve_suites(list(SUITES))
    questions = {s.name: select_questions(s, QUESTIONS) for s in suites}
    vanilla = probe_rates(lm, suites, questions)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in map(Path, files):
        conversations = list(read_conversations(path))
        record = {"dataset": path.name, "sha256": dataset_sha256([path]), "rows": len(conversations), "scales": {}}
        for size in chunks.split(","):
            incontext.CHUNK_ROWS = int(size)
            started = time.time()
            rates = incontext.context_rates(lm, conversations, suites, questions)
            record["scales"][size] = {"shifts": [[s, e, rate - vanilla.rates[(s, e)]] for (s, e), rate in rates.items()],
                                      "seconds": round(time.time() - started, 1)}
            print(f"{path.stem} {size}: {record['scales'][size]['seconds']:.0f} s", flush=True)
        (Path(out_dir) / f"{path.stem}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
