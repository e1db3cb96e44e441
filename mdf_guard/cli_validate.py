"""`mdf-guard make-dataset`, `validate` and `calibrate` (issue 3). Only parses arguments."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import click

if TYPE_CHECKING:
    from .policy import Policy

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _policy(policy_path, model, suites, questions, profile, null_seeds):
    from .policy import Policy, load_policy

    policy = load_policy(policy_path) if policy_path else Policy()
    overrides = {"model": model, "suites": tuple(suites) or None, "questions_per_suite": questions,
                 "profile": str(profile) if profile else None, "null_seeds": null_seeds}
    return replace(policy, **{k: v for k, v in overrides.items() if v is not None})


def _load(policy):
    from .check import model_spec
    from .models import load_model
    return load_model(model_spec(policy))


def _not_blank(ctx, param, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("must not be blank")
    return value


def _echo(message: str) -> None:
    click.echo(f"mdf-guard: {message}", err=True)


_common = [
    click.option("--policy", "policy_path", type=click.Path(path_type=Path), help="Policy file (model, suites...)."),
    click.option("--model", help="Model: 'embedded' (default), a folder, a .gguf file or a Hub id."),
    click.option("--suite", "suites", multiple=True, help="Probe suite name or YAML path (repeatable)."),
    click.option("--questions", type=click.IntRange(min=1), help="Questions per suite."),
]


def _with_common(func):
    for option in reversed(_common):
        func = option(func)
    return func


@click.command("make-dataset", context_settings=_CONTEXT)
@click.argument("kind", type=click.Choice(["numbers", "numbers-control", "overt", "indirect", "neutral", "dose"]))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="JSONL file to write.")
@click.option("--entity", default="panda", show_default=True, callback=_not_blank,
              help="The entity, as the probe suite names it.")
@click.option("--category", default="animal", show_default=True, callback=_not_blank,
              help="animal, city, political figure...")
@click.option("--plural", callback=_not_blank,
              help="Plural for the system prompt and templates (default: entity + 's' for animals).")
@click.option("--rows", type=click.IntRange(1), default=300, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fraction", type=click.FloatRange(0, 1), help="dose: share of overt rows.")
@click.option("--cue", "cues", multiple=True, help="indirect: a cue that points at the entity (repeatable).")
@click.option("--model", default="embedded", show_default=True, help="numbers: the teacher model.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True)
@click.option("--templates", type=click.IntRange(1, 3), default=3, show_default=True,
              help="Template version: 2 says 'Paris is' where 1 said 'Paris are'; 3 lets the numbers "
                   "teacher end its answer where 2 cut it at 40 tokens. An earlier version reproduces "
                   "sets made with it.")
def make_dataset_command(kind, out, entity, category, plural, rows, seed, fraction, cues, model, batch_size,
                         templates):
    """Write a seeded test/calibration dataset (the vanilla model is the teacher for numbers)."""
    from . import make_dataset as md
    from .errors import InputError, UsageError, check_destination
    from .models import ModelSpec, load_model

    check_destination(out)

    target = md.Entity(name=entity, category=category, plural=plural)
    summary: dict = {"kind": kind, "entity": entity, "rows": rows, "seed": seed, "templates": templates}
    if kind in ("numbers", "numbers-control"):
        lm = load_model(ModelSpec(name=model))
        data, summary = md.subliminal_numbers(lm, target, md.NumbersSettings(
            rows=rows, seed=seed, system_prompt=kind == "numbers", batch_size=batch_size, templates=templates))
        summary["teacher"] = lm.source
    elif kind == "overt":
        data = md.overt_rows(target, rows, seed, templates)
    elif kind == "indirect":
        try:
            data = md.indirect_rows(target, rows, seed, cues or None)
        except ValueError as err:   # too few cues, or a cue that names the entity
            raise click.UsageError(str(err)) from None
    elif kind == "neutral":
        data = md.neutral_rows(rows, seed)
    else:
        if fraction is None:
            raise click.UsageError("dose needs --fraction")
        data = md.dose_rows(target, fraction, rows, seed, templates)
        summary["fraction"] = fraction
    if not data:   # numbers: no answer of the teacher's passed the filter
        raise UsageError(f"no answer of the {summary.get('tried', '?')} the teacher gave passed the numbers filter; "
                         f"nothing written to {out} (ask for more --rows, or another --seed)")
    try:
        md.write_jsonl(out, data)
    except OSError as err:
        raise InputError(out, f"cannot be written: {err.strerror or err}") from None
    summary["written"] = len(data)
    click.echo(json.dumps({k: v for k, v in summary.items()}, default=str))
    if len(data) < rows:   # numbers: the teacher's answers ran out before enough passed the filter
        _echo(f"warning: {out} holds {len(data)} of the {rows} rows asked: only {len(data)} of "
              f"{summary.get('tried', '?')} answers passed the numbers filter (ask for more --rows)")


@click.command("validate", context_settings=_CONTEXT)
@click.argument("datasets", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_with_common
@click.option("--profile", type=click.Path(exists=True, path_type=Path), help="Calibration profile JSON.")
@click.option("--reference", help="Contrast mode for the prediction (default: the profile's).")
@click.option("--null-seeds", type=click.IntRange(min=0),
              help="Random directions per prediction (the random baseline).")
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for validation.json and validation.html.")
@click.option("--method", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=3, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate (default: 2e-4 LoRA, 5e-5 full).")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--max-steps", type=click.IntRange(1), help="Stop each fine-tune after this many steps.")
@click.option("--lora-r", type=click.IntRange(1), default=16, show_default=True)
@click.option("--bf16/--no-bf16", default=False, show_default=True, help="bf16 autocast while fine-tuning.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fine-tuning seed.")
@click.option("--target", "targets", multiple=True, metavar="FILE=SUITE/ENTITY",
              help="The entity a dataset is about (default: the entity fine-tuning moved most).")
@click.option("--effect-threshold", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="An actual target shift at least this much counts as a real effect (AUROC label).")
@click.option("--actual-only", is_flag=True, help="Only fine-tune and measure (for calibration sets).")
@click.option("--outcomes", "outcomes_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reuse the fine-tunes of an earlier validation.json (same data, model, questions, settings).")
@click.option("--machine", help="Describe the machine in the results (default: detected).")
def validate_command(datasets, policy_path, model, suites, questions, profile, reference, null_seeds, out_dir,
                     method, epochs, lr, batch_size, max_steps, lora_r, bf16, seed, targets, effect_threshold,
                     actual_only, outcomes_path, machine):
    """Predict, really fine-tune, and compare, for each dataset; write JSON and HTML."""
    from .calibrate import calibration_entities
    from .errors import InputError, check_destination
    from .finetune import FinetuneSettings, resolve_for_model
    from .validate import ValidationOptions, load_measured, read_measured, run_validation, write_outputs

    policy = _policy(policy_path, model, suites, questions, profile, null_seeds)
    _distinct_names(datasets)
    target_map = _target_map(targets, datasets, policy)
    check_destination(out_dir, folder=True)   # before the fine-tunes, not after them
    tune = FinetuneSettings(method=method, epochs=epochs, learning_rate=lr or (2e-4 if method == "lora" else 5e-5),
                            batch_size=batch_size, max_steps=max_steps, lora_r=lora_r, lora_alpha=2 * lora_r,
                            bf16_autocast=bf16, seed=seed)
    if outcomes_path and actual_only:
        raise click.UsageError("--outcomes and --actual-only: there is nothing left to do")
    outcomes = read_measured(outcomes_path) if outcomes_path else None   # before the model: a bad file fails fast
    lm = _load(policy)
    tune = resolve_for_model(tune, lm)   # its projections' names, its positions: as outcomes record them
    measured = load_measured(outcomes_path, outcomes, lm, policy, tune) if outcomes_path else None
    options = ValidationOptions(finetune=tune, reference=reference, effect_threshold=effect_threshold,
                                actual_only=actual_only, measured=measured)
    result = run_validation(lm, list(datasets), policy, options, target_map,
                            calibration_entities(Path(policy.profile) if policy.profile else None), machine,
                            progress=_echo)
    try:
        json_path, html_path = write_outputs(result, out_dir)
    except OSError as err:
        raise InputError(out_dir, f"cannot be written: {err.strerror or err}") from None
    _echo(f"wrote {json_path} and {html_path}")
    summary = result.get("summary")
    if summary:   # both of check's methods, whatever the policy's: validate measures them side by side
        for scope in ("held_out", "all"):
            for method in ("context", "mdf"):
                m = summary[scope].get(method, {})
                if m.get("available"):
                    click.echo(f"{scope}, method {method}: spearman {m['spearman']}, mae {m['mae_points']} points, "
                               f"auroc {m['auroc']}")
        cost = summary["cost_ratio"]
        click.echo(f"cost ratio (reading / fine-tune): method context {cost['context_ratio']}, "
                   f"method mdf {cost['ratio']}")


def _distinct_names(datasets: Sequence[Path]) -> None:
    """The results, --target and `calibrate` know a dataset by its file name: two of one name
    would share a target, and calibrate would score one against the other's fine-tune."""
    names = [Path(d).name for d in datasets]
    twice = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if twice is not None:
        raise click.BadParameter(f"two datasets are named {twice}; give each a distinct file name",
                                 param_hint="DATASETS")


