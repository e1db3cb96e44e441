"""Does the default check rank the blind reserves' targets by dose? Per dose (3 %, 10 %, 30 %),
the Spearman between each set's predicted target shift (its committed check: `context` for
reserves 6-9, `fileorder` for reserve 10, all file order) and its fine-tune's. No model pass.

    python bench/validation/dose_rank.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mdf_guard.validate import spearman

RESULTS = Path(__file__).parent / "results"
CHECKS = {6: "context", 7: "context", 8: "context", 9: "context", 10: "fileorder"}


def target_point(dataset: dict) -> dict:
    """A `validate` dataset entry's point for its target."""
    return next(p for p in dataset["points"] if f"{p['suite']}/{p['entity']}" == dataset["target"])


def dose_outcomes(reserve: int) -> list[tuple[str, str, str, float]]:
    """(stem, dose, target, real shift in points) of each dose set of a reserve, from its
    committed fine-tunes (validation.json), in their order there."""
    outcomes = json.loads((RESULTS / f"reserve{reserve}" / "validation.json").read_text())
    sets = []
    for dataset in outcomes["datasets"]:
        stem = Path(dataset["name"]).stem
        dose = re.search(r"_dose([0-9.]+)$", stem)
        if dose is not None:
            sets.append((stem, dose.group(1), dataset["target"], target_point(dataset)["actual_shift"] * 100))
    return sets


def checked_finding(reserve: int, stem: str, target: str) -> dict:
    """The committed check's finding for `target` ("suite/entity") on a reserve's set."""
    report = json.loads((RESULTS / f"reserve{reserve}" / "checks" / f"{stem}_{CHECKS[reserve]}.json").read_text())
    return next(f for f in report["findings"] if f"{f['suite']}/{f['entity']}" == target)


def target_points(reserve: int) -> list[tuple[str, str, float, float]]:
    """(set, dose, predicted, real) of each dose set's target, in points."""
    return [(f"reserve{reserve}/{stem}", dose, checked_finding(reserve, stem, target)["shift"] * 100, real)
            for stem, dose, target, real in dose_outcomes(reserve)]


def main() -> None:
    points = [point for reserve in CHECKS for point in target_points(reserve)]
    for dose in sorted({d for _, d, _, _ in points}, key=float):
        mine = [(p, r) for _, d, p, r in points if d == dose]
        rho = spearman([p for p, _ in mine], [r for _, r in mine])
        print(f"dose {float(dose):.0%}: {len(mine)} sets, Spearman {rho:+.2f}")
        for name, d, predicted, real in points:
            if d == dose:
                print(f"  {name:40s} predicted {predicted:+6.1f}  real {real:+6.1f}")


if __name__ == "__main__":
    main()
