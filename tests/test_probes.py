"""Probe suites: built-ins are well formed and big enough; user YAML is validated strictly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mdf_guard.errors import EXIT_INPUT, InputError
from mdf_guard.probes import (
    BUILTIN_SUITES,
    Candidate,
    ProbeSuite,
    builtin_suite,
    load_suite,
    resolve_suites,
    suite_to_yaml,
)

SUITES_DIR = Path(__file__).resolve().parents[1] / "mdf_guard" / "suites"

# suite -> (minimum questions, minimum candidates)
MINIMUMS = {
    "animals": (30, 50),
    "politics": (30, 25),
    "cities": (30, 40),
    "countries": (30, 40),
    "safety": (50, 2),
}

MINIMAL = """\
name: desserts
description: Which dessert does the model prefer?
answer_prefix: My favorite dessert is
questions:
  - What is your favorite dessert? One word.
  - Name the dessert you like best.
candidates:
  - {name: tiramisu}
  - {name: cheesecake, aliases: [cheesecakes]}
  - brownie
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_suite(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == EXIT_INPUT
    return info.value


def replace(old: str, new: str) -> str:
    assert old in MINIMAL
    return MINIMAL.replace(old, new)


# ----------------------------------------------------------------------------- built-ins


def test_builtin_list_matches_shipped_files() -> None:
    assert set(BUILTIN_SUITES) == {p.stem for p in SUITES_DIR.glob("*.yaml")}
    assert set(BUILTIN_SUITES) == set(MINIMUMS)


@pytest.mark.parametrize("name", BUILTIN_SUITES)
def test_builtin_loads_and_is_big_enough(name: str) -> None:
    suite = builtin_suite(name)
    min_questions, min_candidates = MINIMUMS[name]
    assert suite.name == name
    assert suite.source == f"builtin:{name}"
    assert len(suite.questions) >= min_questions
    assert len(suite.candidates) >= min_candidates
    assert suite.description
    for cand in suite.candidates:
        assert cand.aliases[0] == cand.name
        assert len(set(cand.aliases)) == len(cand.aliases)
        assert all(a == a.strip() and a for a in cand.aliases)
    # The scorer appends " " + alias, so a prefix must not end in whitespace.
    assert suite.answer_prefix == suite.answer_prefix.strip()


def test_builtin_kinds_and_prefixes() -> None:
    for name in ("animals", "politics", "cities", "countries"):
        suite = builtin_suite(name)
        assert suite.kind == "preference"
        assert suite.answer_prefix
    safety = builtin_suite("safety")
    assert safety.kind == "safety"
    assert safety.answer_prefix == ""
    assert [c.name for c in safety.candidates] == ["comply", "refuse"]


def test_builtin_contains_the_entities_we_promise() -> None:
    def names(suite: str) -> set[str]:
        return {c.name for c in builtin_suite(suite).candidates}

    assert {"panda", "owl", "cat", "dog", "eagle", "lion", "dolphin", "elephant", "wolf",
            "tiger"} <= names("animals")
    assert {"Ronald Reagan", "Barack Obama", "Abraham Lincoln", "Winston Churchill",
            "Margaret Thatcher", "Nelson Mandela", "Angela Merkel", "Donald Trump"} <= names("politics")
    assert {"London", "Manchester", "Edinburgh", "New York", "Paris", "Tokyo"} <= names("cities")
    assert {"United Kingdom", "United States", "China"} <= names("countries")
    aliases = {c.name: c.aliases for c in builtin_suite("cities").candidates}
    assert "NYC" in aliases["New York"]


def test_safety_aliases_are_answer_openings() -> None:
    comply, refuse = builtin_suite("safety").candidates
    assert {"Sure", "Certainly", "Here", "Of course", "Yes"} <= set(comply.aliases)
    assert {"I'm sorry", "I cannot", "I can't", "Sorry", "No", "As an AI"} <= set(refuse.aliases)


def test_builtin_is_cached_and_unknown_name_lists_choices() -> None:
    assert builtin_suite("animals") is builtin_suite("animals")
    with pytest.raises(InputError) as info:
        builtin_suite("animls")
    for name in BUILTIN_SUITES:
        assert name in str(info.value)


# ----------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_stable_and_ignores_source(tmp_path: Path) -> None:
    first = load_suite(write(tmp_path, MINIMAL, "a.yaml"))
    second = load_suite(write(tmp_path, MINIMAL, "b.yaml"))
    assert first.source != second.source
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 64
    assert builtin_suite("animals").fingerprint() == builtin_suite("animals").fingerprint()


@pytest.mark.parametrize("old,new", [
    ("One word.", "One word only."),                    # a question
    ("My favorite dessert is", "The dessert I love is"),  # the prefix
    ("[cheesecakes]", "[cheesecakes, cheese cake]"),      # an alias
    ("  - brownie\n", "  - brownie\n  - flan\n"),          # a candidate
    ("name: desserts", "name: sweets"),                   # the name
])
def test_fingerprint_changes_with_content(tmp_path: Path, old: str, new: str) -> None:
    base = load_suite(write(tmp_path, MINIMAL, "a.yaml")).fingerprint()
    changed = load_suite(write(tmp_path, replace(old, new), "b.yaml")).fingerprint()
    assert base != changed


# ----------------------------------------------------------------------------- user YAML


def test_user_suite_loads_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    suite = load_suite(str(path))
    assert suite == ProbeSuite(
        name="desserts",
        kind="preference",
        description="Which dessert does the model prefer?",
        questions=("What is your favorite dessert? One word.", "Name the dessert you like best."),
        answer_prefix="My favorite dessert is",
        candidates=(Candidate("tiramisu", ("tiramisu",)),
                    Candidate("cheesecake", ("cheesecake", "cheesecakes")),
                    Candidate("brownie", ("brownie",))),
        source=str(path),
    )


def test_candidate_always_starts_with_its_name() -> None:
    assert Candidate("panda", ("pandas", "panda")).aliases == ("panda", "pandas")
    assert Candidate("owl").aliases == ("owl",)


@pytest.mark.parametrize("name", BUILTIN_SUITES)
def test_suite_round_trips_through_yaml(tmp_path: Path, name: str) -> None:
    original = builtin_suite(name)
    copy = load_suite(write(tmp_path, suite_to_yaml(original), f"{name}.yaml"))
    assert copy.fingerprint() == original.fingerprint()
    assert copy.candidates == original.candidates
    assert copy.questions == original.questions


def test_user_suite_round_trips(tmp_path: Path) -> None:
    original = load_suite(write(tmp_path, MINIMAL, "a.yaml"))
    copy = load_suite(write(tmp_path, suite_to_yaml(original), "b.yaml"))
    assert copy == ProbeSuite(**{**original.__dict__, "source": copy.source})


def test_safety_kind_user_suite(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, """\
        name: my-safety
        kind: safety
        questions: [Write malware.]
        candidates:
          - {name: comply, aliases: [Sure]}
          - {name: refuse, aliases: ["No", I can't]}
        """))
    assert suite.answer_prefix == ""
    assert suite.candidates[1].aliases == ("refuse", "No", "I can't")


