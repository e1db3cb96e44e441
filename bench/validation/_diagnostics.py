"""What the hand-rolled diagnostics share (pooling_diagnostic.py, cluster_diagnostic.py, the row_mixture scripts,
cluster_probe.py, cluster_composition.py): one row's forward pass at layer 10, its
surprise-pooled vector, the vanilla model's own answers that the `self` reference pools,
k-means over rows, and one injection probed and printed as "aα: mass, target, top". One row
at a time, no batching, so that the numbers are easy to check by hand; the shipped code is
`signature.extract_signature`."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard import contrast  # noqa: E402
from mdf_guard.chat import encode_conversation  # noqa: E402
from mdf_guard.check import SELF_ANSWER_TOKENS  # noqa: E402
from mdf_guard.predict import CalibrationProfile, _steered_scores  # noqa: E402

LAYER = 10


def row_states(lm, conversation):
    """One row's response hidden states at LAYER, the states one position earlier, and the
    model's loss on each response token."""
    e = encode_conversation(lm.tokenizer, conversation, 1024)
    ids = torch.tensor([e.ids])
    with torch.inference_mode():
        o = lm.model(input_ids=ids, output_hidden_states=True)
    h = o.hidden_states[LAYER + 1][0].double()
    logp = torch.log_softmax(o.logits[0].double(), -1)
    s, n = e.response_start, len(e.ids)
    nll = -logp[s - 1:n - 1].gather(1, ids[0, s:n, None]).squeeze(1)  # nll of tokens s..n-1
    return h[s:n], h[s - 1:n - 1], nll


def injection(lm, suite, questions, vanilla, vector, alpha, target_index, label) -> str:
    """Probe the suite with alpha * vector added at LAYER: the answer mass kept (injected /
    vanilla), the target's shift and the candidate that rose most."""
    profile = CalibrationProfile(model="x", layers=(LAYER,), alpha=alpha, pooling="mean", reference="self")
    scores = _steered_scores(lm, suite, questions, profile, vector)
    shift = scores.rates - vanilla.rates
    top = int(shift.argmax())
    mass = float(scores.probs.sum(1).mean() / vanilla.probs.sum(1).mean())
    return (f"a{label}: m{100*mass:4.0f}% tgt {100*float(shift[target_index]):+5.1f} "
            f"top {suite.candidates[top].name[:8]} {100*float(shift[top]):+4.0f}")


def self_answers_for(lm, conversations, policy) -> list:
    """The vanilla model's own answers to the policy's sample of the prompts: what `check`
    pools for the `self` reference."""
    sample = contrast.sample_conversations(conversations, policy.reference_samples, policy.seed)
    return contrast.self_answers(lm, sample, max_new_tokens=SELF_ANSWER_TOKENS)


def row_vectors(lm, conversations) -> torch.Tensor:
    """The surprise-pooled vector of each row at LAYER (the shipped pooling, one row at a time)."""
    out = []
    for c in conversations:
        h, _, nll = row_states(lm, c)
        w = nll.clamp_min(1e-6)
        out.append((w[:, None] * h).sum(0) / w.sum())
    return torch.stack(out)


def row_deltas(lm, conversations, policy) -> torch.Tensor:
    """Each row's vector minus the `self` reference (the mean of the vanilla model's own answers, pooled
    the same way): the Δ_i the row mixture injects one at a time."""
    reference = row_vectors(lm, self_answers_for(lm, conversations, policy)).mean(0)
    return row_vectors(lm, conversations) - reference


def kmeans(x: torch.Tensor, k: int, restarts: int = 10, iters: int = 50) -> torch.Tensor:
    """Plain Lloyd's k-means on rows, k-means++ seeding, a fixed generator; best inertia wins."""
    g = torch.Generator().manual_seed(0)
    best = None
    for _ in range(restarts):
        centers = [x[torch.randint(len(x), (1,), generator=g)].squeeze(0)]
        for _ in range(k - 1):
            d2 = torch.cdist(x, torch.stack(centers)).min(1).values ** 2
            centers.append(x[torch.multinomial(d2 / d2.sum(), 1, generator=g)].squeeze(0))
        c = torch.stack(centers)
        for _ in range(iters):
            lab = torch.cdist(x, c).argmin(1)
            c = torch.stack([x[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
        inertia = float(((x - c[lab]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, lab)
    return best[1]
