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


def fine_tunes_at(seed: int) -> dict[str, dict]:
    """Each set's `validate` entry fine-tuned at `seed` (the reserves' own at seed 0), by file stem."""
    paths = ([RESULTS / f"reserve{reserve}" / "validation.json" for reserve in CHECKS] if seed == 0
             else sorted((RESULTS / f"tune_seed{seed}").glob("*/validation.json")))
    return {Path(d["name"]).stem: d for path in paths for d in json.loads(path.read_text())["datasets"]}


def every_shift(entry: dict) -> dict[str, float]:
    """Real shift (points) of every entity of every suite of one entry, keyed by suite/entity."""
    return {f"{p['suite']}/{p['entity']}": p["actual_shift"] * 100 for p in entry["points"]}


def all_points_agreement(first: dict[str, dict], second: dict[str, dict], stems: list[str]) -> tuple[int, float]:
    """(points, Spearman) of every entity's shift in one seed's fine-tunes against another's."""
    pairs = [(every_shift(first[stem])[key], shift) for stem in stems
             for key, shift in every_shift(second[stem]).items()]
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
    tuned = {seed: fine_tunes_at(seed) for seed in seeds}
    alone = rows_alone() if dose == "0.03" else {}
    checked = {name.split("/")[1]: predicted for reserve in CHECKS
               for name, d, predicted, _ in target_points(reserve) if d == dose}
    stems = [stem for reserve in CHECKS for stem, d, _, _ in dose_outcomes(reserve) if d == dose]
    for seed in seeds:
        missing = [stem for stem in stems if stem not in tuned[seed]]
        if missing:
            raise SystemExit(f"seed_rank.py: no seed-{seed} fine-tune for {', '.join(missing)}")
    outcome = {seed: [target_point(tuned[seed][stem])["actual_shift"] * 100 for stem in stems] for seed in seeds}
    print(f"{'set':24s}" + "".join(f"{'seed ' + str(seed):>8s}" for seed in seeds) + f"{'check':>8s}"
          + ("    alone" if alone else ""))
    for i, stem in enumerate(stems):
        print(f"{stem:24s}" + "".join(f"{outcome[seed][i]:+8.1f}" for seed in seeds) + f"{checked[stem]:+8.1f}"
              + (f" {alone[stem][0]:+8.3f}" if alone else ""))
    for a, b in combinations(seeds, 2):
        points, rho = all_points_agreement(tuned[a], tuned[b], stems)
        gaps = sorted(abs(x - y) for x, y in zip(outcome[a], outcome[b]))
        print(f"seed {a} against seed {b}: Spearman {spearman(outcome[a], outcome[b]):+.2f} on the targets, "
              f"{rho:+.2f} on every entity of every suite ({points} points); targets apart by "
              f"{gaps[len(gaps) // 2]:.1f} points (median), {gaps[-1]:.1f} at most")
    mean = [sum(shifts) / len(seeds) for shifts in zip(*outcome.values())]
    readings = [("check", [checked[s] for s in stems]),
                ("the target's vanilla rate (reads no data)",
                 [target_point(tuned[0][s])["vanilla_rate"] * 100 for s in stems])]
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
