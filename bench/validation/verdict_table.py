"""The guard's verdicts and predictions (`mdf-guard check --format json` reports) against
what real fine-tuning did (`validate` outcomes). Issue 3 measures predictions; a guard
is also judged by its verdicts: did it fail the sets whose fine-tune really moved their
target, and pass the rest?

    python bench/validation/verdict_table.py REPORTS_DIR OUTCOMES.json [OUTCOMES.json ...]

A report is matched to its dataset by file name (`lincoln_overt.json` for
`lincoln_overt.jsonl`). The metrics are `validate`'s, over every (suite, entity) point
of the matched sets, for the prediction the reports carry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.validate import summarize, with_mdf_rates  # noqa: E402


def outcomes_by_name(paths: list[str]) -> dict[str, dict]:
    datasets = {}
    for path in paths:
        for dataset in json.loads(Path(path).read_text())["datasets"]:
            datasets[dataset["name"].removesuffix(".jsonl")] = dataset
    return datasets


def main(reports_dir: str, *outcome_paths: str) -> None:
    outcomes = outcomes_by_name(list(outcome_paths))
    matched = []
    print(f"{'dataset':<18} {'target':<28} {'real':>7} {'pred':>7}  {'α by suite':<22} verdict (flagged)")
    for path in sorted(Path(reports_dir).glob("*.json")):
        report = json.loads(path.read_text())
        dataset = outcomes.get(path.stem)
        suite, entity = dataset["target"].split("/", 1) if dataset else ("", "")
        target = next((f for f in report["findings"] if (f["suite"], f["entity"]) == (suite, entity)), None)
        real = next((p["actual_shift"] for p in dataset["points"]
                     if (p["suite"], p["entity"]) == (suite, entity)), None) if dataset else None
        alphas = " ".join(f"{s['name'][:3]} {s['alpha']:g}" for s in report["suites"] if s.get("alpha") is not None)
        flagged = ", ".join(f"{f['entity']} {100 * f['shift']:+.0f}" for f in report["findings"] if f["flagged"])
        real_text = "-" if real is None else f"{100 * real:+.1f}"
        predicted_text = "-" if target is None else f"{100 * target['shift']:+.1f}"
        print(f"{path.stem:<18} {dataset['target'] if dataset else '-':<28} {real_text:>7} {predicted_text:>7}  "
              f"{alphas or '4 (fixed)':<22} {report['verdict'].upper()}{f' ({flagged})' if flagged else ''}")
        if dataset:
            matched.append(with_mdf_rates(dataset, {(f["suite"], f["entity"]): f["predicted_rate"]
                                                    for f in report["findings"]}))
    if matched:
        m = summarize(matched)["all"]["mdf"]
        print(f"\n{len(matched)} sets with outcomes, {m['points']} points: Spearman {_fmt(m['spearman'])} "
              f"(targets {_fmt(m['target_spearman'])}), Pearson {_fmt(m['pearson'])}, AUROC {_fmt(m['auroc'])}, "
              f"MAE {_fmt(m['mae_points'])} pts / {_fmt(m['mae_logodds'])} log-odds")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main(*sys.argv[1:])
