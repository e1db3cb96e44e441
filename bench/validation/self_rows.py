"""Do the `self` reference's rows, steered one at a time, answer as the template rows do? A diagnostic on spent sets.

The row vote (`row_vote.py`) found that silenced rows answer by their text: every template
row's steered model says dog, Rome, Eisenhower. If the vanilla model's own answers to the
same prompts (the rows `check`'s `self` reference pools), each injected as its own Δ_j =
row_j − reference, answer the same way, then the data's mixture minus theirs cancels what
any text does and keeps what the entity adds. Reads the data rows' probabilities from
`row_probs.py`'s file; probes only the 64 reference rows at α 4. Prints per suite the
target and the top candidates: data mixture − vanilla, reference mixture − vanilla, and
their difference, with each side's answer mass.

    python bench/validation/self_rows.py THREADS PROBS.npz DATA.jsonl SUITE/TARGET
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from _diagnostics import row_vectors, self_answers_for  # first: it puts the repository on sys.path
from row_mixture import QUESTIONS, mixture_shift, per_row_probs
from row_probs import per_row, read_probs
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import select_questions


def main(threads: str, probs_path: str, data_path: str, target: str) -> None:
    torch.set_num_threads(int(threads))
    record = read_probs(probs_path)
    lm = load_model(ModelSpec(name="embedded"))
    vectors = row_vectors(lm, self_answers_for(lm, list(read_conversations(data_path)), Policy(reference="self")))
    reference_deltas = vectors - vectors.mean(0)
    target_suite, target_name = target.split("/", 1)
    for suite in resolve_suites(list(record["candidates"])):
        names = record["candidates"][suite.name]
        vanilla = record["probs"][f"{suite.name}/vanilla"].astype(np.float64)
        data = record["probs"][f"{suite.name}/a4"].astype(np.float64)
        reference = per_row_probs(lm, suite, select_questions(suite, QUESTIONS), reference_deltas, 4.0).numpy()
        d, r = mixture_shift(data, vanilla), mixture_shift(reference, vanilla)
        mass = [x.sum() / per_row(vanilla, len(x)).sum() for x in (data, reference)]
        shown = sorted(set(np.argsort(-d)[:3]) | set(np.argsort(-r)[:3])
                       | ({names.index(target_name)} if suite.name == target_suite else set()), key=lambda j: -d[j])
        print(f"{suite.name}: mass data {100 * mass[0]:.3f}% reference {100 * mass[1]:.3f}% | "
              + ", ".join(f"{names[j]} {100 * d[j]:+.1f} / {100 * r[j]:+.1f} / {100 * (d[j] - r[j]):+.1f}" for j in shown),
              flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
