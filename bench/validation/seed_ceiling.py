"""How well does one fine-tune predict another? The ceiling for any predictor (issue 3).

Two `validate --actual-only` results of the same datasets, model, questions and
fine-tune settings but different fine-tuning seeds (the seed sets the order of the
rows). The second run's measured rates are scored as if they were a prediction of the
first, with the same metrics `validate` gives mdf-guard. No method that sees only the
data can beat what the fine-tune itself does on a rerun.

    python bench/validation/seed_ceiling.py \
        bench/validation/results/heldout_actual/validation.json \
        bench/validation/results/heldout_seed1/validation.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.validate import summarize, with_mdf_rates  # noqa: E402

SAME = ("sha256", "target", "rows")


def rerun_as_prediction(first: dict, second: dict) -> list[dict]:
    """`first`'s datasets with `second`'s measured rates in the mdf prediction fields."""
    by_name = {d["name"]: d for d in second["datasets"]}
    datasets = []
    for dataset in first["datasets"]:
        other = by_name[dataset["name"]]
        for key in SAME:
            if dataset.get(key) != other.get(key):
                raise SystemExit(f"{dataset['name']}: field '{key}' differs between the two runs")
        settings = {k: v for k, v in dataset["finetune"]["settings"].items() if k != "seed"}
        if settings != {k: v for k, v in other["finetune"]["settings"].items() if k != "seed"}:
            raise SystemExit(f"{dataset['name']}: fine-tune settings differ beyond the seed")
        rates = {(p["suite"], p["entity"]): p["actual_rate"] for p in other["points"]}
        datasets.append(with_mdf_rates(dataset, rates))
    return datasets


def main(first_path: str, second_path: str) -> None:
    first = json.loads(Path(first_path).read_text())
    second = json.loads(Path(second_path).read_text())
    datasets = rerun_as_prediction(first, second)
    m = summarize(datasets, first.get("effect_threshold", 0.05))["all"]["mdf"]
    print(f"seed {datasets[0]['finetune']['settings']['seed']} predicted by seed "
          f"{second['datasets'][0]['finetune']['settings']['seed']}, {m['points']} points: "
          f"Spearman {m['spearman']:.3f} (targets {m['target_spearman']:.3f}), Pearson {m['pearson']:.3f} "
          f"(targets {m['target_pearson']:.3f}), AUROC {m['auroc']:.3f}, "
          f"MAE {m['mae_points']:.2f} pts / {m['mae_logodds']:.3f} log-odds")
    for dataset in datasets:
        for p in dataset["points"]:
            if f"{p['suite']}/{p['entity']}" == dataset["target"]:
                print(f"  {dataset['name']:<22} {p['entity']:<16} vanilla {100 * p['vanilla_rate']:5.1f} %  "
                      f"seed A {100 * p['actual_rate']:5.1f} %  seed B {100 * p['mdf_rate']:5.1f} %")


if __name__ == "__main__":
    main(*sys.argv[1:3])
