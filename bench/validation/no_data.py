"""Re-score committed `validate` results with the no-data baseline beside the methods they hold.

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
from mdf_guard.validate import summarize, with_sharpened_rates  # noqa: E402


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(*paths: str) -> None:
    print("| results | method | Spearman all / targets | Pearson | AUROC | MAE pts / log-odds |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        result = json.loads(Path(path).read_text())
        datasets = [with_sharpened_rates(d) for d in result["datasets"]]
        summary = summarize(datasets, result.get("effect_threshold", 0.05), result.get("calibration_entities", []))
        for method, m in summary["all"].items():
            if m.get("available"):
                print(f"| {Path(path).parent.name} ({len(datasets)} sets) | {method} | {_num(m['spearman'])} / "
                      f"{_num(m['target_spearman'])} | {_num(m['pearson'])} | {_num(m['auroc'])} "
                      f"| {_num(m['mae_points'])} / {_num(m['mae_logodds'])} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