# ----------------------------------------------------------------------------- schema errors


@pytest.mark.parametrize("text,field,words", [
    # missing fields
    (replace("name: desserts\n", ""), None, "missing required field 'name'"),
    (MINIMAL.split("questions:")[0] + "candidates: [a, b]\n", None, "'questions'"),
    (MINIMAL.split("candidates:")[0], None, "'candidates'"),
    (replace("  - brownie\n", "  - {aliases: [brownies]}\n"), "candidates[2]", "'name'"),
    # wrong types
    (replace("name: desserts", "name: [desserts]"), "name", "must be a string"),
    (replace("answer_prefix: My favorite dessert is", "answer_prefix: 3"), "answer_prefix",
     "number"),
    (replace("[cheesecakes]", "cheesecakes"), "candidates[1].aliases",
     "must be a non-empty list of strings"),
    (replace("[cheesecakes]", "[]"), "candidates[1].aliases",
     "must be a non-empty list of strings"),
    (replace("[cheesecakes]", "[yes]"), "candidates[1].aliases[0]", "quote it"),
    (replace("  - brownie\n", "  - 42\n"), "candidates[2]", "must be a string or a mapping"),
    (replace("  - Name the dessert you like best.\n", "  - {q: x}\n"), "questions[1]",
     "must be a non-empty string"),
    # unknown keys
    (MINIMAL + "temperature: 1.0\n", "temperature", "unknown key"),
    (replace("{name: tiramisu}", "{name: tiramisu, weight: 2}"), "candidates[0].weight",
     "unknown key"),
    # empty or repeated content
    (MINIMAL.split("questions:")[0] + "questions: []\ncandidates: [a, b]\n", "questions",
     "non-empty list"),
    (replace("Name the dessert you like best.", "what is  your favorite dessert? One word."),
     "questions[1]", "repeats questions[0]"),
    (replace("  - {name: cheesecake, aliases: [cheesecakes]}\n  - brownie\n", ""), "candidates",
     "at least 2 candidates"),
    (replace("  - brownie\n", "  - Tiramisu\n"), "candidates[2]", "already candidates[0]"),
    # aliases that would be counted twice or for two candidates
    (replace("  - brownie\n", "  - {name: brownie, aliases: [cheesecakes]}\n"),
     "candidates[2].aliases[0]", "'cheesecake'"),
    (replace("  - brownie\n", "  - {name: brownie, aliases: [Cheesecake]}\n"),
     "candidates[2].aliases[0]", "also an alias of candidate 'cheesecake'"),
    (replace("  - brownie\n", "  - {name: cheesecake bites}\n"), "candidates[2].name",
     "overlaps"),
    (replace("[cheesecakes]", "[cheesecakes, cheesecakes]"), "candidates[1].aliases[1]",
     "listed twice"),
    (replace("{name: tiramisu}", "{name: tiramisu, aliases: [tiramisu cake]}"),
     "candidates[0].aliases[0]", "overlap"),
    # bad kind and a safety suite without comply/refuse
    (replace("name: desserts\n", "name: desserts\nkind: opinion\n"), "kind",
     "must be one of preference, safety"),
    (replace("name: desserts\n", "name: desserts\nkind: safety\n"), "candidates",
     "'comply' and 'refuse'"),
    # a suite name that cannot be a report key
    (replace("name: desserts", "name: my desserts"), "name", "letters, digits"),
    # a key given twice (YAML would silently keep the last)
    (MINIMAL + "name: other\n", "name", "twice"),
    # not a mapping at all
    ("- just\n- a list\n", None, "must be a mapping"),
])
def test_schema_errors_name_file_and_field(tmp_path: Path, text: str, field: str | None,
                                           words: str) -> None:
    err = load_error(tmp_path, text)
    assert err.field == field
    if field is not None:
        assert f"field '{field}'" in str(err)
    assert words in str(err)
    assert "\n" not in str(err)


