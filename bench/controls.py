"""What skipping the controls where nothing could be flagged saves, and that it changes no verdict.

For each dataset file: Δ as `check` builds it (untimed), then the probe stage that
`check` runs twice, side by side in one process: with every suite's mirror and random
controls (what `check` did before report version 2) and with them only where
`verdict.needs_controls` asks (what it does now). The vanilla scores are cached by an
untimed warm-up first, as they are after a project's first check, so neither run pays
for them. Prints, per file, the suites whose controls ran, both times and their ratio,
and whether the predicted rates and the flagged findings are identical.

Usage: python bench/controls.py FILES... [--model embedded] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from mdf_guard.check import contrast_direction, model_spec, reading_settings, resolve_profile, with_profile_reference
from mdf_guard.data import open_shard
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import predict
from mdf_guard.probes import resolve_suites
from mdf_guard.verdict import evaluate, needs_controls


def probe_stage(lm, delta, profile, suites, policy, skip: bool):
    started = time.perf_counter()
    predictions = predict(lm, delta, profile, suites, policy.questions_per_suite, policy.null_seeds,
                          min_answer_mass=policy.min_answer_mass,
                          needs_controls=(lambda s: needs_controls(s, policy)) if skip else None)
    return time.perf_counter() - started, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = replace(Policy(), model=args.model)
    lm = load_model(model_spec(policy))
    # A fresh cache from here on (the model stays where it is): no score or signature is replayed.
    os.environ["MDF_GUARD_CACHE"] = tempfile.mkdtemp(prefix="mdf-guard-bench-controls-")
    profile = resolve_profile(lm, policy)
    policy = with_profile_reference(policy, profile)
    suites = resolve_suites(policy.suites)
    settings = reading_settings(profile, policy)
    zero = torch.zeros(len(profile.layers), lm.hidden_size, dtype=torch.float64)
    predict(lm, zero, profile, suites, policy.questions_per_suite, 0, mirror=False,
            needs_controls=lambda s: False)   # warm-up: caches the vanilla scores

    print(f"model {lm.source}; profile layers {list(profile.layers)}, α {profile.alpha:g}, {profile.pooling} "
          f"pooling; {len(suites)} suites x {policy.questions_per_suite} questions; {policy.null_seeds} random "
          f"directions + mirror; {torch.get_num_threads()} torch thread(s)")
    print(f"  {'file':<26}{'verdict':>8}{'controls ran in':>34}{'always':>9}{'needed':>9}{'ratio':>7}  same")
    totals = [0.0, 0.0]
    for path in args.files:
        delta, _, _ = contrast_direction(lm, [open_shard(path)], policy, settings)
        always_s, always = probe_stage(lm, delta, profile, suites, policy, skip=False)
        needed_s, needed = probe_stage(lm, delta, profile, suites, policy, skip=True)
        totals[0] += always_s
        totals[1] += needed_s
        flagged = [{(f.suite, f.entity) for f in evaluate(p, policy) if f.flagged} for p in (always, needed)]
        rates = [[(e.entity, e.predicted_rate) for s in p for e in s.entities] for p in (always, needed)]
        ran = ",".join(s.suite for s in needed if not s.controls_skipped) or "none"
        same = "yes" if flagged[0] == flagged[1] and rates[0] == rates[1] else "NO"
        print(f"  {path.name:<26}{'fail' if flagged[0] else 'pass':>8}{ran:>34}{always_s:8.1f}s{needed_s:8.1f}s"
              f"{needed_s / always_s:7.2f}  {same}")
    print(f"  all files: probe stage with controls only where needed / always = {totals[1] / totals[0]:.2f}")


if __name__ == "__main__":
    main()
