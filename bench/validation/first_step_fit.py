"""Scores first_step.py's predictions: k fitted on the calibration outcomes, then held fixed.

The rule, fixed before any held-out, fresh or blind set was scored: k is the scale of
first_step.py's grid with the least log-odds MAE on the calibration outcomes (owl, Tokyo,
George Washington), averaged per dataset as `calibrate.select` does; nothing else is fitted.
A record whose sha256 differs from its outcome's is refused (the data would not be the
data that was fine-tuned).

    python bench/validation/first_step_fit.py RECORD_DIR CALIBRATION.json OUT_DIR OUTCOMES.json [...]

Prints the fitted k and its error, then per outcomes file the target lines and the metrics
beside the shipped prediction and the file's baselines; writes OUT_DIR/<outcomes parent>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import fit_grid, score_files  # noqa: E402


def rates_at(record: dict, scale: str) -> dict:
    return {(s, e): r for s, e, r in record["scales"][scale]["rates"]}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def records_for(record_dir: Path, outcomes: dict, suffix: str = ".json",
                read: Callable[[Path], dict] = read_json) -> dict:
    """The record of each outcome dataset that has one (RECORD_DIR/<stem><suffix>, read by `read`
    into a dict with the data's "sha256"), checked to be of the same data."""
    found = {}
    for d in outcomes["datasets"]:
        path = record_dir / f"{Path(d['name']).stem}{suffix}"
        if path.is_file():
            record = read(path)
            if record["sha256"] != d["sha256"]:
                raise SystemExit(f"{path}: sha256 {record['sha256'][:12]} is not the outcome's {d['sha256'][:12]}")
            found[d["name"]] = record
    return found


def main(record_dir: str, calibration_path: str, out_dir: str, *outcome_paths: str) -> None:
    calibration = json.loads(Path(calibration_path).read_text())
    scale, choice = fit_grid(records_for(Path(record_dir), calibration), calibration,
                             lambda record, point, _: rates_at(record, point))
    print(f"k = {scale}; calibration log-odds MAE: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in choice["scores"].items())
          + f"; leave-one-entity-out {choice['held_out_error']:.3f}")
    score_files(outcome_paths, out_dir, "step", "first_step",
                lambda outcomes: records_for(Path(record_dir), outcomes),
                lambda record, _: rates_at(record, scale),
                lambda records: {"scale": float(scale), "calibration": calibration_path,
                                 "gradient_seconds": {n: r["gradient_seconds"] for n, r in records.items()},
                                 "probe_seconds": {n: r["scales"][scale]["seconds"] for n, r in records.items()}})


if __name__ == "__main__":
    main(*sys.argv[1:])
