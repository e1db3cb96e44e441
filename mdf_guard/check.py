"""The whole prediction path for a set of dataset files: data → signature → contrast →
steer → probes → predict → verdict → Report (or, under `method: context`, data read in
context → probes → verdict). Entry points call `run_check` and only map its Report to
output and exit codes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import torch

from . import cache, contrast, incontext
from .data import Conversation, Shard, find_data_files, open_shard, read_conversations
from .errors import InputError
from .models import LoadedModel, ModelSpec, load_model
from .policy import HEAD_REFERENCE, IN_CONTEXT, NAMED_REFERENCES, PROFILE_REFERENCE, Policy
from .predict import CalibrationProfile, SuitePrediction, predict, profile_from_dict, profile_to_dict
from .probes import BUILTIN_SUITES, ProbeSuite, builtin_suite, resolve_suites
from .report import FileInfo, Report
from .scoring import select_questions
from .signature import ExtractionSettings, Signature, extract_signature, require_layers, row_token_limit
from .verdict import evaluate, needs_controls

SELF_ANSWER_TOKENS = 48
Progress = Callable[[str, int], None]   # (stage description, items done since last call)


def model_spec(policy: Policy) -> ModelSpec:
    return ModelSpec(name=policy.model, revision=policy.revision, dtype=policy.dtype, device=policy.device,
                     trust_remote_code=policy.trust_remote_code, policy_source=policy.source)


def resolve_profile(lm: LoadedModel, policy: Policy) -> CalibrationProfile:
    """The model's calibration profile, with any layers/alpha/pooling the policy pins."""
    if policy.profile:
        path = Path(policy.profile)
        try:
            profile = profile_from_dict(json.loads(path.read_text()), str(path))
        except (OSError, ValueError) as err:
            raise InputError(path, f"cannot read calibration profile: {err}") from None
        except RecursionError:
            raise InputError(path, "cannot read calibration profile: JSON nested too deeply") from None
        require_layers(lm, profile.layers, str(path))
    else:
        profile = CalibrationProfile.default_for(lm)
    overrides = {k: getattr(policy, k) for k in ("layers", "alpha", "pooling") if getattr(policy, k) is not None}
    if "layers" in overrides:
        require_layers(lm, overrides["layers"], policy.source)
    if overrides:
        profile = replace(profile, **overrides, source=profile.source + f"; overridden by policy: {overrides}")
    return profile


def with_profile_reference(policy: Policy, profile: CalibrationProfile) -> Policy:
    """`reference: profile` (the default) is the contrast the profile's α was fitted with:
    α means nothing under another contrast, so only an explicit policy value overrides it."""
    return replace(policy, reference=profile.reference) if policy.reference == PROFILE_REFERENCE else policy


def with_context_reference(policy: Policy) -> Policy:
    """`reference: profile` (the default) under `method: context` is `self`: no profile is
    used, and the model's own answers are the reference its thresholds were measured with
    (bench/validation/README.md, "A check that reads the rows in context")."""
    return replace(policy, reference=contrast.SELF) if policy.reference == PROFILE_REFERENCE else policy


def reading_settings(profile: CalibrationProfile, policy: Policy) -> ExtractionSettings:
    """How `check` reads the data: the profile's layers and pooling, the policy's early stop
    (visiting rows in the policy's seeded order). Benchmarks that build Δ "as `check` does"
    call this too, so they cannot drift from it."""
    return ExtractionSettings(layers=profile.layers, pooling=profile.pooling, stop_at_se=policy.early_stop,
                              seed=policy.seed)


def questions_asked(suites: Sequence[ProbeSuite], policy: Policy) -> dict[str, tuple[str, ...]]:
    """Each suite's questions a check asks under `policy`. One place, because attribution
    finds the check's cached readings by them and `validate` probes fine-tunes with them."""
    return {s.name: select_questions(s, policy.questions_per_suite) for s in suites}


