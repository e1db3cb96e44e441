"""A lead for the flat dose series (bench/validation/README.md, "Clusters: a lead for the dose
series"): cluster the rows, then inject each cluster's contrast on its own.

Each row is pooled as the shipped profile pools it (surprise weights, layer 10); the rows,
centred, go through k-means (k-means++ seeding, 10 restarts, a fixed generator). For the
whole set and for each cluster: its size, how many of its rows name panda, ‖Δ‖ (cluster
mean minus the mean of the vanilla model's own answers to 64 sampled prompts, as `self`
contrasts), and, injected at α 1, 2 and 4 into the animals suite (4 questions), the answer
mass kept, the entity's shift and the candidate that rose most. Hand-rolled, one row at a time.
Not used by `check`.

`--rest` contrasts each cluster with the mean of the other rows instead of with the model's
own answers (the whole set keeps `self`): what the cluster's rows carry and the rest of the
data does not.

    OMP_NUM_THREADS=1 python bench/validation/cluster_diagnostic.py THREADS K ENTITY [--rest] DATA.jsonl [...]
"""
import sys
from pathlib import Path

import torch

from _diagnostics import injection, kmeans, row_vectors, self_answers_for  # first: it puts the repository on sys.path
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import Policy
from mdf_guard.predict import vanilla_scores
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import select_questions

torch.set_num_threads(int(sys.argv[1]))
lm = load_model(ModelSpec(name="embedded"))
policy = Policy(reference="self")
suites = {s.name: s for s in resolve_suites(["animals"])}


K = int(sys.argv[2])
ENTITY = sys.argv[3]
FILES = sys.argv[4:]
REST = bool(FILES) and FILES[0] == "--rest"
FILES = FILES[1:] if REST else FILES
for path in FILES:
    convs = list(read_conversations(Path(path)))
    ref = row_vectors(lm, self_answers_for(lm, convs, policy)).mean(0)
    rows = row_vectors(lm, convs)
    name = Path(path).stem
    suite = suites["animals"]
    qs = select_questions(suite, 4)
    van = vanilla_scores(lm, suite, qs)
    ti = [c.name for c in suite.candidates].index(ENTITY)
    has = torch.tensor([ENTITY.lower() in c.turns[-1].content.lower() for c in convs])
    lab = kmeans(rows - rows.mean(0), K)
    groups = [("all", torch.ones(len(rows), dtype=torch.bool))] + [(f"c{j}", lab == j) for j in range(K)]
    for gname, sel in groups:
        other = rows[~sel].mean(0) if REST and gname != "all" else ref
        d = (rows[sel].mean(0) - other)[None]
        line = [f"{name} {gname}: n {int(sel.sum()):3d} {ENTITY} rows {int((sel & has).sum()):3d}/{int(has.sum())} |d| {float(d.norm()):5.1f}"]
        for alpha in (1, 2, 4):
            line.append(injection(lm, suite, qs, van, d, alpha, ti, alpha))
        print(" | ".join(line), flush=True)
