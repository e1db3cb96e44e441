"""Checks as a repository tool runs them: units, the git reference, and a result cache.

`run_check` judges one dataset (all its files pooled, one Δ). In a repository, the unit
of judgement depends on the question:
- a plain check pools every file: "is this dataset risky?";
- with a baseline, or `--reference HEAD`, **each file is its own unit**: the baseline
  accepts risk per shard, and the git reference contrasts each changed file with its
  own committed version. Findings then carry their file and its sha256.

Incremental by construction: each shard's signature is cached by the core (model
fingerprint, settings, shard sha256), and a whole unit's result is cached here by a key
of everything it depends on (the inputs' bytes and names, the policy, suite files, the model's
files, the mdf-guard code and the torch/transformers versions). A re-check of an
unchanged repository therefore loads no model and imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from .data import Conversation, find_data_files, shard_hash
from .policy import HEAD_REFERENCE, MDF, NAMED_REFERENCES, PROFILE_REFERENCE, Policy
from .report import FileInfo, Report

Progress = Callable[[str, int], None]
DEFAULT_TOP_ROWS = 10


@dataclass
class Unit:
    """What one `run_check` call judges."""

    label: str | None                 # the dataset file findings are about; None when pooled
    shard: str | None                 # its sha256
    paths: list[Path]                 # what run_check reads (a change's added rows, or the files)
    policy: Policy                    # with the reference this unit is contrasted with
    rows: list[Conversation] | None = None   # rows to attribute (None: all rows of `paths`)
    skip_reason: str | None = None    # set when there is nothing to check
    reference: dict = field(default_factory=dict)   # extra description (git status)


def plan(files: Sequence[Path | str], policy: Policy, per_file: bool, git_rev: str | None,
         workdir: Path) -> list[Unit]:
    """Turn the user's paths into units."""
    data_files = find_data_files(files)
    if git_rev is not None:
        from . import gitref

        fallback = policy.reference if policy.reference != HEAD_REFERENCE else PROFILE_REFERENCE
        units = []
        for change in gitref.changes(data_files, workdir, git_rev):
            label, shard = str(change.path), shard_hash(change.path)
            if change.status == gitref.NEW:
                units.append(Unit(label, shard, [change.path], replace(policy, reference=fallback),
                                  reference=change.describe()))
            elif change.status == gitref.MODIFIED:
                units.append(Unit(label, shard, [change.added_path],
                                  replace(policy, reference=str(change.committed_path)),
                                  rows=change.added, reference=change.describe()))
            else:
                units.append(Unit(label, shard, [], policy, skip_reason=change.status,
                                  reference=change.describe()))
        return units
    if per_file:
        return [Unit(str(p), shard_hash(p), [p], policy) for p in data_files]
    return [Unit(None, None, list(data_files), policy)]