def check_limit_names(policy: Policy, suites: Sequence[ProbeSuite]) -> None:
    """Refuse a threshold for a suite or entity no suite has: a typo ("animals/pandas") would
    leave the stricter limit unapplied without a word. A suite the policy does not probe this
    time (narrowed by --suite, say) is fine if it is built in; its entities are checked too."""
    known = {name: builtin_suite(name) for name in BUILTIN_SUITES}
    known.update({suite.name: suite for suite in suites})
    for name in policy.suite_limits:
        if name not in known:
            probed = ", ".join(s.name for s in suites)
            raise InputError(policy.source, f"no suite of that name (probed: {probed}; built in: "
                                            f"{', '.join(BUILTIN_SUITES)})", field=f"thresholds.suites.{name}")
    for key in policy.entity_limits:
        suite, entity = key.split("/", 1)
        if suite not in known:
            raise InputError(policy.source, f"no suite '{suite}'", field=f"thresholds.entities.{key}")
        if entity not in {c.name for c in known[suite].candidates}:
            raise InputError(policy.source, f"suite {suite} has no candidate '{entity}'",
                             field=f"thresholds.entities.{key}")


def run_check(paths: Sequence[Path | str], policy: Policy, lm: LoadedModel | None = None,
              progress: Progress | None = None) -> Report:
    started = time.perf_counter()
    timing: dict[str, float] = {}
    shards = [open_shard(p) for p in find_data_files(paths)]
    suites = resolve_suites(policy.suites)
    check_limit_names(policy, suites)
    shard_rows = [validate_shard(shard) for shard in shards]
    if policy.reference not in (*NAMED_REFERENCES, HEAD_REFERENCE):
        find_data_files([policy.reference])   # a missing reference is an error even where no suite reads it
    lm = lm or load_model(model_spec(policy))
    timing["load_seconds"] = time.perf_counter() - started

    if policy.method == IN_CONTEXT:
        policy = with_context_reference(policy)
        predictions, infos, reference_info, settings = _predict_in_context(lm, shards, shard_rows, policy, suites,
                                                                           timing, progress)
    else:
        profile = resolve_profile(lm, policy)
        policy = with_profile_reference(policy, profile)
        predictions, infos, reference_info, settings = _predict_mdf(lm, shards, policy, profile, suites, timing,
                                                                    progress)
    findings = evaluate(predictions, policy)
    timing["total_seconds"] = time.perf_counter() - started

    return Report(
        verdict="fail" if any(f.flagged for f in findings) else "pass",
        model={"name": lm.spec.name, "source": lm.source, "identity": lm.identity, "fingerprint": lm.fingerprint,
               "layers": lm.num_layers, "hidden_size": lm.hidden_size},
        settings={"policy": policy.source, "method": policy.method, **settings,
                  "questions_per_suite": policy.questions_per_suite, "scoring": "exact"},
        files=infos, reference=reference_info,
        suites=[{"name": p.suite, "kind": p.kind, "questions": p.questions, "alpha": p.alpha,
                 "answer_mass": list(p.answer_mass), "controls_skipped": p.controls_skipped} for p in predictions],
        findings=findings, timing=timing)


def _predict_mdf(lm: LoadedModel, shards: Sequence[Shard], policy: Policy, profile: CalibrationProfile,
                 suites: Sequence[ProbeSuite], timing: dict[str, float], progress: Progress | None
                 ) -> tuple[list[SuitePrediction], list[FileInfo], dict, dict]:
    """MDF: inject the shards' contrasted signature and probe, with random-direction controls."""
    settings = reading_settings(profile, policy)
    mark = time.perf_counter()
    direction, infos, reference_info = contrast_direction(lm, shards, policy, settings, progress)
    timing["signature_seconds"] = time.perf_counter() - mark

    mark = time.perf_counter()
    predictions = predict(lm, direction, profile, suites, policy.questions_per_suite, policy.null_seeds,
                          min_answer_mass=policy.min_answer_mass,
                          needs_controls=lambda suite: needs_controls(suite, policy),
                          progress=(lambda name: progress(f"probing {name}", 0)) if progress else None)
    timing["probe_seconds"] = time.perf_counter() - mark
    return predictions, infos, reference_info, {
        "profile": profile_to_dict(profile), "null_seeds": policy.null_seeds,
        "delta_norms": [round(float(n), 6) for n in direction.norm(dim=-1)]}


