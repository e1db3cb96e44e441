"""Re-score committed `validate` results with the no-data baseline beside the methods they hold.

Then the side effects: every real shift of more than 10 points outside its dataset's target
suite (what fine-tuning did to the suites the data does not aim at), beside the predictions.

`validate` has carried the baseline since 2026-12-06 (`validate.sharpened_rates`: each suite's
vanilla shares squared and renormalised, never reading the data); results written before that
get it here, from the vanilla rates they recorded. Nothing is re-run and no file is changed.

    python bench/validation/no_data.py results/heldout_surprise/validation.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.validate import in_target_suite, summarize, with_sharpened_rates  # noqa: E402

SIDE_EFFECT = 0.10      # a real shift outside the target suite worth listing


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _points(shift: float | None) -> str:
    return "    –" if shift is None else f"{100 * shift:+5.1f}"


def side_effects(datasets: list[dict]) -> None:
    """Every real shift over SIDE_EFFECT outside its dataset's target suite, beside the predictions."""
    for d in datasets:
        for p in d["points"]:
            if not in_target_suite(d, p) and p["actual_shift"] > SIDE_EFFECT:
                print(f"  {d['name']:24s} {p['suite']}/{p['entity']:20s} vanilla {100 * p['vanilla_rate']:5.1f} "
                      f"real {100 * p['actual_shift']:+5.1f} mdf {_points(p.get('mdf_shift'))} "
                      f"sharpened {_points(p['sharpened_shift'])}")


def main(*paths: str) -> None:
    print("| results | method | Spearman all / targets / side effects | Pearson | AUROC | MAE pts / log-odds |")
    print("|---|---|---|---|---|---|")
    results = {path: json.loads(Path(path).read_text()) for path in paths}
    datasets = {path: [with_sharpened_rates(d) for d in result["datasets"]] for path, result in results.items()}
    for path, result in results.items():
        summary = summarize(datasets[path], result.get("effect_threshold", 0.05),
                            result.get("calibration_entities", []))
        for method, m in summary["all"].items():
            if m.get("available"):
                print(f"| {Path(path).parent.name} ({len(datasets[path])} sets) | {method} | {_num(m['spearman'])} / "
                      f"{_num(m['target_spearman'])} / {_num(m['side_effect_spearman'])} | {_num(m['pearson'])} "
                      f"| {_num(m['auroc'])} "
                      f"| {_num(m['mae_points'])} / {_num(m['mae_logodds'])} |")
    for path in paths:
        print(f"\n{Path(path).parent.name}: real shifts over {100 * SIDE_EFFECT:.0f} points outside the target suite")
        side_effects(datasets[path])


if __name__ == "__main__":
    main(*sys.argv[1:])
