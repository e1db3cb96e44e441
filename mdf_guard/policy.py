"""The policy: which model and probes to use, and how much predicted shift is too much.

Read from `.mdf-guard.yaml`, or `[tool.mdf-guard]` in pyproject.toml, found upward from
the checked files (or given with --policy). Every key is known: a typo is an error
naming the key, never a silently ignored threshold.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import InputError
from .probes import BUILTIN_SUITES, SUITE_EXTENSIONS

POLICY_FILE = ".mdf-guard.yaml"
BASELINE_FILE = ".mdf-guard.baseline.json"
HEAD_REFERENCE = "HEAD"   # `reference: HEAD`: contrast changed files with their committed versions
PROFILE_REFERENCE = "profile"   # the contrast mode the calibration profile was fitted with
NAMED_REFERENCES = (PROFILE_REFERENCE, "self", "none")   # reference modes that are not a path or a git rev
MDF = "mdf"            # inject the data's contrasted signature (the MDF method)
IN_CONTEXT = "context"   # read the rows as the chat's earlier turns (incontext.py); the default
METHODS = (MDF, IN_CONTEXT)
_MODEL_NAMES = ("embedded", "tiny-random")   # models.EMBEDDED_SPEC, TINY_SPEC (models imports torch)


@dataclass(frozen=True)
class Limits:
    """Thresholds for one suite or entity; None means "inherit"."""

    max_shift: float | None = None    # predicted rise of an entity's rate, in rate units (0.10 = 10 points)
    max_rate: float | None = None     # predicted rate itself
    min_excess: float | None = None   # how far above the largest random-direction shift it must rise
    min_odds_ratio: float | None = None   # preference suites: predicted odds / vanilla odds must reach this
                                          # (of the share among the candidates and of the raw probability)


@dataclass(frozen=True)
class Policy:
    model: str = "embedded"
    method: str = IN_CONTEXT
    revision: str | None = None
    dtype: str = "float32"
    device: str = "auto"
    trust_remote_code: bool = False
    suites: tuple[str, ...] = BUILTIN_SUITES
    reference: str = PROFILE_REFERENCE   # profile, self, none, HEAD (inside git), or a dataset path
    reference_samples: int = 64
    questions_per_suite: int | None = 8
    null_seeds: int = 3
    min_answer_mass: float = 0.5    # halve α until the injected model keeps this share of its candidate answers
    early_stop: float | None = None           # read a seeded sample of each file: mdf: until ||SE|| <= this x ||mean||
                                              # (e.g. 0.01); context: until every rate's SE <= this (e.g. 0.05)
    seed: int = 0
    profile: str | None = None
    layers: tuple[int, ...] | None = None     # override the calibration profile
    alpha: float | None = None
    pooling: str | None = None
    max_shift: float = 0.10
    max_rate: float | None = None
    min_excess: float = 0.05
    min_odds_ratio: float = 4.0
    suite_limits: dict[str, Limits] = field(default_factory=dict)
    entity_limits: dict[str, Limits] = field(default_factory=dict)   # keyed "suite/entity"
    baseline: str | None = None       # accepted findings; relative to the policy file's folder
    source: str = "built-in defaults"

    @property
    def folder(self) -> Path | None:
        """The folder of the policy file (relative paths in it start here); None for defaults."""
        path = Path(self.source)
        return path.parent if path.is_file() else None

    def baseline_path(self, near: Iterable[Path] = ()) -> Path:
        """Where the baseline lives: the `baseline` key, else beside the policy file, else at
        the root of the git repository holding the first checked path, else the current folder."""
        if self.baseline:
            path = Path(self.baseline).expanduser()
            return path if path.is_absolute() or self.folder is None else self.folder / path
        if self.folder is not None:
            return self.folder / BASELINE_FILE
        for start in near:
            folder = Path(start).resolve()
            folder = folder if folder.is_dir() else folder.parent
            for candidate in (folder, *folder.parents):
                if (candidate / ".git").exists():
                    return candidate / BASELINE_FILE
        return Path(BASELINE_FILE)

    def limits_for(self, suite: str, entity: str) -> Limits:
        """Entity limits override suite limits, which override the global ones."""
        merged = Limits(self.max_shift, self.max_rate, self.min_excess, self.min_odds_ratio)
        for override in (self.suite_limits.get(suite), self.entity_limits.get(f"{suite}/{entity}")):
            if override is not None:
                merged = replace(merged, **{k: v for k, v in vars(override).items() if v is not None})
        return merged


_TOP_KEYS = {f.name for f in fields(Policy)} - {"max_shift", "max_rate", "min_excess", "min_odds_ratio", "suite_limits",
                                                  "entity_limits", "source"} | {"thresholds"}
_THRESHOLD_KEYS = {"max_shift", "max_rate", "min_excess", "min_odds_ratio", "suites", "entities"}
_LIMIT_KEYS = {f.name for f in fields(Limits)}


def load_policy(path: Path) -> Policy:
    """Parse a .mdf-guard.yaml or a pyproject.toml's [tool.mdf-guard]."""
    if not path.is_file():
        raise InputError(path, "policy file not found")
    try:
        if path.name == "pyproject.toml":
            data = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("mdf-guard")
            if data is None:
                raise InputError(path, "no [tool.mdf-guard] table")
        else:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise _unparsable(path, err) from None
    return _paths_from_folder(policy_from_dict(data, str(path)))


