"""The baseline: risk a maintainer has accepted, so that only new or grown risk blocks.

In the spirit of detect-secrets' `.secrets.baseline`: a JSON file committed with the
data (`.mdf-guard.baseline.json` beside the policy, or where the policy's `baseline`
key says). Each entry is one flagged finding of one dataset file; its identity is

    (shard sha256, suite, entity, model identity, method)

(the model's identity, not its fingerprint: the fingerprint also names the transformers
version, and a baseline is read by other installs (pre-commit's virtualenv, CI, a teammate
after an upgrade). The method is part of it because `context` and `mdf` measure different
shifts: a shift accepted under one says nothing about the other; entries without one are
MDF's, from before there was a choice)

and it also records the file's path, the accepted shift and a status: `accepted`, or
`rejected` (an auditor said the risk must be fixed: it keeps blocking, and a new
`mdf-guard baseline` does not silently accept it again).

Applying the baseline to a flagged finding of file F (with shard hash H):
- an entry with the same identity: `accepted` if the shift did not grow beyond the
  accepted one (plus a small tolerance for float noise), `grown` if it did, `rejected`
  if an auditor rejected it;
- else an entry for the same path, suite, entity and model but an older shard (F was
  edited): when accepted and not grown, the acceptance carries over and the entry is
  re-keyed to H: the baseline is **rewritten** (the hook exits 3: add it and commit);
- else `new`. New, grown and rejected findings block.
Accepted entries of a checked file whose shard is gone and that nothing re-keyed are
dropped (the accepted content no longer exists), which also rewrites the baseline.

The file is deterministic (sorted, rounded, no timestamps), so it only changes when
what is accepted changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from .errors import InputError
from .policy import MDF
from .report import Finding, Report, report_method

BASELINE_FORMAT = "mdf-guard.baseline"
BASELINE_VERSION = 1
TOLERANCE = 0.005     # shifts within half a point of the accepted one have not grown
ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass(frozen=True)
class Entry:
    path: str              # posix, relative to the baseline's folder
    shard: str             # sha256 of the file when accepted
    suite: str
    entity: str
    model: str             # model identity (in entries written before there was one: its fingerprint)
    shift: float           # the accepted predicted shift (the ceiling: more is "grown")
    predicted_rate: float
    vanilla_rate: float
    status: str = ACCEPTED
    note: str = ""
    method: str = MDF      # the method that measured `shift`

    @property
    def identity(self) -> tuple[str, str, str, str, str]:
        return (self.shard, self.suite, self.entity, self.model, self.method)

    @property
    def id(self) -> str:
        """A short stable handle for `mdf-guard audit --accept/--reject` (an MDF entry's id is
        the one it had before entries named their method)."""
        key = self.identity[:4] if self.method == MDF else self.identity
        return hashlib.sha256("\0".join(key).encode()).hexdigest()[:12]

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("shift", "predicted_rate", "vanilla_rate"):
            data[key] = round(data[key], 6)
        return {"id": self.id, **data}


@dataclass
class Baseline:
    path: Path
    entries: list[Entry] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.path.resolve().parent

    def relpath(self, file: str | Path) -> str:
        """A checked file's path as the baseline stores it."""
        resolved = Path(file).resolve()
        try:
            return resolved.relative_to(self.folder).as_posix()
        except ValueError:
            return Path(os.path.relpath(resolved, self.folder)).as_posix()

    def to_dict(self) -> dict:
        ordered = sorted(self.entries, key=lambda e: (e.path, e.suite, e.entity, e.shard, e.model, e.method))
        return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION,
                "tolerance": TOLERANCE, "entries": [e.to_dict() for e in ordered]}

    def text(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self) -> bool:
        """Write if the content changed; True if it did."""
        text = self.text()
        if self.path.is_file() and self.path.read_text(encoding="utf-8") == text:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        return True


