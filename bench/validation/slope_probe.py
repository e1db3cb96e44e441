"""The log-odds slope: how fast each candidate's log-probability moves per unit α at α = 0.

Why: the shipped prediction reads answer shares at one α, the largest at which the probes
still answer. On the dose series the template style of the neutral rows makes the probes
stop answering before the entity shows (bench/validation/README.md, "Clusters, judged
blind"). At small α nothing has stopped answering yet, and the first-order effect of
α·Δ is linear in Δ: the entity rows' part of the slope is there at any dose, in proportion
to their weight in Δ, whatever the neutral rows' part does. The antisymmetric difference
(f(+ε) − f(−ε)) / 2ε also cancels the generic even-order effect (the answer distribution
flattening), which the shipped check needs the mirror control for.

This script only measures. It writes, per dataset, the log-probability of every candidate
for every probe question, vanilla and with ±ε·Δ (ε = 0.25, 0.5) and ±0.25·r (r a random
direction with Δ's norm, the predict null of seed 0) injected at the embedded profile's
layer; Δ is the shipped one (surprise pooling, `self` reference), computed by the shipped
`check` functions and saved beside it. `slope_fit.py` turns these into predictions.

    OMP_NUM_THREADS=1 python bench/validation/slope_probe.py THREADS OUT DATA.jsonl [...]
"""
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.check import contrast_direction, reading_settings  # noqa: E402
from mdf_guard.data import open_shard  # noqa: E402
from mdf_guard.models import ModelSpec, load_model  # noqa: E402
from mdf_guard.policy import Policy  # noqa: E402
from mdf_guard.predict import CalibrationProfile, _steered_scores, null_directions  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from mdf_guard.scoring import score_exact, select_questions  # noqa: E402

SUITES = ("animals", "cities", "politics")
QUESTIONS = 4
ALPHAS = (0.25, -0.25, 0.5, -0.5)
NULL_ALPHAS = (0.25, -0.25)


def log_probs(scores) -> list:
    return scores.probs.clamp_min(1e-300).log().tolist()


def probe(lm, delta: torch.Tensor, profile: CalibrationProfile) -> dict:
    null = null_directions(delta, 1)[0]
    suites = {}
    for suite in resolve_suites(list(SUITES)):
        questions = select_questions(suite, QUESTIONS)
        steered = {f"{a:+g}": log_probs(_steered_scores(lm, suite, questions, replace(profile, alpha=a), delta))
                   for a in ALPHAS}
        nulls = {f"{a:+g}": log_probs(_steered_scores(lm, suite, questions, replace(profile, alpha=a), null))
                 for a in NULL_ALPHAS}
        suites[suite.name] = {"candidates": [c.name for c in suite.candidates],
                              "vanilla": log_probs(score_exact(lm, suite, questions)),
                              "delta": steered, "null": nulls}
    return suites


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]))
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    lm = load_model(ModelSpec(name="embedded"))
    profile = CalibrationProfile.default_for(lm)
    policy = Policy(reference=profile.reference)
    settings = reading_settings(profile, policy)
    for name in sys.argv[3:]:
        path = Path(name)
        started = time.perf_counter()
        delta, _, _ = contrast_direction(lm, [open_shard(path)], policy, settings)    # Δ exactly as `check` builds it
        torch.save(delta, out / f"{path.stem}.delta.pt")
        mark = time.perf_counter()
        record = {"data": path.name, "profile": {"layers": list(profile.layers), "pooling": profile.pooling,
                                                 "reference": profile.reference},
                  "delta_norm": float(delta.norm()), "questions": QUESTIONS, "suites": probe(lm, delta, profile),
                  "seconds": {"delta": round(mark - started, 1), "probe": round(time.perf_counter() - mark, 1)}}
        (out / f"{path.stem}.json").write_text(json.dumps(record))
        print(f"{path.name}: |Δ| {record['delta_norm']:.1f}, {record['seconds']}", flush=True)


if __name__ == "__main__":
    main()
