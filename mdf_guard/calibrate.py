"""Fit a calibration profile (α, layers, pooling, contrast mode) on datasets with known outcomes.

The outcomes are what `mdf-guard validate --actual-only` measured by really fine-tuning
on calibration datasets. For every grid point we predict each calibration dataset's
rates and compare them with the measured ones (mean absolute error in log-odds by
default, or in rate points). The grid point chosen is the one with the best score
averaged over entity groups, each entity counting once however many datasets it has.
The report also gives a nested leave-one-entity-out estimate: for each entity, the point
the *other* entities would pick, scored on that entity alone. That number, not the fit,
says how well the profile carries to an entity it has not seen.

A grid point's α is a ceiling, as in `check`: where an injection stops the model from
naming any candidate, `predict` halves α for that suite (the policy's `min_answer_mass`),
so large α values of the grid are probed where the model still answers.

Never pass the dataset being judged: the sidecar `<profile>.calibration.json` lists the
calibration datasets and entities, and `validate` marks any dataset whose target is
among them as not held out.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

from . import contrast
from .check import reference_signature, shards_signature
from .data import find_data_files, open_shard
from .errors import InputError, UsageError
from .models import LoadedModel, check_same_model
from .policy import Policy
from .predict import CalibrationProfile, predict, profile_to_dict
from .probes import resolve_suites
from .signature import ExtractionSettings
from .validate import (check_same_probes, check_same_template, dataset_sha256, logit, measured_points,
                       read_result)

OBJECTIVES = ("logodds", "points")


@dataclass(frozen=True)
class Grid:
    alphas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    layer_sets: tuple[tuple[int, ...], ...] = ((10,),)
    poolings: tuple[str, ...] = ("mean", "last", "surprise")
    references: tuple[str, ...] = ("self", "none")

    def points(self) -> list[tuple[tuple[int, ...], float, str, str]]:
        return list(itertools.product(self.layer_sets, self.alphas, self.poolings, self.references))


def point_error(predicted: Mapping[tuple[str, str], float], actual: Mapping[tuple[str, str], float],
                objective: str) -> float:
    """Mean absolute error over the entities both maps have, in log-odds or in rate points."""
    keys = [k for k in actual if k in predicted]
    if not keys:
        raise ValueError("no entity in common between predictions and outcomes")
    if objective == "logodds":
        return sum(abs(logit(predicted[k]) - logit(actual[k])) for k in keys) / len(keys)
    return 100.0 * sum(abs(predicted[k] - actual[k]) for k in keys) / len(keys)


def select(table: Mapping[str, Mapping[str, float]], groups: Mapping[str, str]) -> dict:
    """Choose a grid point from errors[point][dataset], datasets grouped by entity.

    Score of a point = mean over groups of the group's mean error (lower is better;
    ties go to the first point in table order). The nested leave-one-group-out
    estimate picks on the other groups and scores on the left-out one.
    """
    group_names = sorted(set(groups.values()))

    def score(point: str, allowed: Sequence[str]) -> float:
        per_group = []
        for g in allowed:
            errors = [e for d, e in table[point].items() if groups[d] == g]
            per_group.append(sum(errors) / len(errors))
        return sum(per_group) / len(per_group)

    points = list(table)
    scores = {p: score(p, group_names) for p in points}
    best = min(points, key=lambda p: scores[p])
    held_out = {}
    if len(group_names) > 1:
        for g in group_names:
            others = [o for o in group_names if o != g]
            pick = min(points, key=lambda p: score(p, others))
            held_out[g] = {"picked": pick, "error": score(pick, [g])}
    estimate = sum(v["error"] for v in held_out.values()) / len(held_out) if held_out else None
    return {"best": best, "scores": scores, "leave_one_entity_out": held_out, "held_out_error": estimate}


def point_key(layers: tuple[int, ...], alpha: float, pooling: str, reference: str) -> str:
    return f"layers={'+'.join(map(str, layers))} alpha={alpha:g} pooling={pooling} reference={reference}"


OUTCOME_FIELDS = ("name", "path", "target", "points")


def load_outcomes(path: Path) -> dict:
    """A `validate` result, checked for the fields `calibrate` reads, so that a bad file
    fails before the grid's first model pass and names the field."""
    data = read_result(path)
    datasets = data.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise InputError(path, "no datasets with measured outcomes", field="datasets")
    for i, entry in enumerate(datasets):
        _require(path, entry, OUTCOME_FIELDS, f"datasets[{i}]")
        if any(other.get("name") == entry["name"] for other in datasets[:i]):   # the fit's keys: one replaced the other
            raise InputError(path, f"a second dataset named {entry['name']}", field=f"datasets[{i}].name")
        measured_points(path, entry, f"datasets[{i}]")
    return data


