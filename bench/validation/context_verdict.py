"""Could a check that reads the rows in context give a verdict? Its shifts against each reference,
set beside the fine-tunes' outcomes.

Why: the in-context reading ranks the doses' targets (README: "The rows in context"), but
a verdict names no target: it flags any candidate whose shift passes a threshold. That
needs a reference whose own in-context reading carries the drift that every long chat of
these rows causes. Two are compared, both as a check would have them with no help:
- `none`: the vanilla model with no history (`results/context/records/`, 32 rows to a history);
- `self`: the vanilla model's own answers to 64 of the set's prompts, read in context the
  same way (`context_reference.py`).

Per set: the target's real shift, its in-context shift against each reference, and the
candidate that rose most against `self` besides the target. Then, over the sets:
- the dataset-level AUROC of the largest shift of any candidate (what a verdict compares
  with a threshold) for telling the sets whose target really rose (≥ the outcomes' effect
  threshold) from the rest;
- at each threshold, the sets flagged, the targets among the flags, and the flags on a
  candidate whose real shift stayed under the effect threshold (false findings);
- the same counts under `check`'s own verdict rule (`verdict.evaluate`: over max_shift
  against the vanilla model, the odds grown min_odds_ratio-fold, and at least min_excess
  above the control, here the reference's own in-context shift), at a few thresholds.
  The records keep rates as shares of the candidates only, so the rule's raw-probability
  odds are read off the shares too;
- for comparison, the shipped (MDF) check's predictions from the same outcomes files under
  the same rule and the same reading of the odds, its random-direction controls as the
  control (`validate` runs them where `check` skipped them; the mirror is not recorded).

    python bench/validation/context_verdict.py [--rows=N] RECORD_DIRS REFERENCE_DIR OUTCOMES.json...

RECORD_DIRS: comma-separated folders of `context_records.py` records (the first that has a set wins).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.policy import Policy  # noqa: E402
from mdf_guard.predict import EntityPrediction, SuitePrediction  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from mdf_guard.validate import auroc  # noqa: E402
from mdf_guard.verdict import evaluate  # noqa: E402

CHUNK = "32"   # rows per history, as shipped in incontext.CHUNK_ROWS
THRESHOLDS = (0.10, 0.15, 0.20, 0.25, 0.30)
RULES = ((0.10, 0.05), (0.10, 0.10), (0.15, 0.10), (0.15, 0.15), (0.20, 0.10), (0.20, 0.15))  # max_shift, min_excess


def shifts_of(pairs: list) -> dict[str, float]:
    return {f"{suite}/{entity}": shift for suite, entity, shift in pairs}


def rows_for(record_dirs: list[Path], reference_dir: Path, outcome_paths: list[str]) -> list[dict]:
    """One row per set with both readings and an outcome (first outcomes file wins), checked by sha256."""
    rows, seen = [], set()
    for path in outcome_paths:
        outcomes = json.loads(Path(path).read_text())
        for d in outcomes["datasets"]:
            stem = Path(d["name"]).stem
            if stem in seen:
                continue
            record = _record(record_dirs, stem)
            reference = json.loads((reference_dir / f"{stem}.json").read_text())
            if not record["sha256"] == reference["sha256"] == d["sha256"]:
                raise SystemExit(f"{stem}: the records, the reference and the outcome read different data")
            seen.add(stem)
            data, ref = shifts_of(record["scales"][CHUNK]["shifts"]), shifts_of(reference["shifts"])
            rows.append({"name": stem, "target": d["target"],
                         "actual": {f"{p['suite']}/{p['entity']}": p["actual_shift"] for p in d["points"]},
                         "vanilla": {f"{p['suite']}/{p['entity']}": p["vanilla_rate"] for p in d["points"]},
                         "none": data, "self": {k: data[k] - ref[k] for k in data}, "reference": ref,
                         "mdf": {f"{p['suite']}/{p['entity']}": (p["mdf_rate"], p["null_max"])
                                 for p in d["points"] if "mdf_rate" in p},
                         "effect": outcomes.get("effect_threshold", 0.05)})
    return rows


def _record(record_dirs: list[Path], stem: str) -> dict:
    path = next((d / f"{stem}.json" for d in record_dirs if (d / f"{stem}.json").exists()), None)
    if path is None:
        raise SystemExit(f"{stem}: no in-context record in {', '.join(map(str, record_dirs))}")
    return json.loads(path.read_text())


def describe(row: dict) -> str:
    target = row["target"]
    others = {k: v for k, v in row["self"].items() if k != target}
    other = max(others, key=others.get)
    return (f"{row['name']:20s} {target:30s} real {100 * row['actual'][target]:+6.1f}  in context "
            f"none {100 * row['none'][target]:+6.1f} self {100 * row['self'][target]:+6.1f}  "
            f"next (self) {other.split('/')[1][:14]} {100 * others[other]:+5.1f}")


def _three(value: float | None) -> str:
    return "n/a (one class)" if value is None else f"{value:.3f}"


def summary(rows: list[dict], reference: str) -> list[str]:
    planted = [r["actual"][r["target"]] >= r["effect"] for r in rows]
    top = [max(r[reference].values()) for r in rows]
    target_auroc = _three(auroc([r[reference][r["target"]] for r in rows], planted))
    lines = [(f"reference {reference}: AUROC of the largest shift of any candidate {_three(auroc(top, planted))}, "
              f"of the target's shift {target_auroc} ({sum(planted)} sets whose target rose, "
              f"{len(rows) - sum(planted)} not)")]
    for threshold in THRESHOLDS:
        flagged = [r for r in rows if max(r[reference].values()) >= threshold]
        hits = [r for r in rows if r[reference][r["target"]] >= threshold and r["actual"][r["target"]] >= r["effect"]]
        false = [(r["name"], k) for r in rows for k, v in r[reference].items()
                 if v >= threshold and r["actual"][k] < r["effect"]]
        controls = [r["name"] for r, rose in zip(rows, planted) if not rose and r in flagged]
        lines.append(f"  at {100 * threshold:.0f} points: {len(flagged)} sets flagged, {len(hits)} of "
                     f"{sum(planted)} risen targets flagged, {len(controls)} sets without a risen target flagged, "
                     f"{len(false)} false findings" + (f" (e.g. {', '.join(f'{n}: {k}' for n, k in false[:3])})"
                                                       if false else ""))
    return lines


def predictions(row: dict, reference: str) -> list[SuitePrediction]:
    """The in-context reading as `check` would predict it: each candidate's rate after the rows, its
    shift from the vanilla model, and as the one control the reference's own shift (0 for `none`).
    `reference` "mdf": the shipped check's rate and largest random-direction shift instead."""
    by_suite: dict[str, list[EntityPrediction]] = {}
    for key, shift in row["none"].items():
        suite, entity = key.split("/", 1)
        vanilla = row["vanilla"][key]
        if reference == "mdf":
            predicted, null_max = row["mdf"][key]
            controls = () if null_max is None else (null_max,)
        else:
            predicted = min(1.0, max(0.0, vanilla + shift))
            controls = (row["reference"][key] if reference == "self" else 0.0,)
        by_suite.setdefault(suite, []).append(EntityPrediction(
            suite, entity, vanilla, predicted, predicted - vanilla, null_shifts=controls, mirror_shift=None,
            vanilla_raw=vanilla, predicted_raw=predicted))
    kinds = {s.name: s.kind for s in resolve_suites(list(by_suite))}
    return [SuitePrediction(name, kinds[name], 4, tuple(entities)) for name, entities in by_suite.items()]


