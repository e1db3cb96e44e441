"""The reserves' 3 % sets judged on their four measured groupings pooled (16 histories), as a
check that averaged them would judge them: the first look at averaging groupings, before it
was tried in the check (`ac440e1`, reverted after the tenth reserve; bench/validation/README.md,
"Reading a small file in several groupings").

Reads the readings that reserves_grouping.sh left in its fresh cache directories (28, given
in the order made: 4 per set in the script's order, file order then seeds 0, 1, 2), and
judges each grouping, the first two seeded ones pooled, and all four pooled, at the default
policy, against the seed-0 `self` reference (computed where that run had not needed it).
Run it right after reserves_grouping.sh, on the same machine:

    python bench/validation/reserves_grouping_pooled.py $(ls -dtr /tmp/mdf-guard-bench-early-stop-context-* | tail -28)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from mdf_guard import incontext
from mdf_guard.check import _reference_in_context, model_spec, questions_asked, with_context_reference
from mdf_guard.data import open_shard
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.probes import resolve_suites
from mdf_guard.verdict import evaluate

RESULTS = Path(__file__).parent / "results"
SETS = {"horse": "reserve6/data/horse", "giraffe": "reserve7/data/giraffe", "otter": "reserve8/data/otter",
        "Xi Jinping": "reserve9/data/xijinping", "Mustafa Kemal Atatürk": "reserve9/data/ataturk",
        "monkey": "reserve9/data/monkey", "octopus": "reserve9/data/octopus"}
LABELS = ("file", "seed0", "seed1", "seed2")


def data_reading(cache: Path, rows: int) -> incontext.ContextReading:
    """The one cached reading of `rows` rows in a bench run's cache (the data's; the `self`
    reference's has 64). Its windows only count the histories."""
    for path in (cache / "context").glob("*.json"):
        value = json.loads(path.read_text())
        if value["rows"] == rows:
            sums = {name: torch.tensor(total, dtype=torch.float64) for name, total in value["sums"].items()}
            return incontext.ContextReading(sums, rows, tuple(range(len(value["windows"]))))
    raise SystemExit(f"{cache}: no reading of {rows} rows")


def pooled(readings: list[incontext.ContextReading]) -> incontext.ContextReading:
    """The readings' histories as one reading's: their sums added, their histories counted."""
    sums = {name: sum(r.sums[name] for r in readings) for name in readings[0].sums}
    return incontext.ContextReading(sums, readings[0].rows, tuple(range(sum(len(r.windows) for r in readings))))


def main() -> None:
    caches = [Path(arg) for arg in sys.argv[1:]]
    if len(caches) != 4 * len(SETS):
        raise SystemExit(f"usage: reserves_grouping_pooled.py CACHE_DIR x {4 * len(SETS)} (see the docstring)")
    policy = Policy()
    lm = load_model(model_spec(policy))
    suites = resolve_suites(policy.suites)
    questions = questions_asked(suites, policy)
    for number, (entity, stem) in enumerate(SETS.items()):
        runs = caches[4 * number:4 * number + 4]
        readings = [data_reading(cache, 128) for cache in runs]
        os.environ["MDF_GUARD_CACHE"] = str(runs[0])
        shard = open_shard(RESULTS / f"{stem}_dose0.03.jsonl")
        reference, _ = _reference_in_context(lm, [shard], [128], with_context_reference(policy), suites, questions,
                                             None)
        for label, reading in [*zip(LABELS, readings), ("seed0+1", pooled(readings[1:3])),
                               ("all4", pooled(readings))]:
            bare = incontext.predict_in_context(lm, reading, suites, questions)
            findings = evaluate([incontext.add_reference_control(p, s, reference) for s, p in zip(suites, bare)],
                                policy)
            target = next(f for f in findings if f.entity == entity)
            flagged = ", ".join(f"{f.suite}/{f.entity}" for f in findings if f.flagged) or "-"
            print(f"{entity:24s} {label:8s} {target.shift * 100:+6.1f}  {flagged}", flush=True)


if __name__ == "__main__":
    main()
