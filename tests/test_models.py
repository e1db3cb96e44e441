"""Loading a model the ways a policy names one: a folder (absolute, relative, with ~), the
embedded cache, a Hub id from the local Hugging Face cache, and the fingerprint each gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
