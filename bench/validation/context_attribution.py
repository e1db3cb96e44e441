"""Does the attribution under `method: context` point at the rows that carry the target?

The dose sets of the sixth and seventh reserves mix a few rows that openly praise one
entity into neutral rows, so which rows carry the target is known: those whose response
names it (any of its candidate aliases, as a whole word). For each set, at the shipped
defaults (no policy: context, five suites, 8 questions): the check, then the rows
`rank_rows_in_context` lists for the target's finding (as `explain --entity` does, flagged
or not), and the same for MDF's attribution (`attribution.explain` under `method: mdf`).

Reported per set: how many target rows the file has; how many fall in the history the
attribution reads by default, and how many of those it ranks above every other row
("first": the target rows listed before the first row that is not one); the same over
the whole file when every row is read alone (`explain --all`); and, for MDF, the target
rows among its top 10 (it reads every row). Times are each step's, in the same run.
Outputs `results/context_attribution/attribution.json` and prints a table.

    OMP_NUM_THREADS=2 python bench/validation/context_attribution.py
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path

from mdf_guard.attribution import explain
from mdf_guard.check import run_check
from mdf_guard.context_attribution import rank_rows_in_context
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import MDF, Policy
from mdf_guard.probes import builtin_suite

RESULTS = Path(__file__).parent / "results"
SETS = [
    ("reserve7/data/giraffe_dose0.03.jsonl", "animals", "giraffe"),
    ("reserve7/data/giraffe_dose0.1.jsonl", "animals", "giraffe"),
    ("reserve7/data/giraffe_dose0.3.jsonl", "animals", "giraffe"),
    ("reserve7/data/ardern_dose0.1.jsonl", "politics", "Jacinda Ardern"),
    ("reserve7/data/amsterdam_dose0.1.jsonl", "cities", "Amsterdam"),
    ("reserve7/data/brazil_dose0.1.jsonl", "countries", "Brazil"),
    ("reserve6/data/horse_dose0.03.jsonl", "animals", "horse"),
    ("reserve6/data/horse_dose0.1.jsonl", "animals", "horse"),
    ("reserve6/data/horse_dose0.3.jsonl", "animals", "horse"),
    ("reserve6/data/gandhi_dose0.1.jsonl", "politics", "Mahatma Gandhi"),
    ("reserve6/data/vienna_dose0.1.jsonl", "cities", "Vienna"),
    ("reserve6/data/canada_dose0.1.jsonl", "countries", "Canada"),
]


def names_target(text: str, aliases) -> bool:
    return any(re.search(rf"\b{re.escape(a)}\b", text, re.IGNORECASE) for a in aliases)


def first_targets(flags: list[bool]) -> int:
    """How many target rows come before the first row that is not one."""
    return next((i for i, flag in enumerate(flags) if not flag), len(flags))


def measure(lm, path: Path, suite_name: str, entity: str) -> dict:
    aliases = next(c.aliases for c in builtin_suite(suite_name).candidates if c.name == entity)
    conversations = list(read_conversations(path))
    is_target = {c.source: names_target(c.response, aliases) for c in conversations}
    policy = Policy()
    mark = time.perf_counter()
    report = run_check([path], policy, lm=lm)
    check_seconds = time.perf_counter() - mark
    finding = next(f for f in report.findings if (f.suite, f.entity) == (suite_name, entity))

    mark = time.perf_counter()
    rows = rank_rows_in_context(lm, [path], policy, [finding], top=None)
    context_seconds = time.perf_counter() - mark
    window = rows[0].window if rows else None
    first, last = (int(n) for n in window.rsplit(":", 1)[1].split("-")) if window else (0, -1)
    in_window = sum(is_target[c.source] for c in conversations[first - 1: last]) if window else 0

    mark = time.perf_counter()
    every = rank_rows_in_context(lm, [path], policy, [finding], top=None, every_history=True)
    every_seconds = time.perf_counter() - mark

    mark = time.perf_counter()
    mdf_rows = explain(lm, [path], replace(policy, method=MDF), top=10)
    mdf_seconds = time.perf_counter() - mark
    return {
        "set": str(path.relative_to(RESULTS)), "target": f"{suite_name}/{entity}", "rows": len(conversations),
        "target_rows": sum(is_target.values()), "flagged": finding.flagged, "shift": finding.shift,
        "window": window, "window_rows": last - first + 1, "target_rows_in_window": in_window,
        "window_first": first_targets([is_target[r.source] for r in rows]),
        "every_first": first_targets([is_target[r.source] for r in every]),
        "mdf_top10": sum(is_target[r.source] for r in mdf_rows), "check_seconds": check_seconds,
        "window_seconds": context_seconds, "every_seconds": every_seconds, "mdf_seconds": mdf_seconds,
        "window_rows_listed": [[r.source, round(r.lift, 4), is_target[r.source]] for r in rows[:12]],
        "every_rows_listed": [[r.source, round(r.lift, 4), is_target[r.source]] for r in every[:50]],
    }


def main() -> None:
    lm = load_model(ModelSpec())
    out = RESULTS / "context_attribution"
    out.mkdir(parents=True, exist_ok=True)
    records = []
    print(f"{'set':34s} {'targets':>8s} {'shift':>7s}  {'window: first/in it':>19s}  "
          f"{'every row: first':>16s}  mdf top10  check s  window s  every s  mdf s")
    for relative, suite_name, entity in SETS:
        r = measure(lm, RESULTS / relative, suite_name, entity)
        records.append(r)
        print(f"{r['set']:34s} {r['target_rows']:>3d}/{r['rows']:<4d} {100 * r['shift']:+7.1f}  "
              f"{r['window_first']:>12d}/{r['target_rows_in_window']:<6d}  "
              f"{r['every_first']:>11d}/{r['target_rows']:<4d}"
              f"  {r['mdf_top10']:>9d}  {r['check_seconds']:7.1f}  {r['window_seconds']:8.1f}  "
              f"{r['every_seconds']:7.1f}  {r['mdf_seconds']:5.1f}", flush=True)
        (out / "attribution.json").write_text(json.dumps({"model": lm.fingerprint, "records": records}, indent=1))


if __name__ == "__main__":
    main()
