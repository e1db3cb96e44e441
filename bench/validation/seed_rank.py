"""How repeatable is a dose's fine-tune, and what does that bound? The reserves' dose sets of
128 rows were fine-tuned at seed 0 (the reserves' own runs) and again at another seed
(tune_seed.sh), which only reorders the rows into batches. Per set: the target's real shift at
both seeds. Then the Spearman between the two seeds (how far one fine-tune ranks another: about
the ceiling for any prediction judged against one fine-tune), and the Spearman of the committed
check (and at 3 %, of the rows read alone, rows_alone_rank.txt) against each seed and their
mean; and of the target's vanilla rate, which reads no data. No model pass.

    python bench/validation/seed_rank.py SEED DOSE     e.g. 1 0.03 (results/tune_seed1/)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from mdf_guard.validate import spearman

from dose_rank import CHECKS, RESULTS, dose_outcomes, target_point, target_points


def datasets(paths: list[Path]) -> list[dict]:
    """The dataset entries of `validate` results."""
    return [dataset for path in paths for dataset in json.loads(path.read_text())["datasets"]]


def reserve_results() -> list[Path]:
    return [RESULTS / f"reserve{reserve}" / "validation.json" for reserve in CHECKS]


def seed_results(seed: int) -> list[Path]:
    return sorted((RESULTS / f"tune_seed{seed}").glob("*/validation.json"))


def shifts_at_seed(seed: int) -> dict[str, float]:
    """Real target shift (points) of each set fine-tuned at `seed`, keyed by file stem."""
    return {Path(d["name"]).stem: target_point(d)["actual_shift"] * 100 for d in datasets(seed_results(seed))}


def vanilla_rates() -> dict[str, float]:
    """The vanilla model's rate (points) of each set's target: a reading that sees no data."""
    return {Path(d["name"]).stem: target_point(d)["vanilla_rate"] * 100 for d in datasets(reserve_results())}


def every_shift(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Real shift (points) of every entity of every suite, keyed by file stem, then suite/entity."""
    return {Path(d["name"]).stem: {f"{p['suite']}/{p['entity']}": p["actual_shift"] * 100 for p in d["points"]}
            for d in datasets(paths)}


def all_points_agreement(seed: int, stems: list[str]) -> tuple[int, float]:
    """(points, Spearman) of every entity's shift at seed 0 against `seed`, over the sets."""
    first, second = every_shift(reserve_results()), every_shift(seed_results(seed))
    pairs = [(first[stem][key], shift) for stem in stems for key, shift in second[stem].items()]
    return len(pairs), spearman([a for a, _ in pairs], [b for _, b in pairs])


def rows_alone() -> dict[str, tuple[float, float]]:
    """(mean lift, sum of positive lifts) of each set's rows read alone, from its record."""
    readings = {}
    for line in (RESULTS / "rows_alone_rank.txt").read_text().splitlines():
        found = re.match(r"reserve\d+/data/(\S+)\s+real\s+\S+ mean lift\s+(\S+) sum\+\s+(\S+)", line)
        if found:
            readings[found.group(1)] = (float(found.group(2)), float(found.group(3)))
    return readings


def main(seed: int, dose: str) -> None:
    again = shifts_at_seed(seed)
    alone = rows_alone() if dose == "0.03" else {}
    checked = {name.split("/")[1]: predicted for reserve in CHECKS
               for name, d, predicted, _ in target_points(reserve) if d == dose}
    sets = [(stem, real) for reserve in CHECKS for stem, d, _, real in dose_outcomes(reserve) if d == dose]
    missing = [stem for stem, _ in sets if stem not in again]
    if missing:
        raise SystemExit(f"seed_rank.py: no seed-{seed} fine-tune for {', '.join(missing)}")
    print(f"{'set':24s} {'seed 0':>7s} {'seed ' + str(seed):>7s} {'check':>7s}" + ("   alone" if alone else ""))
    for stem, real in sets:
        reading = f" {alone[stem][0]:+7.3f}" if alone else ""
        print(f"{stem:24s} {real:+7.1f} {again[stem]:+7.1f} {checked[stem]:+7.1f}{reading}")
    first = [real for _, real in sets]
    second = [again[stem] for stem, _ in sets]
    mean = [(a + b) / 2 for a, b in zip(first, second)]
    print(f"seed 0 against seed {seed}: Spearman {spearman(first, second):+.2f}")
    points, rho = all_points_agreement(seed, [stem for stem, _ in sets])
    print(f"seed 0 against seed {seed}, every entity of every suite ({points} points): Spearman {rho:+.2f}")
    gaps = sorted(abs(a - b) for a, b in zip(first, second))
    print(f"|seed 0 - seed {seed}|: median {gaps[len(gaps) // 2]:.1f} points, largest {gaps[-1]:.1f}")
    vanilla = vanilla_rates()
    readings = [("check", [checked[s] for s, _ in sets]),
                ("the target's vanilla rate (reads no data)", [vanilla[s] for s, _ in sets])]
    if alone:
        readings += [("rows alone, mean lift", [alone[s][0] for s, _ in sets]),
                     ("rows alone, sum of positive lifts", [alone[s][1] for s, _ in sets])]
    for label, reading in readings:
        print(f"{label}: Spearman {spearman(reading, first):+.2f} seed 0, {spearman(reading, second):+.2f} "
              f"seed {seed}, {spearman(reading, mean):+.2f} mean of both")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: seed_rank.py SEED DOSE (e.g. 1 0.03)")
    main(int(sys.argv[1]), sys.argv[2])
