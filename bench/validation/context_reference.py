"""The in-context reading of each set's `self` reference: what a check that reads the rows in
context would contrast them with.

Why: against the vanilla model, every set's rows in context lift Paris by 15-23 points and
cat and elephant by 7-20 (`results/context/records/`, neutral sets included): a long chat
of templated answers does that, whatever the answers praise. A verdict needs a reference
that carries the same drift. The check's own `self` reference is the candidate: the
vanilla model's greedy answers (48 tokens) to a seeded sample of 64 of the set's prompts,
exactly as `check` samples and answers them, read in context as the rows are
(`incontext.context_rates`, 32 to a history).

Writes OUT_DIR/<file stem>.json: sha256, each candidate's shift after the self answers
(against the vanilla model, as the records' shifts are), and the seconds (answering,
reading). `context_verdict.py` sets them beside the records.

    OMP_NUM_THREADS=2 python bench/validation/context_reference.py [--rows=N] OUT_DIR FILES...

--rows=N reads N rows to a history instead of the shipped 32 (the answers are the same).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard import contrast, incontext  # noqa: E402
from mdf_guard.check import SELF_ANSWER_TOKENS  # noqa: E402
from mdf_guard.data import read_conversations  # noqa: E402
from mdf_guard.models import ModelSpec, load_model  # noqa: E402
from mdf_guard.policy import Policy  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from mdf_guard.scoring import select_questions  # noqa: E402
from mdf_guard.validate import dataset_sha256, probe_rates  # noqa: E402
from row_mixture import QUESTIONS, SUITES  # noqa: E402   the suites and questions every research line probes


def main(out_dir: str, *files: str) -> None:
    if out_dir.startswith("--rows="):
        incontext.CHUNK_ROWS = int(out_dir.removeprefix("--rows="))
        out_dir, *files = files
    torch.set_num_threads(2)
    lm = load_model(ModelSpec(name="embedded"))
    suites = resolve_suites(list(SUITES))
    questions = {s.name: select_questions(s, QUESTIONS) for s in suites}
    vanilla = probe_rates(lm, suites, questions)
    policy = Policy()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in map(Path, files):
        started = time.time()
        sample = contrast.sample_conversations(read_conversations(path), policy.reference_samples, policy.seed)
        answers = contrast.self_answers(lm, sample, max_new_tokens=SELF_ANSWER_TOKENS)
        answered = time.time()
        rates = incontext.context_rates(lm, answers, suites, questions)
        record = {"dataset": path.name, "sha256": dataset_sha256([path]), "answers": len(answers),
                  "shifts": [[s, e, rate - vanilla.rates[(s, e)]] for (s, e), rate in rates.items()],
                  "seconds": {"answering": round(answered - started, 1), "reading": round(time.time() - answered, 1)}}
        (Path(out_dir) / f"{path.stem}.json").write_text(json.dumps(record, indent=1))
        print(f"{path.stem}: {record['seconds']}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
