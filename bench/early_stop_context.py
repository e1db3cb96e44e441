"""What `early_stop` saves under `method: context` on a large file, and what its sample costs.

For each dataset file, `check` runs side by side in one process at the defaults: reading
every row (`early_stop` off), then at each given tolerance (histories drawn in a seeded
order until every candidate's mean rate has at most that standard error). Each run gets
a fresh cache, so no reading or `self` reference is replayed; the vanilla scores are
computed untimed first in each, as after a project's first check. With `--finetune` the
bench's fine-tune recipe (full, lr 1e-4, 2 epochs, batch 16, fp32; bench/validation/
settings.sh) runs on the same file in the same process, so the check's cost is also given
as a share of it, the issue's measure.

Prints, per run: rows read, the time to read the rows and in all, the ratio to the full
read, the verdict and what it flags, the largest change of any candidate's predicted rate
from the full read, and the given entity's shift.

`--skip-full` leaves out the full read (for a file too large to read whole in the time at
hand): the ratio and the rate change are then not measured.

`--finetune-steps N` (with `--finetune`) times N of the recipe's steps instead of all of them,
for a file whose fine-tune would not fit the time at hand, and projects the full fine-tune's
time from them: a one-step run first gives the fixed part (copying the model, its fingerprint
at the end), the N-step run the time a step takes. The printed ratio is then against that
projection, and says so.

Usage: python bench/early_stop_context.py FILES... [--tolerance 0.05 --tolerance 0.02]
       [--entity animals/panda] [--finetune [--finetune-steps N]] [--skip-full] [--seed 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from mdf_guard.check import model_spec, questions_asked, run_check
from mdf_guard.data import read_conversations
from mdf_guard.finetune import FinetuneSettings, finetune
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import vanilla_scores
from mdf_guard.probes import resolve_suites

RECIPE = FinetuneSettings(method="full", epochs=2, learning_rate=1e-4, batch_size=16, seed=0)


def fresh_cache(lm, policy: Policy) -> None:
    """A new cache directory with only the vanilla scores in it (untimed)."""
    os.environ["MDF_GUARD_CACHE"] = tempfile.mkdtemp(prefix="mdf-guard-bench-early-stop-context-")
    suites = resolve_suites(policy.suites)
    questions = questions_asked(suites, policy)
    for suite in suites:
        vanilla_scores(lm, suite, questions[suite.name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--tolerance", type=float, action="append", help="early_stop values (default 0.05, 0.02)")
    parser.add_argument("--entity", default="animals/panda", help="suite/entity whose shift is printed")
    parser.add_argument("--finetune", action="store_true", help="time the bench's fine-tune on each file too")
    parser.add_argument("--finetune-steps", type=int,
                        help="time this many fine-tune steps and project the recipe's full time from them")
    parser.add_argument("--skip-full", action="store_true", help="leave out the full read")
    parser.add_argument("--seed", type=int, default=0, help="the policy's seed (the sample's order)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.finetune_steps is not None and not args.finetune:
        parser.error("--finetune-steps times the fine-tune: give --finetune too")
    torch.set_num_threads(args.threads)
    tolerances = args.tolerance or [0.05, 0.02]
    suite_name, entity = args.entity.split("/", 1)

    base = replace(Policy(), seed=args.seed)
    lm = load_model(model_spec(base))
    print(f"model {lm.source}; method {base.method}; {len(base.suites)} suites x {base.questions_per_suite} "
          f"questions; {torch.get_num_threads()} torch thread(s)")
    print(f"  {'file':<22}{'early_stop':>11}{'read':>13}{'reading':>9}{'check':>9}{'ratio':>7}{'verdict':>8}"
          f"{'max rate change':>17}{entity + ' shift':>14}  flagged")
    for path in args.files:
        full_rates, full_seconds, seconds_by_run = None, None, []
        for tolerance in ([] if args.skip_full else [None]) + tolerances:
            policy = replace(base, early_stop=tolerance)
            fresh_cache(lm, policy)
            report = run_check([path], policy, lm=lm)
            seconds = report.timing["total_seconds"] - report.timing["load_seconds"]
            rates = {(f.suite, f.entity): f.predicted_rate for f in report.findings}
            if full_rates is None and tolerance is None:
                full_rates, full_seconds = rates, seconds
            moved = max(abs(rates[key] - rate) for key, rate in full_rates.items()) if full_rates else None
            change = f"{moved * 100:14.2f} pts" if moved is not None else f"{'-':>18}"
            ratio = f"{seconds / full_seconds:7.2f}" if full_seconds else f"{'-':>7}"
            shift = next(f.shift for f in report.findings if (f.suite, f.entity) == (suite_name, entity))
            flagged = ", ".join(f"{f.suite}/{f.entity}" for f in report.findings if f.flagged) or "-"
            seconds_by_run.append((tolerance, seconds))
            print(f"  {path.name:<22}{'off' if tolerance is None else f'{tolerance:g}':>11}"
                  f"{report.files[0].examples_text:>13}{report.timing['context_seconds']:8.1f}s{seconds:8.1f}s"
                  f"{ratio}{report.verdict:>8}{change}"
                  f"{shift * 100:+13.1f}  {flagged}", flush=True)
        if args.finetune:
            seconds, how = finetune_seconds(lm, list(read_conversations(path)), args.finetune_steps)
            shares = ", ".join(f"{'off' if t is None else f'{t:g}'}: {s / seconds:.3f}" for t, s in seconds_by_run)
            print(f"  {path.name:<22} fine-tune ({RECIPE.method}, {RECIPE.epochs} epochs, batch {RECIPE.batch_size}): "
                  f"{how}; check / fine-tune: {shares}", flush=True)


def finetune_seconds(lm, conversations: list, steps: int | None) -> tuple[float, str]:
    """The recipe's fine-tune time on the rows, measured whole or projected from `steps` steps
    (see the module's docstring), and how it was had, for the printed line."""
    total = RECIPE.epochs * math.ceil(len(conversations) / RECIPE.batch_size)
    if steps is None or steps >= total:
        seconds = finetune(lm, conversations, RECIPE).seconds
        return seconds, f"{seconds:.1f}s"
    if steps < 2:
        raise SystemExit("--finetune-steps: give at least 2 steps (one run of 1 step gives the fixed part)")
    one = finetune(lm, conversations, replace(RECIPE, max_steps=1)).seconds
    some = finetune(lm, conversations, replace(RECIPE, max_steps=steps)).seconds
    per_step = (some - one) / (steps - 1)
    seconds = one - per_step + per_step * total
    return seconds, (f"{steps} of {total} steps in {some:.1f}s (1 step: {one:.1f}s), {per_step:.2f}s a step, "
                     f"projected {seconds:.1f}s")


if __name__ == "__main__":
    main()