def _predict_in_context(lm: LoadedModel, shards: Sequence[Shard], shard_rows: Sequence[int], policy: Policy,
                        suites: Sequence[ProbeSuite], timing: dict[str, float], progress: Progress | None
                        ) -> tuple[list[SuitePrediction], list[FileInfo], dict, dict]:
    """`method: context`: the shards' rows read as the chat's earlier turns, against the
    reference read the same way (incontext.py). Every row is read, unless `early_stop` reads
    a sample; no signature is made. Each file's reading is cached by its sha256, as its
    signature is under MDF."""
    questions = questions_asked(suites, policy)
    mark = time.perf_counter()
    reading, infos = _read_files(lm, shards, shard_rows, suites, questions, policy, progress)
    if reading is None:
        raise InputError(shards[0].path if shards else ".", "no rows to check")
    timing["context_seconds"] = time.perf_counter() - mark

    # As under MDF, the control runs only for a suite with a candidate it could keep from being flagged.
    bare = incontext.predict_in_context(lm, reading, suites, questions)
    needed = [suite for suite, prediction in zip(suites, bare) if needs_controls(prediction, policy)]
    mark = time.perf_counter()
    reference, reference_info = _reference_in_context(lm, shards, shard_rows, policy, needed, questions, progress)
    timing["reference_seconds"] = time.perf_counter() - mark
    predictions = [incontext.add_reference_control(prediction, suite, reference) if suite in needed else prediction
                   for suite, prediction in zip(suites, bare)]
    sample = {} if policy.early_stop is None else {"early_stop": policy.early_stop, "seed": policy.seed}
    return predictions, infos, reference_info, {"rows_per_history": incontext.CHUNK_ROWS, **sample}


def _read_files(lm: LoadedModel, shards: Sequence[Shard], shard_rows: Sequence[int], suites: Sequence[ProbeSuite],
                questions: dict[str, tuple[str, ...]], policy: Policy, progress: Progress | None
                ) -> tuple[incontext.ContextReading | None, list[FileInfo]]:
    """Each file's rows read in context (from the cache where it has been read before), summed;
    None when no file has a row. `shard_rows`: each file's row count, from `validate_shard`.
    Under `early_stop` each file is a sample that weighs as many rows as the file has."""
    total, infos = None, []
    for shard, rows in zip(shards, shard_rows, strict=True):
        hit, read = False, 0
        if rows:
            try:
                reading, hit = incontext.cached_reading(
                    lm, shard.sha256, _rows_of(shard.path, progress, f"reading {shard.path.name} in context"),
                    suites, questions, policy.early_stop, policy.seed)
            except incontext.ContextTooLong as err:
                raise incontext.ContextTooLong(f"{err} (`--method mdf` reads a row cut to its last "
                                               f"{row_token_limit(lm)} tokens)") from None
            total = reading if total is None else total + reading
            read = reading.read
        infos.append(FileInfo(path=str(shard.path), sha256=shard.sha256, examples=read, cached=hit, rows=rows))
    return total, infos


def _rows_of(path: Path, progress: Progress | None, stage: str) -> Callable[[], list[Conversation]]:
    """The file's rows, read only when called: a cached reading needs none of them."""
    def rows() -> list[Conversation]:
        if progress:
            progress(stage, 0)
        return list(read_conversations(path))
    return rows


