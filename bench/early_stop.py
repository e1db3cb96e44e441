"""What `early_stop` saves on a large file, and how far its sample moves the prediction.

For each dataset file, `check` runs side by side in one process: reading every row
(the default), then with `early_stop` at each given tolerance (a seeded uniform sample,
read until the mean is known to that fraction of its norm). The vanilla scores are
cached by an untimed warm-up first, as after a project's first check; signatures and
self references are never replayed (each setting has its own cache key). Prints, per
run, the rows read, the time to read and in all, its ratio to the full read, the verdict,
how far Δ moved (‖Δ − Δ_full‖ / ‖Δ_full‖) and the largest change of a predicted rate.

Usage: python bench/early_stop.py FILES... [--tolerance 0.02 --tolerance 0.01] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from mdf_guard.check import (contrast_direction, model_spec, reading_settings, resolve_profile, run_check,
                             with_profile_reference)
from mdf_guard.data import open_shard
from mdf_guard.models import load_model
from mdf_guard.policy import MDF, Policy
from mdf_guard.predict import predict
from mdf_guard.probes import resolve_suites


def delta_of(lm, path: Path, policy: Policy) -> torch.Tensor:
    """Δ as the check just built it (a cache hit: nothing is read again)."""
    profile = resolve_profile(lm, policy)
    policy = with_profile_reference(policy, profile)
    return contrast_direction(lm, [open_shard(path)], policy, reading_settings(profile, policy))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--tolerance", type=float, action="append", help="early_stop values (default 0.02, 0.01)")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tolerances = args.tolerance or [0.02, 0.01]

    base = replace(Policy(), model=args.model, method=MDF)   # early stop reads a sample for MDF's signature
    lm = load_model(model_spec(base))
    # A fresh cache from here on (the model stays where it is): no score or signature is replayed.
    os.environ["MDF_GUARD_CACHE"] = tempfile.mkdtemp(prefix="mdf-guard-bench-early-stop-")
    profile = resolve_profile(lm, base)
    zero = torch.zeros(len(profile.layers), lm.hidden_size, dtype=torch.float64)
    predict(lm, zero, profile, resolve_suites(base.suites), base.questions_per_suite, 0, mirror=False,
            needs_controls=lambda s: False)   # warm-up: caches the vanilla scores

    print(f"model {lm.source}; profile layers {list(profile.layers)}, {profile.pooling} pooling; "
          f"{len(base.suites)} suites x {base.questions_per_suite} questions; {torch.get_num_threads()} torch thread(s)")
    print(f"  {'file':<24}{'early_stop':>11}{'read':>12}{'reading':>9}{'check':>9}{'ratio':>7}{'verdict':>8}"
          f"{'Δ moved':>9}{'max rate change':>17}")
    for path in args.files:
        full_report, full_delta, full_seconds = None, None, None
        for tolerance in [None, *tolerances]:
            policy = replace(base, early_stop=tolerance)
            report = run_check([path], policy, lm=lm)
            delta = delta_of(lm, path, policy)
            seconds = report.timing["total_seconds"] - report.timing["load_seconds"]
            info = report.files[0]
            if full_report is None:
                full_report, full_delta, full_seconds = report, delta, seconds
            rates = {(f.suite, f.entity): f.predicted_rate for f in report.findings}
            change = max(abs(rates[(f.suite, f.entity)] - f.predicted_rate) for f in full_report.findings)
            moved = float((delta - full_delta).norm() / full_delta.norm())
            print(f"  {path.name:<24}{'off' if tolerance is None else f'{tolerance:g}':>11}"
                  f"{info.examples_text:>12}{report.timing['signature_seconds']:8.1f}s{seconds:8.1f}s"
                  f"{seconds / full_seconds:7.2f}{report.verdict:>8}{moved:9.3f}{change * 100:14.2f} pts", flush=True)


if __name__ == "__main__":
    main()