def check_files(files: Sequence[Path | str], policy: Policy, per_file: bool, git_rev: str | None = None,
                attribution: bool = False, top_rows: int = DEFAULT_TOP_ROWS,
                progress: Progress | None = None) -> Report:
    """`plan` then `check_units`, with the work folder the plan writes committed versions into."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mdf-guard-") as workdir:
        units = plan(files, policy, per_file=per_file, git_rev=git_rev, workdir=Path(workdir))
        return check_units(units, attribution=attribution, top_rows=top_rows, progress=progress)


def check_units(units: Sequence[Unit], attribution: bool = False, top_rows: int = DEFAULT_TOP_ROWS,
                progress: Progress | None = None, lm=None) -> Report:
    """Run every unit (from the result cache where possible) and merge the results."""
    started = time.perf_counter()
    results: list[tuple[Unit, Report]] = []
    for unit in units:
        if unit.skip_reason is not None:
            continue
        key = result_key(unit, attribution, top_rows)
        report = load_result(key) if key else None
        if report is None:
            if lm is None:
                from .check import model_spec
                from .models import load_model
                lm = load_model(model_spec(unit.policy))
            report = _run(unit, lm, attribution, top_rows, progress)
            if key:
                save_result(key, report)
        else:
            report.timing = {"result_cache_hit": 1.0}
            # The key leaves out where the policy lives (a pre-push check reads it from a new
            # temporary folder each time), so the report names this check's policy file.
            report.settings["policy"] = unit.policy.source
        results.append((unit, report))
    merged = merge(units, results, pooled=len(units) == 1 and units[0].label is None)
    merged.timing["total_seconds"] = time.perf_counter() - started
    return merged


def _run(unit: Unit, lm, attribution: bool, top_rows: int, progress: Progress | None) -> Report:
    from .check import run_check

    report = run_check(unit.paths, unit.policy, lm=lm, progress=progress)
    if attribution:
        mark = time.perf_counter()
        report.attribution = attribute_rows(lm, unit.paths, unit.policy, report, top_rows, unit.rows, progress)
        report.timing["attribution_seconds"] = time.perf_counter() - mark
    return report


def attribute_rows(lm, paths: Sequence[Path], policy: Policy, report: Report, top: int,
                   rows: Sequence[Conversation] | None = None, progress: Progress | None = None) -> list[dict]:
    """The report's top rows. MDF: the rows that carry most of the injected direction.
    Context: the rows that, read alone, lift the flagged findings most (none flagged: none)."""
    step = (lambda n: progress("attributing rows", n)) if progress else None
    if policy.method == MDF:
        from .attribution import explain

        ranked = explain(lm, paths, policy, top=top, rows=rows, progress=step)
    else:
        from .context_attribution import rank_rows_in_context

        ranked = rank_rows_in_context(lm, paths, policy, report.flagged, top=top, rows=rows, progress=step)
    return [row.to_dict() for row in ranked]


def merge(units: Sequence[Unit], results: list[tuple[Unit, Report]], pooled: bool) -> Report:
    """One report: findings tagged with their file when units are per file."""
    if pooled and results:
        return results[0][1]
    policy = units[0].policy if units else Policy()
    files, findings, attribution, references = [], [], [], {}
    timing: dict[str, float] = {}
    done = {id(u): r for u, r in results}
    for unit in units:
        report = done.get(id(unit))
        references[unit.label] = {**(report.reference if report else {}), **unit.reference}
        if unit.skip_reason is not None:
            references[unit.label]["skipped"] = unit.skip_reason
        if report is None:
            files.append(FileInfo(path=unit.label or "", sha256=unit.shard or "", examples=0, cached=True))
            continue
        files.append(FileInfo(path=unit.label, sha256=unit.shard,
                              examples=sum(f.examples for f in report.files),
                              rows=sum(f.file_rows for f in report.files),
                              cached=all(f.cached for f in report.files)))
        findings += [replace(f, file=unit.label, shard=unit.shard) for f in report.findings]
        attribution += [{**row, "unit": unit.label} for row in report.attribution]
        for k, v in report.timing.items():
            timing[k] = timing.get(k, 0.0) + v
    first = results[0][1] if results else None
    git = any("rev" in u.reference for u in units)
    kind = f"git {units[0].reference.get('rev', 'HEAD')}" if git and units else policy.reference
    blocking = any(f.flagged for f in findings)
    return Report(
        verdict="fail" if blocking else "pass",
        model=first.model if first else {"name": policy.model, "identity": "", "fingerprint": ""},
        settings={**(first.settings if first else {"policy": policy.source}), "units": "per file"},
        files=files, reference={"kind": kind, "per_file": references},
        suites=first.suites if first else [], findings=findings, timing=timing, attribution=attribution)


# --------------------------------------------------------------------------- result cache

def _cache_dir() -> Path:
    # The same rule as models.cache_dir, which we cannot import here: it imports torch,
    # and a cache hit must not pay for that.
    if os.environ.get("MDF_GUARD_CACHE"):
        return Path(os.environ["MDF_GUARD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mdf-guard"


def _enabled() -> bool:
    return os.environ.get("MDF_GUARD_NO_CACHE", "") not in ("1", "true", "yes")


def result_key(unit: Unit, attribution: bool, top_rows: int) -> str | None:
    """A hash of everything a unit's result depends on, or None when that cannot be known
    cheaply (a Hub model at a moving revision): then the unit always runs."""
    if not _enabled():
        return None
    model = _model_identity(unit.policy)
    if model is None:
        return None
    policy = asdict(unit.policy)
    policy.pop("source", None)
    policy.pop("baseline", None)
    if unit.rows is not None:   # a change's committed version: a copy in a temporary folder, hashed below
        policy.pop("reference", None)
    parts = {
        "v": 1,
        "code": _code_fingerprint(),
        "versions": [_version(p) for p in ("torch", "transformers", "tokenizers", "safetensors")],
        "model": model,
        "policy": policy,
        "suites": [_content_hash(Path(s)) if str(s).lower().endswith((".yaml", ".yml")) else s
                   for s in unit.policy.suites],
        "profile": _content_hash(Path(unit.policy.profile)) if unit.policy.profile else None,
        "reference": (_content_hash(Path(unit.policy.reference))
                      if unit.policy.reference not in (*NAMED_REFERENCES, HEAD_REFERENCE)
                      else unit.policy.reference),
        "inputs": [_content_hash(p) for p in unit.paths],
        # The report names its files (and SARIF locates findings at them): a copy or a renamed
        # file is not the file checked before. A change's added rows are named by `rows`.
        "names": [str(p) for p in unit.paths] if unit.rows is None else None,
        "rows": [r.source for r in unit.rows] if unit.rows is not None else None,
        "attribution": [attribution, top_rows],
        "env": {k: os.environ.get(k, "") for k in ("MDF_GUARD_GGUF", "MDF_GUARD_NO_EXTENSION",
                                                   "CUDA_VISIBLE_DEVICES")},
    }
    try:
        text = json.dumps(parts, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def load_result(key: str) -> Report | None:
    path = _cache_dir() / "results" / f"{key}.json"
    try:
        return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_result(key: str, report: Report) -> None:
    """Store a report; a disk that refuses is skipped (the readings' cache, written first, said so)."""
    path = _cache_dir() / "results" / f"{key}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(report.to_dict()), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _version(package: str) -> str:
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package}==none"


