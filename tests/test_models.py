"""Loading a model the ways a policy names one: a folder (absolute, relative, with ~), the
embedded cache, a Hub id from the local Hugging Face cache, and the fingerprint each gets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mdf_guard.errors import EXIT_INPUT, InputError
from mdf_guard.models import EMBEDDED_NAME, ModelSpec, load_model


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """The tiny random model saved as a local folder of safetensors weights and its tokenizer."""
    from mdf_guard.models import tiny_random_model

    folder = tmp_path_factory.mktemp("models") / "tiny"
    lm = tiny_random_model()
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


def test_the_same_weights_have_one_fingerprint_wherever_they_are_loaded_from(tiny_folder, tmp_path, monkeypatch):
    # The baseline keys accepted findings by the fingerprint: the embedded model sits in each
    # user's own cache folder, and a policy's relative model path is shown from where the check
    # ran. Before, the load path was hashed, so another machine saw every accepted finding as new.
    home = tmp_path / "home"
    shutil.copytree(tiny_folder, home / "models" / "tiny")
    shutil.copytree(tiny_folder, tmp_path / "cache" / "models" / EMBEDDED_NAME)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tiny_folder.parent)
    loaded = {name: load_model(ModelSpec(name=name))
              for name in (str(tiny_folder), "tiny", "./tiny", "~/models/tiny", "embedded")}
    fingerprints = {name: lm.fingerprint for name, lm in loaded.items()}
    assert len(set(fingerprints.values())) == 1, fingerprints
    assert len({lm.identity for lm in loaded.values()}) == 1
    assert load_model(ModelSpec(name="tiny")).fingerprint == fingerprints["tiny"]   # and again
    assert load_model(ModelSpec(name="tiny", dtype="bfloat16")).fingerprint != fingerprints["tiny"]


def same_model(recorded: object, lm) -> bool:
    from mdf_guard.models import check_same_model

    try:
        check_same_model("outcomes.json", recorded, lm)
    except InputError as err:
        assert "\n" not in str(err) and err.field.startswith("model")
        return False
    return True


def test_outcomes_recorded_under_the_old_fingerprint_still_name_the_model_they_were_measured_on(tiny_folder):
    """Results written before the load path left the fingerprint (the committed bench outcomes:
    hours of fine-tuning) hold the hash with it; `validate --outcomes` and `calibrate` match it
    from the machine's own load path, and still refuse another model's."""
    from mdf_guard.models import model_fingerprint

    lm = load_model(ModelSpec(name=str(tiny_folder)))
    old = model_fingerprint(lm.model, lm.tokenizer, with_load_path=True)
    assert old != lm.fingerprint and same_model({"fingerprint": old}, lm)
    assert same_model({"fingerprint": lm.fingerprint}, lm) and same_model({"identity": lm.identity}, lm)
    other = load_model(ModelSpec(name=str(tiny_folder), dtype="bfloat16"))
    assert not same_model({"fingerprint": old}, other) and not same_model({"identity": lm.identity}, other)
    assert not same_model({}, lm) and not same_model("tiny", lm)


def test_a_transformers_upgrade_keeps_the_identity_and_changes_the_fingerprint(tiny_folder, monkeypatch):
    """transformers stamps the running version into every config it serialises: the fingerprint,
    the key of every cache, changes with it (numbers may differ); the identity, what baselines,
    SARIF and validate's outcomes (hours of fine-tuning) name the model by, does not."""
    import transformers.configuration_utils

    before = load_model(ModelSpec(name=str(tiny_folder)))
    monkeypatch.setattr(transformers.configuration_utils, "__version__", "99.0.0")
    after = load_model(ModelSpec(name=str(tiny_folder)))
    assert after.identity == before.identity and after.fingerprint != before.fingerprint
    assert same_model({"identity": before.identity, "fingerprint": before.fingerprint}, after)
    assert not same_model({"fingerprint": before.fingerprint}, after)   # older files: that version's hash only