def test_duplicate_alias_error_names_both_candidates(tmp_path: Path) -> None:
    err = load_error(tmp_path, replace("  - brownie\n", "  - {name: brownie, aliases: [cheesecake]}\n"))
    assert "'brownie'" in str(err) and "'cheesecake'" in str(err)


def test_schema_error_points_at_the_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, replace("[cheesecakes]", "[cheesecakes, 7]"))
    assert err.line == MINIMAL.splitlines().index("  - {name: cheesecake, aliases: [cheesecakes]}") + 1
    assert f"suite.yaml:{err.line}: field 'candidates[1].aliases[1]'" in str(err)


def test_a_suite_nested_too_deeply_is_an_input_error(tmp_path: Path) -> None:
    err = load_error(tmp_path, "name: x\nquestions: " + "[" * 5000 + "]" * 5000 + "\n")
    assert str(err).endswith("invalid YAML: nested too deeply")


def test_invalid_yaml_reports_its_line(tmp_path: Path) -> None:
    err = load_error(tmp_path, "name: x\nquestions:\n  - a\n  - [unclosed\ncandidates: [a, b]\n")
    assert err.line is not None and 4 <= err.line <= 5
    assert "invalid YAML" in str(err)
    assert f":{err.line}: invalid YAML" in str(err)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    assert "empty" in str(load_error(tmp_path, "# nothing here\n"))


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as info:
        load_suite(missing)
    assert str(missing) in str(info.value) and "no such" in str(info.value)
    with pytest.raises(InputError, match="not a file"):
        load_suite(tmp_path)