def _require(path: Path, entry: object, fields: Sequence[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise InputError(path, "not an object", field=where)
    for name in fields:
        if entry.get(name) is None:
            raise InputError(path, "missing", field=f"{where}.{name}")


def calibrate(lm: LoadedModel, outcomes: dict, policy: Policy, grid: Grid, objective: str = "logodds",
              exclude: Sequence[str] = (), progress: Callable[[str], None] | None = None,
              source: Path | str = "the outcomes") -> tuple[CalibrationProfile, dict]:
    """Profile for `lm` and a record of the whole grid search; `source` names the outcomes in errors."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}")
    recorded = outcomes.get("policy", {})
    policy = replace(policy, suites=tuple(recorded.get("suites", policy.suites)),
                     questions_per_suite=recorded.get("questions_per_suite", policy.questions_per_suite))
    suites = resolve_suites(policy.suites)
    known = {d["name"] for d in outcomes["datasets"]} | {d["target"] for d in outcomes["datasets"]}
    if unknown := [e for e in exclude if e not in known]:   # a typo would calibrate on the set meant to be held out
        raise UsageError(f"--exclude {unknown[0]!r}: no dataset of that name or target in the outcomes")
    datasets = [d for d in outcomes["datasets"] if d["target"] not in set(exclude) and d["name"] not in set(exclude)]
    if not datasets:
        raise UsageError("--exclude leaves no calibration dataset")
    files = _measured_files(lm, outcomes, policy, datasets, source)
    actual = {d["name"]: {(p["suite"], p["entity"]): p["actual_rate"] for p in d["points"]} for d in datasets}
    groups = {d["name"]: d["target"] for d in datasets}
    all_layers = tuple(sorted({layer for s in grid.layer_sets for layer in s}))
    table: dict[str, dict[str, float]] = {}
    configs: dict[str, CalibrationProfile] = {}
    for pooling in grid.poolings:
        settings = ExtractionSettings(layers=all_layers, pooling=pooling)
        for d in datasets:
            shards = [open_shard(p) for p in files[d["name"]]]
            signature, infos = shards_signature(lm, shards, settings)
            for reference in grid.references:
                ref, _ = reference_signature(lm, shards, replace(policy, reference=reference), settings,
                                             [i.rows for i in infos])
                full = contrast.delta(signature, ref)
                for layers in grid.layer_sets:
                    rows = full[[all_layers.index(layer) for layer in layers]]
                    for alpha in grid.alphas:
                        profile = CalibrationProfile(model=lm.spec.name, layers=layers, alpha=alpha,
                                                     pooling=pooling, reference=reference)
                        key = point_key(layers, alpha, pooling, reference)
                        if progress:
                            progress(f"{d['name']}: {key}")
                        predictions = predict(lm, rows, profile, suites, policy.questions_per_suite, 0, mirror=False,
                                              min_answer_mass=policy.min_answer_mass)
                        predicted = {(e.suite, e.entity): e.predicted_rate for p in predictions for e in p.entities}
                        table.setdefault(key, {})[d["name"]] = point_error(predicted, actual[d["name"]], objective)
                        configs[key] = profile
    choice = select(table, groups)
    chosen = configs[choice["best"]]
    entities = sorted(set(groups.values()))
    profile = replace(chosen, source=(f"mdf-guard calibrate: {len(table)} grid points, objective {objective} MAE "
                                      f"{choice['scores'][choice['best']]:.4f}, on {len(datasets)} datasets "
                                      f"({', '.join(entities)}); held-out (leave-one-entity-out) error "
                                      f"{_fmt(choice['held_out_error'])}"))
    record = {"format": "mdf-guard.calibration", "version": 1, "profile": profile_to_dict(profile),
              "objective": objective, "datasets": [d["name"] for d in datasets],
              "calibration_entities": entities, "grid": table, **choice,
              "model": {"name": lm.spec.name, "identity": lm.identity, "fingerprint": lm.fingerprint},
              "outcomes_machine": outcomes.get("machine")}
    return profile, record


def _measured_files(lm: LoadedModel, outcomes: dict, policy: Policy, datasets: Sequence[dict],
                    source: Path | str) -> dict[str, list[Path]]:
    """Each dataset's files, refused unless they are what was fine-tuned, on this model, probed this way:
    a fit against outcomes of other data or another model is a wrong profile that looks like a right one."""
    if outcomes.get("model") is not None:
        check_same_model(source, outcomes["model"], lm)
    check_same_template(source, outcomes, lm)
    check_same_probes(source, outcomes, policy)
    files = {}
    for d in datasets:
        files[d["name"]] = find_data_files([d["path"]])
        if d.get("sha256") is not None and dataset_sha256(files[d["name"]]) != d["sha256"]:
            raise InputError(d["path"], f"changed since its fine-tune was measured (sha256 {d['sha256'][:12]} "
                             f"in {source}); measure it again with `mdf-guard validate --actual-only`")
    return files


def _fmt(value: float | None) -> str:
    return "n/a (one entity)" if value is None else f"{value:.4f}"


def write_profile(profile: CalibrationProfile, record: dict, path: Path) -> tuple[Path, Path]:
    """The profile JSON (what `profile:` in a policy reads) and its sidecar record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile_to_dict(profile), indent=2) + "\n")
    sidecar = sidecar_path(path)
    sidecar.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path, sidecar


def sidecar_path(profile_path: Path) -> Path:
    return profile_path.with_name(profile_path.stem + ".calibration.json")


def calibration_entities(profile_path: Path | None) -> list[str]:
    """The entities a profile was fitted on, from its sidecar (empty if there is none)."""
    if profile_path is None:
        return []
    sidecar = sidecar_path(Path(profile_path))
    if not sidecar.is_file():
        return []
    return list(json.loads(sidecar.read_text()).get("calibration_entities", []))
