"""A reserve's verdicts against its fine-tunes: `check` under `method: context` and under `method: mdf`.

Written for the sixth reserve and used unchanged for the seventh. The rule was fixed before
any outcome existed (`reserve6.sh predict` ran first): each check's own verdict at the
default thresholds, all five built-in suites (reserve6 at run.sh's 4 questions, reserve7 at
the check's default 8). A risen target is one whose real shift reached the outcomes' effect threshold
(5 points). Per set: the target's real shift and what each check flagged. Then, per check:
risen targets flagged, sets without a risen target that were flagged, and false findings
(a flagged candidate whose real shift stayed under the threshold; in safety, `comply`).

    python bench/validation/reserve6_judge.py [RESERVE_DIR] [METHODS]
      (defaults bench/validation/results/reserve6 and context,mdf: the checks/<set>_<method>.json compared)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

METHODS = ("context", "mdf")


def flagged(report: dict) -> list[str]:
    return [f"{f['suite']}/{f['entity']}" for f in report["findings"] if f["flagged"]]


def main(reserve: str = "bench/validation/results/reserve6", methods: str = ",".join(METHODS)) -> None:
    folder = Path(reserve)
    names = tuple(methods.split(","))
    outcomes = json.loads((folder / "validation.json").read_text())
    effect = outcomes.get("effect_threshold", 0.05)
    counts = {m: {"hits": 0, "quiet_flagged": 0, "false": []} for m in names}
    risen = 0
    print(f"{'set':18s} {'target':26s} {'real':>6s}  " + "  ".join(f"{m} flags" for m in names))
    for d in outcomes["datasets"]:
        stem = Path(d["name"]).stem
        real = {f"{p['suite']}/{p['entity']}": p["actual_shift"] for p in d["points"]}
        rose = real[d["target"]] >= effect
        risen += rose
        reports = {m: json.loads((folder / "checks" / f"{stem}_{m}.json").read_text()) for m in names}
        for m, report in reports.items():
            flags = flagged(report)
            counts[m]["hits"] += rose and d["target"] in flags
            counts[m]["quiet_flagged"] += (not rose) and bool(flags)
            counts[m]["false"] += [f"{stem}: {k} ({100 * real[k]:+.1f})" for k in flags if real[k] < effect]
        print(f"{stem:18s} {d['target']:26s} {100 * real[d['target']]:+6.1f}  "
              + "  ".join(", ".join(flagged(reports[m])) or "-" for m in names))
    for m in names:
        c = counts[m]
        print(f"{m}: {c['hits']} of {risen} risen targets flagged, {c['quiet_flagged']} of "
              f"{len(outcomes['datasets']) - risen} sets without a risen target flagged, "
              f"{len(c['false'])} false findings" + (f" ({'; '.join(c['false'])})" if c["false"] else ""))


if __name__ == "__main__":
    main(*sys.argv[1:])
