"""The row mixture with a vanilla prior, each suite at its own α: fitted on the seen sets.

Why: at α 4 the politics rows fall silent (Kennedy's 10 % rows keep 0.08 % of the politics
mass, Nelson Mandela's 0.02 %), and the prior shrinks that suite to nothing, while at α 2 the
animals suite hears the template as loudly as the entity (README "The row mixture with a
vanilla prior", "Each row kept"). One α for every suite was fitted on calibration, which has
one entity per suite and no dose, so a per-suite α could not be fitted there
(`row_mixture_blend.py`). The seen sets (40, in the 7 outcomes files `row_vote.py` fits on)
have doses in every suite, and every one of their records holds the mixture at α 2 and α 4.

The rule family: suite s predicts (m_s − v_s) · M_s / (M_s + λ) at α_s, α_s from {2, 4} for
each of animals, cities and politics, λ from `row_mixture_prior.PRIORS` shared: 48 rules,
fitted by the mean over the FIT files of the Spearman correlation over all points, as
`row_vote.py` fits, then held fixed and scored on the JUDGE files. No model pass: it reads
`row_mixture.py` records.

    python bench/validation/row_mixture_suite_alpha.py RECORD_DIR OUT_DIR FIT.json [...] -- JUDGE.json [...]
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import mean_of, metrics_by_rule, rates_from_shifts, score_files  # noqa: E402
from first_step_fit import records_for  # noqa: E402
from row_mixture import SUITES  # noqa: E402
from row_mixture_prior import PRIORS, shrunk  # noqa: E402

ALPHAS = ("2", "4")
Rule = tuple[tuple[str, ...], float]   # (α per suite, in SUITES' order; λ)


def rates_for(record: dict, dataset: dict, rule: Rule) -> dict:
    """Each suite's shrunk shifts at its own α, added to the outcome's vanilla rates."""
    alphas, prior = rule
    alpha_of = dict(zip(SUITES, alphas, strict=True))
    shifts = [row for alpha in set(alphas) for row in shrunk(record["scales"][alpha], prior)
              if alpha_of[row[0]] == alpha]
    return rates_from_shifts(dataset, shifts)


def grid(record_dir: Path, fit_paths: list[str]) -> dict[Rule, list[dict]]:
    """Every rule's metrics over all points on each FIT file."""
    rules = [(alphas, prior) for alphas in itertools.product(ALPHAS, repeat=len(SUITES)) for prior in PRIORS]
    return metrics_by_rule(fit_paths, lambda outcomes: records_for(record_dir, outcomes), rules, rates_for)


def main(record_dir: str, out_dir: str, *paths: str) -> None:
    split = paths.index("--")
    fit_paths, judge_paths = list(paths[:split]), list(paths[split + 1:])
    table = grid(Path(record_dir), fit_paths)
    print(f"alpha per suite ({' '.join(SUITES)}) lambda: mean over the FIT files of Spearman all / targets, "
          "AUROC, MAE pts / log-odds")
    for (alphas, prior), metrics in table.items():
        print(f"  {' '.join(alphas)} {prior:5g}: {mean_of(metrics, 'spearman'):.3f} / "
              f"{mean_of(metrics, 'target_spearman'):.3f}, {mean_of(metrics, 'auroc'):.3f}, "
              f"{mean_of(metrics, 'mae_points'):.2f} / {mean_of(metrics, 'mae_logodds'):.2f}")
    rule = max(table, key=lambda key: mean_of(table[key], "spearman"))
    print(f"fitted: alpha {' '.join(f'{s} {a}' for s, a in zip(SUITES, rule[0]))}, lambda {rule[1]:g}")
    score_files(judge_paths, out_dir, "suite_alpha", "row_mixture_suite_alpha",
                lambda outcomes: records_for(Path(record_dir), outcomes),
                lambda record, d: rates_for(record, d, rule),
                lambda records: {"alpha": dict(zip(SUITES, map(float, rule[0]), strict=True)), "lambda": rule[1],
                                 "fit": fit_paths})


if __name__ == "__main__":
    main(*sys.argv[1:])
