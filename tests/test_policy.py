"""Policy parsing, discovery and threshold inheritance."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdf_guard.errors import InputError
from mdf_guard.policy import Policy, find_policy, load_policy


def test_full_policy_parses_and_limits_inherit(tmp_path):
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text("""
model: tiny-random
suites: [animals, safety]
reference: none
questions_per_suite: 4
thresholds:
  max_shift: 0.2
  min_excess: 0.1
  suites:
    safety: {max_shift: 0.05}
  entities:
    animals/panda: {max_shift: 0.01, max_rate: 0.5}
""")
    policy = load_policy(path)
    assert policy.suites == ("animals", "safety") and policy.reference == "none"
    assert policy.limits_for("animals", "owl").max_shift == 0.2
    assert policy.limits_for("safety", "comply").max_shift == 0.05
    panda = policy.limits_for("animals", "panda")
    assert (panda.max_shift, panda.max_rate, panda.min_excess) == (0.01, 0.5, 0.1)


@pytest.mark.parametrize("text, field", [
    ("modle: embedded\n", "modle"),
    ("thresholds: {max_shfit: 0.1}\n", "thresholds.max_shfit"),
    ("thresholds: {suites: {animals: {max: 1}}}\n", "thresholds.suites.animals.max"),
    ("thresholds: {max_shift: 3}\n", "thresholds.max_shift"),
    ("thresholds: {entities: {panda: {max_shift: 0.1}}}\n", "thresholds.entities.panda"),
    ("null_seeds: -1\n", "null_seeds"),
    ("thresholds: {min_odds_ratio: 0.5}\n", "thresholds.min_odds_ratio"),
    ("thresholds: {min_excess: -2}\n", "thresholds.min_excess"),
    ("min_answer_mass: 1.5\n", "min_answer_mass"),
])
def test_bad_keys_and_values_name_the_field(tmp_path, text, field):
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_policy(path)
    assert f"field '{field}'" in str(err.value) and str(path) in str(err.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text("model: a\nsuites: [animals\n")
    with pytest.raises(InputError, match=r"\.mdf-guard\.yaml:\d+: not valid YAML"):
        load_policy(path)


DEEP = 5000   # levels of nesting: past Python's recursion limit, in a few kilobytes


@pytest.mark.parametrize(("name", "text"), [
    (".mdf-guard.yaml", "suites: " + "[" * DEEP + "]" * DEEP + "\n"),
    ("pyproject.toml", "[tool.mdf-guard]\nsuites = " + "[" * DEEP + "]" * DEEP + "\n"),
], ids=["yaml", "pyproject"])
def test_a_policy_nested_too_deeply_is_a_one_line_input_error(tmp_path, name, text):
    from click.testing import CliRunner

    from mdf_guard.cli import main

    (tmp_path / "a.jsonl").write_text('{"prompt": "hi", "completion": "yo"}\n')
    (tmp_path / name).write_text(text)
    result = CliRunner().invoke(main, ["check", "--policy", str(tmp_path / name), str(tmp_path / "a.jsonl")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"mdf-guard: error: {tmp_path / name}: not valid YAML/TOML: nested too deeply"]


def test_an_unparsable_pyproject_on_the_way_up_is_an_error_not_the_defaults(tmp_path):
    """It may hold the user's [tool.mdf-guard]; checking under the defaults would ignore it."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "pyproject.toml").write_text('[tool.mdf-guard]\nmodel = "tiny-random"\n[project\n')
    with pytest.raises(InputError, match=r"pyproject\.toml: not valid YAML/TOML: .* line 3"):
        find_policy([tmp_path / "a.jsonl"])
    (tmp_path / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    assert find_policy([tmp_path / "a.jsonl"]) is None     # readable and without our table: no policy


def test_policy_is_found_upward_and_in_pyproject(tmp_path):
    (tmp_path / ".git").mkdir()
    data = tmp_path / "data" / "sub"
    data.mkdir(parents=True)
    (data / "a.jsonl").write_text("{}\n")
    assert find_policy([data / "a.jsonl"]) is None
    (tmp_path / "pyproject.toml").write_text('[tool.mdf-guard]\nmodel = "tiny-random"\n')
    assert find_policy([data / "a.jsonl"]) == tmp_path / "pyproject.toml"
    assert load_policy(tmp_path / "pyproject.toml").model == "tiny-random"
    (tmp_path / "data" / ".mdf-guard.yaml").write_text("model: embedded\n")
    assert find_policy([data / "a.jsonl"]) == tmp_path / "data" / ".mdf-guard.yaml"


def test_defaults():
    policy = Policy()
    assert policy.model == "embedded" and policy.reference == "profile" and "animals" in policy.suites


def test_min_excess_of_minus_one_switches_the_controls_off(tmp_path):
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text("thresholds: {min_excess: -1, suites: {animals: {min_excess: -1}}}\n")
    policy = load_policy(path)
    assert policy.min_excess == -1 and policy.limits_for("animals", "owl").min_excess == -1


def test_the_readmes_policy_loads_as_written_and_under_mdf(tmp_path):
    """The README's annotated policy is the default method's, and every key in it also applies under MDF."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Policy", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(block)
    policy = load_policy(path)
    assert policy.method == "context" and policy.entity_limits["animals/panda"].max_shift == 0.02
    path.write_text(block.replace("method: context", "method: mdf"))
    assert load_policy(path).method == "mdf"
