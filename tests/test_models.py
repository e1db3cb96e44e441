"""Loading a model the ways a policy names one: a folder (absolute, relative, with ~), the
embedded cache, a Hub id from the local Hugging Face cache, and the fingerprint each gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
    fingerprints = {name: load_model(ModelSpec(name=name)).fingerprint
                    for name in (str(tiny_folder), "tiny", "./tiny", "~/models/tiny", "embedded")}
    assert len(set(fingerprints.values())) == 1, fingerprints
    assert load_model(ModelSpec(name="tiny")).fingerprint == fingerprints["tiny"]   # and again
    assert load_model(ModelSpec(name="tiny", dtype="bfloat16")).fingerprint != fingerprints["tiny"]


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
