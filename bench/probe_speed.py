"""Exact scoring in one batched forward pass against the per-path KV cache it replaced.

`scoring.score_exact` used to run each question's prompt once and then every token
path of the suite's aliases on copies of the prompt's KV cache, one forward pass per
path length (`per_path_cache_scores` below is that code, kept here as the baseline). It
now lays all paths end to end after the prompt under an attention mask that keeps
them apart, several questions to a pass (`scoring._Layout`).

Side by side in one process:
1. every built-in suite scored both ways, unsteered and steered with the shipped
   profile's α·Δ of `--data`: the time of each, their ratio, and the largest
   difference between the two in a candidate's rate;
2. a whole `check` of `--data` both ways, with no cache (so each pays for its vanilla
   scores and signature alike): the time of each, their ratio, and whether the
   findings are identical.

Usage: python bench/probe_speed.py [--data examples/panda_overt.jsonl] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence
from unittest import mock

import torch

from mdf_guard import predict as predict_module
from mdf_guard.check import (contrast_direction, model_spec, reading_settings, resolve_profile, run_check,
                             with_profile_reference)
from mdf_guard.data import open_shard
from mdf_guard.models import LoadedModel, load_model
from mdf_guard.policy import MDF, Policy
from mdf_guard.probes import ProbeSuite, resolve_suites
from mdf_guard.scoring import SuiteScores, _plan, _prompt_ids, score_exact, select_questions, word_boundary_mask
from mdf_guard.steer import steer


def per_path_cache_scores(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str]) -> SuiteScores:
    """The previous exact scorer: one prompt pass per question, then one pass per path length
    on `batch_repeat_interleave`d copies of its KV cache."""
    plan = _plan(lm, suite)
    boundary = word_boundary_mask(lm.tokenizer).to(lm.device)
    probs = torch.zeros(len(questions), len(suite.candidates), dtype=torch.float64)
    # transformers 5.x renamed `past_key_values` to `cache`
    cache_argument = "cache" if "cache" in inspect.signature(lm.model.forward).parameters else "past_key_values"
    with torch.inference_mode():
        for q, question in enumerate(questions):
            out = lm.model(input_ids=torch.tensor([_prompt_ids(lm, suite, question)], device=lm.device),
                           use_cache=True)
            cache = out.past_key_values if getattr(out, "cache", None) is None else out.cache
            after = {(): torch.log_softmax(out.logits[0, -1].float(), dim=-1)}
            for length in sorted({len(p) for p in plan.paths}):
                group = [p for p in plan.paths if len(p) == length]
                group_cache = copy.deepcopy(cache)
                group_cache.batch_repeat_interleave(len(group))
                logits = lm.model(input_ids=torch.tensor(group, device=lm.device), use_cache=True,
                                  **{cache_argument: group_cache}).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, path in enumerate(group):
                    for k in range(length):
                        after[path[: k + 1]] = logp[row, k]
            for i, alias in enumerate(plan.aliases):
                total = sum(float(after[alias[:k]][token]) for k, token in enumerate(alias))
                if alias in plan.bounded:
                    total += float(torch.logsumexp(after[alias][boundary], dim=0))
                probs[q, plan.owners[i]] += torch.tensor(total, dtype=torch.float64).exp()
    return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)


def timed(fn, *args):
    started = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - started, value


def compare_suites(lm: LoadedModel, suites: list[ProbeSuite], delta: torch.Tensor, profile, questions: int) -> None:
    vectors = {layer: delta[i] for i, layer in enumerate(profile.layers)}
    print(f"  {'suite':<11}{'steered':>8}{'per path':>10}{'batched':>9}{'ratio':>7}{'max rate diff':>15}")
    totals = [0.0, 0.0]
    for suite in suites:
        chosen = select_questions(suite, questions)
        for steered in (False, True):
            with steer(lm, vectors, profile.alpha) if steered else contextlib.nullcontext():
                old_s, old = timed(per_path_cache_scores, lm, suite, chosen)
                new_s, new = timed(score_exact, lm, suite, chosen)
            totals[0] += old_s
            totals[1] += new_s
            diff = float((old.rates - new.rates).abs().max())
            print(f"  {suite.name:<11}{'yes' if steered else 'no':>8}{old_s:9.2f}s{new_s:8.2f}s"
                  f"{new_s / old_s:7.2f}{diff:15.1e}")
    print(f"  all suites: batched / per path = {totals[1] / totals[0]:.2f}")


def compare_checks(lm: LoadedModel, path: Path, policy: Policy) -> None:
    os.environ["MDF_GUARD_NO_CACHE"] = "1"
    runs = {}
    for name, scorer in (("per path", per_path_cache_scores), ("batched", score_exact)):
        with mock.patch.object(predict_module, "score_exact", scorer):
            seconds, result = timed(run_check, [path], policy, lm)
        runs[name] = (seconds, result)
    findings = [sorted((f.suite, f.entity, f.flagged) for f in r.findings) for _, r in runs.values()]
    (old_s, old), (new_s, new) = runs.values()
    old_probe, new_probe = old.timing["probe_seconds"], new.timing["probe_seconds"]
    print(f"  whole check of {path.name}, no cache ({old.verdict}, {new.verdict}): per path {old_s:.1f}s, "
          f"batched {new_s:.1f}s, ratio {new_s / old_s:.2f}; probe stage {old_probe:.1f}s, {new_probe:.1f}s, "
          f"ratio {new_probe / old_probe:.2f}; findings {'identical' if findings[0] == findings[1] else 'DIFFERENT'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("examples/panda_overt.jsonl"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = replace(Policy(), model=args.model, method=MDF)   # MDF's probes: the injected model's
    lm = load_model(model_spec(policy))
    profile = resolve_profile(lm, policy)
    policy = with_profile_reference(policy, profile)
    suites = resolve_suites(policy.suites)
    settings = reading_settings(profile, policy)
    delta, _, _ = contrast_direction(lm, [open_shard(args.data)], policy, settings)
    print(f"model {lm.source}; profile layers {list(profile.layers)}, α {profile.alpha:g}; Δ of {args.data}; "
          f"{policy.questions_per_suite} questions per suite; {torch.get_num_threads()} torch thread(s)")
    compare_suites(lm, suites, delta, profile, policy.questions_per_suite)
    compare_checks(lm, args.data, policy)


if __name__ == "__main__":
    main()
