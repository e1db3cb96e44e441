"""Cluster probing, judged blind: split a dataset into clusters of similar rows, predict each
cluster on its own with the shipped `predict` (answer-mass α, mirror and random controls), and
let the worst cluster decide the verdict.

Why: a fine-tune learns a preference from a few rows that carry it (koala at 10 % dose moved
koala +95 points), while the whole set's contrast is dominated by the template style of the
other 90 %, which makes the probes stop answering at any α that would show the entity
(bench/validation/README.md, "Clusters: a lead for the dose series").

The rule, fixed before this script first ran on any set it is judged on:
- rows pooled as the shipped profile pools them (surprise weights, layer 10), one at a time;
  the reference is the mean of the vanilla model's own answers to 64 sampled prompts, pooled
  the same way (`self`);
- k = min(8, ceil(sqrt(rows / 4))) clusters (6 for 128 rows), k-means on the centred rows
  (k-means++ seeding, 10 restarts, generator seed 0);
- groups: the whole set ("all") and each cluster; every group is predicted by
  `mdf_guard.predict.predict` with the embedded profile and the policy's defaults, then
  judged by `mdf_guard.verdict.evaluate`;
- per suite, the deciding group is the one whose flagged finding has the largest excess
  over its controls; with no flagged finding, "all" decides (what `check` shows today).
  The suite's predicted rates are the deciding group's.

`--fine-alpha` (variant 2, chosen after the first run: the koala cluster of koala_dose0.1
kept 45 % of the answer mass at α 2, just under the policy's 50 %, with koala +26.9, and was
probed at α 1, +5.4): the same range of α, stepped by √2 instead of 2 (4, 2.8, 2, 1.4, ...,
0.5), for every group. The dolphin sets (blind_clusters.sh) judge it.

Output: one JSON file per dataset in OUT (every group's top finding, and the deciding
group's prediction of every candidate), and a line per group on stdout.

    OMP_NUM_THREADS=1 python bench/validation/cluster_probe.py THREADS OUT [--fine-alpha] DATA.jsonl [...]
"""
import json
import math
import sys
import time
from pathlib import Path

import torch

from _diagnostics import kmeans, row_vectors, self_answers_for  # first: it puts the repository on sys.path
from mdf_guard import predict as predict_module, verdict
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import CalibrationProfile, predict
from mdf_guard.probes import resolve_suites

SUITES = ("animals", "cities", "politics")
QUESTIONS = 4

torch.set_num_threads(int(sys.argv[1]))
OUT = Path(sys.argv[2])
FILES = sys.argv[3:]
if FILES and FILES[0] == "--fine-alpha":
    predict_module.ALPHA_STEP, predict_module.ALPHA_RETRIES = 2 ** 0.5, 6
    FILES = FILES[1:]
lm = load_model(ModelSpec(name="embedded"))
profile = CalibrationProfile.default_for(lm)
policy = Policy(reference="self")
suites = resolve_suites(list(SUITES))


def cluster_count(rows: int) -> int:
    return min(8, math.ceil(math.sqrt(rows / 4)))


def judge(delta):
    """The shipped predict and verdict for one contrast vector."""
    predictions = predict(lm, delta[None], profile, suites, QUESTIONS, policy.null_seeds,
                          min_answer_mass=policy.min_answer_mass)
    return predictions, verdict.evaluate(predictions, policy)


OUT.mkdir(parents=True, exist_ok=True)
for path in FILES:
    start = time.time()
    convs = list(read_conversations(Path(path)))
    ref = row_vectors(lm, self_answers_for(lm, convs, policy)).mean(0)
    rows = row_vectors(lm, convs)
    k = cluster_count(len(rows))
    labels = kmeans(rows - rows.mean(0), k)
    groups = [("all", torch.ones(len(rows), dtype=torch.bool))] + [(f"c{j}", labels == j) for j in range(k)]
    judged = {}
    for name, sel in groups:
        predictions, findings = judge(rows[sel].mean(0) - ref)
        judged[name] = (int(sel.sum()), predictions, findings)
        flagged = [f for f in findings if f.flagged]
        top = max(findings, key=lambda f: f.excess)
        print(f"{Path(path).stem} {name}: n {int(sel.sum()):3d} alphas "
              f"{'/'.join(f'{p.alpha:g}' for p in predictions)} | top {top.suite}/{top.entity} "
              f"{100 * top.shift:+.1f} excess {100 * top.excess:+.1f} | flagged "
              f"{', '.join(f'{f.suite}/{f.entity} {100 * f.shift:+.1f}' for f in flagged) or '-'}", flush=True)
    deciding = {}
    for suite in SUITES:
        best = ("all", None)
        for name, (_, _, findings) in judged.items():
            for f in findings:
                if f.suite == suite and f.flagged and (best[1] is None or f.excess > best[1]):
                    best = (name, f.excess)
        deciding[suite] = best[0]
    result = {
        "dataset": Path(path).name, "rows": len(rows), "clusters": k, "seconds": round(time.time() - start, 1),
        "deciding": deciding,
        "alpha_step": predict_module.ALPHA_STEP,
        "groups": {name: {"rows": n, "flagged": [[f.suite, f.entity, f.shift, f.excess] for f in fs if f.flagged],
                          "alphas": {p.suite: p.alpha for p in ps},
                          "answer_mass": {p.suite: p.answer_mass for p in ps},
                          "moved": [[f.suite, f.entity, round(f.shift, 4), round(f.excess, 4), f.flagged]
                                    for f in fs if abs(f.shift) >= 0.01]}
                   for name, (n, ps, fs) in judged.items()},
        "predictions": [{"suite": f.suite, "entity": f.entity, "vanilla_rate": f.vanilla_rate,
                         "predicted_rate": f.predicted_rate, "shift": f.shift, "excess": f.excess,
                         "flagged": f.flagged, "group": name}
                        for name, (_, _, fs) in judged.items() for f in fs if deciding[f.suite] == name],
    }
    (OUT / f"{Path(path).stem}.json").write_text(json.dumps(result, indent=1))
    print(f"{Path(path).stem}: deciding {deciding}, {result['seconds']:.0f} s", flush=True)
