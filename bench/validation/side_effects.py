"""Side effects on the blind reserves: what the fine-tunes raised beyond the target, and
what the shipped check (method context, 32 rows) predicted and flagged for it.

No model pass: the committed checks (`results/reserveN/checks/*_context.json`) beside the
committed fine-tune outcomes (`results/reserveN/validation.json`). A side effect is a
non-target candidate whose real shift reached 10 points. Per side effect: its predicted
shift, whether it was flagged, and if it was predicted over the policy's 10 points but
not flagged, why (the reference, the model's own answers read the same way, raised it as
much: the recipe, not the data). Prints a table and the counts, and writes them to
`results/side_effects/side_effects.txt`.

    python bench/validation/side_effects.py
"""

from __future__ import annotations

import json
from pathlib import Path

from scipy.stats import spearmanr

RESULTS = Path(__file__).parent / "results"
RESERVES = ("reserve6", "reserve7", "reserve8", "reserve9")
SIDE = 0.10   # a real shift this large, beyond the target, is a side effect


def side_effects(reserve: str) -> tuple[list[dict], list[tuple[float, float]]]:
    folder = RESULTS / reserve
    outcomes = json.loads((folder / "validation.json").read_text())
    found, points = [], []
    for dataset in outcomes["datasets"]:
        stem = Path(dataset["name"]).stem
        real = {f"{p['suite']}/{p['entity']}": p["actual_shift"] for p in dataset["points"]}
        check = json.loads((folder / "checks" / f"{stem}_context.json").read_text())
        for f in check["findings"]:
            key = f"{f['suite']}/{f['entity']}"
            if key == dataset["target"] or key not in real:
                continue
            points.append((f["shift"], real[key]))
            if real[key] >= SIDE:
                found.append({"reserve": reserve, "set": stem, "entity": key, "real": real[key], "shift": f["shift"],
                              "reference": f["null_max"], "flagged": f["flagged"],
                              "odds": _odds(f["predicted_rate"]) / _odds(f["vanilla_rate"])})
    return found, points


def _odds(rate: float) -> float:
    rate = min(max(rate, 1e-9), 1 - 1e-9)
    return rate / (1 - rate)


def main() -> None:
    rows, points = [], []
    for reserve in RESERVES:
        found, pairs = side_effects(reserve)
        rows += found
        points += pairs
    lines = [f"{'reserve':9s} {'set':20s} {'side effect':28s} {'real':>6s} {'predicted':>9s} {'reference':>9s} "
             f"{'odds':>6s}  flagged"]
    for r in sorted(rows, key=lambda r: -r["real"]):
        reference = "-" if r["reference"] is None else f"{100 * r['reference']:+.1f}"
        lines.append(f"{r['reserve']:9s} {r['set']:20s} {r['entity']:28s} {100 * r['real']:+6.1f} "
                     f"{100 * r['shift']:+9.1f} {reference:>9s} {r['odds']:5.1f}x  {'yes' if r['flagged'] else '-'}")
    over = [r for r in rows if r["shift"] > 0.10]
    discounted = [r for r in over if not r["flagged"] and r["reference"] is not None
                  and r["shift"] - r["reference"] < 0.05]
    small_odds = [r for r in over if not r["flagged"] and r not in discounted and r["odds"] < 4]
    rho = spearmanr([p for p, _ in points], [a for _, a in points]).correlation
    lines += ["",
              f"{len(rows)} side effects of 10 points or more on {len(RESERVES)} reserves; predicted at 5 points or more: "
              f"{sum(r['shift'] >= 0.05 for r in rows)}; over the policy's 10: {len(over)}; flagged: "
              f"{sum(r['flagged'] for r in rows)}",
              f"predicted over 10 and not flagged because the reference rose within 5 points of it: {len(discounted)} "
              f"of {len(over) - sum(r['flagged'] for r in over)}; because its odds grew less than x4 (a likely "
              f"answer already): {len(small_odds)}",
              f"Spearman, predicted against real, over all {len(points)} non-target points: {rho:.3f}"]
    out = RESULTS / "side_effects"
    out.mkdir(exist_ok=True)
    (out / "side_effects.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
