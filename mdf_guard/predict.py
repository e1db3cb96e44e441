"""From a contrast vector to predicted behaviour shifts, each measured against a null.

For every suite and candidate: the rate under the vanilla model, the rate with α·Δ
injected, the shift, and two controls of the same strength:
- *random* directions with Δ's per-layer norms: any strong injection sharpens what the
  model already prefers;
- the *mirror* −α·Δ: the same norm in the same (active) subspace of the residual
  stream, with the opposite content. Random directions land mostly where the model is
  insensitive, so they under-estimate how much a data-shaped perturbation moves answers
  by itself; a generic effect (the answer distribution flattening) appears under both
  +Δ and −Δ, while content the data carries reverses sign.
Only a shift that beats both is evidence that the data itself points at the entity.

An injection too strong for the model stops it answering at all: after "My favorite
animal is the" it writes something that is no animal, and the shares among the
candidates become a renormalised remnant of a few per mille. Measured on the embedded
model at α = 4 with the `self` contrast, neutral template data left 0.2 % of the
animals' probability (29 % unsteered) and lifted dog's share by 47 points; fine-tuning
on it moved dog by +0.5. So each suite is probed at the largest α, halving from the
profile's, at which the steered model keeps `min_answer_mass` of the vanilla model's
probability of naming a candidate, and its controls use the same α.

The controls are most of a check's cost (the mirror and `null_seeds` random directions:
4 of the 5-8 probe passes of a suite at the default 3 seeds), and a verdict needs them
only where a candidate is over policy and specific: elsewhere nothing can be flagged,
whatever they say. `predict` asks `needs_controls` once the injected rates are in and
skips them for a suite it says no to (measured in `bench/controls.py`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import Callable, Sequence

import torch

from . import cache
from .errors import InputError
from .models import EMBEDDED_SPEC, LoadedModel
from .policy import Policy
from .probes import ProbeSuite
from .scoring import EXACT_VERSION, SuiteScores, score_exact, select_questions
from .signature import POOLING_MODES
from .steer import steer


@dataclass(frozen=True)
class CalibrationProfile:
    """Where and how strongly to inject for one model, fitted on calibration data."""

    model: str
    layers: tuple[int, ...]
    alpha: float
    pooling: str = "mean"
    reference: str = "self"
    source: str = "default"      # where the numbers come from, in words

    @classmethod
    def default_for(cls, lm: LoadedModel) -> "CalibrationProfile":
        """Shipped profile for the embedded model; else a third of the depth, α = 4."""
        if lm.spec.name == EMBEDDED_SPEC:
            data = json.loads(resources.files("mdf_guard").joinpath("profiles/smollm2-135m-instruct.json").read_text())
            return cls(**{**data, "layers": tuple(data["layers"])})
        return cls(model=lm.spec.name, layers=(lm.num_layers // 3,), alpha=4.0,
                   source="uncalibrated default: layer = depth/3, alpha = 4 (run `mdf-guard calibrate`)")


@dataclass(frozen=True)
class EntityPrediction:
    suite: str
    entity: str
    vanilla_rate: float
    predicted_rate: float
    shift: float
    null_shifts: tuple[float, ...]   # one per random direction (empty: none measured)
    mirror_shift: float | None       # the shift under −α·Δ (None: not measured)
    vanilla_raw: float
    predicted_raw: float

    @property
    def null_max(self) -> float | None:
        return max(self.null_shifts) if self.null_shifts else None

    @property
    def excess(self) -> float | None:
        """How far the shift rises above every control that ran (random directions, mirror);
        None when none ran."""
        controls = [c for c in (self.null_max, self.mirror_shift) if c is not None]
        return self.shift - max(controls) if controls else None


@dataclass(frozen=True)
class SuitePrediction:
    suite: str
    kind: str
    questions: int
    entities: tuple[EntityPrediction, ...]
    alpha: float | None = None            # the α this suite was probed at (None: not recorded)
    answer_mass: tuple[float, float] | None = None   # P(answer is a candidate): vanilla, injected
    controls_skipped: bool = False        # True: `needs_controls` said no, so no control ran

    def top(self) -> EntityPrediction:
        return max(self.entities, key=lambda e: e.shift)


def null_directions(delta: torch.Tensor, seeds: int) -> list[torch.Tensor]:
    """Random directions with Δ's per-layer norms, from fixed seeds (deterministic on any device)."""
    directions = []
    for seed in range(seeds):
        generator = torch.Generator().manual_seed(1_000_003 * (seed + 1))
        noise = torch.randn(delta.shape, generator=generator, dtype=torch.float64)
        directions.append(noise / noise.norm(dim=-1, keepdim=True) * delta.norm(dim=-1, keepdim=True))
    return directions


