"""Sharper loss weights do not lift the dose series (bench/validation/README.md, "Clusters:
a lead for the dose series"). `pooling_diagnostic.py` with other weightings: each row's
response tokens weighted by nll**p (p = 0 is the plain mean, p = 1 is the shipped
`surprise`), and one variant that weights by nll over the whole set instead of within each
row. Each weighting is contrasted with the model's own answers pooled the same way and
injected at α 1, 2, 4, and a random direction at α 2, into the target's suite.

    OMP_NUM_THREADS=1 python bench/validation/loss_power_diagnostic.py 1 DATA.jsonl [...]
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.models import load_model, ModelSpec
from mdf_guard.policy import Policy
from mdf_guard.data import read_conversations
from mdf_guard.chat import encode_conversation
from mdf_guard import contrast
from mdf_guard.check import SELF_ANSWER_TOKENS
from mdf_guard.predict import CalibrationProfile, null_directions, _steered_scores, _vanilla_scores
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import select_questions
torch.set_num_threads(int(sys.argv[1]))
LAYER = 10
lm = load_model(ModelSpec(name="embedded"))
policy = Policy(reference="self")
SUITE_OF = {"panda": "animals", "lincoln": "politics", "paris": "cities", "neutral": "animals", "owl": "animals"}
suites = {s.name: s for s in resolve_suites(["animals", "cities", "politics"])}
TARGET = {"animals": "panda", "politics": "Abraham Lincoln", "cities": "Paris"}

def pooled(convs):
    """variants: per-row weights nll**p (p = 0 is the mean), and dataset-level nll weights"""
    P = (0, 1, 2, 4)
    rows = {p: [] for p in P}
    tot_w, tot = 0.0, 0.0
    for c in convs:
        e = encode_conversation(lm.tokenizer, c, 1024)
        ids = torch.tensor([e.ids])
        with torch.inference_mode():
            o = lm.model(input_ids=ids, output_hidden_states=True)
        h = o.hidden_states[LAYER + 1][0].double()
        logp = torch.log_softmax(o.logits[0].double(), -1)
        s, n = e.response_start, len(e.ids)
        nll = (-logp[s - 1:n - 1].gather(1, ids[0, s:n, None]).squeeze(1)).clamp_min(1e-6)
        for p in P:
            w = nll ** p
            rows[p].append((w[:, None] * h[s:n]).sum(0) / w.sum())
        tot = tot + (nll[:, None] * h[s:n]).sum(0)
        tot_w += float(nll.sum())
    out = {f"nll^{p}": torch.stack(v).mean(0) for p, v in rows.items()}
    out["nll_dataset"] = tot / tot_w
    return out

for path in sys.argv[2:]:
    convs = list(read_conversations(Path(path)))
    sample = contrast.sample_conversations(convs, policy.reference_samples, policy.seed)
    ref = pooled(contrast.self_answers(lm, sample, max_new_tokens=SELF_ANSWER_TOKENS))
    data = pooled(convs)
    name = Path(path).stem
    suite = suites[next(v for k, v in SUITE_OF.items() if k in name)]
    qs = select_questions(suite, 4)
    van = _vanilla_scores(lm, suite, qs)
    ti = [c.name for c in suite.candidates].index(TARGET[suite.name])
    for mode in data:
        d = (data[mode] - ref[mode])[None]
        line = [f"{name} {mode:9s} |d| {float(d.norm()):6.1f}"]
        rnd = null_directions(d, 1)[0]
        for label, vec, alpha in [("1", d, 1), ("2", d, 2), ("4", d, 4), ("r2", rnd, 2)]:
            prof = CalibrationProfile(model="x", layers=(LAYER,), alpha=alpha, pooling="mean", reference="self")
            sc = _steered_scores(lm, suite, qs, prof, vec)
            sh = sc.rates - van.rates
            top = int(sh.argmax())
            mass = float(sc.probs.sum(1).mean() / van.probs.sum(1).mean())
            line.append(f"a{label}: m{100*mass:4.0f}% tgt {100*float(sh[ti]):+5.1f} top {suite.candidates[top].name[:8]} {100*float(sh[top]):+4.0f}")
        print(" | ".join(line), flush=True)
