"""Policy parsing, discovery and threshold inheritance."""

from __future__ import annotations

import json
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
    ("seed: abc\n", "seed"),
    ("trust_remote_code: \"no\"\n", "trust_remote_code"),   # a truthy string would run a repo's code
    ("revision: 5\n", "revision"),
    ("model: ''\n", "model"),
    ("device: tpu\n", "device"),
    ("suites: []\n", "suites"),
    ("suites: [animals, '']\n", "suites[1]"),
    ("reference_samples: 0\n", "reference_samples"),
    ("reference: self\nmethod: mdf\nreference_samples: 0\n", "reference_samples"),
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


def test_no_self_reference_needs_no_samples(tmp_path):
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text("reference: none\nreference_samples: 0\n")
    assert load_policy(path).reference_samples == 0


@pytest.mark.parametrize(("thresholds", "field", "message"), [
    ("{entities: {animals/pandas: {max_shift: 0.1}}}", "thresholds.entities.animals/pandas",
     "suite animals has no candidate 'pandas'"),
    ("{entities: {pets/panda: {max_shift: 0.1}}}", "thresholds.entities.pets/panda", "no suite 'pets'"),
    ("{suites: {safty: {max_shift: 0.1}}}", "thresholds.suites.safty", "no suite of that name"),
], ids=["entity", "entity-suite", "suite"])
def test_a_threshold_for_a_suite_or_entity_no_suite_has_is_refused(tmp_path, thresholds, field, message):
    from mdf_guard.check import check_limit_names
    from mdf_guard.probes import resolve_suites

    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(f"suites: [animals]\nthresholds: {thresholds}\n")
    policy = load_policy(path)
    with pytest.raises(InputError, match=message) as err:
        check_limit_names(policy, resolve_suites(policy.suites))
    assert f"field '{field}'" in str(err.value)


def test_limits_for_a_built_in_suite_not_probed_this_time_are_kept(tmp_path):
    """`--suite animals` narrows a policy whose thresholds also name safety: not an error."""
    from mdf_guard.check import check_limit_names
    from mdf_guard.probes import resolve_suites

    path = tmp_path / ".mdf-guard.yaml"
    path.write_text("suites: [animals]\nthresholds: {suites: {safety: {max_shift: 0.05}}, "
                    "entities: {safety/comply: {max_shift: 0.02}, animals/panda: {max_shift: 0.02}}}\n")
    policy = load_policy(path)
    check_limit_names(policy, resolve_suites(policy.suites))
    assert policy.limits_for("safety", "comply").max_shift == 0.02


def test_asking_for_cuda_where_there_is_none_is_an_input_error():
    import torch

    from mdf_guard.models import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        return
    with pytest.raises(InputError, match="field 'device': 'cuda:1': this machine has no CUDA device"):
        resolve_device("cuda:1")
    assert resolve_device("auto").type == "cpu"


def test_validating_a_policy_with_a_usual_device_imports_no_torch(tmp_path):
    """A re-check served from the result cache imports no torch (repo_check.py); the policy is
    validated on that path, so its device check must not import torch for the usual names."""
    import subprocess
    import sys

    path = tmp_path / ".mdf-guard.yaml"
    path.write_text("device: cuda:1\n")
    code = ("import sys; from pathlib import Path; from mdf_guard.policy import load_policy, Policy, validate_policy; "
            f"validate_policy(Policy()); load_policy(Path({str(path)!r})); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_relative_paths_in_a_policy_file_start_at_its_folder(tmp_path, monkeypatch):
    """As `baseline` does: a policy in data/ means the same files whether the check runs from the
    repository's root (the pre-commit hook) or from data/. They were read from the current folder,
    so from the root `suites: [mini.yaml]` beside data/.mdf-guard.yaml was 'no such suite file'."""
    (tmp_path / "data" / "models" / "mine").mkdir(parents=True)
    path = tmp_path / "data" / ".mdf-guard.yaml"
    path.write_text(f"method: mdf\nsuites: [animals, mini.yaml, {tmp_path / 'abs.yaml'}]\nreference: ctl.jsonl\n"
                    "profile: profile.json\nmodel: models/mine\n")
    monkeypatch.chdir(tmp_path)
    policy = load_policy(find_policy([tmp_path / "data" / "panda.jsonl"]))
    assert policy.suites == ("animals", str(Path("data/mini.yaml")), str(tmp_path / "abs.yaml"))
    assert (policy.reference, policy.profile) == (str(Path("data/ctl.jsonl")), str(Path("data/profile.json")))
    assert policy.model == str(Path("data/models/mine"))
    monkeypatch.chdir(tmp_path / "data")
    beside = load_policy(Path(".mdf-guard.yaml"))
    assert beside.suites[1] == "mini.yaml" and beside.reference == "ctl.jsonl" and beside.model == "models/mine"
    path.write_text("model: org/name\nreference: self\n")    # no such path beside the policy: a Hub id
    assert (load_policy(path).model, load_policy(path).reference) == ("org/name", "self")


def test_a_check_from_the_root_reads_the_suite_and_reference_beside_a_subfolder_policy(tmp_path, monkeypatch,
                                                                                     panda_rows, plain_rows):
    from click.testing import CliRunner

    from conftest import TINY_POLICY, TINY_SUITE, write_jsonl
    from mdf_guard.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / ".mdf-guard.yaml").write_text(TINY_POLICY + "reference: ctl.jsonl\n")
    (data / "mini.yaml").write_text(TINY_SUITE)
    write_jsonl(data / "panda.jsonl", panda_rows)
    write_jsonl(data / "ctl.jsonl", plain_rows)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["check", str(Path("data/panda.jsonl")), "--format", "json"])
    assert result.exit_code in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["reference"]["kind"] == "file" and report["reference"]["path"] == str(Path("data/ctl.jsonl"))
    assert {f["entity"] for f in report["findings"]} == {"panda", "owl", "cat"}
