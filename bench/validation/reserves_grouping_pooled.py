"""The reserves' 3 % sets judged on their four measured groupings pooled (16 histories), as a
check that averaged them would judge them: the first look at averaging groupings, before
incontext.GROUPINGS existed.

Reads the readings reserves_grouping.sh left in its fresh cache directories (the newest 28
`/tmp/mdf-guard-bench-early-stop-context-*`, 4 per set in the script's order: file order,
seeds 0, 1, 2), sums them, and judges each grouping and the pools at the default policy
against the seed-0 `self` reference (computed where that run had not needed it). Run it
right after reserves_grouping.sh, on the same machine.
"""
import json, sys, os
from pathlib import Path
from dataclasses import replace
import torch
from mdf_guard import incontext
from mdf_guard.check import model_spec, questions_asked
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.probes import resolve_suites
from mdf_guard.verdict import evaluate, needs_controls

SETS = ["horse", "giraffe", "otter", "Xi Jinping", "Mustafa Kemal Atatürk", "monkey", "octopus"]
dirs = sorted(Path("/tmp").glob("mdf-guard-bench-early-stop-context-*"), key=lambda p: p.stat().st_mtime)[-28:]
policy = Policy()
lm = load_model(model_spec(policy))
suites = resolve_suites(policy.suites)
questions = questions_asked(suites, policy)

def load(path):
    v = json.loads(path.read_text())
    sums = {n: torch.tensor(t, dtype=torch.float64) for n, t in v["sums"].items()}
    return incontext.ContextReading(sums, v["rows"], tuple(range(len(v["windows"])))), v  # windows as placeholders

for i, name in enumerate(SETS):
    group = dirs[4 * i:4 * i + 4]
    datas, refs = [], []
    for d in group:
        os.environ["MDF_GUARD_CACHE"] = str(d)
        for f in (d / "context").glob("*.json"):
            r, v = load(f)
            (datas if v["rows"] == 128 else refs).append((d, r))
    assert len(datas) == 4, (name, len(datas))
    os.environ["MDF_GUARD_CACHE"] = str(group[0])
    from mdf_guard.check import _reference_in_context, with_context_reference
    from mdf_guard.data import open_shard
    FILES = {"horse": "reserve6/data/horse", "giraffe": "reserve7/data/giraffe", "otter": "reserve8/data/otter",
             "Xi Jinping": "reserve9/data/xijinping", "Mustafa Kemal Atatürk": "reserve9/data/ataturk",
             "monkey": "reserve9/data/monkey", "octopus": "reserve9/data/octopus"}
    shard = open_shard(Path("/work/main/bench/validation/results") / (FILES[name] + "_dose0.03.jsonl"))
    ref0, _ = _reference_in_context(lm, [shard], [128], with_context_reference(policy), suites, questions, None)
    def judge(reading, ref):
        bare = incontext.predict_in_context(lm, reading, suites, questions)
        preds = [incontext.add_reference_control(p, s, ref) if ref is not None else p for s, p in zip(suites, bare)]
        f = evaluate(preds, policy)
        tgt = next(x for x in f if x.entity == name)
        return tgt.shift, [f"{x.suite}/{x.entity}" for x in f if x.flagged]
    pooled = incontext.ContextReading({n: sum(r.sums[n] for _, r in datas) for n in datas[0][1].sums}, 128,
                                      tuple(range(16)))
    pair = incontext.ContextReading({n: sum(r.sums[n] for _, r in datas[1:3]) for n in datas[0][1].sums}, 128,
                                    tuple(range(8)))
    for label, reading in [("file", datas[0][1]), ("seed0", datas[1][1]), ("seed1", datas[2][1]),
                           ("seed2", datas[3][1]), ("seed0+1", pair), ("all4", pooled)]:
        shift, flags = judge(reading, ref0)
        print(f"{name:24s} {label:8s} {shift*100:+6.1f}  {', '.join(flags) or '-'}")
    print(f"  refs found: {len(refs)}")
