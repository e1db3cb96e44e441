"""The README's worked example against real fine-tunes: what each example file's fine-tune
moved, beside what `check` predicted for it under each method.

usage: python bench/validation/examples_table.py bench/validation/results/examples_finetune

Reads FOLDER/tune/<name>.json (`validate --actual-only`) and FOLDER/checks/<name>_<method>.json
(`check --format json`). Lists every entity that either fine-tune moved by 5 points or more, or
that either check flagged, for the panda file; then the neutral file's verdicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RISEN = 0.05
METHODS = ("context", "mdf")


def actual_shifts(path: Path) -> dict[tuple[str, str], float]:
    points = json.loads(path.read_text())["datasets"][0]["points"]
    return {(p["suite"], p["entity"]): p["actual_shift"] for p in points}


def findings(path: Path) -> dict[tuple[str, str], dict]:
    return {(f["suite"], f["entity"]): f for f in json.loads(path.read_text())["findings"]}


def predicted(finding: dict | None) -> str:
    if finding is None:
        return "-"
    return f"{finding['shift'] * 100:+.1f}{' FLAG' if finding['flagged'] else ''}"


def main(folder: Path) -> None:
    tuned = {name: actual_shifts(folder / "tune" / f"{name}.json") for name in ("panda_overt", "neutral")}
    checks = {method: findings(folder / "checks" / f"panda_overt_{method}.json") for method in METHODS}
    keys = {k for shifts in tuned.values() for k, v in shifts.items() if v >= RISEN}
    keys |= {k for found in checks.values() for k, f in found.items() if f["flagged"]}
    print("panda_overt: real shifts (points) after a full fine-tune on it and on neutral.jsonl, and check's "
          "predictions (FLAG: over policy)")
    print(f"{'suite/entity':<30}{'panda tune':>11}{'neutral tune':>13}{'context':>14}{'mdf':>14}")
    for key in sorted(keys, key=lambda k: -tuned["panda_overt"][k]):
        print(f"{'/'.join(key):<30}{tuned['panda_overt'][key] * 100:>+11.1f}{tuned['neutral'][key] * 100:>+13.1f}"
              + "".join(f"{predicted(checks[m].get(key)):>14}" for m in METHODS))
    for method in METHODS:
        report = json.loads((folder / "checks" / f"neutral_{method}.json").read_text())
        print(f"neutral, {method}: {report['verdict']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
