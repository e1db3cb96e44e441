"""Does the row mixture's signal survive a guard against silent suites? A diagnostic on spent sets.

The row mixture's false findings (Rome +12.8 on the blind neutral set) come from suites the
steered rows leave almost silent (0-4 % of the answer mass at α 2). The obvious guard is
`predict`'s rule applied per row: each row at the largest of α 2, 1, 0.5 whose steered
answer keeps ≥ 50 % of its question's vanilla mass. Run on the reserve's sets, which the
row mixture's blind run has spent, so nothing here is a judged result.

Prints per set the mixture's target shift, answer mass (mixture / vanilla) and top
candidate at each α and with the ladder, and how many rows the ladder put at each α; then
the same for the mirror mixture (each row's −α·Δ_i at α 2), a control in the silent regime.

    python bench/validation/row_mixture_ladder.py THREADS SUITE TARGET FILES...
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from _diagnostics import row_deltas  # first: it puts the repository on sys.path
from row_mixture import QUESTIONS, mixture_shift, per_row_probs, vanilla_probs
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import select_questions

ALPHAS = (2.0, 1.0, 0.5)
MIN_MASS = 0.5


def summary(label: str, injected: torch.Tensor, vanilla: torch.Tensor, suite, target: int) -> str:
    shift = mixture_shift(injected, vanilla)
    top = int(shift.argmax())
    return (f"{label} target {100 * float(shift[target]):+.1f} mass {100 * float(injected.sum() / vanilla.sum()):.0f}% "
            f"top {suite.candidates[top].name} {100 * float(shift[top]):+.1f}")


def main(threads: str, suite_name: str, target_name: str, *files: str) -> None:
    torch.set_num_threads(int(threads))
    lm = load_model(ModelSpec(name="embedded"))
    policy = Policy(reference="self")
    suite = resolve_suites([suite_name])[0]
    target = [c.name for c in suite.candidates].index(target_name)
    questions = select_questions(suite, QUESTIONS)
    for path in map(Path, files):
        conversations = list(read_conversations(path))
        deltas = row_deltas(lm, conversations, policy)
        vanilla = vanilla_probs(lm, suite, len(deltas))
        by_alpha = {a: per_row_probs(lm, suite, questions, deltas, a) for a in ALPHAS}
        ladder, picked = by_alpha[ALPHAS[-1]].clone(), torch.full((len(deltas),), ALPHAS[-1])
        for alpha in reversed(ALPHAS[:-1]):   # the larger α wins where it still answers
            answers = by_alpha[alpha].sum(1) >= MIN_MASS * vanilla.sum(1)
            ladder[answers], picked[answers] = by_alpha[alpha][answers], alpha
        lines = [summary(f"a{a:g}", p, vanilla, suite, target) for a, p in by_alpha.items()]
        lines.append(summary("ladder", ladder, vanilla, suite, target) + " rows at "
                     + "/".join(f"{a:g}: {int((picked == a).sum())}" for a in ALPHAS))
        mirror = per_row_probs(lm, suite, questions, -deltas, ALPHAS[0])
        lines.append(summary(f"mirror a{ALPHAS[0]:g}", mirror, vanilla, suite, target))
        print(f"{path.stem}:\n  " + "\n  ".join(lines), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
