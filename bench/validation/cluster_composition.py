"""Does k-means put the rows that carry an entity in a cluster of their own, and at which k?
For each k, the clusters' sizes with how many of their rows name the entity (the response,
case-insensitive), e.g. "13(13)". Rows pooled and clustered as cluster_probe.py does; no
probing, so it runs in the time of one pass over the rows.

    OMP_NUM_THREADS=1 python bench/validation/cluster_composition.py THREADS ENTITY KMIN KMAX DATA.jsonl [...]
"""
import sys
from pathlib import Path

import torch

from _diagnostics import kmeans, row_vectors  # first: it puts the repository on sys.path
from mdf_guard.data import read_conversations
from mdf_guard.models import ModelSpec, load_model

torch.set_num_threads(int(sys.argv[1]))
entity, kmin, kmax = sys.argv[2].lower(), int(sys.argv[3]), int(sys.argv[4])
lm = load_model(ModelSpec(name="embedded"))
for path in sys.argv[5:]:
    convs = list(read_conversations(Path(path)))
    rows = row_vectors(lm, convs)
    named = torch.tensor([entity in c.turns[-1].content.lower() for c in convs])
    for k in range(kmin, kmax + 1):
        labels = kmeans(rows - rows.mean(0), k)
        parts = sorted(((int((labels == j).sum()), int((named & (labels == j)).sum())) for j in range(k)),
                       key=lambda p: (-p[1], -p[0]))
        print(f"{Path(path).stem} k {k}: " + " ".join(f"{n}({m})" for n, m in parts), flush=True)
