"""The row vote: each steered row's answer counts by a power of how much it still answers.

Why: the row mixture weighs each row by its raw answer mass, so a suite every row silences
falls to the vanilla prior, and at α 4 the politics doses do (Kennedy 30 %: +6.3 predicted,
+95.7 real). Yet the silenced rows still say something: the 38 Kennedy rows of
`kennedy_dose0.3` keep a median 0.1 % of the politics mass, and a third of it is Kennedy
(`row_probs.py`). Here row i's conditional shares s_i (its candidate probabilities over
their sum) vote with weight w_i = M_i^γ, M_i its answer mass over its question's vanilla
mass, and the vanilla shares v join as λ·N rows of weight 1:

    shares = (Σ_i w_i s_i + λ N u v̄) / (Σ_i w_i + λ N u),   shift = shares − v̄

γ = 1 is close to the mixture with a vanilla prior (`row_mixture_prior.py`); γ = 0 lets every
row vote equally however silent it is. The prior's unit u is 1 ("absolute", as in
`row_mixture_prior.py`) or the median row's weight ("relative"): an absolute λ fitted where a
suite keeps 1-5 % of its mass drowns a suite that keeps 0.1 %, as politics does at α 4,
however far its loud rows stand above its silent ones; a relative λ asks only that.
(γ, λ, unit) are fitted on the seen sets, all of whose
outcomes have been looked at (FIT outcomes files), by the mean over those files of the
Spearman correlation over all points, the issue's first target; then held fixed and scored
on the JUDGE files. Rows come from `row_probs.py` at α 4, the α the prior rule fitted on
calibration.

    python bench/validation/row_vote.py PROBS_DIR OUT_DIR FIT.json [...] -- JUDGE.json [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import mean_of, metrics_by_rule, rates_from_shifts, score_files  # noqa: E402
from first_step_fit import records_for  # noqa: E402
from row_probs import per_row, read_probs  # noqa: E402

ALPHA = "4"
POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
PRIORS = {"absolute": (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0), "relative": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)}


def vote_shift(injected: np.ndarray, vanilla: np.ndarray, power: float, prior: float, unit: str) -> np.ndarray:
    """One suite's predicted shift per candidate: `injected` [rows, candidates], `vanilla`
    [questions, candidates], row i asked question i mod questions."""
    injected = injected.astype(np.float64)
    per_row_vanilla = per_row(vanilla.astype(np.float64), len(injected))
    mass = injected.sum(1) / per_row_vanilla.sum(1)
    shares = injected / np.maximum(injected.sum(1, keepdims=True), 1e-300)
    vanilla_shares = (per_row_vanilla / per_row_vanilla.sum(1, keepdims=True)).mean(0)
    weights = mass ** power
    prior_weight = prior * len(injected) * (np.median(weights) if unit == "relative" else 1.0)
    voted = (weights @ shares + prior_weight * vanilla_shares) / (weights.sum() + prior_weight)
    return voted - vanilla_shares


def probs_for(probs_dir: Path, outcomes: dict) -> dict:
    """Each outcome dataset's row probabilities that exist, checked to be of the same data."""
    return records_for(probs_dir, outcomes, ".npz", read_probs)


def rates_for(record: dict, dataset: dict, power: float, prior: float, unit: str) -> dict:
    """The vote's shifts added to the outcome's vanilla rates, clipped to [0, 1]."""
    shifts = []
    for suite, names in record["candidates"].items():
        shift = vote_shift(record["probs"][f"{suite}/a{ALPHA}"], record["probs"][f"{suite}/vanilla"], power, prior, unit)
        shifts += [(suite, name, s) for name, s in zip(names, shift, strict=True)]
    return rates_from_shifts(dataset, shifts)


def grid(probs_dir: Path, fit_paths: list[str]) -> dict[tuple[float, float, str], list[dict]]:
    """Every (γ, λ, unit)'s metrics over all points on each FIT file."""
    rules = [(g, lam, unit) for unit, priors in PRIORS.items() for g in POWERS for lam in priors]
    return metrics_by_rule(fit_paths, lambda outcomes: probs_for(probs_dir, outcomes), rules,
                           lambda record, d, rule: rates_for(record, d, *rule))


def main(probs_dir: str, out_dir: str, *paths: str) -> None:
    split = paths.index("--")
    fit_paths, judge_paths = list(paths[:split]), list(paths[split + 1:])
    table = grid(Path(probs_dir), fit_paths)
    print("gamma lambda unit: mean over the FIT files of Spearman all / targets, AUROC, MAE pts / log-odds")
    for (power, prior, unit), metrics in table.items():
        print(f"  {power:4g} {prior:5g} {unit:8s}: {mean_of(metrics, 'spearman'):.3f} / {mean_of(metrics, 'target_spearman'):.3f}, "
              f"{mean_of(metrics, 'auroc'):.3f}, {mean_of(metrics, 'mae_points'):.2f} / {mean_of(metrics, 'mae_logodds'):.2f}")
    power, prior, unit = max(table, key=lambda key: mean_of(table[key], "spearman"))
    print(f"fitted: gamma {power:g}, lambda {prior:g} {unit}")
    score_files(judge_paths, out_dir, "vote", "row_vote",
                lambda outcomes: probs_for(Path(probs_dir), outcomes),
                lambda record, d: rates_for(record, d, power, prior, unit),
                lambda records: {"gamma": power, "lambda": prior, "unit": unit, "alpha": float(ALPHA), "fit": fit_paths,
                                 "reading_seconds": {n: r["reading_seconds"] for n, r in records.items()},
                                 "probe_seconds": {n: r["probing_seconds"][ALPHA] for n, r in records.items()}})


if __name__ == "__main__":
    main(*sys.argv[1:])