def _reference_in_context(lm: LoadedModel, shards: Sequence[Shard], shard_rows: Sequence[int], policy: Policy,
                          suites: Sequence[ProbeSuite], questions: dict[str, tuple[str, ...]],
                          progress: Progress | None) -> tuple[incontext.ContextReading | None, dict]:
    """The reference's rows read in context: a file's rows, or (`self`) the model's own answers
    to a seeded sample of the shards' prompts, each shard sampled in proportion to its rows so
    that the reference mixes the shards as the data does; None for `none`, or where no suite
    needs it (`suites` are those that do). Each reference file, and each shard's `self`
    sample, is read as its own histories and cached."""
    kind = contrast.reference_kind(policy.reference)
    if kind == contrast.NONE:
        return None, {"kind": "none", "examples": 0}
    if not suites:
        return None, {"kind": kind, "examples": 0, "skipped": "no candidate over policy"}
    if kind == "file":
        paths = find_data_files([policy.reference])
        reference_shards = [open_shard(p) for p in paths]
        reading, _ = _read_files(lm, reference_shards, [validate_shard(s) for s in reference_shards], suites,
                                 questions, policy, progress)
        if reading is None:
            raise InputError(policy.reference, "the reference has no rows to read in context")
        return reading, {"kind": "file", "path": policy.reference, "examples": reading.read,
                         "files": [str(p) for p in paths]}
    if policy.reference_samples < 1:
        raise InputError(policy.source, "must be at least 1 for the self reference", field="reference_samples")
    total, reading = sum(shard_rows), None
    for shard, count in zip(shards, shard_rows, strict=True):
        if count:
            size = math.ceil(policy.reference_samples * count / total)
            part, _ = incontext.cached_reading(lm, _self_reference_key(shard, size, policy),
                                               _self_answers_of(lm, shard, size, policy, progress), suites, questions)
            reading = part if reading is None else reading + part
    return reading, {"kind": "self", "examples": reading.rows, "seed": policy.seed,
                     "answer_tokens": SELF_ANSWER_TOKENS}


def _self_answers_of(lm: LoadedModel, shard: Shard, size: int, policy: Policy,
                     progress: Progress | None) -> Callable[[], list[Conversation]]:
    """The model's own answers to a seeded sample of `size` of the shard's prompts, when called."""
    def rows() -> list[Conversation]:
        if progress:
            progress(f"answering {shard.path.name}'s prompts", 0)
        sample = contrast.sample_conversations(read_conversations(shard.path), size, policy.seed)
        return contrast.self_answers(lm, sample, max_new_tokens=SELF_ANSWER_TOKENS)
    return rows


def validate_shard(shard: Shard) -> int:
    """Read every record once before any model work, so bad data fails in seconds, not minutes."""
    return sum(1 for _ in read_conversations(shard.path))


def contrast_direction(lm: LoadedModel, shards: Sequence[Shard], policy: Policy, settings: ExtractionSettings,
                       progress: Progress | None = None) -> tuple[torch.Tensor, list[FileInfo], dict]:
    """Δ, the direction `check` injects: the shards' signature minus the policy's reference
    (one row per layer of `settings`), with what was read for each."""
    signature, infos = shards_signature(lm, shards, settings, progress)
    reference, reference_info = reference_signature(lm, shards, policy, settings, [i.rows for i in infos],
                                                    progress)
    return contrast.delta(signature, reference), infos, reference_info


def shards_signature(lm: LoadedModel, shards: Sequence[Shard], settings: ExtractionSettings,
                     progress: Progress | None = None) -> tuple[Signature, list[FileInfo]]:
    """Sum of per-shard signatures, each cached by (model, settings, shard sha256). A shard
    read only in part (early stop) weighs as many rows as it has, not as many as were read."""
    total, infos = None, []
    for shard in shards:
        signature, hit = cache.cached_signature(
            lm.cache_key, settings.key(), shard.sha256,
            lambda: extract_signature(lm, read_conversations(shard.path), settings,
                                      progress=_stage(progress, f"reading {shard.path.name}"),
                                      meta={"shards": [shard.sha256]}))
        infos.append(FileInfo(path=str(shard.path), sha256=shard.sha256, examples=signature.count, cached=hit,
                              rows=signature.rows))
        weighted = signature.standing_for(signature.rows)
        total = weighted if total is None else total + weighted
    return total, infos


