"""Score cluster_probe.py's predictions against real fine-tunes: the validate result OUTCOMES
with its mdf rates replaced by the deciding groups' rates, its metrics recomputed, and one
verdict line per dataset (which groups decided, what they flagged).

    python bench/validation/cluster_metrics.py OUTCOMES.json CLUSTER_DIR OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.validate import summarize, with_mdf_rates  # noqa: E402


def main(outcomes_path: str, cluster_dir: str, out_path: str) -> None:
    outcomes = json.loads(Path(outcomes_path).read_text())
    datasets = []
    for d in outcomes["datasets"]:
        path = Path(cluster_dir) / f"{Path(d['name']).stem}.json"
        if not path.is_file():
            continue
        probe = json.loads(path.read_text())
        rates = {(p["suite"], p["entity"]): p["predicted_rate"] for p in probe["predictions"]}
        datasets.append(with_mdf_rates(d, rates))
        target = next(p for p in datasets[-1]["points"] if f"{p['suite']}/{p['entity']}" == d["target"])
        flagged = [f"{g}:{s}/{e} {100 * shift:+.1f}" for g, info in probe["groups"].items()
                   for s, e, shift, _ in info["flagged"]]
        print(f"{d['name']:24s} target {d['target']:28s} actual {100 * target['actual_shift']:+6.1f} "
              f"clusters {100 * target['mdf_shift']:+6.1f} | {'FAIL' if flagged else 'PASS'} "
              f"{', '.join(flagged)}")
    result = {**outcomes, "datasets": datasets,
              "summary": summarize(datasets, outcomes.get("effect_threshold", 0.05),
                                   outcomes.get("calibration_entities", []))}
    Path(out_path).write_text(json.dumps(result, indent=1))
    for method in ("mdf", "raw", "random", "keyword", "embedding"):
        m = result["summary"]["all"][method]
        if m.get("available"):
            print(f"{method:10s} spearman {_num(m['spearman'])} / targets {_num(m['target_spearman'])} "
                  f"pearson {_num(m['pearson'])} auroc {_num(m['auroc'])} mae points {_num(m['mae_points'])}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main(*sys.argv[1:])
