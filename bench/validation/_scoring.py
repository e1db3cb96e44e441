"""What the fitted research predictors (slope_fit.py, first_step_fit.py, row_mixture_*.py) share: scoring their
rates against a `validate` outcomes file with `summarize`'s metrics, beside the shipped
prediction and the file's baselines, and the per-dataset target line they print."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.calibrate import point_error, select  # noqa: E402
from mdf_guard.validate import summarize, with_mdf_rates, with_sharpened_rates  # noqa: E402

BASELINES = ("raw", "random", "sharpened", "keyword", "embedding")


def score(outcomes: dict, rates_for: Callable[[dict], dict | None], label: str) -> dict:
    """`outcomes` with each dataset's mdf prediction replaced by `rates_for(dataset)` (None:
    the dataset is left out) and `sharpened` added; prints each target, real and predicted."""
    datasets = []
    for d in outcomes["datasets"]:
        rates = rates_for(d)
        if rates is None:
            continue
        datasets.append(with_sharpened_rates(with_mdf_rates(d, rates)))
        target = next(p for p in datasets[-1]["points"] if f"{p['suite']}/{p['entity']}" == d["target"])
        print(f"  {d['name']:24s} {d['target']:28s} actual {100 * target['actual_shift']:+6.1f} "
              f"{label} {100 * target['mdf_shift']:+6.1f}  top {_top(datasets[-1])}")
    return {**outcomes, "datasets": datasets,
            "summary": summarize(datasets, outcomes.get("effect_threshold", 0.05),
                                 outcomes.get("calibration_entities", []))}


def rates_from_shifts(dataset: dict, shifts) -> dict:
    """Each (suite, entity, shift) added to the outcome's own vanilla rate, clipped to [0, 1]: how
    the row mixture's and the row vote's predicted shifts become rates."""
    vanilla = {(p["suite"], p["entity"]): p["vanilla_rate"] for p in dataset["points"]}
    return {(s, e): min(1.0, max(0.0, vanilla[(s, e)] + float(shift))) for s, e, shift in shifts}


def fit_grid(records: dict, calibration: dict, rates_for: Callable[[dict, str, dict], dict],
             order: Callable[[str], object] = float) -> tuple[str, dict]:
    """The grid point (a key of every record's "scales") with the least log-odds MAE on the
    calibration outcomes, averaged per dataset as `calibrate.select` does, and select's table.
    `rates_for(record, point, dataset)` gives a record's predicted rates at a point; `order`
    sorts the points (ties go to the first)."""
    points = sorted(set.intersection(*(set(r["scales"]) for r in records.values())), key=order)
    table = {point: {d["name"]: point_error(rates_for(records[d["name"]], point, d),
                                            {(p["suite"], p["entity"]): p["actual_rate"] for p in d["points"]},
                                            "logodds")
                     for d in calibration["datasets"]}
             for point in points}
    choice = select(table, {d["name"]: d["target"] for d in calibration["datasets"]})
    return choice["best"], choice


def metrics_by_rule(fit_paths: Sequence[str], records_of: Callable[[dict], dict], rules: Sequence,
                    rates_for: Callable[[dict, dict, object], dict]) -> dict:
    """Each rule's metrics over all points on each FIT outcomes file (`summarize`'s "all" of the
    predictor), quietly: what the fits over seen sets (`row_vote.py`, `row_mixture_suite_alpha.py`,
    `context_fit.py`) choose from. `rates_for(record, dataset, rule)` gives a record's rates."""
    files = [json.loads(Path(p).read_text()) for p in fit_paths]
    records = [records_of(o) for o in files]
    table = {}
    for rule in rules:
        table[rule] = []
        for outcomes, found in zip(files, records, strict=True):
            with contextlib.redirect_stdout(io.StringIO()):
                result = score(outcomes, lambda d, found=found, rule=rule: rates_for(found[d["name"]], d, rule)
                               if d["name"] in found else None, "fit")
            table[rule].append(result["summary"]["all"]["mdf"])
    return table


def mean_of(metrics: list[dict], key: str) -> float:
    """The mean of one metric over the files that have it (AUROC needs a control, calibration has none)."""
    values = [m[key] for m in metrics if m.get(key) is not None]
    return float(sum(values) / len(values)) if values else float("nan")


def score_files(outcome_paths: Sequence[str], out_dir: str, label: str, key: str,
                records_of: Callable[[dict], dict], rates_for: Callable[[dict, dict], dict],
                details: Callable[[dict], dict]) -> None:
    """Scores a fitted predictor on each outcomes file: prints its targets and metric lines, and
    writes OUT_DIR/<outcomes parent>.json with `details(records)` under `key`.
    `records_of(outcomes)` gives the predictor's records by dataset name (a dataset without one is
    left out); `rates_for(record, dataset)` gives a record's predicted rates."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for path in outcome_paths:
        print(path)
        outcomes = json.loads(Path(path).read_text())
        records = records_of(outcomes)
        result = score(outcomes, lambda d, records=records: rates_for(records[d["name"]], d)
                       if d["name"] in records else None, label)
        result[key] = details(records)
        (Path(out_dir) / f"{Path(path).parent.name}.json").write_text(json.dumps(result, indent=1))
        for name, m in metric_rows(result, outcomes, label):
            print(metric_line(name, m))


def metric_line(label: str, m: dict) -> str:
    """One method's metrics over all points, as the fit scripts print them."""
    return (f"  {label:9s} spearman {num(m['spearman'])} / targets {num(m['target_spearman'])} "
            f"side {num(m.get('side_effect_spearman'))} auroc {num(m['auroc'])} "
            f"mae pts {num(m['mae_points'])} log-odds {num(m['mae_logodds'])}")


def metric_rows(result: dict, outcomes: dict, label: str) -> list[tuple[str, dict]]:
    """(name, metrics over all points) for the predictor, the shipped prediction the outcomes
    file holds, and the baselines; only the available ones."""
    shipped = outcomes.get("summary", {}).get("all", {}).get("mdf", {})
    rows = [(label, result["summary"]["all"]["mdf"]), ("shipped", shipped)]
    rows += [(method, result["summary"]["all"][method]) for method in BASELINES]
    return [(name, m) for name, m in rows if m.get("available")]


def num(value: float | None) -> str:
    return "   -" if value is None else f"{value:5.2f}"


def _top(dataset: dict) -> str:
    best = max(dataset["points"], key=lambda p: p["mdf_shift"])
    return f"{best['suite']}/{best['entity']} {100 * best['mdf_shift']:+.1f}"
