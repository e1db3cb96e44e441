"""Markdown tables from a `validate` result: one row per dataset (its target entity), then
the metrics per method. What the README's results section is pasted from.

Usage: python bench/validation/table.py OUT/heldout/validation.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


def num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def dataset_rows(result: dict) -> list[str]:
    lines = ["| dataset | target | vanilla % | fine-tuned % | actual shift | mdf-guard | raw (no contrast) "
             "| random dir. | no data (sharpened) | in context | keyword | embedding | check s / fine-tune s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d in result["datasets"]:
        point = next(p for p in d["points"] if f"{p['suite']}/{p['entity']}" == d["target"])
        lines.append(
            f"| {d['name']} | {d['target']} | {100 * point['vanilla_rate']:.1f} | {100 * point['actual_rate']:.1f} "
            f"| {pct(point['actual_shift'])} | {pct(point.get('mdf_shift'))} | {pct(point.get('raw_shift'))} "
            f"| {pct(point.get('random_shift'))} | {pct(point.get('sharpened_shift'))} | {pct(point.get('context_shift'))} "
            f"| {num(point.get('keyword'), 3)} | {num(point.get('embedding'), 3)} "
            f"| {num(d.get('check_seconds'), 0)} / {num(d['finetune']['seconds'], 0)} |")
    return lines


def metric_rows(result: dict, scope: str) -> list[str]:
    metrics = result["summary"][scope]
    lines = [f"| method ({scope}) | Spearman, all points | Pearson | Spearman, targets | Spearman, side effects "
             "| AUROC | MAE points | MAE log-odds |", "|---|---|---|---|---|---|---|---|"]
    for method, m in metrics.items():
        if not m.get("available"):
            lines.append(f"| {method} | not available | | | | | | |")
            continue
        lines.append(f"| {method} | {num(m['spearman'])} | {num(m['pearson'])} | {num(m['target_spearman'])} "
                     f"| {num(m.get('side_effect_spearman'))} | {num(m['auroc'])} | {num(m['mae_points'], 1)} | {num(m['mae_logodds'])} |")
    return lines


def main() -> None:
    result = json.loads(Path(sys.argv[1]).read_text())
    print(f"machine: {result['machine']}\n")
    print("\n".join(dataset_rows(result)) + "\n")
    print("\n".join(metric_rows(result, "held_out")) + "\n")
    if result["summary"]["held_out_datasets"] != [d["name"] for d in result["datasets"]]:
        print("\n".join(metric_rows(result, "all")) + "\n")
    cost = result["summary"]["cost_ratio"]
    print(f"cost: check {cost['check_seconds']:.0f} s / fine-tune {cost['finetune_seconds']:.0f} s = "
          f"{cost['ratio']:.3f} (target {cost['target']})")
    if cost.get("context_ratio") is not None:
        print(f"cost: in-context baseline {cost['context_seconds']:.0f} s / fine-tune = {cost['context_ratio']:.3f}")


if __name__ == "__main__":
    main()