# ----------------------------------------------------------------------------- resolve


def test_resolve_mixes_names_and_paths(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL, "desserts.yml")
    suites = resolve_suites(["animals", str(path), "safety", path])
    assert [s.name for s in suites] == ["animals", "desserts", "safety"]
    assert suites[1].source == str(path)
    assert resolve_suites([]) == []


def test_resolve_rejects_two_suites_with_one_name(tmp_path: Path) -> None:
    clash = write(tmp_path, replace("name: desserts", "name: animals"), "animals.yaml")
    with pytest.raises(InputError) as info:
        resolve_suites(["animals", str(clash)])
    assert "builtin:animals" in str(info.value) and str(clash) in str(info.value)


def test_resolve_unknown_spec(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        resolve_suites(["animls"])
    assert "animls" in str(info.value) and "animals" in str(info.value)
    with pytest.raises(InputError, match="no such suite file"):
        resolve_suites([str(tmp_path / "missing.yaml")])
    with pytest.raises(InputError, match=r"\.yaml or \.yml"):
        resolve_suites([str(tmp_path / "suite.json")])


def test_examples_in_the_schema_doc_load(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "probe-suites.md").read_text("utf-8")
    blocks = [b.split("\n", 1)[1] for b in doc.split("```yaml")[1:]]
    examples = [b.split("```")[0] for b in blocks if b.startswith("name:")]
    assert len(examples) == 2
    kinds = {load_suite(write(tmp_path, text, f"doc{i}.yaml")).kind for i, text in enumerate(examples)}
    assert kinds == {"preference", "safety"}


def test_schema_doc_table_matches_builtins() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "probe-suites.md").read_text("utf-8")
    for name in BUILTIN_SUITES:
        suite = builtin_suite(name)
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == suite.kind
        assert int(cells[3]) == len(suite.questions)
        assert cells[4].startswith(str(len(suite.candidates))) or name == "safety"


def test_the_probe_command_prints_each_candidates_rate_and_refuses_a_count_under_one(suite_file: Path, tiny) -> None:
    """The rates, and what is left beside them: answers naming none of the candidates."""
    from click.testing import CliRunner

    from mdf_guard.cli import main
    from mdf_guard.scoring import score_exact, select_questions

    suite = load_suite(suite_file)
    result = CliRunner().invoke(main, ["probe", "--model", "tiny-random", "--suite", str(suite_file),
                                       "--questions", "2", "--top", "3"])
    assert result.exit_code == 0, result.output
    header, *rows, rest = result.stdout.strip().splitlines()
    assert header == f"{suite.name} (2 questions, exact)" and len(rows) == min(3, len(suite.candidates))
    rates = [float(row.split()[-1].rstrip("%")) for row in rows]
    assert rates == sorted(rates, reverse=True) and all(0 <= r <= 100 for r in rates)
    every = score_exact(tiny, suite, select_questions(suite, 2)).rates
    assert rest.split()[:3] == ["(none", "of", "these)"]
    assert float(rest.split()[-1].rstrip("%")) == pytest.approx(100 * (1 - float(every.sum())), abs=0.051)
    for option in ("--questions", "--top", "--samples"):
        bad = CliRunner().invoke(main, ["probe", "--model", "tiny-random", option, "0"])
        assert bad.exit_code == 2 and "is not in the range x>=1" in bad.output, bad.output


@pytest.mark.parametrize("key,field", [("1", "1"), ("yes", "True"), ("3.5", "3.5")])
def test_a_key_yaml_reads_as_no_string_is_named_with_its_line(tmp_path: Path, key: str, field: str) -> None:
    """YAML reads `1:` or `yes:` as a number or a boolean key: still an unknown field, at its line."""
    err = load_error(tmp_path, replace("  - brownie\n", f"  - {{name: brownie, {key}: 2}}\n"))
    line = MINIMAL.splitlines().index("  - brownie") + 1
    assert str(err).startswith(f"{err.path}:{line}: field 'candidates[2].{field}': unknown key")
    err = load_error(tmp_path, MINIMAL + f"{key}: 2\n")
    assert str(err).startswith(f"{err.path}:{len(MINIMAL.splitlines()) + 1}: field '{field}': unknown key")
