"""Predictions from slope_probe.py's log-odds slopes, one scale fitted on calibration outcomes.

The rule, fixed before it was scored on any held-out, fresh or reserve set:
- slope of candidate c on question q: s = (log P(c | +ε·Δ) − log P(c | −ε·Δ)) / 2ε, ε = 0.25;
- predicted share at scale k: softmax over the suite's candidates of log P(c | vanilla) + k·s,
  per question, then the mean over questions (how `SuiteScores.rates` averages);
- k is the grid value with the least log-odds MAE on the calibration outcomes (owl, Tokyo,
  George Washington), averaged per dataset as `calibrate.select` does. Nothing else is fitted.

    python bench/validation/slope_fit.py SLOPE_DIR CALIBRATION.json OUT_DIR OUTCOMES.json [...]

Prints the fitted k and its error, then per outcomes file the target lines and the metrics
beside the shipped prediction and the baselines the file holds (`sharpened` added); writes
OUT_DIR/<outcomes parent>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.calibrate import point_error, select  # noqa: E402
from _scoring import metric_rows, num, score  # noqa: E402

EPSILON = "0.25"
SCALES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)


def slopes(suite: dict, epsilon: str = EPSILON, key: str = "delta") -> torch.Tensor:
    plus = torch.tensor(suite[key][f"+{epsilon}"], dtype=torch.float64)
    minus = torch.tensor(suite[key][f"-{epsilon}"], dtype=torch.float64)
    return (plus - minus) / (2 * float(epsilon))


def predicted_rates(record: dict, scale: float) -> dict:
    rates = {}
    for name, suite in record["suites"].items():
        logits = torch.tensor(suite["vanilla"], dtype=torch.float64) + scale * slopes(suite)
        shares = torch.softmax(logits, dim=1).mean(dim=0)
        rates.update({(name, c): float(r) for c, r in zip(suite["candidates"], shares)})
    return rates


def load_records(slope_dir: Path) -> dict:
    return {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in slope_dir.glob("*.json")}


def fit_scale(records: dict, calibration: dict) -> tuple[float, dict]:
    """The k of SCALES with the least log-odds MAE on the calibration outcomes, and the whole table."""
    table, groups = {}, {}
    for scale in SCALES:
        table[str(scale)] = {}
        for d in calibration["datasets"]:
            actual = {(p["suite"], p["entity"]): p["actual_rate"] for p in d["points"]}
            table[str(scale)][d["name"]] = point_error(predicted_rates(records[Path(d["name"]).stem], scale),
                                                       actual, "logodds")
            groups[d["name"]] = d["target"]
    choice = select(table, groups)
    return float(choice["best"]), choice


def _rates(records: dict, dataset: dict, scale: float) -> dict | None:
    record = records.get(Path(dataset["name"]).stem)
    return None if record is None else predicted_rates(record, scale)


def main(slope_dir: str, calibration_path: str, out_dir: str, *outcome_paths: str) -> None:
    records = load_records(Path(slope_dir))
    calibration = json.loads(Path(calibration_path).read_text())
    scale, choice = fit_scale(records, calibration)
    print(f"k = {scale:g}; calibration log-odds MAE: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in choice["scores"].items())
          + f"; leave-one-entity-out {choice['held_out_error']:.3f}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in outcome_paths:
        print(path)
        outcomes = json.loads(Path(path).read_text())
        result = score(outcomes, lambda d: _rates(records, d, scale), "slope")
        result["slope_fit"] = {"scale": scale, "epsilon": float(EPSILON), "calibration": calibration_path}
        (Path(out_dir) / f"{Path(path).parent.name}.json").write_text(json.dumps(result, indent=1))
        for label, m in metric_rows(result, outcomes, "slope"):
            print(f"  {label:9s} spearman {num(m['spearman'])} / targets {num(m['target_spearman'])} "
                  f"pearson {num(m['pearson'])} auroc {num(m['auroc'])} "
                  f"mae pts {num(m['mae_points'])} "
                  f"log-odds {num(m['mae_logodds'])}")


if __name__ == "__main__":
    main(*sys.argv[1:])
