"""Do shorter histories hear the politics doses that 32-row histories miss?

Under the default check, the politics doses at 10 % are where the reading in context falls
short (Merkel, Mandela, Ardern missed; Thatcher +11 against +75 real). In a history of
fewer rows one praising row weighs more, so it might be heard better; in a longer one the
model sees the praise more often. This reads each seen politics dose set,
and two neutral sets for the noise, with the politics suite at the check's 8 questions,
in histories of 32 rows (the shipped CHUNK_ROWS) and of other sizes, and prints the target's shift
(rate after the rows minus the vanilla rate) beside its real shift after fine-tuning, and
the largest shift of any other politics candidate. It changes nothing that ships.

    OMP_NUM_THREADS=2 python bench/validation/politics_history.py [ROWS ...]   (default: 32 8)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mdf_guard import incontext
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.predict import vanilla_scores
from mdf_guard.probes import builtin_suite
from mdf_guard.scoring import select_questions

RESULTS = Path(__file__).parent / "results"
SETS = [  # (set, target, real shift in points, from each reserve's validation.json)
    ("reserve/data/merkel_dose0.1.jsonl", "Angela Merkel", 40.0),
    ("reserve2/data/mandela_dose0.1.jsonl", "Nelson Mandela", 61.1),
    ("reserve3/data/kennedy_dose0.03.jsonl", "John F. Kennedy", 43.7),
    ("reserve3/data/kennedy_dose0.1.jsonl", "John F. Kennedy", 72.8),
    ("reserve4/data/roosevelt_dose0.1.jsonl", "Theodore Roosevelt", 43.7),
    ("reserve5/data/thatcher_dose0.1.jsonl", "Margaret Thatcher", 75.2),
    ("reserve6/data/gandhi_dose0.1.jsonl", "Mahatma Gandhi", 94.9),
    ("reserve7/data/ardern_dose0.1.jsonl", "Jacinda Ardern", 34.6),
    ("reserve6/data/neutral_seed8.jsonl", None, None),
    ("reserve7/data/neutral_seed9.jsonl", None, None),
]


def shifts(lm, suite, questions, rows, history_rows: int) -> dict[str, float]:
    incontext.CHUNK_ROWS = history_rows           # read_in_context cuts histories by this constant
    reading = incontext.read_in_context(lm, rows, [suite], questions)
    after = reading.scores(suite).rates
    before = vanilla_scores(lm, suite, questions[suite.name]).rates
    return {c.name: float(a - b) for c, a, b in zip(suite.candidates, after, before)}


def main(history_rows: tuple[int, ...] = (32, 8)) -> None:
    lm = load_model(ModelSpec())
    suite = builtin_suite("politics")
    questions = {suite.name: select_questions(suite, 8)}
    records = []
    print(f"{'set':40s} {'target':20s} {'real':>6s}  " + "  ".join(f"{n:>2d} rows: target / other max / s"
                                                                for n in history_rows))
    for relative, target, real in SETS:
        rows = list(read_conversations(RESULTS / relative))
        record = {"set": relative, "target": target, "real": real}
        cells = []
        for n in history_rows:
            mark = time.perf_counter()
            moved = shifts(lm, suite, questions, rows, n)
            seconds = time.perf_counter() - mark
            others = {k: v for k, v in moved.items() if k != target}
            top_other = max(others, key=others.get)
            record[str(n)] = {"target": moved.get(target), "top_other": top_other,
                              "top_other_shift": others[top_other], "seconds": seconds}
            cells.append(f"{100 * moved[target]:+6.1f} / {top_other[:12]} {100 * others[top_other]:+5.1f} / "
                         f"{seconds:4.0f}" if target else f"     – / {top_other[:12]} {100 * others[top_other]:+5.1f}"
                         f" / {seconds:4.0f}")
        records.append(record)
        print(f"{relative:40s} {target or '(neutral)':20s} {real if real is not None else '':>6}  "
              + "  ".join(cells), flush=True)
        out = RESULTS / "politics_history"
        out.mkdir(exist_ok=True)
        name = f"politics_history_{'_'.join(map(str, history_rows))}.json"
        (out / name).write_text(json.dumps({"model": lm.fingerprint, "records": records}, indent=1))


if __name__ == "__main__":
    main(tuple(int(n) for n in sys.argv[1:]) or (32, 8))