def load_baseline(path: Path) -> Baseline:
    """Read a baseline; a missing file is an empty baseline."""
    path = Path(path)
    if not path.exists():
        return Baseline(path)
    if not path.is_file():
        raise InputError(path, "is a folder, not a baseline file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(path, f"not a valid baseline (JSON: {err})") from None
    except OSError as err:
        raise InputError(path, f"cannot read the baseline: {err.strerror or err}") from None
    except RecursionError:
        raise InputError(path, "not a valid baseline (JSON: nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise InputError(path, f"not an mdf-guard baseline (expected \"format\": \"{BASELINE_FORMAT}\")")
    if data.get("version") != BASELINE_VERSION:
        raise InputError(path, f"baseline version {data.get('version')} is not {BASELINE_VERSION}; "
                               "regenerate it with `mdf-guard baseline`", field="version")
    known = {f for f in Entry.__dataclass_fields__}
    entries = []
    for index, raw in enumerate(data.get("entries") or []):
        where = f"entries[{index}]"
        if not isinstance(raw, dict):
            raise InputError(path, "must be an object", field=where)
        unknown = set(raw) - known - {"id"}
        if unknown:
            raise InputError(path, f"unknown key (known: {', '.join(sorted(known))})",
                             field=f"{where}.{sorted(unknown)[0]}")
        try:
            entry = Entry(**{k: v for k, v in raw.items() if k != "id"})
        except TypeError as err:
            raise InputError(path, f"incomplete entry ({err})", field=where) from None
        if entry.status not in (ACCEPTED, REJECTED):
            raise InputError(path, f"status must be '{ACCEPTED}' or '{REJECTED}'", field=f"{where}.status")
        entries.append(entry)
    return Baseline(path, entries)


def entry_for(baseline: Baseline, finding: Finding, model: str, method: str, status: str = ACCEPTED,
              note: str = "") -> Entry:
    if finding.file is None or finding.shard is None:
        raise ValueError("baseline entries need per-file findings")
    return Entry(path=baseline.relpath(finding.file), shard=finding.shard, suite=finding.suite,
                 entity=finding.entity, model=model, shift=round(finding.shift, 6),
                 predicted_rate=round(finding.predicted_rate, 6), vanilla_rate=round(finding.vanilla_rate, 6),
                 status=status, note=note, method=method)


@dataclass
class Applied:
    """The outcome of applying a baseline to a report."""

    report: Report
    baseline: Baseline           # possibly updated (re-keyed or pruned entries)
    changes: list[str]           # human-readable list of what changed in the baseline

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def apply_baseline(report: Report, baseline: Baseline, renamed: Mapping[str, str] | None = None) -> Applied:
    """Mark each flagged finding new / grown / accepted / rejected; re-key carried-over entries.
    Only entries of the report's model and method take part. `renamed`: a file's old path by its
    new one, both as the baseline stores paths (git's rename detection): an entry of the old
    path carries over to the renamed file as to an edited one, and is re-keyed to its new path."""
    renamed = renamed or {}
    model, method = report.model.get("identity", ""), report_method(report)
    entries, changes = _keyed_by_identity(baseline.entries, report)
    by_identity = {e.identity: e for e in entries}
    rekeyed: set[int] = set()
    findings = []
    for f in report.findings:
        if not f.flagged or f.file is None:
            findings.append(f)
            continue
        path = baseline.relpath(f.file)
        exact = by_identity.get((f.shard, f.suite, f.entity, model, method))
        if exact is not None:
            status = REJECTED if exact.status == REJECTED else (
                "accepted" if f.shift <= exact.shift + TOLERANCE else "grown")
            findings.append(replace(f, baseline=status, accepted_shift=exact.shift))
            if renamed.get(path) == exact.path and exact in entries:   # renamed as it was: later edits must find it
                entries[entries.index(exact)] = replace(exact, path=path)
                changes.append(f"moved {f.suite}/{f.entity} from {exact.path} to {path}, its new name")
            continue
        paths = {path, renamed.get(path, path)}
        older = [i for i, e in enumerate(entries)
                 if e.path in paths and e.suite == f.suite and e.entity == f.entity and e.model == model
                 and e.method == method and e.shard != f.shard and i not in rekeyed]
        if not older:
            findings.append(replace(f, baseline="new"))
            continue
        index = max(older, key=lambda i: entries[i].shift)
        old = entries[index]
        if old.status == REJECTED:
            findings.append(replace(f, baseline=REJECTED, accepted_shift=old.shift))
            if old.path != path:   # the decision follows the file to its new name
                entries[index] = replace(old, path=path)
                changes.append(f"moved rejected {f.suite}/{f.entity} from {old.path} to {path}, its new name")
        elif f.shift <= old.shift + TOLERANCE:
            entries[index] = replace(old, shard=f.shard, path=path)
            rekeyed.add(index)
            moved = f" (renamed from {old.path})" if old.path != path else ""
            changes.append(f"re-keyed {f.suite}/{f.entity} of {path}{moved} to its new content "
                           f"(shift {f.shift:+.1%} <= accepted {old.shift:+.1%})")
            findings.append(replace(f, baseline="accepted", accepted_shift=old.shift))
        else:
            findings.append(replace(f, baseline="grown", accepted_shift=old.shift))
    # Drop accepted entries of checked files whose content is gone and that nothing carried
    # over (rejected ones stay: they record a decision, and keep blocking that file's risk).
    current = {baseline.relpath(info.path): info.sha256 for info in report.files}
    kept = []
    for i, e in enumerate(entries):
        if (i not in rekeyed and e.status == ACCEPTED and e.model == model and e.method == method
                and e.path in current and e.shard != current[e.path]):
            changes.append(f"dropped {e.suite}/{e.entity} of {e.path}: that content of the file is gone")
            continue
        kept.append(e)
    updated = Baseline(baseline.path, kept)
    blocking = any(f.flagged and f.baseline != "accepted" for f in findings)
    new_report = replace(report, findings=findings, verdict="fail" if blocking else "pass",
                         baseline={"path": str(baseline.path), "entries": len(kept),
                                   "counts": _counts(findings), "changes": changes, "rewritten": False})
    return Applied(new_report, updated, changes)


def accept(report: Report, baseline: Baseline, note: str = "",
           renamed: Mapping[str, str] | None = None) -> tuple[Baseline, list[str]]:
    """`mdf-guard baseline`: accept every flagged finding of the checked files.

    Entries of files that were not checked are kept; entries of checked files are
    replaced by the current findings, except that a rejection stays: of the same identity,
    or of the same file (or a name it had, see `former_names`), suite, entity and model after
    an edit, which `check` shows as `rejected` too. Before, an edit then `mdf-guard baseline`
    accepted what an auditor had rejected, without a word. A checked file's former name counts
    as the file: its entries are replaced too (they were left beside the new name's when git saw
    no rename since HEAD). A file that is gone and was not renamed keeps its entries (the
    summary lists it): it was not checked, and an auditor's rejection is not dropped unasked.
    """
    renamed = renamed or {}
    model, method = report.model.get("identity", ""), report_method(report)
    entries, summary = _keyed_by_identity(baseline.entries, report)
    shards = {baseline.relpath(info.path): info.sha256 for info in report.files}
    notes = {e.identity: e.note for e in entries}   # an auditor's words outlive a re-run without --note
    refused = [e for e in entries if e.status == REJECTED]
    by_identity = {e.identity: e for e in refused}
    by_place = {(e.path, e.suite, e.entity, e.model, e.method): e for e in refused}
    former = former_names(baseline, entries, shards, renamed)
    moved_away = {old for olds in former.values() for old in olds}
    kept = [e for e in entries if e.path not in shards and e.path not in moved_away]
    for f in report.flagged:
        if f.file is None:
            continue
        path = baseline.relpath(f.file)
        identity = (f.shard, f.suite, f.entity, model, method)
        places = [(p, f.suite, f.entity, model, method) for p in (path, *sorted(former.get(path, ())))]
        rejection = by_identity.get(identity) or next((by_place[k] for k in places if k in by_place), None)
        status = ACCEPTED if rejection is None else REJECTED
        words = note or notes.get(identity) or (rejection.note if rejection else "")
        kept.append(entry_for(baseline, f, model, method, status=status, note=words))
        summary.append(f"{status} {f.suite}/{f.entity} in {path} (shift {f.shift:+.1%})")
    had_entries = {e.path for e in entries}
    for new, olds in sorted(former.items()):
        summary += [f"moved the entries of {old} to {new}, its new name" for old in sorted(olds & had_entries)]
    gone = Counter(e.path for e in kept if e.path not in shards and not (baseline.folder / e.path).exists())
    for path, count in sorted(gone.items()):
        summary.append(f"kept {count} entr{'y' if count == 1 else 'ies'} of {path}, which no longer exists "
                       "(not checked; not renamed to a checked file)")
    return Baseline(baseline.path, kept), summary


def former_names(baseline: Baseline, entries: Iterable[Entry], shards: Mapping[str, str],
                 renamed: Mapping[str, str]) -> dict[str, set[str]]:
    """The names each checked file (path -> sha256) had, as far as can be told: git's renames
    (`renamed`), and the path of an entry that is gone from the work tree while a checked file
    has that entry's content (a rename git cannot see: a plain `mv` not yet added, a folder
    without git). The same content at a name that still exists is a copy, not a rename."""
    former = {new: {old} for new, old in renamed.items() if new in shards and old not in shards}
    by_content: dict[str, str] = {}
    for path, sha in sorted(shards.items()):
        by_content.setdefault(sha, path)
    for e in entries:
        new = by_content.get(e.shard)
        if new is not None and e.path not in shards and not (baseline.folder / e.path).exists():
            former.setdefault(new, set()).add(e.path)
    return former


def renamed_paths(baseline: Baseline, rev: str = "HEAD") -> dict[str, str]:
    """What git sees as renamed since `rev` (HEAD, or the remote's side of a push) in the baseline's
    work tree, each file's old path by its new one, as the baseline stores paths
    (`gitref.renamed_since`); {} without git."""
    from .gitref import renamed_since   # here: git is asked only where a baseline is used

    return {baseline.relpath(new): baseline.relpath(old) for new, old in renamed_since(baseline.path, rev).items()}


def _keyed_by_identity(entries: Iterable[Entry], report: Report) -> tuple[list[Entry], list[str]]:
    """The entries, those that name the report's model by its fingerprint re-keyed to its identity.

    Entries written before the baseline keyed on the identity hold the fingerprint, which also
    names the transformers version: met under the version that wrote them, they are re-keyed
    (the baseline is rewritten once), so what was accepted or rejected outlives the change.
    Under another version their model cannot be told from another model: their findings are `new`.
    """
    identity, fingerprint = report.model.get("identity"), report.model.get("fingerprint")
    entries = list(entries)
    if not identity or not fingerprint:
        return entries, []
    old = sum(e.model == fingerprint for e in entries)
    if not old:
        return entries, []
    rekeyed = [replace(e, model=identity) if e.model == fingerprint else e for e in entries]
    return rekeyed, [f"re-keyed {old} entr{'y' if old == 1 else 'ies'} from the model's fingerprint to its "
                     "identity, which a transformers upgrade does not change"]


def set_status(baseline: Baseline, ids: Iterable[str], status: str, note: str | None = None) -> list[Entry]:
    """Accept or reject entries by id (or a unique prefix of one); returns the changed entries."""
    changed = []
    for entry_id in ids:
        indexes = [i for i, e in enumerate(baseline.entries) if e.id.startswith(entry_id)]
        if not indexes or len({baseline.entries[i].id for i in indexes}) > 1:
            raise InputError(baseline.path, f"no single entry with id {entry_id!r}")
        # Two files of the same content share an id: one finding, which apply_baseline judges as one.
        for index in indexes:
            entry = baseline.entries[index]
            baseline.entries[index] = replace(entry, status=status, note=entry.note if note is None else note)
            changed.append(baseline.entries[index])
    return changed


def _counts(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in findings:
        if f.flagged and f.baseline:
            counts[f.baseline] = counts.get(f.baseline, 0) + 1
    return counts