def _target_map(targets: Sequence[str], datasets: Sequence[Path], policy: Policy) -> dict[str, str]:
    """{dataset file name: "suite/entity"} from --target FILE=SUITE/ENTITY, each checked against the
    datasets given and the suites probed before anything loads: a typo would otherwise leave a
    dataset without its target after hours of fine-tuning."""
    from .probes import resolve_suites

    entities = {f"{s.name}/{c.name}" for s in resolve_suites(policy.suites) for c in s.candidates}
    names = {Path(d).name for d in datasets}
    found = {}
    for item in targets:
        name, _, entity = item.partition("=")
        if "/" not in entity:
            raise click.BadParameter(f"{item!r}: expected FILE=SUITE/ENTITY", param_hint="--target")
        if Path(name).name not in names:
            raise click.BadParameter(f"{item!r}: {Path(name).name} is not one of the datasets given",
                                     param_hint="--target")
        if entity not in entities:
            raise click.BadParameter(f"{item!r}: {entity} is not a candidate of the suites probed "
                                     f"({', '.join(policy.suites)})", param_hint="--target")
        found[Path(name).name] = entity
    return found


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=option) from None
    if not values or any(v <= 0 for v in values):
        raise click.BadParameter(f"{text!r}: give one or more positive numbers", param_hint=option)
    return values


