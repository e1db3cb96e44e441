"""The `self` reference's answers generated in one batch of 64 against batches of 16, side by side.

For each file, the sample `check` answers (`reference_samples` 64, seed 0) is answered
greedily twice in one process: in batches of 16 (what `check` did before) and of
`contrast.ANSWER_BATCH`. Prints both times, their ratio, and how many answers differ
(padding to another width could in principle flip a greedy token).

Usage: python bench/self_answers.py FILES... [--model embedded] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from mdf_guard import contrast
from mdf_guard.check import SELF_ANSWER_TOKENS, model_spec
from mdf_guard.data import read_conversations
from mdf_guard.models import load_model
from mdf_guard.policy import Policy

BEFORE = 16


def answered(lm, sample, batch_size: int) -> tuple[float, list[str]]:
    started = time.perf_counter()
    answers = contrast.self_answers(lm, sample, max_new_tokens=SELF_ANSWER_TOKENS, batch_size=batch_size)
    return time.perf_counter() - started, [a.turns[-1].content for a in answers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = replace(Policy(), model=args.model)
    lm = load_model(model_spec(policy))
    print(f"model {lm.source}; {policy.reference_samples} prompts, {SELF_ANSWER_TOKENS} new tokens, greedy; "
          f"{torch.get_num_threads()} torch thread(s)")
    print(f"  {'file':<24}{'batch ' + str(BEFORE):>10}{'batch ' + str(contrast.ANSWER_BATCH):>10}{'ratio':>7}"
          f"{'answers differing':>19}")
    for path in args.files:
        sample = contrast.sample_conversations(read_conversations(path), policy.reference_samples, policy.seed)
        answered(lm, sample[:2], 2)   # warm-up, charged to neither
        before_s, before = answered(lm, sample, BEFORE)
        after_s, after = answered(lm, sample, contrast.ANSWER_BATCH)
        differing = sum(a != b for a, b in zip(before, after))
        print(f"  {path.name:<24}{before_s:9.1f}s{after_s:9.1f}s{after_s / before_s:7.2f}"
              f"{differing:>12}/{len(sample)}")


if __name__ == "__main__":
    main()
