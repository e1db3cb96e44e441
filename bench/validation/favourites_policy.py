"""What `min_odds_ratio: 1` flags on the four blind reserves: a policy that does not hold
back the rises of the model's favourites (the ×4 odds rule held back 9 side effects the
check predicted over 10 points, `side_effects.py`).

Each reserve's sets are checked as their committed 32-row checks were (reserve6 with its
policy, the others with the defaults), with only `min_odds_ratio` changed to 1, and judged
against the committed fine-tunes: risen targets flagged (real ≥ the outcomes' effect
threshold), false findings (flagged, real under it), and side effects flagged (non-target,
real ≥ 10 points), beside the same counts for the committed checks. Writes
`results/favourites_policy/judge.txt` and the reports beside it.

    OMP_NUM_THREADS=2 python bench/validation/favourites_policy.py
"""

from __future__ import annotations

import json
from pathlib import Path

from mdf_guard.check import run_check
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.policy import load_policy

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "favourites_policy"
RESERVES = {"reserve6": OUT / "reserve6.yaml", "reserve7": OUT / "default.yaml", "reserve8": OUT / "default.yaml",
            "reserve9": OUT / "default.yaml"}
SIDE = 0.10


def judge(flags: set[str], real: dict[str, float], target: str, effect: float) -> dict:
    return {"target": target in flags and real[target] >= effect,
            "false": sorted(k for k in flags if real[k] < effect),
            "side": sorted(k for k in flags if k != target and real[k] >= SIDE)}


def main() -> None:
    lm = load_model(ModelSpec())
    lines, totals = [], {name: {"risen": 0, "target": 0, "false": 0, "side": 0} for name in ("x4", "x1")}
    for reserve, policy_path in RESERVES.items():
        policy = load_policy(policy_path)
        outcomes = json.loads((RESULTS / reserve / "validation.json").read_text())
        effect = outcomes.get("effect_threshold", 0.05)
        for dataset in outcomes["datasets"]:
            stem = Path(dataset["name"]).stem
            real = {f"{p['suite']}/{p['entity']}": p["actual_shift"] for p in dataset["points"]}
            committed = json.loads((RESULTS / reserve / "checks" / f"{stem}_context.json").read_text())
            report = run_check([RESULTS / reserve / "data" / f"{stem}.jsonl"], policy, lm=lm).to_dict()
            (OUT / f"{reserve}_{stem}.json").write_text(json.dumps(report, indent=1))
            risen = real[dataset["target"]] >= effect
            verdicts = {}
            for name, r in (("x4", committed), ("x1", report)):
                flags = {f"{f['suite']}/{f['entity']}" for f in r["findings"] if f["flagged"]}
                verdicts[name] = judge(flags, real, dataset["target"], effect)
                t = totals[name]
                t["risen"] += risen
                t["target"] += verdicts[name]["target"]
                t["false"] += len(verdicts[name]["false"])
                t["side"] += len(verdicts[name]["side"])
            lines.append(f"{reserve} {stem:20s} target {100 * real[dataset['target']]:+6.1f}  "
                         + "  ".join(f"{n}: {'hit' if v['target'] else '-'} false {v['false'] or '-'} "
                                     f"side {v['side'] or '-'}" for n, v in verdicts.items()))
            print(lines[-1], flush=True)
    for name, t in totals.items():
        lines.append(f"min_odds_ratio {name[1:]}: {t['target']} of {t['risen']} risen targets flagged, "
                     f"{t['false']} false findings, {t['side']} side effects of 10 points or more flagged")
    print("\n".join(lines[-2:]))
    (OUT / "judge.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