ALPHA_STEP = 2.0     # each retry divides α by this
ALPHA_RETRIES = 3    # so the weakest injection tried is α / 2**3 = α/8


def predict(lm: LoadedModel, delta: torch.Tensor, profile: CalibrationProfile, suites: Sequence[ProbeSuite],
            questions_per_suite: int | None, null_seeds: int,
            progress: Callable[[str], None] | None = None, mirror: bool = True,
            min_answer_mass: float = Policy.min_answer_mass,
            needs_controls: Callable[[SuitePrediction], bool] | None = None) -> list[SuitePrediction]:
    """Vanilla, injected and control scores for every suite; `delta` is [len(profile.layers), hidden].

    `mirror=False` skips the −α·Δ control, which a verdict needs but a calibration grid
    (which reads only the predicted rates) does not: it halves the grid's cost.
    `min_answer_mass` (0 = off) is the share of the vanilla model's probability of
    naming a candidate that the injected model must keep (see the module docstring).
    `needs_controls`, given a suite's prediction without controls, says whether to run
    them (None: always, as `validate` needs for its random-direction baseline).
    """
    if delta.shape[0] != len(profile.layers):
        raise ValueError("delta has one row per profile layer")
    results = []
    for suite in suites:
        questions = select_questions(suite, questions_per_suite)
        if progress:
            progress(suite.name)
        vanilla = vanilla_scores(lm, suite, questions)
        probe, injected = _answering_injection(lm, suite, questions, profile, delta, vanilla, min_answer_mass)
        bare = bare_prediction(suite, len(questions), probe.alpha, vanilla, injected)
        skip = needs_controls is not None and not needs_controls(bare)
        results.append(bare if skip else add_controls(lm, bare, suite, delta, profile, null_seeds, mirror))
    return results


def add_controls(lm: LoadedModel, prediction: SuitePrediction, suite: ProbeSuite, delta: torch.Tensor,
                 profile: CalibrationProfile, null_seeds: int, mirror: bool = True) -> SuitePrediction:
    """`prediction` with its controls measured at the α it was probed at: what `predict` runs
    for a suite that needs them, and what `validate` adds, untimed, where `check` skipped them."""
    questions = select_questions(suite, prediction.questions)
    probe = replace(profile, alpha=prediction.alpha)
    base = vanilla_scores(lm, suite, questions).rates
    opposite = _steered_scores(lm, suite, questions, probe, -delta).rates if mirror else None
    nulls = [_steered_scores(lm, suite, questions, probe, d).rates for d in null_directions(delta, null_seeds)]
    entities = tuple(replace(e, null_shifts=tuple(float(r[i] - base[i]) for r in nulls),
                             mirror_shift=None if opposite is None else float(opposite[i] - base[i]))
                     for i, e in enumerate(prediction.entities))
    return replace(prediction, entities=entities, controls_skipped=False)