def test_a_revision_for_a_local_model_is_refused_not_ignored(tiny_folder):
    """transformers ignores `revision` for a folder: a policy pinning one pinned nothing."""
    with pytest.raises(InputError) as info:
        load_model(ModelSpec(name=str(tiny_folder), revision="v1.0"))
    assert str(info.value) == (f"policy: field 'revision': 'v1.0' names a revision of a Hub repository; "
                               f"{tiny_folder} is a local model (drop `revision`)")


@pytest.mark.parametrize("device", ["mps", "cuda:7"])
def test_a_device_this_machine_lacks_is_one_line_before_the_weights_load(tiny_folder, monkeypatch, device):
    # The policy takes any device torch can name; `mps` on a machine without Apple's GPU was an
    # internal error (exit 4, a traceback) after the weights had loaded.
    import torch
    import transformers

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("the weights loaded before the device was checked"))
    with pytest.raises(InputError) as err:
        load_model(ModelSpec(name=str(tiny_folder), device=device))
    assert err.value.exit_code == EXIT_INPUT and err.value.field == "device"
    assert f"'{device}'" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("setting", "field"), [("device: cuda:7", "device"), ("revision: v1.0", "revision")])
def test_a_model_setting_this_machine_or_model_cannot_use_names_the_policy_file(tiny_folder, tmp_path, setting,
                                                                                field):
    """These errors named "policy", where every other policy error names the file (one of several
    policies, or pyproject.toml's table): the user had to guess which file to fix."""
    import torch
    from click.testing import CliRunner

    from conftest import chat, write_jsonl
    from mdf_guard.cli import main

    if field == "device" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    policy = tmp_path / "team.yaml"
    policy.write_text(f"model: {tiny_folder}\n{setting}\n")
    data = write_jsonl(tmp_path / "a.jsonl", [chat("Hi.", "Hello.")])
    result = CliRunner().invoke(main, ["check", str(data), "--policy", str(policy), "-q"])
    assert result.exit_code == EXIT_INPUT, result.output
    assert result.output.startswith(f"mdf-guard: error: {policy}: field '{field}': '{setting.split()[1]}'")
    assert len(result.output.strip().splitlines()) == 1


HUB_LOADS = """
import json, sys
from mdf_guard.errors import InputError
from mdf_guard.models import ModelSpec, load_model
out = {}
for revision in sys.argv[1:]:
    try:
        out[revision] = load_model(ModelSpec(name="org/tiny", revision=revision or None)).fingerprint
    except InputError as err:
        out[revision] = "error: " + str(err)
print(json.dumps(out))
"""


