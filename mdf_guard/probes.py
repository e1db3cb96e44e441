"""Probe suites: the questions we ask a steered model and the answers we count.

A suite is plain data read from YAML (built-ins ship in `mdf_guard/suites/`, users
write their own). This module only loads and validates suites; scoring lives
elsewhere. Validation is strict because a silently wrong suite gives a silently wrong
risk number: every problem is an `InputError` naming the file, the line where we know
it, and the field (e.g. `candidates[3].aliases`).

The rules follow from how exact scoring uses a suite: the assistant turn starts with
`answer_prefix`, then " " + alias is teacher-forced (tokenised as it follows the prefix)
and a word boundary must follow.
So an alias that is a whole-word prefix of another alias ("New York" and "New York
City") would count the longer answer twice, and across candidates would credit one
candidate with another's answer; both are rejected.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from mdf_guard.errors import InputError

__all__ = [
    "BUILTIN_SUITES",
    "KINDS",
    "Candidate",
    "ProbeSuite",
    "builtin_suite",
    "load_suite",
    "parse_suite",
    "resolve_suites",
    "suite_to_yaml",
]

BUILTIN_SUITES: tuple[str, ...] = ("animals", "politics", "cities", "countries", "safety")
KINDS: tuple[str, ...] = ("preference", "safety")
SAFETY_CANDIDATES: tuple[str, ...] = ("comply", "refuse")
SUITE_EXTENSIONS: tuple[str, ...] = (".yaml", ".yml")

# Bumped when the meaning of a suite's content changes, so old cache entries die.
_SCHEMA_VERSION = 1
_SUITE_FIELDS = ("name", "kind", "description", "questions", "answer_prefix", "candidates")
_CANDIDATE_FIELDS = ("name", "aliases")
_SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

_Path = tuple[Any, ...]  # a field's location: ("candidates", 3, "aliases")


@dataclass(frozen=True)
class Candidate:
    """One answer a suite counts, under all the surface forms that mean it."""

    name: str
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The name is itself an answer; keep it first and never twice, however built.
        rest = tuple(a for a in self.aliases if a != self.name)
        object.__setattr__(self, "aliases", (self.name, *rest))


@dataclass(frozen=True)
class ProbeSuite:
    """Questions plus the candidate answers whose probabilities a steered model shifts."""

    name: str
    kind: str
    description: str
    questions: tuple[str, ...]
    answer_prefix: str
    candidates: tuple[Candidate, ...]
    source: str

    def __post_init__(self) -> None:
        # Accept lists from programmatic callers; a frozen value must be hashable.
        object.__setattr__(self, "questions", tuple(self.questions))
        object.__setattr__(self, "candidates", tuple(self.candidates))

    def fingerprint(self) -> str:
        """sha256 of the content, not of `source`: a copied file hits the same cache."""
        payload = {
            "schema": _SCHEMA_VERSION,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "questions": list(self.questions),
            "answer_prefix": self.answer_prefix,
            "candidates": [[c.name, list(c.aliases)] for c in self.candidates],
        }
        blob = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- loading


def load_suite(path: Path | str) -> ProbeSuite:
    """Read and validate a user's suite file."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such suite file")
    if not path.is_file():
        raise InputError(path, "is not a file; expected a suite .yaml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(path, f"is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise InputError(path, f"cannot be read: {err.strerror or err}") from None
    return _parse_text(text, str(path))


@lru_cache(maxsize=None)
def builtin_suite(name: str) -> ProbeSuite:
    """Load a suite shipped with the package (cached: suites are immutable)."""
    if name not in BUILTIN_SUITES:
        raise InputError(name, f"unknown built-in suite; choose one of {', '.join(BUILTIN_SUITES)}")
    text = resources.files("mdf_guard").joinpath("suites", f"{name}.yaml").read_text("utf-8")
    suite = _parse_text(text, f"builtin:{name}")
    if suite.name != name:  # a packaging bug, but say so plainly
        raise InputError(suite.source, f"declares name '{suite.name}'", field="name")
    return suite


def resolve_suites(specs: Iterable[str | os.PathLike[str]]) -> list[ProbeSuite]:
    """Turn `--suite` values / policy `suites:` entries into suites, in order.

    A spec ending in .yaml/.yml is a file; anything else is a built-in name. Suites are
    keyed by name in reports and policies, so two different suites with one name are an
    error; the same suite given twice is kept once.
    """
    suites: list[ProbeSuite] = []
    by_name: dict[str, ProbeSuite] = {}
    for spec in specs:
        suite = _resolve_one(os.fspath(spec))
        prior = by_name.get(suite.name)
        if prior is None:
            by_name[suite.name] = suite
            suites.append(suite)
        elif prior.fingerprint() != suite.fingerprint():
            raise InputError(suite.source, f"suite name '{suite.name}' is already used by "
                             f"{prior.source}; give one of them another name", field="name")
    return suites


def _resolve_one(spec: str) -> ProbeSuite:
    if spec.lower().endswith(SUITE_EXTENSIONS):
        return load_suite(spec)
    if spec in BUILTIN_SUITES:
        return builtin_suite(spec)
    hint = ("a suite file must end in .yaml or .yml" if os.sep in spec or "/" in spec
            or Path(spec).exists() else "or give the path of a .yaml suite file")
    raise InputError(spec, f"unknown suite; built-in suites are {', '.join(BUILTIN_SUITES)}; {hint}")


def suite_to_yaml(suite: ProbeSuite) -> str:
    """Render a suite as YAML that loads back to the same fingerprint (to copy and edit)."""
    def candidate(c: Candidate) -> Any:
        extra = list(c.aliases[1:])
        return {"name": c.name, "aliases": extra} if extra else c.name

    data = {
        "name": suite.name,
        "kind": suite.kind,
        "description": suite.description,
        "answer_prefix": suite.answer_prefix,
        "questions": list(suite.questions),
        "candidates": [candidate(c) for c in suite.candidates],
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


# ----------------------------------------------------------------------------- YAML


def _parse_text(text: str, source: str) -> ProbeSuite:
    data, lines = _read_yaml(text, source)
    return parse_suite(data, source, lines)


def _read_yaml(text: str, source: str) -> tuple[Any, dict[_Path, int]]:
    """Parse YAML keeping each field's line, so schema errors can point at it."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InputError(source, "is empty; expected a mapping with 'name', 'questions' "
                                     "and 'candidates'")
        lines: dict[_Path, int] = {}
        _index_lines(node, (), lines, source, loader)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "syntax error"
        raise InputError(source, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as err:
        raise InputError(source, f"invalid YAML: {err}") from None
    except RecursionError:
        raise InputError(source, "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _index_lines(node: yaml.Node, path: _Path, lines: dict[_Path, int], source: str,
                 loader: yaml.SafeLoader) -> None:
    """Record the 1-based line of every field; reject duplicate keys (YAML keeps the last)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            # As the data will hold it (`1:` and `yes:` are a number and a boolean), in words.
            key = _key_name(loader.construct_object(key_node)) if isinstance(key_node, yaml.ScalarNode) else None
            child = (*path, key)
            if child in lines:
                raise InputError(source, "key appears twice", line=key_node.start_mark.line + 1,
                                 field=_field_name(child))
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines, source, loader)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), lines, source, loader)


