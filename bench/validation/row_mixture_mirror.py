"""The row mixture minus its mirror, on seen sets: a lead for the next variant, not a judged rule.

`row_mixture_ladder.py` showed on the spent reserve that the row mixture's dose signal and
its false findings both live where the steered suite is nearly silent, and that the mirror
mixture (each row's −α·Δ_i, mixed the same way; `row_mixture.py` run with α −2) orders a
neutral control below the doses. Here: predicted shift = mixture shift at α 2 − mirror
mixture shift, on every seen set that has both records. α stays the row mixture's fitted 2;
nothing is fitted. Scored as `row_mixture_fit.py` scores, beside the plain mixture.

    python bench/validation/row_mixture_mirror.py RECORD_DIR MIRROR_DIR OUTCOMES.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import metric_line, metric_rows, score  # noqa: E402
from first_step_fit import records_for  # noqa: E402

ALPHA = "2"


def shifts(record: dict, scale: str) -> dict:
    return {(s, e): shift for s, e, shift in record["scales"][scale]["shifts"]}


def rates(dataset: dict, plain: dict, mirror: dict | None) -> dict:
    """Outcome vanilla + mixture shift (− mirror shift), clipped to [0, 1]."""
    steered = shifts(plain, ALPHA)
    opposite = shifts(mirror, f"-{ALPHA}") if mirror else dict.fromkeys(steered, 0.0)
    out = {}
    for p in dataset["points"]:
        key = (p["suite"], p["entity"])
        out[key] = min(1.0, max(0.0, p["vanilla_rate"] + steered[key] - opposite[key]))
    return out


def main(record_dir: str, mirror_dir: str, *outcome_paths: str) -> None:
    for path in outcome_paths:
        outcomes = json.loads(Path(path).read_text())
        plain, mirror = records_for(Path(record_dir), outcomes), records_for(Path(mirror_dir), outcomes)
        both = {**outcomes, "datasets": [d for d in outcomes["datasets"] if d["name"] in plain and d["name"] in mirror]}
        print(f"{path} ({len(both['datasets'])} sets with both records)")
        for label, use_mirror in (("mixture", False), ("excess", True)):
            print(f" {label}:")
            result = score(both, lambda d: rates(d, plain[d["name"]], mirror[d["name"]] if use_mirror else None), label)
            print(metric_line(label, metric_rows(result, both, label)[0][1]))


if __name__ == "__main__":
    main(*sys.argv[1:])