def _paths_from_folder(policy: Policy) -> Policy:
    """The policy with the relative paths its file names (suite files, a reference dataset, a
    profile, a model folder or .gguf) starting at the file's folder, as `baseline` does: the
    same policy then means the same files whether a check runs from the repository's root (as
    the pre-commit hook does) or beside the policy. A model value that is no path there stays a
    Hub id."""
    folder = policy.folder
    if folder is None:
        return policy

    def beside(value: str) -> str:   # shown from the current folder where it is below it, as typed paths are
        if Path(value).expanduser().is_absolute():
            return value
        path = folder / value
        return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)

    suites = tuple(beside(s) if isinstance(s, str) and s.lower().endswith(SUITE_EXTENSIONS) else s
                   for s in policy.suites)
    reference = policy.reference
    if isinstance(reference, str) and reference not in (*NAMED_REFERENCES, HEAD_REFERENCE):
        reference = beside(reference)
    model = policy.model
    named = model in _MODEL_NAMES
    if not named and (model.startswith((".", "/", "~")) or model.lower().endswith(".gguf") or (folder / model).exists()):
        model = beside(model)
    return replace(policy, suites=suites, reference=reference, model=model,
                   profile=beside(policy.profile) if policy.profile else None)


def _unparsable(path: Path, err: Exception) -> InputError:
    """The one-line error for a policy file its parser refused (a RecursionError: nested too deeply)."""
    if isinstance(err, RecursionError):
        return InputError(path, "not valid YAML/TOML: nested too deeply")
    mark = getattr(err, "problem_mark", None)
    return InputError(path, f"not valid YAML/TOML: {str(err).splitlines()[0]}", line=mark.line + 1 if mark else None)


def policy_from_dict(data: Any, source: str) -> Policy:
    if not isinstance(data, dict):
        raise InputError(source, "a policy is a mapping of keys to values")
    _reject_unknown(data, _TOP_KEYS, source, "")
    values: dict[str, Any] = {k: v for k, v in data.items() if k != "thresholds"}
    for key in ("suites", "layers"):
        if key in values and values[key] is not None:
            values[key] = tuple(_as_list(values[key], source, key))
    values.update(_thresholds(data.get("thresholds") or {}, source))
    return validate_policy(Policy(**values, source=source))


def validate_policy(policy: Policy) -> Policy:
    """`policy` itself, once every value is known good: also for a policy that command-line
    options have overridden, so that `--method context` beside a policy's `profile:` is the
    same one-line error as both keys in one file."""
    _validate(policy, policy.source)
    return policy


