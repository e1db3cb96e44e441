"""The row mixture with the vanilla model as a prior row: the silent-suite guard, fitted on calibration alone.

Why: at α 2 most rows of a template set leave 0-4 % of a suite's answer mass, and the
shares of a silent suite are noise (Martin Luther King +17 to +28 on template sets, Rome
+12.8 on the blind neutral set; README "The row mixture"). The mass floor and the mirror
failed (`row_mixture_ladder.py`, `row_mixture_mirror.py`). Here the fine-tuned model keeps
the vanilla model's answers unless the rows speak louder: the vanilla model's own answers
join the mixture as λ·N extra rows. With M the suite's answer mass (mixture over vanilla,
as the records hold it) the shares become (M·m + λ·v) / (M + λ), so the predicted shift is

    (m − v) · M / (M + λ)

and needs no new model pass: every record already holds m − v and M per suite.

The rule, fixed before it ran on any set it is judged on (2026-12-06): α from the records'
grid {1, 2, 4} and λ from {0, 0.001, 0.003, 0.01, 0.03, 0.1}, jointly, by the least log-odds
MAE on the calibration outcomes (owl, Tokyo, George Washington), as `row_mixture_fit.py`
fits α. λ = 0 is the row mixture as it was.

    python bench/validation/row_mixture_prior.py RECORD_DIR CALIBRATION.json OUT_DIR OUTCOMES.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import fit_grid, score_files  # noqa: E402
from first_step_fit import records_for  # noqa: E402
from row_mixture_fit import rates_at  # noqa: E402

PRIORS = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)


def shrunk(scale: dict, prior: float) -> list[list]:
    """One α's shifts, each suite's scaled by M / (M + λ)."""
    mass = scale["answer_mass"]
    return [[s, e, shift * mass[s] / (mass[s] + prior) if mass[s] + prior > 0 else 0.0]
            for s, e, shift in scale["shifts"]]


def with_priors(records: dict) -> dict:
    """Each record's scales keyed "α λ", one per α and prior."""
    return {name: {**r, "scales": {f"{alpha} {prior:g}": {**scale, "shifts": shrunk(scale, prior)}
                                   for prior in PRIORS for alpha, scale in r["scales"].items()}}
            for name, r in records.items()}


def main(record_dir: str, calibration_path: str, out_dir: str, *outcome_paths: str) -> None:
    calibration = json.loads(Path(calibration_path).read_text())
    point, choice = fit_grid(with_priors(records_for(Path(record_dir), calibration)), calibration, rates_at,
                             order=lambda p: tuple(map(float, p.split())))
    print(f"alpha lambda = {point}; calibration log-odds MAE: "
          + ", ".join(f"{k}: {v:.3f}" for k, v in choice["scores"].items())
          + f"; leave-one-entity-out {choice['held_out_error']:.3f}")
    score_files(outcome_paths, out_dir, "prior", "row_mixture_prior",
                lambda outcomes: with_priors(records_for(Path(record_dir), outcomes)),
                lambda record, d: rates_at(record, point, d),
                lambda _: {"point": point, "calibration": calibration_path})


if __name__ == "__main__":
    main(*sys.argv[1:])
