"""Do a 3 % dose's rows, each read alone, rank the reserves' fine-tune outcomes where the
rows read 32 to a history do not (Spearman −0.11, dose_rank.py)? Why try it: in a history
one target row in 32 lifts almost nothing and three lift a lot, where a fine-tune adds up
every row's pull; a row read alone is additive by construction.

Each row of the 13 sets at 3 % of reserves 6-10 is the chat's one earlier exchange; its lift
is the target's raw probability after it minus with no history, averaged over the suite's 8
questions (the check's default), as `explain` measures a row. The sets and their real shifts
come from the committed fine-tunes (dose_rank.dose_outcomes). Per set: the mean lift over
rows, the sum of the positive lifts, and the top row's; then each one's Spearman against the
fine-tunes' shifts. About 16 minutes at 2 threads.

    python bench/validation/rows_alone_rank.py
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from mdf_guard import incontext
from mdf_guard.check import model_spec, questions_asked
from mdf_guard.data import read_conversations
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import score_in_history
from mdf_guard.validate import spearman

from dose_rank import CHECKS, RESULTS, dose_outcomes

# (file, target, real shift in points) of the 3 % sets, from the committed fine-tunes
SETS = [(f"reserve{reserve}/data/{stem}", target, real)
        for reserve in CHECKS for stem, dose, target, real in dose_outcomes(reserve) if dose == "0.03"]


def main() -> None:
    torch.set_num_threads(2)
    policy = Policy()
    lm = load_model(model_spec(policy))
    suites = {suite.name: suite for suite in resolve_suites(policy.suites)}
    questions = questions_asked(list(suites.values()), policy)
    measures = []
    for stem, target, real in SETS:
        mark = time.perf_counter()
        suite_name, entity = target.split("/", 1)
        only = replace(suites[suite_name], candidates=tuple(c for c in suites[suite_name].candidates
                                                            if c.name == entity))
        asked = {suite_name: questions[suite_name]}

        def probability(history) -> float:
            return float(score_in_history(lm, [only], asked, history)[suite_name].probs[:, 0].mean())

        vanilla = probability([])
        lifts = [probability(incontext.as_history([row])) - vanilla
                 for row in read_conversations(RESULTS / f"{stem}.jsonl")]
        top = sorted(lifts, reverse=True)
        measures.append((real, sum(lifts) / len(lifts) * 100, sum(max(lift, 0) for lift in lifts) * 100, top[0] * 100))
        print(f"{stem:36s} real {real:+6.1f} mean lift {measures[-1][1]:+7.3f} sum+ {measures[-1][2]:+7.2f} "
              f"top {measures[-1][3]:+6.2f} top4 {[round(t * 100, 2) for t in top[:4]]} "
              f"({time.perf_counter() - mark:.0f} s)", flush=True)
    real = [m[0] for m in measures]
    for column, name in [(1, "mean lift"), (2, "sum of positive lifts"), (3, "top row")]:
        print(f"{name}: Spearman {spearman([m[column] for m in measures], real):+.2f}")


if __name__ == "__main__":
    main()
