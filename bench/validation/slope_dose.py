"""How one candidate's log-share slope moves along a dose series (slope_probe.py's records).

The slope of a candidate's log share among the suite's candidates, d log share / dα at α = 0,
averaged over the probe questions: at ε = 0.25 and 0.5 (equal if the first order holds), under
a random direction of Δ's norm (the null), and the suite's three steepest candidates.

    python bench/validation/slope_dose.py SLOPE_DIR SUITE ENTITY RECORD_NAME [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from slope_fit import slopes


def share_slopes(suite: dict, epsilon: str, key: str = "delta") -> torch.Tensor:
    """[questions, candidates]: the slope of each candidate's log share (log P minus the log of the suite's total)."""
    shares = torch.softmax(torch.tensor(suite["vanilla"], dtype=torch.float64), dim=1)
    raw = slopes(suite, epsilon, key)
    return raw - (shares * raw).sum(dim=1, keepdim=True)


def main(slope_dir: str, suite_name: str, entity: str, *names: str) -> None:
    print(f"{'record':18s} {'|Δ|':>5s} {'ε 0.25':>7s} {'ε 0.5':>7s} {'null':>6s}  steepest (ε 0.25)")
    for name in names:
        record = json.loads((Path(slope_dir) / f"{name}.json").read_text())
        suite = record["suites"][suite_name]
        index = suite["candidates"].index(entity)
        by_epsilon = [float(share_slopes(suite, e)[:, index].mean()) for e in ("0.25", "0.5")]
        null = float(share_slopes(suite, "0.25", "null")[:, index].mean())
        mean = share_slopes(suite, "0.25").mean(dim=0)
        top = mean.topk(3)
        steepest = ", ".join(f"{suite['candidates'][i]} {v:+.2f}" for v, i in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{name:18s} {record['delta_norm']:5.1f} {by_epsilon[0]:+7.2f} {by_epsilon[1]:+7.2f} {null:+6.2f}  {steepest}")


if __name__ == "__main__":
    main(*sys.argv[1:])
