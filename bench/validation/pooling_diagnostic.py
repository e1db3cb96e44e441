"""The diagnostic behind surprise pooling (bench/validation/README.md, "Surprise pooling"):
the same data contrasted four ways, each injected at α 1, 2, 4 and a random direction at α 2.

Poolings (layer 10, each row pooled then averaged; the reference is the vanilla model's own
answers to 64 sampled prompts, pooled the same way):
  mean       plain mean over response tokens (the old profile);
  nll_read   each token's hidden state weighted by the model's loss on that token (shipped
             as `surprise`);
  nll_pred   the same weights on the state one position earlier, the one that predicts it;
  nll2_read  squared losses.
Each line: ‖Δ‖, then per α the answer mass kept (injected / vanilla), the shift of the
suite's held-out target ("tgt": panda for animals, Lincoln for politics, Paris for cities)
and the candidate that rose most. Hand-rolled pooling, one row at a time; the shipped code
is `signature.extract_signature` (tests/test_signature.py checks it against the same
computation).

    OMP_NUM_THREADS=1 python bench/validation/pooling_diagnostic.py 1 DATA.jsonl [...]

With --powers (bench/validation/README.md, "Clusters: a lead for the dose series") the
poolings are instead: each row's tokens weighted by nll**p for p = 0, 1, 2, 4, and one
variant weighted by nll over the whole set rather than within each row:

    OMP_NUM_THREADS=1 python bench/validation/pooling_diagnostic.py 1 --powers DATA.jsonl [...]
"""
import sys
from pathlib import Path

import torch

from _diagnostics import injection, row_states, self_answers_for  # first: it puts the repository on sys.path
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import vanilla_scores, null_directions
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import select_questions

torch.set_num_threads(int(sys.argv[1]))
lm = load_model(ModelSpec(name="embedded"))
policy = Policy(reference="self")
SUITE_OF = {"panda": "animals", "lincoln": "politics", "paris": "cities", "neutral": "animals", "owl": "animals"}
suites = {s.name: s for s in resolve_suites(["animals", "cities", "politics"])}
TARGET = {"animals": "panda", "politics": "Abraham Lincoln", "cities": "Paris"}


def pooled_modes(convs):
    """per-row vectors: mean, nll-weighted at read position, nll-weighted at predicting position"""
    out = {"mean": [], "nll_read": [], "nll_pred": [], "nll2_read": []}
    for c in convs:
        h, h_pred, nll = row_states(lm, c)
        out["mean"].append(h.mean(0))
        w = nll / nll.sum()
        out["nll_read"].append((w[:, None] * h).sum(0))
        out["nll_pred"].append((w[:, None] * h_pred).sum(0))
        w2 = nll ** 2 / (nll ** 2).sum()
        out["nll2_read"].append((w2[:, None] * h).sum(0))
    return {k: torch.stack(v).mean(0) for k, v in out.items()}


def pooled_powers(convs, powers=(0, 1, 2, 4)):
    """per-row weights nll**p (p = 0 is the mean, 1 is `surprise`), and weights by nll over
    the whole set instead of within each row"""
    rows = {p: [] for p in powers}
    total, total_weight = 0.0, 0.0
    for c in convs:
        h, _, nll = row_states(lm, c)
        nll = nll.clamp_min(1e-6)
        for p in powers:
            w = nll ** p
            rows[p].append((w[:, None] * h).sum(0) / w.sum())
        total = total + (nll[:, None] * h).sum(0)
        total_weight += float(nll.sum())
    out = {f"nll^{p}": torch.stack(v).mean(0) for p, v in rows.items()}
    out["nll_dataset"] = total / total_weight
    return out


pooled = pooled_modes
if sys.argv[2] == "--powers":
    pooled = pooled_powers
    del sys.argv[2]

for path in sys.argv[2:]:
    convs = list(read_conversations(Path(path)))
    ref = pooled(self_answers_for(lm, convs, policy))
    data = pooled(convs)
    name = Path(path).stem
    suite = suites[next(v for k, v in SUITE_OF.items() if k in name)]
    qs = select_questions(suite, 4)
    van = vanilla_scores(lm, suite, qs)
    ti = [c.name for c in suite.candidates].index(TARGET[suite.name])
    for mode in data:
        d = (data[mode] - ref[mode])[None]
        line = [f"{name} {mode:9s} |d| {float(d.norm()):6.1f}"]
        rnd = null_directions(d, 1)[0]
        for label, vec, alpha in [("1", d, 1), ("2", d, 2), ("4", d, 4), ("r2", rnd, 2)]:
            line.append(injection(lm, suite, qs, van, vec, alpha, ti, label))
        print(" | ".join(line), flush=True)
