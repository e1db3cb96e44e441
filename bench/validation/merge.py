"""Merge `validate` results run as parallel lanes (one process per core) into one result.

The lanes must agree on everything but their datasets: model, suites, questions, seeds and
effect threshold. The merged result is summarised again with `validate.summarize`, so its
metrics are computed over every dataset, not averaged over lanes, and written as
validation.json and validation.html, as one `validate` run would.

    python bench/validation/merge.py OUT A/validation.json B/validation.json [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.validate import summarize, write_outputs  # noqa: E402

MUST_AGREE = ("format", "version", "model", "policy", "effect_threshold", "calibration_entities")


def merge(results: list[dict]) -> dict:
    first = results[0]
    for other in results[1:]:
        for key in MUST_AGREE:
            if other.get(key) != first.get(key):
                raise SystemExit(f"merge.py: the lanes differ in {key!r}: {first.get(key)!r} vs {other.get(key)!r}")
    datasets = [d for r in results for d in r["datasets"]]
    names = [d["name"] for d in datasets]
    if len(set(names)) != len(names):
        raise SystemExit(f"merge.py: a dataset appears in more than one lane: {sorted(names)}")
    merged = {**first, "datasets": datasets,
              "machine": " | ".join(sorted({r["machine"] for r in results}))}
    merged["summary"] = summarize(datasets, first["effect_threshold"], first["calibration_entities"])
    return merged


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    results = [json.loads(Path(p).read_text()) for p in argv[1:]]
    json_path, html_path = write_outputs(merge(results), Path(argv[0]))
    print(f"wrote {json_path} and {html_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