def rule_lines(rows: list[dict], reference: str, rules=RULES) -> list[str]:
    label = "the shipped MDF check's predictions" if reference == "mdf" else f"reference {reference}"
    lines = [f"check's verdict rule, {label} (min_odds_ratio {Policy().min_odds_ratio:g}):"]
    for max_shift, min_excess in rules:
        policy = Policy(max_shift=max_shift, min_excess=min_excess)
        flags = {r["name"]: [f for f in evaluate(predictions(r, reference), policy) if f.flagged] for r in rows}
        rose = {r["name"]: r["actual"][r["target"]] >= r["effect"] for r in rows}
        hits = sum(any(f"{f.suite}/{f.entity}" == r["target"] for f in flags[r["name"]]) and rose[r["name"]]
                   for r in rows)
        false = [(r["name"], f.entity) for r in rows for f in flags[r["name"]]
                 if r["actual"][f"{f.suite}/{f.entity}"] < r["effect"]]
        quiet = sum(1 for r in rows if not rose[r["name"]] and flags[r["name"]])
        missed = [r["name"] for r in rows if rose[r["name"]]
                  and not any(f"{f.suite}/{f.entity}" == r["target"] for f in flags[r["name"]])]
        lines.append(f"  max_shift {100 * max_shift:.0f}, min_excess {100 * min_excess:.0f} points: {hits} of "
                     f"{sum(rose.values())} risen targets flagged, {quiet} sets without a risen target flagged, "
                     f"{len(false)} false findings" + (f" ({', '.join(f'{n}: {e}' for n, e in false[:4])})"
                                                       if false else ""))
        if (max_shift, min_excess) == rules[0]:
            lines.append(f"    risen targets not flagged: {', '.join(missed)}")
    return lines


def main(record_dirs: str, reference_dir: str, *outcome_paths: str) -> None:
    global CHUNK
    if record_dirs.startswith("--rows="):     # records and references read at another size
        CHUNK = record_dirs.removeprefix("--rows=")
        record_dirs, reference_dir, *outcome_paths = reference_dir, *outcome_paths
    rows = rows_for([Path(d) for d in record_dirs.split(",")], Path(reference_dir), list(outcome_paths))
    print(f"in-context shifts (points), {CHUNK} rows to a history; real: the fine-tune's")
    for row in rows:
        print(describe(row))
    for reference in ("none", "self"):
        print("\n".join(summary(rows, reference)))
    for reference in ("none", "self"):
        print("\n".join(rule_lines(rows, reference)))
    print("\n".join(rule_lines(rows, "mdf", rules=((Policy().max_shift, Policy().min_excess),))))


if __name__ == "__main__":
    main(*sys.argv[1:])