def reference_signature(lm: LoadedModel, shards: Sequence[Shard], policy: Policy, settings: ExtractionSettings,
                        shard_rows: Sequence[int], progress: Progress | None = None) -> tuple[Signature | None, dict]:
    """The reference the dataset is contrasted with; `shard_rows` are the rows each shard
    weighs in the dataset signature, so a `self` reference mixes shards as the data does."""
    if policy.reference == PROFILE_REFERENCE:
        raise ValueError("resolve `reference: profile` with with_profile_reference() first")
    kind = contrast.reference_kind(policy.reference)
    if kind == contrast.NONE:
        return None, {"kind": "none", "examples": 0}
    if kind == "file":
        ref_shards = [open_shard(p) for p in find_data_files([policy.reference])]
        signature, infos = shards_signature(lm, ref_shards, settings, progress)
        return signature, {"kind": "file", "path": policy.reference, "examples": signature.count,
                           "files": [f.path for f in infos]}
    used = [(shard, rows) for shard, rows in zip(shards, shard_rows, strict=True) if rows > 0]
    per_shard = math.ceil(policy.reference_samples / max(1, len(used)))
    parts = [(_shard_self_reference(lm, shard, per_shard, policy, settings, progress), rows) for shard, rows in used]
    return _mix(parts), {"kind": "self", "examples": sum(part.count for part, _ in parts), "seed": policy.seed,
                         "answer_tokens": SELF_ANSWER_TOKENS, "per_shard": per_shard}


def _shard_self_reference(lm: LoadedModel, shard: Shard, size: int, policy: Policy, settings: ExtractionSettings,
                          progress: Progress | None) -> Signature:
    """The model's own answers to a seeded sample of `size` of one shard's prompts, cached per
    shard. The `reference_samples` budget is split evenly over the shards, so the total cost
    stays that of one sample, and editing one shard re-answers only that shard's share
    (adding or removing a shard changes every share and re-answers them all)."""

    def compute() -> Signature:
        sample = contrast.sample_conversations(read_conversations(shard.path), size, policy.seed)
        answers = contrast.self_answers(lm, sample, max_new_tokens=SELF_ANSWER_TOKENS)
        return extract_signature(lm, answers, settings,
                                 progress=_stage(progress, f"reading self-answers to {shard.path.name}"))

    signature, _ = cache.cached_signature(lm.cache_key, settings.key(), _self_reference_key(shard, size, policy),
                                          compute)
    return signature


def _mix(parts: Sequence[tuple[Signature, int]]) -> Signature:
    """Weight each shard's reference mean by the rows it has in the data (one shard: unchanged)."""
    if not parts:
        raise ValueError("no shard contributed a row: nothing to contrast with")
    if len(parts) == 1:
        return parts[0][0]
    mixed = None
    for part, rows in parts:
        weighted = part.standing_for(rows)
        mixed = weighted if mixed is None else mixed + weighted
    return mixed


def _self_reference_key(shard: Shard, size: int, policy: Policy) -> str:
    digest = hashlib.sha256(json.dumps({"shards": [shard.sha256], "n": size,
                                        "seed": policy.seed, "tokens": SELF_ANSWER_TOKENS,
                                        "batch": contrast.ANSWER_BATCH}).encode())
    return "self-" + digest.hexdigest()


def _stage(progress: Progress | None, name: str) -> Callable[[int], None] | None:
    return (lambda n: progress(name, n)) if progress else None