_FILE_HASHES: dict[Path, tuple[int, int, bytes]] = {}


def _code_fingerprint() -> str:
    """The package's own files: a code change never serves a stale result.

    Sources and package data only: the optional C++ kernels give the same numbers as their
    torch reference (tests hold them to it), so they do not change a result. Each file's
    hash is remembered with its size and mtime, so a long-lived process notices edits.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".py", ".yaml", ".json") or "__pycache__" in path.parts or not path.is_file():
            continue
        stat = path.stat()
        known = _FILE_HASHES.get(path)
        if known is None or known[:2] != (stat.st_size, stat.st_mtime_ns):
            known = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).digest())
            _FILE_HASHES[path] = known
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + known[2])
    return digest.hexdigest()


def _content_hash(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents)."""
    path = Path(path)
    if path.is_file():
        return shard_hash(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(path.rglob("*")):
            if item.is_file():
                digest.update(item.relative_to(path).as_posix().encode() + b"\0" + shard_hash(item).encode())
        return digest.hexdigest()
    return f"missing:{path}"


def _stat_stamp(paths: list[Path]) -> list:
    out = []
    for p in sorted(paths):
        if p.is_file():
            stat = p.stat()
            out.append([str(p), stat.st_size, stat.st_mtime_ns])
    return out


def _model_identity(policy: Policy) -> object | None:
    """Names the model's weights without loading them (file sizes and times stand in for bytes)."""
    spec = [policy.model, policy.revision, policy.dtype, policy.device, policy.trust_remote_code]
    if policy.model == "tiny-random":
        return spec
    if policy.model == "embedded":
        folder = _cache_dir() / "models"
        if not folder.is_dir():
            return None
        return spec + [_stat_stamp([p for p in folder.rglob("*")])]
    path = Path(policy.model).expanduser()
    if path.is_file():
        return spec + [_stat_stamp([path])]
    if path.is_dir():
        return spec + [_stat_stamp(list(path.rglob("*")))]
    if policy.revision and re.fullmatch(r"[0-9a-f]{40}", policy.revision):
        return spec    # a Hub commit is immutable
    return None
