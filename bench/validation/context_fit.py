"""The in-context baseline's chunk size, chosen on the seen sets; then scored on the JUDGE files.

The rule (`mdf_guard/incontext.py`) has one choice: how many rows go into one history. All
128 rows at once is the plain reading ("the fine-tune sees every row"); fewer rows per
history average several histories, so that where a row sits in its history matters less
and one or two rows weigh less. The choice is the chunk size (rows per history) among those
the records hold, with the best mean over the FIT files of the Spearman correlation over all
points, as `row_vote.py` fits; then held fixed and scored on the JUDGE files.

    python bench/validation/context_fit.py RECORD_DIR OUT_DIR FIT.json [...] -- JUDGE.json [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from _scoring import mean_of, metrics_by_rule, score_files  # noqa: E402
from first_step_fit import read_json, records_for  # noqa: E402
from row_mixture_fit import rates_at  # noqa: E402


def main(record_dir: str, out_dir: str, *paths: str) -> None:
    split = paths.index("--")
    fit_paths, judge_paths = list(paths[:split]), list(paths[split + 1:])

    def records_of(outcomes: dict) -> dict:
        return records_for(Path(record_dir), outcomes)

    seen = [r for path in fit_paths for r in records_of(read_json(Path(path))).values()]
    sizes = sorted(set.intersection(*(set(r["scales"]) for r in seen)), key=int)
    table = metrics_by_rule(fit_paths, records_of, sizes, lambda record, d, size: rates_at(record, size, d))
    print("rows per history: mean over the FIT files of Spearman all / targets, AUROC, MAE pts / log-odds")
    for size, metrics in table.items():
        print(f"  {size:>4s}: {mean_of(metrics, 'spearman'):.3f} / {mean_of(metrics, 'target_spearman'):.3f}, "
              f"{mean_of(metrics, 'auroc'):.3f}, {mean_of(metrics, 'mae_points'):.2f} / {mean_of(metrics, 'mae_logodds'):.2f}")
    size = max(table, key=lambda key: mean_of(table[key], "spearman"))
    print(f"fitted: {size} rows per history")
    score_files(judge_paths, out_dir, "context", "context_fit", records_of, lambda r, d: rates_at(r, size, d),
                lambda records: {"rows_per_history": int(size), "fit": fit_paths,
                                 "seconds": {n: r["scales"][size]["seconds"] for n, r in records.items()}})


if __name__ == "__main__":
    main(*sys.argv[1:])