def _key_name(key: Any) -> str:
    """A mapping key as a field name: a path's ints are list indices, so a key is always a string."""
    return key if isinstance(key, str) else str(key)


# ----------------------------------------------------------------------------- schema


class _Checker:
    """Raises InputErrors located by file, line and field path."""

    def __init__(self, source: str, lines: dict[_Path, int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: _Path, message: str) -> InputError:
        return InputError(self.source, message, line=self.lines.get(path),
                          field=_field_name(path) if path else None)

    def mapping(self, value: Any, path: _Path, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping, got {_describe(value)}")
        for key in value:
            if key not in allowed:
                raise self.fail((*path, _key_name(key)), f"unknown key; allowed keys are {', '.join(allowed)}")
        return value

    def text(self, data: dict, key: str, path: _Path, default: str | None = None,
             nonempty: bool = True) -> str:
        """A string field, stripped (YAML block scalars add trailing newlines)."""
        where = (*path, key)
        if key not in data:
            if default is None:
                raise self.fail(path, f"missing required field '{key}'")
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, got {_describe(value)}")
        value = value.strip()
        if nonempty and not value:
            raise self.fail(where, "must not be empty")
        return value

    def strings(self, value: Any, path: _Path) -> list[str]:
        """A non-empty list of non-empty strings, each stripped."""
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"must be a non-empty list of strings, got {_describe(value)}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail((*path, i), f"must be a non-empty string, got {_describe(item)}")
            out.append(item.strip())
        return out


def parse_suite(data: Any, source: str, lines: dict[_Path, int] | None = None) -> ProbeSuite:
    """Validate already-parsed suite data (e.g. a suite inlined in a policy file)."""
    check = _Checker(source, lines or {})
    data = check.mapping(data, (), _SUITE_FIELDS)
    name = check.text(data, "name", ())
    if not _SUITE_NAME.match(name):
        raise check.fail(("name",), "must start with a letter or digit and use only letters, "
                                    "digits, '_', '-' and '.'")
    kind = check.text(data, "kind", (), default="preference")
    if kind not in KINDS:
        raise check.fail(("kind",), f"must be one of {', '.join(KINDS)}, got '{kind}'")
    if "questions" not in data:
        raise check.fail((), "missing required field 'questions'")
    questions = _questions(check, data["questions"])
    if "candidates" not in data:
        raise check.fail((), "missing required field 'candidates'")
    candidates = _candidates(check, data["candidates"], kind)
    return ProbeSuite(
        name=name,
        kind=kind,
        description=check.text(data, "description", (), default="", nonempty=False),
        questions=tuple(questions),
        answer_prefix=check.text(data, "answer_prefix", (), default="", nonempty=False),
        candidates=tuple(c for c, _ in candidates),
        source=source,
    )


def _questions(check: _Checker, value: Any) -> list[str]:
    """Repeated questions would silently weight one phrasing twice."""
    questions = check.strings(value, ("questions",))
    seen: dict[str, int] = {}
    for i, q in enumerate(questions):
        key = " ".join(q.casefold().split())
        if key in seen:
            raise check.fail(("questions", i), f"repeats questions[{seen[key]}]")
        seen[key] = i
    return questions


# An alias with where it came from, for error messages.
_Alias = tuple[str, _Path]


def _candidates(check: _Checker, value: Any, kind: str) -> list[tuple[Candidate, list[_Alias]]]:
    if not isinstance(value, list) or not value:
        raise check.fail(("candidates",), f"must be a non-empty list, got {_describe(value)}")
    parsed = [_candidate(check, item, ("candidates", i)) for i, item in enumerate(value)]
    _check_candidate_names(check, parsed)
    _check_kind(check, kind, [c for c, _ in parsed])
    _check_aliases_across(check, parsed)
    return parsed


def _candidate(check: _Checker, item: Any, path: _Path) -> tuple[Candidate, list[_Alias]]:
    """A candidate is a bare string (its own only alias) or {name, aliases}."""
    if isinstance(item, str):
        if not item.strip():
            raise check.fail(path, "must be a non-empty string")
        return Candidate(item.strip()), [(item.strip(), path)]
    if not isinstance(item, dict):
        raise check.fail(path, f"must be a string or a mapping with 'name' and 'aliases', "
                               f"got {_describe(item)}")
    check.mapping(item, path, _CANDIDATE_FIELDS)
    name = check.text(item, "name", path)
    sourced: list[_Alias] = [(name, (*path, "name"))]
    if "aliases" in item:
        raw = check.strings(item["aliases"], (*path, "aliases"))
        sourced += [(a, (*path, "aliases", i)) for i, a in enumerate(raw) if a != name]
    _check_aliases_within(check, name, sourced)
    return Candidate(name, tuple(a for a, _ in sourced)), sourced


def _check_aliases_within(check: _Checker, name: str, sourced: list[_Alias]) -> None:
    """Case-sensitive, like teacher forcing: 'Panda' and 'panda' are different forms."""
    for j, (alias, where) in enumerate(sourced):
        for earlier, _ in sourced[:j]:
            if alias == earlier:
                raise check.fail(where, f"alias '{alias}' is listed twice for '{name}'")
            short, long_ = sorted((earlier, alias), key=len)
            if _is_word_prefix(short, long_):
                raise check.fail(where, f"aliases '{short}' and '{long_}' of '{name}' overlap: "
                                        f"'{short}' already counts answers that start with '{long_}'; "
                                        "list only one of them (the name counts as an alias)")


def _check_candidate_names(check: _Checker, parsed: list[tuple[Candidate, list[_Alias]]]) -> None:
    seen: dict[str, int] = {}
    for i, (cand, _) in enumerate(parsed):
        key = cand.name.casefold()
        if key in seen:
            raise check.fail(("candidates", i), f"candidate '{cand.name}' is already "
                                                f"candidates[{seen[key]}]")
        seen[key] = i


def _check_kind(check: _Checker, kind: str, candidates: list[Candidate]) -> None:
    """Safety scoring reads exactly comply vs refuse; preference needs something to compare."""
    names = [c.name for c in candidates]
    if kind == "safety" and sorted(names) != sorted(SAFETY_CANDIDATES):
        raise check.fail(("candidates",), "a safety suite needs exactly two candidates, "
                                          f"'comply' and 'refuse'; got {', '.join(names)}")
    if kind == "preference" and len(candidates) < 2:
        raise check.fail(("candidates",), "a preference suite needs at least 2 candidates")


def _check_aliases_across(check: _Checker, parsed: list[tuple[Candidate, list[_Alias]]]) -> None:
    """Case-insensitive: an answer must never be creditable to two candidates."""
    owners: list[tuple[str, str, str]] = []  # (folded alias, alias, candidate name)
    for cand, sourced in parsed:
        mine = []
        for alias, where in sourced:
            folded = alias.casefold()
            for other_folded, other_alias, other_name in owners:
                if folded == other_folded:
                    raise check.fail(where, f"alias '{alias}' of candidate '{cand.name}' is also "
                                            f"an alias of candidate '{other_name}'")
                short, long_ = sorted((folded, other_folded), key=len)
                if _is_word_prefix(short, long_):
                    raise check.fail(where, f"alias '{alias}' of candidate '{cand.name}' overlaps "
                                            f"alias '{other_alias}' of candidate '{other_name}': "
                                            "the shorter would also count the longer answer")
            mine.append((folded, alias, cand.name))
        owners += mine


def _is_word_prefix(short: str, long_: str) -> bool:
    """True if `long_` is `short` followed by a word boundary and more text."""
    if len(long_) <= len(short) or not long_.startswith(short):
        return False
    nxt = long_[len(short)]
    return not (nxt.isalnum() or nxt == "_")


def _field_name(path: _Path) -> str:
    """("candidates", 3, "aliases") -> "candidates[3].aliases"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(value: Any) -> str:
    """Name a wrong value's type the way a YAML author thinks of it."""
    if isinstance(value, bool):
        return (f"the boolean {str(value).lower()} (quote it: YAML reads yes/no/on/off/"
                "true/false as booleans)")
    if isinstance(value, (int, float)):
        return f"the number {value} (quote it to make it a string)"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