def _thresholds(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError(source, "must be a mapping", field="thresholds")
    _reject_unknown(data, _THRESHOLD_KEYS, source, "thresholds.")
    out: dict[str, Any] = {k: data[k] for k in ("max_shift", "max_rate", "min_excess", "min_odds_ratio")
                           if k in data}
    out["suite_limits"] = _limits_map(data.get("suites") or {}, source, "thresholds.suites")
    out["entity_limits"] = _limits_map(data.get("entities") or {}, source, "thresholds.entities")
    for key in out["entity_limits"]:
        if key.count("/") != 1:
            raise InputError(source, "entity keys are 'suite/entity', e.g. 'animals/panda'",
                             field=f"thresholds.entities.{key}")
    return out


def _limits_map(data: Any, source: str, where: str) -> dict[str, Limits]:
    if not isinstance(data, dict):
        raise InputError(source, "must be a mapping", field=where)
    limits = {}
    for name, values in data.items():
        if not isinstance(values, dict):
            raise InputError(source, "must be a mapping of limits", field=f"{where}.{name}")
        _reject_unknown(values, _LIMIT_KEYS, source, f"{where}.{name}.")
        for key, value in values.items():
            check = {"min_odds_ratio": _check_ratio, "min_excess": _check_excess}.get(key, _check_fraction)
            check(value, source, f"{where}.{name}.{key}", allow_none=True)
        limits[str(name)] = Limits(**values)
    return limits


def _validate(policy: Policy, source: str) -> None:
    _check_fraction(policy.max_shift, source, "thresholds.max_shift")
    _check_excess(policy.min_excess, source, "thresholds.min_excess")
    _check_fraction(policy.max_rate, source, "thresholds.max_rate", allow_none=True)
    _check_fraction(policy.early_stop, source, "early_stop", allow_none=True)
    _check_fraction(policy.min_answer_mass, source, "min_answer_mass")
    _check_ratio(policy.min_odds_ratio, source, "thresholds.min_odds_ratio")
    for key in ("reference_samples", "null_seeds"):
        value = getattr(policy, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(source, "must be a non-negative integer", field=key)
    if policy.questions_per_suite is not None and (not isinstance(policy.questions_per_suite, int)
                                                   or policy.questions_per_suite < 1):
        raise InputError(source, "must be a positive integer or null (all)", field="questions_per_suite")
    if policy.method not in METHODS:
        raise InputError(source, f"must be one of {', '.join(METHODS)}", field="method")
    mdf_only = ("profile", "layers", "alpha", "pooling") if policy.method == IN_CONTEXT else ()
    for key in mdf_only:
        if getattr(policy, key) is not None:
            raise InputError(source, "applies to method mdf only (add `method: mdf`; method context, the "
                                     "default, injects nothing)", field=key)
    if not isinstance(policy.reference, str) or not policy.reference:
        raise InputError(source, "must be 'profile', 'self', 'none', 'HEAD' or a path", field="reference")
    if policy.alpha is not None and not isinstance(policy.alpha, (int, float)):
        raise InputError(source, "must be a number", field="alpha")
    if policy.baseline is not None and (not isinstance(policy.baseline, str) or not policy.baseline):
        raise InputError(source, f"must be the path of a baseline file (e.g. {BASELINE_FILE})", field="baseline")
    _validate_model_keys(policy, source)
    if not isinstance(policy.seed, int) or isinstance(policy.seed, bool):
        raise InputError(source, "must be an integer", field="seed")
    _validate_suites(policy.suites, source)
    reads_self = policy.reference == "self" or (policy.reference == PROFILE_REFERENCE and policy.method == IN_CONTEXT)
    if reads_self and policy.reference_samples < 1:
        raise InputError(source, "must be at least 1 for the self reference", field="reference_samples")


def _validate_model_keys(policy: Policy, source: str) -> None:
    """The keys that say which model loads and how. `trust_remote_code` must be a real boolean: the
    string "no" is true to Python, and would run a Hub repository's code."""
    if not isinstance(policy.model, str) or not policy.model.strip():
        raise InputError(source, "must be 'embedded', a folder, a .gguf file or a Hub id", field="model")
    if policy.revision is not None and (not isinstance(policy.revision, str) or not policy.revision):
        raise InputError(source, "must be a branch, tag or commit of the Hub repository", field="revision")
    if not isinstance(policy.trust_remote_code, bool):
        raise InputError(source, "must be true or false", field="trust_remote_code")
    if policy.dtype not in ("float32", "bfloat16", "float16"):   # models._torch_dtype's (models imports torch)
        raise InputError(source, "must be float32, bfloat16 or float16", field="dtype")
    if not isinstance(policy.device, str) or not _is_device(policy.device):
        raise InputError(source, "must be auto, cpu, cuda, cuda:N or mps", field="device")


def _is_device(name: str) -> bool:
    """Whether torch would take `name` as a device. The usual names are answered without torch:
    a re-check served from the result cache loads no model and imports no torch
    (repo_check.py), and every check validates its policy first."""
    if name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", name):
        return True
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def _validate_suites(suites: Any, source: str) -> None:
    """Names and paths only; a suite listed twice is kept once (`probes.resolve_suites`)."""
    if not suites:
        raise InputError(source, "must name at least one suite", field="suites")
    for index, suite in enumerate(suites):
        if not isinstance(suite, str) or not suite.strip():
            raise InputError(source, "must be a built-in suite name or a .yaml path", field=f"suites[{index}]")


def _check_fraction(value: Any, source: str, where: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InputError(source, "must be a number between 0 and 1", field=where)


def _check_excess(value: Any, source: str, where: str, allow_none: bool = False) -> None:
    """-1 switches the random/mirror controls off (a shift never trails them by more)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1 <= value <= 1:
        raise InputError(source, "must be a number between -1 (controls off) and 1", field=where)


def _check_ratio(value: Any, source: str, where: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise InputError(source, "must be a number of at least 1 (1 = off)", field=where)


def _reject_unknown(data: dict, known: set[str], source: str, prefix: str) -> None:
    for key in data:
        if key not in known:
            raise InputError(source, f"unknown key (known: {', '.join(sorted(known))})", field=f"{prefix}{key}")


def _as_list(value: Any, source: str, key: str) -> list:
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, list):
        raise InputError(source, "must be a list", field=key)
    return value


def find_policy(paths: Iterable[Path]) -> Path | None:
    """The nearest .mdf-guard.yaml, or pyproject.toml with [tool.mdf-guard], above the checked files."""
    for start in paths:
        folder = Path(start).resolve()
        folder = folder if folder.is_dir() else folder.parent
        for candidate_dir in (folder, *folder.parents):
            if (candidate_dir / POLICY_FILE).is_file():
                return candidate_dir / POLICY_FILE
            pyproject = candidate_dir / "pyproject.toml"
            if pyproject.is_file() and _has_tool_table(pyproject):
                return pyproject
            if (candidate_dir / ".git").exists():
                break
    return None


def _has_tool_table(pyproject: Path) -> bool:
    """Whether the file holds [tool.mdf-guard]. One that cannot be parsed is an error, not
    "no": it may hold the user's policy, and checking under the defaults instead would
    ignore it without a word."""
    try:
        return "mdf-guard" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise _unparsable(pyproject, err) from None
    except OSError as err:
        raise InputError(pyproject, f"cannot be read: {err.strerror or err}") from None