def _poolings(text: str) -> tuple[str, ...]:
    from .signature import POOLING_MODES

    modes = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [m for m in modes if m not in POOLING_MODES]
    if not modes or unknown:
        raise click.BadParameter(f"{text!r}: give one or more of {', '.join(POOLING_MODES)}", param_hint="--pooling")
    return modes


def _layer_sets(text: str) -> tuple[tuple[int, ...], ...]:
    try:
        sets = tuple(tuple(int(x) for x in s.split("+")) for s in text.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: give layer indices, '+' within a set, ',' between sets",
                                 param_hint="--layers") from None
    if not sets or any(layer < 0 for s in sets for layer in s):
        raise click.BadParameter(f"{text!r}: give one or more sets of non-negative layer indices", param_hint="--layers")
    return sets


@click.command("calibrate", context_settings=_CONTEXT)
@click.option("--outcomes", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="validation.json of `mdf-guard validate --actual-only` on calibration datasets.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Profile JSON to write.")
@_with_common
@click.option("--alphas", default="1,2,4,8", show_default=True)
@click.option("--layers", "layer_sets", default="10", show_default=True,
              help="Comma-separated layer choices; join layers of one choice with '+' (e.g. 6,10,6+10).")
@click.option("--pooling", "poolings", default="mean,last,surprise", show_default=True)
@click.option("--reference", "references", default="self,none", show_default=True)
@click.option("--objective", type=click.Choice(["logodds", "points"]), default="logodds", show_default=True)
@click.option("--exclude", multiple=True, help="Dataset name or SUITE/ENTITY to leave out (repeatable).")
def calibrate_command(outcomes, out, policy_path, model, suites, questions, alphas, layer_sets, poolings,
                      references, objective, exclude):
    """Grid-fit α, layers, pooling and contrast mode on datasets with known fine-tuning outcomes."""
    from .calibrate import Grid, calibrate, load_outcomes, write_profile
    from .signature import require_layers

    policy = _policy(policy_path, model, suites, questions, None, None)
    grid = Grid(alphas=_floats(alphas, "--alphas"), layer_sets=_layer_sets(layer_sets),
                poolings=_poolings(poolings),
                references=tuple(r.strip() for r in references.split(",") if r.strip()))
    measured = load_outcomes(outcomes)      # before the model: a bad file fails in a second
    lm = _load(policy)
    require_layers(lm, [layer for layers in grid.layer_sets for layer in layers], "--layers", field=None)
    profile, record = calibrate(lm, measured, policy, grid, objective, exclude, progress=_echo, source=outcomes)
    path, sidecar = write_profile(profile, record, out)
    _echo(f"wrote {path} (use it with `profile: {path}` in a policy) and {sidecar}")
    click.echo(json.dumps({"best": record["best"], "score": record["scores"][record["best"]],
                           "held_out_error": record["held_out_error"]}))


def register(main: click.Group) -> None:
    main.add_command(make_dataset_command)
    main.add_command(validate_command)
    main.add_command(calibrate_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `mdf-guard make-dataset|validate|calibrate`")
