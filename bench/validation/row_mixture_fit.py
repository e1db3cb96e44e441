"""Scores row_mixture.py's records: α fitted on the calibration outcomes, then held fixed.

As first_step_fit.py: α is the one of the records' grid with the least log-odds MAE on the
calibration outcomes (owl, Tokyo, George Washington), averaged per dataset as
`calibrate.select` does; nothing else is fitted. A record's mixture shifts become rates on
each outcome's own vanilla rates (clipped to [0, 1]). A record whose sha256 differs from
its outcome's is refused.

    python bench/validation/row_mixture_fit.py RECORD_DIR CALIBRATION.json OUT_DIR OUTCOMES.json [...]

Prints the fitted α and its error, then per outcomes file the target lines and the metrics
beside the shipped prediction and the file's baselines; writes OUT_DIR/<outcomes parent>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import fit_grid, rates_from_shifts, score_files  # noqa: E402
from first_step_fit import records_for  # noqa: E402


def rates_at(record: dict, alpha: str, dataset: dict) -> dict:
    """The record's mixture shifts at alpha, added to the outcome's vanilla rates."""
    return rates_from_shifts(dataset, record["scales"][alpha]["shifts"])


def main(record_dir: str, calibration_path: str, out_dir: str, *outcome_paths: str) -> None:
    calibration = json.loads(Path(calibration_path).read_text())
    alpha, choice = fit_grid(records_for(Path(record_dir), calibration), calibration, rates_at)
    print(f"alpha = {alpha}; calibration log-odds MAE: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in choice["scores"].items())
          + f"; leave-one-entity-out {choice['held_out_error']:.3f}")
    score_files(outcome_paths, out_dir, "mixture", "row_mixture",
                lambda outcomes: records_for(Path(record_dir), outcomes),
                lambda record, d: rates_at(record, alpha, d),
                lambda records: {"alpha": float(alpha), "calibration": calibration_path,
                                 "answer_mass": {n: r["scales"][alpha]["answer_mass"] for n, r in records.items()},
                                 "reading_seconds": {n: r["reading_seconds"] for n, r in records.items()},
                                 "probe_seconds": {n: r["scales"][alpha]["seconds"] for n, r in records.items()}})


if __name__ == "__main__":
    main(*sys.argv[1:])