def test_a_hub_id_resolves_branch_tag_and_commit_from_the_local_cache_offline(tiny_folder, tmp_path):
    # A subprocess: huggingface_hub reads HF_HUB_CACHE and HF_HUB_OFFLINE once, when imported.
    from mdf_guard.models import tiny_random_model

    repo = tmp_path / "hub" / "models--org--tiny"
    commits = {"main": "a" * 40, "dev": "b" * 40}
    shutil.copytree(tiny_folder, repo / "snapshots" / commits["main"])
    other = tiny_random_model(seed=1)
    other.model.save_pretrained(repo / "snapshots" / commits["dev"])
    other.tokenizer.save_pretrained(repo / "snapshots" / commits["dev"])
    (repo / "refs").mkdir()
    for ref, commit in {**commits, "v1.0": commits["dev"]}.items():
        (repo / "refs" / ref).write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    revisions = ["", "main", commits["main"], "dev", "v1.0", commits["dev"], "nope"]
    done = subprocess.run([sys.executable, "-c", HUB_LOADS, *revisions], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got[""] == got["main"] == got[commits["main"]] == load_model(ModelSpec(name=str(tiny_folder))).fingerprint
    assert got["dev"] == got["v1.0"] == got[commits["dev"]] != got["main"]
    assert got["nope"].startswith("error: org/tiny: field 'model': cannot load the model at revision nope: ")
    assert "HF_HUB_OFFLINE" in got["nope"] and "\n" not in got["nope"]


def test_code_in_a_model_folder_runs_only_with_trust_remote_code(tiny_folder, tmp_path):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="mylama", architectures=["MyLlama"],
                  auto_map={"AutoConfig": "cfg.MyConfig", "AutoModelForCausalLM": "mod.MyLlama"})
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (folder / "cfg.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('yes')\n"
                                   "from transformers import LlamaConfig\n"
                                   "class MyConfig(LlamaConfig):\n    model_type = 'mylama'\n")
    (folder / "mod.py").write_text("from transformers import LlamaForCausalLM\nfrom .cfg import MyConfig\n"
                                   "class MyLlama(LlamaForCausalLM):\n    config_class = MyConfig\n")
    with pytest.raises(InputError) as err:
        load_model(ModelSpec(name=str(folder)))
    assert not marker.exists()
    assert "custom code" in str(err.value) and "trust_remote_code: true" in str(err.value)
    assert load_model(ModelSpec(name=str(folder), trust_remote_code=True)).num_layers == 4
    assert marker.read_text() == "yes"


def test_doctor_says_where_the_embedded_model_will_come_from(tmp_path, monkeypatch):
    """doctor said 'fetched with pip' whatever would really happen: a GGUF already fetched, or
    MDF_GUARD_GGUF (even one naming no file), is used without pip."""
    from click.testing import CliRunner

    import mdf_guard.models as models
    from mdf_guard.cli import main

    def line() -> str:
        out = CliRunner().invoke(main, ["doctor"]).stdout
        return next(row for row in out.splitlines() if row.startswith("embedded model:"))

    monkeypatch.setattr(models, "_installed_package_gguf", lambda: None)
    monkeypatch.delenv("MDF_GUARD_GGUF", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MDF_GUARD_CACHE", str(cache))
    assert "fetched once with pip" in line()
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    assert "fetched before" in line() and "pip" not in line()
    monkeypatch.setenv("MDF_GUARD_GGUF", str(tmp_path / "absent.gguf"))
    assert f"MDF_GUARD_GGUF={tmp_path / 'absent.gguf'}, which names no file" in line()
    folder = cache / "models" / EMBEDDED_NAME
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    assert "not converted yet" in line()          # no config.json: the first use converts again
    (folder / "config.json").write_text("{}")
    assert line().endswith(f"ready at {folder}")


def test_a_bad_dtype_in_a_policy_names_the_policy_file(tmp_path, monkeypatch):
    """It was found only when the model loaded, as "model: field 'dtype'", naming no file."""
    import mdf_guard.models as models
    from click.testing import CliRunner

    from mdf_guard.cli import main

    monkeypatch.setattr(models, "load_model", lambda spec: pytest.fail("the model was loaded"))
    policy = tmp_path / ".mdf-guard.yaml"
    policy.write_text("model: tiny-random\ndtype: float64\n")
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n")
    result = CliRunner().invoke(main, ["check", str(data), "--policy", str(policy)])
    assert result.exit_code == EXIT_INPUT
    assert result.stderr.strip() == f"mdf-guard: error: {policy}: field 'dtype': must be float32, bfloat16 or float16"


def test_a_model_folder_whose_weights_do_not_fit_its_config_is_an_input_error(tmp_path):
    """transformers refuses weights of other shapes than config.json names with a RuntimeError:
    an internal error (exit 4) until it was read as the folder's fault."""
    from families import save_family

    folder = save_family("qwen2", tmp_path / "qwen2")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": config["intermediate_size"] * 2}))
    with pytest.raises(InputError, match="field 'model': cannot load the model: its weights are not of the shapes"):
        load_model(ModelSpec(name=str(folder)))
