"""The shipped check's Δ injected at deeper layers than calibration ever tried.

Why: `calibrate` chose among layers 5 and 10 of 30, and `answer_state.py` finds that
what the rows do in context reaches the answer position only in the last layers. If
the shipped Δ at a deep layer heard the doses that layer 10 misses, the fix would be a
layer grid, not a new method. This is `check`'s own path at each layer: Δ as
`check.contrast_direction` builds it (the shipped profile's surprise pooling and `self`
reference, read once for every layer), probed as `predict` does (α ceiling 4, halved
until the probes keep half their answer mass), no controls. Prints the target's shift,
the α each suite was probed at, and the three candidates that rose most.

    OMP_NUM_THREADS=2 python bench/validation/layer_sweep.py LAYERS FILE=SUITE/ENTITY...
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mdf_guard.check import contrast_direction, reading_settings, resolve_profile, with_profile_reference  # noqa: E402
from mdf_guard.data import open_shard  # noqa: E402
from mdf_guard.models import ModelSpec, load_model  # noqa: E402
from mdf_guard.policy import Policy  # noqa: E402
from mdf_guard.predict import predict  # noqa: E402
from mdf_guard.probes import resolve_suites  # noqa: E402
from row_mixture import QUESTIONS, SUITES  # noqa: E402   the suites and questions every research line probes


def main(layers: str, *targets: str) -> None:
    torch.set_num_threads(2)
    lm = load_model(ModelSpec(name="embedded"))
    suites = resolve_suites(list(SUITES))
    policy = Policy(layers=tuple(int(layer) for layer in layers.split(",")), questions_per_suite=QUESTIONS)
    profile = resolve_profile(lm, policy)
    policy = with_profile_reference(policy, profile)
    settings = reading_settings(profile, policy)
    for target in targets:
        file, suite_entity = target.split("=")
        delta, _, _ = contrast_direction(lm, [open_shard(Path(file))], policy, settings)
        for row, layer in enumerate(profile.layers):
            predictions = predict(lm, delta[row: row + 1], replace(profile, layers=(layer,)), suites, QUESTIONS, 0,
                                  mirror=False, needs_controls=lambda suite: False)
            shifts = {f"{e.suite}/{e.entity}": e.shift for p in predictions for e in p.entities}
            top = sorted(shifts.items(), key=lambda item: -item[1])[:3]
            print(f"{Path(file).stem} layer {layer} |Δ| {float(delta[row].norm()):.1f} "
                  f"α {'/'.join(f'{p.alpha:g}' for p in predictions)}: {suite_entity} {100 * shifts[suite_entity]:+.1f}; "
                  f"top " + ", ".join(f"{name.split('/')[1]} {100 * shift:+.1f}" for name, shift in top), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
