"""The row mixture: the fine-tuned model as a mixture of the vanilla model steered by each row.

A research predictor beside the shipped check, not shipped. Why: every prediction so far
injects one vector, a mean over the rows, and at a 10 % dose that mean is the template's
(bench/validation/README.md: "Clusters", "The log-odds slope", "One simulated optimiser
step"). A fine-tune instead learns each row's association, and a row that makes the
model name an entity keeps being learned until it does. Injected one at a time, the
template rows make the probes stop answering (≤ 4 % of the answer mass at α 2 on
`panda_dose0.1`) while a row that names a favourite animal keeps 12-49 % and lifts panda
(diagnostic of 2026-12-06 on that set, its only look before this rule was fixed). The
mixture reads that directly: each row's injected model answers, and the rows that still
answer are the ones heard. Its shift grows with the share of such rows, which one mean
or one cluster cannot give.

The rule, fixed before it ran on any set it is judged on:
- each row pooled as the shipped profile pools it (surprise weights, layer 10; one row at a
  time, `_diagnostics.row_vectors`), the reference the `self` mean (the vanilla model's own
  answers to the policy's 64 sampled prompts, pooled the same way); Δ_i = row_i − reference;
- suites animals, cities and politics, their 4 `select_questions`; row i (file order) is
  asked question i mod 4 with α·Δ_i added to layer 10's output at every position;
- p_i(c): the raw probability that the answer is candidate c (exact scoring);
- mixture share m(c) = Σ_i p_i(c) / Σ_i Σ_c' p_i(c'); the vanilla share v(c) is the same
  sum with no injection, over the same questions; predicted rate = the outcome's vanilla
  rate + m(c) − v(c), clipped to [0, 1];
- α from {1, 2, 4}: the least log-odds MAE on the calibration outcomes (owl, Tokyo, George
  Washington), averaged per dataset (`row_mixture_fit.py`, as `first_step_fit.py`).

Writes OUT_DIR/<file stem>.json (adding to an existing record of the same data): sha256, the reading's seconds, and per α the mixture shift
of every candidate, the probing's seconds and each suite's answer mass (mixture /
vanilla). `row_mixture_fit.py` fits α on the calibration records and scores the rest.

    OMP_NUM_THREADS=2 python bench/validation/row_mixture.py THREADS OUT_DIR ALPHAS FILES...

ALPHAS: 1,2,4 on the calibration sets; the fitted one on the sets it is judged on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from _diagnostics import LAYER, row_deltas  # first: it puts the repository on sys.path
from mdf_guard import scoring
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import vanilla_scores
from mdf_guard.probes import ProbeSuite, resolve_suites
from mdf_guard.scoring import select_questions
from mdf_guard.validate import dataset_sha256

SUITES = ("animals", "cities", "politics")
QUESTIONS = 4


def per_row_probs(lm, suite: ProbeSuite, questions: tuple[str, ...], vectors: torch.Tensor,
                  alpha: float) -> torch.Tensor:
    """[rows, candidates] raw probabilities, row i asked questions[i % len] with alpha * vectors[i] added
    to layer LAYER's output: `scoring.score_exact`'s batched pass, with one steering vector per batch row."""
    plan = scoring._plan(lm, suite)
    layout = scoring._layout(plan)
    boundary = scoring.word_boundary_mask(lm.tokenizer).nonzero().squeeze(1).to(lm.device)
    prompts = [scoring._prompt_ids(lm, suite, q) for q in questions]
    vocab = int(lm.model.config.get_text_config().vocab_size)
    per_forward = scoring._questions_per_forward(len(layout.tokens) + 1, vocab)
    rows = len(vectors)
    probs = torch.zeros(rows, len(suite.candidates), dtype=torch.float64)
    current = {}

    def hook(module, inputs, output):
        hidden = output if isinstance(output, torch.Tensor) else output[0]
        hidden.add_(alpha * current["v"][:, None, :].to(hidden.dtype))
        return output

    handle = lm.layers[LAYER].register_forward_hook(hook)
    try:
        with torch.inference_mode():
            for start in range(0, rows, per_forward):
                chunk = range(start, min(rows, start + per_forward))
                current["v"] = vectors[start: chunk.stop].float().to(lm.device)
                logp = scoring._alias_logprobs(lm, [prompts[i % len(prompts)] for i in chunk], layout, boundary)
                probs[start: chunk.stop].index_add_(1, plan.owners, logp.exp())
    finally:
        handle.remove()
    return probs


def vanilla_probs(lm, suite: ProbeSuite, rows: int) -> torch.Tensor:
    """What per_row_probs gives with nothing injected: each question's vanilla scores, row i taking question i mod 4."""
    questions = select_questions(suite, QUESTIONS)
    probs = vanilla_scores(lm, suite, questions).probs
    return probs[torch.arange(rows) % len(questions)]


def mixture_shift(injected: torch.Tensor, vanilla: torch.Tensor) -> torch.Tensor:
    """m(c) − v(c): each a ratio of sums over rows (see the module docstring)."""
    return injected.sum(0) / injected.sum() - vanilla.sum(0) / vanilla.sum()


def write_record(path: Path, record: dict) -> None:
    """Writes the record; an existing record of the same data keeps its other α and its reading time, so that
    a new α can be added to sets already run without a second file per α."""
    if path.is_file():
        old = json.loads(path.read_text())
        if old["sha256"] == record["sha256"]:
            record = {**record, "reading_seconds": old["reading_seconds"], "scales": {**old["scales"], **record["scales"]}}
    path.write_text(json.dumps(record, indent=1))


def main(threads: str, out_dir: str, alphas: str, *files: str) -> None:
    torch.set_num_threads(int(threads))
    alphas = [float(a) for a in alphas.split(",")]
    lm = load_model(ModelSpec(name="embedded"))
    policy = Policy(reference="self")
    suites = resolve_suites(list(SUITES))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in map(Path, files):
        start = time.time()
        conversations = list(read_conversations(path))
        deltas = row_deltas(lm, conversations, policy)
        record = {"dataset": path.name, "sha256": dataset_sha256([path]), "rows": len(deltas),
                  "reading_seconds": round(time.time() - start, 1), "scales": {}}
        vanilla = {s.name: vanilla_probs(lm, s, len(deltas)) for s in suites}
        for alpha in alphas:
            began = time.time()
            rates, mass = [], {}
            for suite in suites:
                injected = per_row_probs(lm, suite, select_questions(suite, QUESTIONS), deltas, alpha)
                shift = mixture_shift(injected, vanilla[suite.name])
                mass[suite.name] = float(injected.sum() / vanilla[suite.name].sum())
                rates += [[suite.name, c.name, float(shift[j])] for j, c in enumerate(suite.candidates)]
            record["scales"][f"{alpha:g}"] = {"shifts": rates, "answer_mass": mass,
                                              "seconds": round(time.time() - began, 1)}
            top = max(rates, key=lambda r: r[2])
            print(f"{path.stem} a{alpha:g}: mass {' '.join(f'{k} {100 * v:.0f}%' for k, v in mass.items())} "
                  f"| top {top[0]}/{top[1]} {100 * top[2]:+.1f} | {record['scales'][f'{alpha:g}']['seconds']:.0f} s",
                  flush=True)
        write_record(out / f"{path.stem}.json", record)


if __name__ == "__main__":
    main(*sys.argv[1:])