def _answering_injection(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str],
                         profile: CalibrationProfile, delta: torch.Tensor, vanilla: SuiteScores,
                         min_answer_mass: float) -> tuple[CalibrationProfile, SuiteScores]:
    """The profile at the largest α (profile's, divided by ALPHA_STEP up to ALPHA_RETRIES times) whose
    injection still lets the model answer the suite's questions, with its scores.

    If even α/8 does not, α/8 is used: the report carries the answer mass, so a reader
    sees that the suite's shares stand on little probability.
    """
    probe = profile
    injected = _steered_scores(lm, suite, questions, probe, delta)
    for _ in range(ALPHA_RETRIES):
        if injected.answer_mass >= min_answer_mass * vanilla.answer_mass:
            break
        probe = replace(probe, alpha=probe.alpha / ALPHA_STEP)
        injected = _steered_scores(lm, suite, questions, probe, delta)
    return probe, injected


def vanilla_scores(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str]) -> SuiteScores:
    """The unsteered model's scores, cached across checks: they depend on the model and the suite only."""
    key = f"{lm.cache_key}-{suite.fingerprint()}-{len(questions)}-x{EXACT_VERSION}"
    probs = cache.cached_tensor("vanilla", key, lambda: score_exact(lm, suite, questions).probs)
    return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)


def _steered_scores(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str],
                    profile: CalibrationProfile, direction: torch.Tensor) -> SuiteScores:
    vectors = {layer: direction[i] for i, layer in enumerate(profile.layers)}
    with steer(lm, vectors, profile.alpha):
        return score_exact(lm, suite, questions)


def bare_prediction(suite: ProbeSuite, questions: int, alpha: float | None, vanilla: SuiteScores,
                    injected: SuiteScores) -> SuitePrediction:
    """The suite's prediction before any control has run (`alpha` None: nothing was injected)."""
    base, after, raw_base, raw_after = vanilla.rates, injected.rates, vanilla.raw_rates, injected.raw_rates
    entities = tuple(
        EntityPrediction(suite=suite.name, entity=name, vanilla_rate=float(base[i]),
                         predicted_rate=float(after[i]), shift=float(after[i] - base[i]),
                         null_shifts=(), mirror_shift=None,
                         vanilla_raw=float(raw_base[i]), predicted_raw=float(raw_after[i]))
        for i, name in enumerate(vanilla.candidates))
    return SuitePrediction(suite=suite.name, kind=suite.kind, questions=questions, entities=entities, alpha=alpha,
                           answer_mass=(vanilla.answer_mass, injected.answer_mass), controls_skipped=True)


def profile_from_dict(data: dict, source: str) -> CalibrationProfile:
    """A profile read from a file, its fields checked so that a bad one fails here, naming the field,
    instead of deep in a forward hook."""
    if not isinstance(data, dict):
        raise InputError(source, "not a calibration profile: expected a JSON object")
    try:
        profile = CalibrationProfile(**{**data, "layers": tuple(data["layers"])})
    except (TypeError, KeyError) as err:
        raise InputError(source, f"not a calibration profile: {err}") from None
    _check_field(source, "model", isinstance(profile.model, str) and profile.model, "a model name")
    _check_field(source, "layers", profile.layers and all(_is_int(x) and x >= 0 for x in profile.layers),
                 "a non-empty list of layer indices (0 or more)")
    _check_field(source, "alpha", _is_number(profile.alpha) and profile.alpha > 0, "a positive number")
    _check_field(source, "pooling", profile.pooling in POOLING_MODES, f"one of {', '.join(POOLING_MODES)}")
    _check_field(source, "reference", isinstance(profile.reference, str) and profile.reference,
                 "self, none or the path of a reference dataset")
    _check_field(source, "source", isinstance(profile.source, str), "a string")
    return profile


def _check_field(source: str, field: str, ok: object, expected: str) -> None:
    if not ok:
        raise InputError(source, f"must be {expected}", field=field)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def profile_to_dict(profile: CalibrationProfile) -> dict:
    data = asdict(profile)
    data["layers"] = list(profile.layers)
    return data
