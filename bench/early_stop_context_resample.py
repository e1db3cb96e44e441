"""How far another seed's `early_stop` sample could move a target's shift under `method: context`.

One run of `bench/early_stop_context.py` shows one sample per tolerance. This replays many
without a model pass: it takes the file's full reading (its histories in file order, from
the cache a check left, or read once here), visits the histories in random orders, stops
each where `early_stop` would (`incontext._known`), and records the rows read and the
target's shift (the mean of the histories' rates read, minus the vanilla rate). On a file
whose rows are already in random order (every `make-dataset` set) the histories of file
order stand for those of any seed's order; the histories a seeded order makes are other
groupings of the rows, so the spread here leaves out what regrouping adds (compare the
bench's own runs).

Usage: python bench/early_stop_context_resample.py FILES... [--tolerance 0.05 ...]
       [--entity animals/panda] [--draws 1000] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mdf_guard import incontext
from mdf_guard.check import model_spec, questions_asked
from mdf_guard.data import open_shard, read_conversations
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import vanilla_scores
from mdf_guard.probes import resolve_suites


def replay(windows: Sequence[incontext.Window], rows: int, tolerance: float,
           draws: int) -> tuple[list[int], list[list[incontext.Window]]]:
    """For each of `draws` seeded random orders of `windows`: the rows read before `early_stop`
    at `tolerance` would stop, and the histories read."""
    rng = random.Random(0)
    read, histories = [], []
    for _ in range(draws):
        seen = []
        for window in rng.sample(list(windows), len(windows)):
            seen.append(window)
            if incontext._known(seen, rows, tolerance):
                break
        read.append(sum(w.rows for w in seen))
        histories.append(seen)
    return read, histories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--tolerance", type=float, action="append", help="early_stop values (default 0.05, 0.02)")
    parser.add_argument("--entity", default="animals/panda", help="suite/entity whose shift is followed")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--cache", help="the cache a check of these files filled (default: the usual one)")
    args = parser.parse_args()
    tolerances = args.tolerance or [0.05, 0.02]
    suite_name, entity = args.entity.split("/", 1)

    policy = Policy()
    lm = load_model(model_spec(policy))
    if args.cache:                                  # after the model: its weights stay where they are
        os.environ["MDF_GUARD_CACHE"] = args.cache
    suites = resolve_suites(policy.suites)
    questions = questions_asked(suites, policy)
    suite = next(s for s in suites if s.name == suite_name)
    column = [c.name for c in suite.candidates].index(entity)
    vanilla = float(vanilla_scores(lm, suite, questions[suite_name]).rates[column])
    threshold = policy.max_shift
    print(f"{args.draws} random orders of each file's histories; {entity} vanilla {vanilla * 100:.1f}%, "
          f"max_shift {threshold * 100:.0f} points")
    print(f"  {'file':<22}{'early_stop':>11}{'rows read (5-50-95 %)':>24}{'shift (5-50-95 %)':>26}"
          f"{'shift > max_shift':>19}")
    for path in args.files:
        rows = list(read_conversations(path))
        reading, _ = incontext.cached_reading(lm, open_shard(path).sha256, lambda: rows, suites, questions)
        rates = np.array([w.rates[suite_name][column] for w in reading.windows])
        full = float(rates.mean()) - vanilla
        over = "yes" if full > threshold else "no"
        print(f"  {path.name:<22}{'off':>11}{len(rows):>24}{full * 100:>+26.1f}{over:>19}")
        for tolerance in tolerances:
            read, histories = replay(reading.windows, len(rows), tolerance, args.draws)
            shifts = [float(np.mean([w.rates[suite_name][column] for w in seen])) - vanilla for seen in histories]
            r, s = np.percentile(read, [5, 50, 95]), np.percentile(shifts, [5, 50, 95]) * 100
            over = float(np.mean(np.array(shifts) > threshold))
            print(f"  {path.name:<22}{tolerance:>11g}{f'{r[0]:.0f} / {r[1]:.0f} / {r[2]:.0f}':>24}"
                  f"{f'{s[0]:+.1f} / {s[1]:+.1f} / {s[2]:+.1f}':>26}{over:>18.1%}", flush=True)


if __name__ == "__main__":
    main()
