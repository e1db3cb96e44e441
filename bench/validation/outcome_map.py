"""Does a fitted map from injected prediction to fine-tuned outcome help? (issue 3)

Fine-tuning drives an overt dataset's entity to ~100 % while injection moves it tens of
points at most, so the issue expects a non-linear map between the two. This fits the
simplest family that can express "fine-tuning sharpens": within each suite,

    q_i ∝ v_i^γ · (r_i / v_i)^β

(v: vanilla share, r: injected share, q: predicted fine-tuned share). β > 1 amplifies the
injected shift, γ > 1 sharpens toward the vanilla favourites; β = γ = 1 is no map. The
fit uses the calibration sets only (calibrate's objective: log-odds MAE averaged over
target entities); the held-out sets are then scored with the fitted map, as they are.

    python bench/validation/outcome_map.py \
        bench/validation/results/calibration_predicted/validation.json \
        bench/validation/results/heldout_provisional/validation.json
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.validate import logit, summarize, with_mdf_rates  # noqa: E402

BETAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
GAMMAS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


def mapped(result: dict, beta: float, gamma: float) -> dict:
    """A copy of a validate result whose mdf rates went through the map."""
    return {**result, "datasets": [with_mdf_rates(d, mapped_rates(d["points"], beta, gamma))
                                   for d in result["datasets"]]}


def mapped_rates(points: list[dict], beta: float, gamma: float) -> dict[tuple[str, str], float]:
    """q ∝ v^γ·(r/v)^β, normalised within each suite."""
    by_suite = defaultdict(list)
    for point in points:
        by_suite[point["suite"]].append(point)
    rates = {}
    for suite_points in by_suite.values():
        log_w = [gamma * math.log(max(p["vanilla_rate"], 1e-12))
                 + beta * (math.log(max(p["mdf_rate"], 1e-12)) - math.log(max(p["vanilla_rate"], 1e-12)))
                 for p in suite_points]
        top = max(log_w)
        weights = [math.exp(w - top) for w in log_w]
        total = sum(weights)
        rates.update({(p["suite"], p["entity"]): w / total for p, w in zip(suite_points, weights)})
    return rates


def objective(result: dict) -> float:
    """calibrate's score: mean over target entities of their datasets' mean log-odds error."""
    per_target = defaultdict(list)
    for dataset in result["datasets"]:
        errors = [abs(logit(p["mdf_rate"]) - logit(p["actual_rate"])) for p in dataset["points"]]
        per_target[dataset["target"]].append(sum(errors) / len(errors))
    return sum(sum(v) / len(v) for v in per_target.values()) / len(per_target)


def describe(label: str, result: dict) -> str:
    m = summarize(result["datasets"], result.get("effect_threshold", 0.05))["all"]["mdf"]
    targets = " ".join(f"{d['name'].removesuffix('.jsonl')} {100 * p['mdf_shift']:+.1f}"
                       for d in result["datasets"] for p in d["points"]
                       if f"{p['suite']}/{p['entity']}" == d["target"])
    return (f"{label}: Spearman {m['spearman']:.3f} (targets {m['target_spearman']:.3f}), Pearson {m['pearson']:.3f}, "
            f"AUROC {m['auroc']:.3f}, MAE {m['mae_points']:.2f} pts / {m['mae_logodds']:.3f} log-odds\n  targets: {targets}")


def main(calibration_path: str, held_out_path: str) -> None:
    calibration = json.loads(Path(calibration_path).read_text())
    held_out = json.loads(Path(held_out_path).read_text())
    scores = {(b, g): objective(mapped(calibration, b, g)) for b, g in itertools.product(BETAS, GAMMAS)}
    best = min(scores, key=scores.get)
    best_beta = min(((b, 1.0) for b in BETAS), key=scores.get)
    print("calibration log-odds error by gamma (rows) and beta (columns " + " ".join(f"{b:g}" for b in BETAS) + ")")
    for g in GAMMAS:
        print(f"  gamma {g:<4g} " + " ".join(f"{scores[(b, g)]:.3f}" for b in BETAS))
    print(f"no map {scores[(1.0, 1.0)]:.4f}; best beta alone {best_beta[0]:g}: {scores[best_beta]:.4f}; "
          f"best (beta, gamma) {best}: {scores[best]:.4f}")
    print(describe("held out, no map", held_out))
    print(describe(f"held out, beta {best_beta[0]:g}", mapped(held_out, *best_beta)))
    print(describe(f"held out, beta {best[0]:g} gamma {best[1]:g}", mapped(held_out, *best)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
