"""Where the all-points Spearman lives: oracle substitutions and a control fine-tune's drift.

Why: every predictor so far scores about 0.5 over all points (every candidate of every
suite, per dataset), the issue's first target being 0.9, and the seed ceiling 0.94. Each
dataset has one target among 220 points. This asks which points the metric is about, by
replacing parts of a prediction with the real shifts, and how far a predictor gets that
reads no data at all but one real fine-tune of a neutral control set (`neutral.jsonl`, seed
0, fine-tuned with the held-out sets): its real shifts, the fine-tune's own drift, predicted
for every other set. That is what a user would measure once per model and fine-tune recipe;
it says nothing about what a dataset is about.

Predictors, per outcomes file (the control set itself left out of every line):
- `prior`: the row mixture with a vanilla prior (α 4, λ 0.001), the best blind line;
  `shipped`: the shipped check's predictions in the file;
- `prior, X real`: the prior with X's points replaced by their real shifts (X: each set's
  target; all candidates of the target's suite; all candidates of the other two suites);
- `drift`: the control's real shifts; `shipped + drift`, `prior + drift`: added.
Spearman over all points; MAE in points and log-odds of the rates (vanilla + shift,
clipped to [0, 1]), for the lines that are rates.

    python bench/validation/decomposition.py OUTCOMES.json...
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from first_step_fit import records_for  # noqa: E402
from row_mixture_suite_alpha import rates_for  # noqa: E402
from mdf_guard.validate import in_target_suite, mae_logodds, mae_points, spearman  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PRIOR = (("4", "4", "4"), 0.001)
CONTROL = (RESULTS / "heldout_batched/second/validation.json", "neutral.jsonl")
Shift = Callable[[dict, dict], float]   # (dataset, point) → predicted shift


def control() -> dict:
    """The control set's outcome: its real shifts are the drift."""
    outcomes = json.loads(CONTROL[0].read_text())
    return next(d for d in outcomes["datasets"] if d["name"] == CONTROL[1])


def key(point: dict) -> tuple[str, str]:
    return point["suite"], point["entity"]


def is_target(dataset: dict, point: dict) -> bool:
    return f"{point['suite']}/{point['entity']}" == dataset["target"]


def predictors(drift: dict) -> dict[str, Shift]:
    return {
        "prior": lambda d, p: p["prior"],
        "shipped": lambda d, p: p["mdf_shift"],
        "prior, targets real": lambda d, p: p["actual_shift"] if is_target(d, p) else p["prior"],
        "prior, target suite real": lambda d, p: p["actual_shift"] if in_target_suite(d, p) else p["prior"],
        "prior, other suites real": lambda d, p: p["prior"] if in_target_suite(d, p) else p["actual_shift"],
        "drift": lambda d, p: drift[key(p)],
        "shipped + drift": lambda d, p: p["mdf_shift"] + drift[key(p)],
        "prior + drift": lambda d, p: p["prior"] + drift[key(p)],
    }


def with_prior(outcomes: dict, control_sha256: str) -> list[dict]:
    """The file's datasets but the control, each point carrying the prior's shift as "prior"."""
    records = records_for(RESULTS / "row_mixture/records", outcomes)
    datasets = []
    for d in outcomes["datasets"]:
        if d["sha256"] == control_sha256:
            continue
        rates = rates_for(records[d["name"]], d, PRIOR)
        datasets.append({**d, "points": [{**p, "prior": rates[key(p)] - p["vanilla_rate"]} for p in d["points"]]})
    return datasets


def line(name: str, shift: Shift, datasets: list[dict]) -> str:
    points = [(d, p) for d in datasets for p in d["points"]]
    predicted = [shift(d, p) for d, p in points]
    actual = [p["actual_shift"] for _, p in points]
    text = f"  {name:26s} Spearman {spearman(predicted, actual):.3f}"
    rates = [min(1.0, max(0.0, p["vanilla_rate"] + s)) for (_, p), s in zip(points, predicted, strict=True)]
    real = [p["actual_rate"] for _, p in points]
    return text + f"  MAE {mae_points(rates, real):.2f} pts / {mae_logodds(rates, real):.2f} log-odds"


def main(*paths: str) -> None:
    drift_set = control()
    lines = predictors({key(p): p["actual_shift"] for p in drift_set["points"]})
    print(f"control: {CONTROL[1]} in {CONTROL[0].relative_to(RESULTS)}")
    for path in paths:
        datasets = with_prior(json.loads(Path(path).read_text()), drift_set["sha256"])
        print(f"{path}: {len(datasets)} sets, {sum(len(d['points']) for d in datasets)} points")
        for name, shift in lines.items():
            print(line(name, shift, datasets))


if __name__ == "__main__":
    main(*sys.argv[1:])
