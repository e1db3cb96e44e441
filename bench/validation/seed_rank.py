"""How repeatable is a dose's fine-tune, and what does that bound? The reserves' dose sets of
128 rows were fine-tuned at seed 0 (the reserves' own runs) and again at other seeds
(tune_seed.sh), which only reorder the rows into batches. Per set: the target's real shift at
each seed. Then the Spearman between each two seeds (how far one fine-tune ranks another:
about the ceiling for any prediction judged against one fine-tune), and the Spearman of the
committed check (and at 3 %, of the rows read alone, rows_alone_rank.txt) against each seed
and the seeds' mean; and of the target's vanilla rate, which reads no data. No model pass.

    python bench/validation/seed_rank.py DOSE SEED...    e.g. 0.03 1 2 (results/tune_seed1/, tune_seed2/)
"""

from __future__ import annotations

import json
import re
import sys
from itertools import combinations
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


def results_at(seed: int) -> list[Path]:
    """The `validate` results of the fine-tunes at `seed`: the reserves' own at seed 0."""
    return reserve_results() if seed == 0 else seed_results(seed)


def shifts_at_seed(seed: int) -> dict[str, float]:
    """Real target shift (points) of each set fine-tuned at `seed`, keyed by file stem."""
    return {Path(d["name"]).stem: target_point(d)["actual_shift"] * 100 for d in datasets(results_at(seed))}


def vanilla_rates() -> dict[str, float]:
    """The vanilla model's rate (points) of each set's target: a reading that sees no data."""
    return {Path(d["name"]).stem: target_point(d)["vanilla_rate"] * 100 for d in datasets(reserve_results())}


def every_shift(paths: list[Path]) -> dict[str, dict[str, float]]:
    """Real shift (points) of every entity of every suite, keyed by file stem, then suite/entity."""
    return {Path(d["name"]).stem: {f"{p['suite']}/{p['entity']}": p["actual_shift"] * 100 for p in d["points"]}
            for d in datasets(paths)}


def all_points_agreement(seeds: tuple[int, int], stems: list[str]) -> tuple[int, float]:
    """(points, Spearman) of every entity's shift at one seed against the other, over the sets."""
    first, second = (every_shift(results_at(seed)) for seed in seeds)
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


def main(dose: str, seeds: list[int]) -> None:
    seeds = [0, *seeds]
    real = {seed: shifts_at_seed(seed) for seed in seeds}
    alone = rows_alone() if dose == "0.03" else {}
    checked = {name.split("/")[1]: predicted for reserve in CHECKS
               for name, d, predicted, _ in target_points(reserve) if d == dose}
    stems = [stem for reserve in CHECKS for stem, d, _, _ in dose_outcomes(reserve) if d == dose]
    for seed in seeds:
        missing = [stem for stem in stems if stem not in real[seed]]
        if missing:
            raise SystemExit(f"seed_rank.py: no seed-{seed} fine-tune for {', '.join(missing)}")
    print(f"{'set':24s}" + "".join(f"{'seed ' + str(seed):>8s}" for seed in seeds) + f"{'check':>8s}"
          + ("    alone" if alone else ""))
    for stem in stems:
        print(f"{stem:24s}" + "".join(f"{real[seed][stem]:+8.1f}" for seed in seeds) + f"{checked[stem]:+8.1f}"
              + (f" {alone[stem][0]:+8.3f}" if alone else ""))
    outcome = {seed: [real[seed][stem] for stem in stems] for seed in seeds}
    for a, b in combinations(seeds, 2):
        points, rho = all_points_agreement((a, b), stems)
        gaps = sorted(abs(x - y) for x, y in zip(outcome[a], outcome[b]))
        print(f"seed {a} against seed {b}: Spearman {spearman(outcome[a], outcome[b]):+.2f} on the targets, "
              f"{rho:+.2f} on every entity of every suite ({points} points); targets apart by "
              f"{gaps[len(gaps) // 2]:.1f} points (median), {gaps[-1]:.1f} at most")
    mean = [sum(shifts) / len(seeds) for shifts in zip(*outcome.values())]
    vanilla = vanilla_rates()
    readings = [("check", [checked[s] for s in stems]),
                ("the target's vanilla rate (reads no data)", [vanilla[s] for s in stems])]
    if alone:
        readings += [("rows alone, mean lift", [alone[s][0] for s in stems]),
                     ("rows alone, sum of positive lifts", [alone[s][1] for s in stems])]
    for label, reading in readings:
        each = ", ".join(f"{spearman(reading, outcome[seed]):+.2f} seed {seed}" for seed in seeds)
        print(f"{label}: Spearman {each}, {spearman(reading, mean):+.2f} the seeds' mean")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: seed_rank.py DOSE SEED... (e.g. 0.03 1 2; seed 0 is the reserves' own)")
    main(sys.argv[1], [int(seed) for seed in sys.argv[2:]])
