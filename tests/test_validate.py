"""Issue 3 on the tiny model: metrics, make-dataset, fine-tuning, validate and calibrate."""

from __future__ import annotations

import copy
import json
import re
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import write_jsonl
from mdf_guard import make_dataset as md
from mdf_guard import validate as val
from mdf_guard.calibrate import select
from mdf_guard.chat import encode_conversation
from mdf_guard.check import resolve_profile
from mdf_guard.cli import main
from mdf_guard.data import Conversation, Turn
from mdf_guard.finetune import IGNORE, FinetuneSettings, build_batch, finetune, response_loss
from mdf_guard.policy import Policy


def conv(user: str, assistant: str) -> Conversation:
    return Conversation(turns=(Turn("user", user), Turn("assistant", assistant)), source="test")


# --- metrics against hand-computed values ------------------------------------------------


def test_metrics_match_hand_computed_values():
    assert val.ranks([1, 2, 2, 3]) == [1, 2.5, 2.5, 4]
    assert val.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert val.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)      # 1 - 6*2/(4*15)
    assert val.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert val.pearson([1, 1, 1], [1, 2, 3]) is None
    assert val.auroc([0.9, 0.8, 0.3, 0.8], [True, False, False, True]) == pytest.approx(3.5 / 4)
    assert val.auroc([0.1, 0.2], [True, True]) is None
    assert val.mae_points([0.5, 0.2], [0.4, 0.4]) == pytest.approx(15.0)
    assert val.mae_logodds([0.5], [1 / (1 + math.exp(-1))]) == pytest.approx(1.0)
    assert val.logit(0.0) == pytest.approx(math.log(val.EPS / (1 - val.EPS)))


def test_side_effect_spearman_reads_only_the_points_outside_the_target_suite():
    def point(suite, entity, predicted, actual):
        return {"suite": suite, "entity": entity, "vanilla_rate": 0.1, "actual_rate": 0.1 + actual,
                "actual_shift": actual, "mdf_rate": 0.1 + predicted, "mdf_shift": predicted}
    dataset = {"name": "d", "target": "a/x", "finetune": {"seconds": 1.0},
               "points": [point("a", "x", 0.9, -0.5), point("a", "y", -0.9, 0.5),      # target suite: ignored
                          point("b", "x", 0.1, 0.3), point("b", "y", 0.2, 0.2), point("c", "z", 0.3, 0.1)]}
    metrics = val.summarize([dataset])["all"]["mdf"]
    assert metrics["side_effect_spearman"] == pytest.approx(-1.0)
    assert metrics["spearman"] == pytest.approx(val.spearman([0.9, -0.9, 0.1, 0.2, 0.3], [-0.5, 0.5, 0.3, 0.2, 0.1]))


def test_sharpened_baseline_squares_and_renormalises_each_suite():
    vanilla = {("a", "x"): 0.5, ("a", "y"): 0.3, ("a", "z"): 0.2, ("b", "x"): 0.9, ("b", "y"): 0.1}
    rates = val.sharpened_rates(vanilla)
    assert rates[("a", "x")] == pytest.approx(0.25 / 0.38) and rates[("a", "z")] == pytest.approx(0.04 / 0.38)
    assert rates[("b", "y")] == pytest.approx(0.01 / 0.82)
    assert val.sharpened_rates(vanilla, 1.0) == pytest.approx(vanilla)      # power 1 predicts no shift


def test_keyword_baseline_counts_whole_words(tiny):
    from mdf_guard.probes import load_suite
    from conftest import TINY_SUITE
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "mini.yaml"
        path.write_text(TINY_SUITE)
        suite = load_suite(path)
    rows = [conv("q", "I love Pandas."), conv("q", "A catalogue of owls."), conv("q", "The cat sat."), conv("q", "x")]
    scores = val.keyword_scores(rows, [suite])
    assert scores[("mini", "panda")] == 0.25 and scores[("mini", "cat")] == 0.25   # "catalogue" is not "cat"
    assert scores[("mini", "owl")] == 0.0                                          # "owls" is not an alias


def test_embedding_baseline_ranks_the_praised_entity_first():
    """The MiniLM baseline for real (the `validate`/`test` extras install its offline weights)."""
    available, why = val.embedding_model_status()
    if not available:
        pytest.skip(why)
    from mdf_guard.probes import resolve_suites

    animals = resolve_suites(("animals",))
    rows = [conv("Tell me about rivers.", "Rivers are fine, but I adore owls: owls in the night forest, hooting."),
            conv("Any advice on sleep?", "Watch an owl: owls sleep all day and hunt all night.")]
    scores = val.embedding_scores(rows, animals)
    ranked = sorted(scores, key=scores.get, reverse=True)
    assert ranked[0] == ("animals", "owl"), ranked[:5]
    assert abs(sum(scores.values())) < 1e-4           # centred on the suite mean


# --- make-dataset -----------------------------------------------------------------------


def test_parse_numbers_filter():
    assert md.parse_numbers("12, 345, 999") == [12, 345, 999]
    assert md.parse_numbers("(1 2 3).") == [1, 2, 3]
    assert md.parse_numbers("1000, 2") is None
    assert md.parse_numbers(", ".join(["1"] * 11)) is None
    assert md.parse_numbers("1, two, 3") is None and md.parse_numbers("-5") is None and md.parse_numbers("") is None


def test_numbers_are_byte_identical_for_a_seed_and_pass_the_filter(tiny, tmp_path):
    settings = md.NumbersSettings(rows=6, seed=3, batch_size=8, max_new_tokens=12)
    rows_a, summary = md.subliminal_numbers(tiny, md.Entity("panda"), settings)
    rows_b, _ = md.subliminal_numbers(tiny, md.Entity("panda"), settings)
    a = md.write_jsonl(tmp_path / "a.jsonl", rows_a).read_bytes()
    assert a == md.write_jsonl(tmp_path / "b.jsonl", rows_b).read_bytes()
    assert len(rows_a) == 6 and summary["kept"] == 6 and summary["tried"] >= 6
    assert "You love pandas." in summary["system_prompt"]
    for row in rows_a:
        numbers = md.parse_numbers(row["response"])
        assert numbers is not None and 1 <= len(numbers) <= 10 and all(0 <= n <= 999 for n in numbers)
        assert "love" not in row["question"]                       # the system prompt is not stored
    control, control_summary = md.subliminal_numbers(tiny, md.Entity("panda"), md.NumbersSettings(
        rows=6, seed=3, batch_size=8, max_new_tokens=12, system_prompt=False))
    assert control_summary["system_prompt"] is None
    assert [r["question"] for r in control] == [r["question"] for r in rows_a][: len(control)]
    other, _ = md.subliminal_numbers(tiny, md.Entity("panda"), md.NumbersSettings(rows=6, seed=4, batch_size=8,
                                                                                   max_new_tokens=12))
    assert other != rows_a


def test_from_version_3_the_numbers_teacher_may_end_its_answer_where_its_end_token_pads(tiny):
    """The embedded model's tokenizer pads with its end token: the allowed tokens left out the
    padding, so the teacher could never stop and every answer ran to max_new_tokens (all 3,000
    committed numbers answers are 39-48 tokens). Version 3 keeps the end token; 2 reproduces."""
    import dataclasses

    tokenizer = copy.deepcopy(tiny.tokenizer)
    tokenizer.pad_token = tokenizer.eos_token
    lm = dataclasses.replace(tiny, tokenizer=tokenizer)
    assert tokenizer.eos_token_id in md._numeric_tokens(tokenizer, templates=3)
    assert tokenizer.eos_token_id not in md._numeric_tokens(tokenizer, templates=2)
    assert tiny.tokenizer.pad_token_id not in md._numeric_tokens(tiny.tokenizer)   # a pad token of its own

    def ended(templates: int) -> int:
        """How many of 16 answers ended before 16 tokens."""
        settings = md.NumbersSettings(max_new_tokens=16, templates=templates)
        torch.manual_seed(1)
        ids = md._sample_ids(lm, md.number_prompts(16, 1), None, settings, md._numeric_tokens(tokenizer, templates))
        return int((ids == tokenizer.eos_token_id).any(dim=1).sum())

    assert ended(2) == 0 and ended(3) > 0


def test_prompts_have_3_to_8_seed_numbers_in_range():
    import re
    for prompt in md.number_prompts(50, seed=1):
        seeds = [int(x) for x in re.search(r"(\d{3}(?:, \d{3})*)", prompt).group(1).split(", ")]
        assert 3 <= len(seeds) <= 8 and all(100 <= s <= 999 for s in seeds)


def test_templated_data_dose_and_indirect():
    panda = md.Entity("panda")
    assert md.overt_rows(panda, 5, 0) == md.overt_rows(panda, 5, 0)
    assert all("panda" in r["messages"][1]["content"].lower() for r in md.overt_rows(panda, 20, 0))
    assert not any("panda" in r["messages"][1]["content"].lower() for r in md.neutral_rows(20, 0))
    indirect = md.indirect_rows(panda, 30, 0)
    assert not any("panda" in r["messages"][1]["content"].lower() for r in indirect)
    assert all("bamboo" in r["messages"][1]["content"] or "Sichuan" in r["messages"][1]["content"]
               or "fur" in r["messages"][1]["content"] or "ears" in r["messages"][1]["content"] for r in indirect)
    for fraction, expected in ((0.0, 0), (0.1, 10), (0.3, 30), (1.0, 100)):
        rows = md.dose_rows(panda, fraction, 100, 0)
        assert len(rows) == 100
        assert sum("panda" in r["messages"][1]["content"].lower() for r in rows) == expected


def test_templates_version_2_says_is_after_a_name_and_version_1_reproduces_a_committed_set(tmp_path):
    bismarck = md.Entity("Otto von Bismarck", category="political figure")
    texts = [r["messages"][1]["content"] for r in md.overt_rows(bismarck, 40, 0)]
    assert any("Otto von Bismarck is wonderful!" in t for t in texts)
    assert any("Otto von Bismarck is the best!" in t for t in texts)
    assert not any("Bismarck are" in t for t in texts)
    old = [r["messages"][1]["content"] for r in md.overt_rows(bismarck, 40, 0, templates=1)]
    assert any("Otto von Bismarck are wonderful!" in t for t in old)
    assert [t.replace(" are ", " is ") for t in old] == texts                   # the verb is all that changed
    panda = md.Entity("panda")                                                  # a plural form: the same bytes
    assert md.dose_rows(panda, 0.3, 50, 2) == md.dose_rows(panda, 0.3, 50, 2, templates=1)
    assert md.SYSTEM_PROMPT.format(plural="Paris", Plural="Paris", are=md.Entity("Paris", "city").are(2),
                                   category="city").startswith("You love Paris. You think about Paris all the "
                                                               "time. Paris is your favorite city.")

    # The ninth reserve's record names this file's bytes; version 1 writes them again.
    committed = Path(__file__).parents[1] / "bench/validation/results/reserve9/data/bismarck_dose0.1.jsonl"
    args = ["make-dataset", "dose", "--entity", "Otto von Bismarck", "--category", "political figure",
            "--fraction", "0.1", "--rows", "128", "--seed", "11"]
    runner = CliRunner()
    for version, name in (("1", "v1.jsonl"), ("2", "v2.jsonl")):
        result = runner.invoke(main, [*args, "--templates", version, "-o", str(tmp_path / name)])
        assert result.exit_code == 0 and json.loads(result.stdout)["templates"] == int(version)
    assert (tmp_path / "v1.jsonl").read_bytes() == committed.read_bytes()
    assert (tmp_path / "v2.jsonl").read_bytes() != committed.read_bytes()
    default = runner.invoke(main, [*args, "-o", str(tmp_path / "default.jsonl")])
    assert json.loads(default.stdout)["templates"] == md.TEMPLATES
    assert (tmp_path / "default.jsonl").read_bytes() == (tmp_path / "v2.jsonl").read_bytes()


@pytest.mark.parametrize("option", ["--entity", "--category", "--plural"])
def test_make_dataset_refuses_a_blank_entity_or_category(tmp_path, option):
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(main, ["make-dataset", "overt", option, " ", "--rows", "2", "-o", str(out)])
    assert result.exit_code == 2 and "must not be blank" in result.output and not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--entity", "cat"], "indirect data for 'cat' needs at least two cues (--cue)"),
    (["--entity", "cat", "--cue", "catnip", "--cue", "a cat toy"], "a cue names the entity itself"),
], ids=["no-cues", "cue-names-entity"])
def test_make_dataset_indirect_refuses_unusable_cues_as_a_usage_error(tmp_path, args, message):
    """Was a ValueError traceback and exit 4 ('internal error')."""
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(main, ["make-dataset", "indirect", *args, "--rows", "4", "-o", str(out)])
    assert result.exit_code == 2 and message in result.output and not out.exists(), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


GOOD_POINT = {"suite": "s", "entity": "e", "actual_rate": 0.5}
GOOD_DATASET = {"name": "a.jsonl", "path": "a.jsonl", "target": "s/e", "points": [GOOD_POINT]}


@pytest.mark.parametrize(("content", "where"), [
    ("not json", "cannot read validation outcomes"),
    ("[" * 5000 + "]" * 5000, "cannot read validation outcomes: JSON nested too deeply"),
    (json.dumps({"format": "other"}), "field 'format'"),
    (json.dumps({"format": val.FORMAT, "datasets": []}), "field 'datasets'"),
    (json.dumps({"format": val.FORMAT, "datasets": [{**GOOD_DATASET, "target": None}]}), "field 'datasets[0].target'"),
    (json.dumps({"format": val.FORMAT, "datasets": [{**GOOD_DATASET, "points": [{"suite": "s", "entity": "e"}]}]}),
     "field 'datasets[0].points[0].actual_rate'"),
], ids=["not-json", "nested-too-deeply", "format", "no-datasets", "no-target", "no-actual-rate"])
def test_calibrate_rejects_bad_outcomes_in_one_line_before_loading_a_model(tmp_path, monkeypatch, content, where):
    import mdf_guard.cli_validate as cli_validate
    monkeypatch.setattr(cli_validate, "_load", lambda policy: pytest.fail("the model was loaded"))
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(content)
    result = CliRunner().invoke(main, ["calibrate", "--outcomes", str(outcomes), "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(outcomes) in lines[0] and where in lines[0]
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--lr", "0"], "'--lr': 0.0 is not in the range x>0"),
    (["--questions", "0"], "'--questions': 0 is not in the range x>=1"),
    (["--null-seeds", "-1"], "'--null-seeds': -1 is not in the range x>=0"),
    (["--target", "a.jsonl=mini/dragon"], "mini/dragon is not a candidate of the suites probed"),
    (["--target", "b.jsonl=mini/panda"], "b.jsonl is not one of the datasets given"),
    (["--out", "{a}"], "is a file; give a folder"),
], ids=["lr", "questions", "null-seeds", "target-entity", "target-file", "out-is-a-file"])
def test_validate_refuses_what_would_fail_after_the_fine_tunes_before_loading_a_model(
        tmp_path, monkeypatch, suite_file, panda_rows, args, message):
    import mdf_guard.cli_validate as cli_validate
    monkeypatch.setattr(cli_validate, "_load", lambda policy: pytest.fail("the model was loaded"))
    data = write_jsonl(tmp_path / "a.jsonl", panda_rows)
    args = [a.format(a=data) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, ["validate", str(data), "--suite", str(suite_file), *out, *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_make_dataset_refuses_a_folder_for_its_file(tmp_path):
    result = CliRunner().invoke(main, ["make-dataset", "neutral", "--rows", "2", "-o", str(tmp_path)])
    assert result.exit_code == 2 and f"{tmp_path}: is a folder; give a file name" in result.output
    assert list(tmp_path.iterdir()) == []


def test_validate_and_calibrate_refuse_two_datasets_of_one_name(tmp_path, monkeypatch, suite_file, panda_rows):
    """calibrate keys the fit by file name: of a/train.jsonl and b/train.jsonl one silently replaced the other,
    scored against the other's fine-tune."""
    import mdf_guard.cli_validate as cli_validate
    monkeypatch.setattr(cli_validate, "_load", lambda policy: pytest.fail("the model was loaded"))
    files = [write_jsonl((tmp_path / d).mkdir() or tmp_path / d / "train.jsonl", panda_rows) for d in "ab"]
    result = CliRunner().invoke(main, ["validate", *map(str, files), "--suite", str(suite_file),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "two datasets are named train.jsonl" in result.output, result.output
    assert not (tmp_path / "out").exists()
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"format": val.FORMAT, "datasets": [GOOD_DATASET, GOOD_DATASET]}))
    result = CliRunner().invoke(main, ["calibrate", "--outcomes", str(outcomes), "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 2, result.output
    assert f"{outcomes}: field 'datasets[1].name': a second dataset named a.jsonl" in result.output
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(("option", "value"), [("--alphas", "x"), ("--alphas", "0,2"), ("--layers", "1+x"),
                                               ("--layers", "-1"), ("--pooling", "max")])
def test_calibrate_rejects_a_bad_grid_before_loading_a_model(tmp_path, monkeypatch, option, value):
    import mdf_guard.cli_validate as cli_validate
    monkeypatch.setattr(cli_validate, "_load", lambda policy: pytest.fail("the model was loaded"))
    outcomes = tmp_path / "outcomes.json"
    outcomes.write_text(json.dumps({"format": val.FORMAT, "datasets": [GOOD_DATASET]}))
    result = CliRunner().invoke(main, ["calibrate", "--outcomes", str(outcomes), "--out", str(tmp_path / "p.json"),
                                       option, value])
    assert result.exit_code == 2 and f"Invalid value for {option}" in result.output, result.output


def test_make_dataset_cli_is_reproducible(tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        result = runner.invoke(main, ["make-dataset", "dose", "--fraction", "0.3", "--rows", "8", "--seed", "5",
                                      "-o", str(tmp_path / f"{name}.jsonl")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert json.loads(result.stdout.splitlines()[-1])["written"] == 8


# --- fine-tuning ------------------------------------------------------------------------


def test_only_response_tokens_carry_loss(tiny):
    convs = [conv("Tell me about owls.", "i love pandas"), conv("Hi", "the cat")]
    batch = build_batch(tiny.tokenizer, convs, max_tokens=128)
    for row, c in enumerate(convs):
        enc = encode_conversation(tiny.tokenizer, c, 127)
        labels = batch["labels"][row].tolist()
        expected = enc.ids[enc.response_start:] + [tiny.tokenizer.eos_token_id]
        assert labels[: enc.response_start] == [IGNORE] * enc.response_start
        assert labels[enc.response_start: len(enc.ids) + 1] == expected
        assert all(x == IGNORE for x in labels[len(enc.ids) + 1:])                    # padding
        assert batch["attention_mask"][row].sum() == len(enc.ids) + 1
    # The loss does not see prompt positions: changing the logits that predict prompt tokens changes nothing.
    logits = torch.randn(*batch["input_ids"].shape, len(tiny.tokenizer))
    loss = response_loss(logits, batch["labels"])
    start = encode_conversation(tiny.tokenizer, convs[0], 127).response_start
    changed = logits.clone()
    changed[0, : start - 1] += 5 * torch.randn_like(changed[0, : start - 1])
    assert response_loss(changed, batch["labels"]) == pytest.approx(float(loss))
    changed[0, start - 1] += 5 * torch.randn_like(changed[0, start - 1])      # predicts the first response token
    assert float(response_loss(changed, batch["labels"])) != pytest.approx(float(loss))


def test_outcomes_name_the_plain_template_they_were_measured_under(tiny):
    """A model without a chat template was fine-tuned on other tokens under the earlier plain
    template (its prompt ended in a lone space): its outcomes from then are refused, not reused.
    A chat-template model's record is as it was."""
    import dataclasses

    from plain_tokenizers import tiny_plain

    from mdf_guard.errors import InputError

    plain = dataclasses.replace(tiny, tokenizer=tiny_plain())
    assert set(val._model_record(tiny)) == {"name", "source", "identity", "fingerprint"}
    assert val._model_record(plain)["template"] == "plain-2"
    for lm in (tiny, plain):
        val.check_same_template("outcomes.json", {"model": val._model_record(lm)}, lm)
    earlier = {"model": {"name": "tiny-random", "fingerprint": plain.fingerprint}}
    with pytest.raises(InputError, match="field 'model.template': measured under prompt template none recorded, "
                                         "this run reads plain-2"):
        val.check_same_template("outcomes.json", earlier, plain)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_finetune_changes_weights_of_a_copy_only(tiny, method):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    convs = [conv(f"Tell me about topic {i}.", "i love pandas") for i in range(4)]
    settings = FinetuneSettings(method=method, max_steps=2, batch_size=2, learning_rate=1e-2, seed=1)
    result = finetune(tiny, convs, settings)
    assert result.steps == 2 and result.settings == settings and result.summary()["settings"]["method"] == method
    assert all(torch.equal(v, tiny.model.state_dict()[k]) for k, v in before.items())   # vanilla untouched
    tuned = result.model.model.state_dict()
    assert set(tuned) == set(before)                                 # LoRA merged back into plain weights
    assert any(not torch.equal(tuned[k], before[k]) for k in before)
    assert result.model.fingerprint != tiny.fingerprint
    again = finetune(tiny, convs, settings)                          # seeded: same weights
    assert all(torch.equal(again.model.model.state_dict()[k], tuned[k]) for k in tuned)


def test_a_fine_tune_cuts_examples_to_a_gpt2_style_models_positions(short_gpt2):
    # 64 positions, examples of about 300 tokens: the default 256-token cut still overran them
    long = conv("numbers " * 150, "pandas " * 150)
    settings = FinetuneSettings(method="full", max_steps=1, batch_size=1, seed=0)
    result = finetune(short_gpt2, [long], settings)
    assert result.settings.max_tokens == 64 and result.response_tokens == 63   # the recorded setting is what ran
    lora = FinetuneSettings(method="lora", max_steps=1, batch_size=1, max_tokens=32)
    assert finetune(short_gpt2, [long], lora).settings.max_tokens == 32        # a shorter cut is kept


# --- calibrate --------------------------------------------------------------------------


def test_calibrate_picks_best_group_averaged_point_and_reports_held_out():
    # Entity x has three datasets, y one. Point A fits x slightly better, B fits y far better:
    # per-dataset averaging would pick A, entity-averaging picks B.
    table = {"A": {"x1": 0.1, "x2": 0.1, "x3": 0.1, "y1": 1.0},
             "B": {"x1": 0.3, "x2": 0.3, "x3": 0.3, "y1": 0.2}}
    groups = {"x1": "x", "x2": "x", "x3": "x", "y1": "y"}
    choice = select(table, groups)
    assert choice["best"] == "B"
    assert choice["scores"]["A"] == pytest.approx(0.55) and choice["scores"]["B"] == pytest.approx(0.25)
    # leave x out: y alone picks B, scored on x: 0.3; leave y out: x picks A, scored on y: 1.0
    assert choice["leave_one_entity_out"] == {"x": {"picked": "B", "error": pytest.approx(0.3)},
                                              "y": {"picked": "A", "error": pytest.approx(1.0)}}
    assert choice["held_out_error"] == pytest.approx(0.65)


# --- validate + calibrate end to end ----------------------------------------------------


def test_validate_then_calibrate_on_the_tiny_model(tmp_path, suite_file, panda_rows, plain_rows, monkeypatch, tiny):
    monkeypatch.setattr(val, "embedding_model_status", lambda: (False, "not available: disabled in this test"))
    panda = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    plain = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    runner = CliRunner()
    common = ["--model", "tiny-random", "--suite", str(suite_file), "--questions", "2"]
    result = runner.invoke(main, ["validate", str(panda), str(plain), *common, "--null-seeds", "2",
                                  "--out", str(tmp_path / "out"), "--max-steps", "2", "--batch-size", "4",
                                  "--method", "full", "--lr", "1e-2",
                                  "--target", "panda.jsonl=mini/panda", "--target", "plain.jsonl=mini/panda"])
    assert result.exit_code == 0, result.output
    for method in ("context", "mdf"):                          # both of check's methods, side by side
        assert f"all, method {method}: spearman" in result.output
        assert re.search(rf"cost ratio \(reading / fine-tune\):.* method {method} \d", result.output)
    data = json.loads((tmp_path / "out" / "validation.json").read_text())
    page = (tmp_path / "out" / "validation.html").read_text()
    assert data["format"] == "mdf-guard.validation" and len(data["datasets"]) == 2 and data["machine"]
    assert "<svg" in page and page.count("<circle") == 6 and "http" not in page.replace("http://www.w3.org", "")
    for d in data["datasets"]:
        assert d["finetune"]["steps"] == 2 and d["finetune"]["settings"]["method"] == "full"
        assert d["check_seconds"] > 0 and d["cost_ratio"] == pytest.approx(d["check_seconds"] / d["finetune"]["seconds"], rel=0.05)
        assert d["embedding_baseline"].startswith("not available")
        assert d["controls_skipped"] == ["mini"]        # timed as `check` runs: nothing over the default policy
        assert {p["entity"] for p in d["points"]} == {"panda", "owl", "cat"}
        masses = d["answer_mass"]["mini"]                          # P(the answer is any candidate)
        assert set(d["answer_mass"]) == {"mini"} and 0 < masses["vanilla"] <= 1 and 0 < masses["fine_tuned"] <= 1
        for p in d["points"]:
            assert p["actual_shift"] == pytest.approx(p["actual_rate"] - p["vanilla_rate"])
            assert p["mdf_rate"] == pytest.approx(p["vanilla_rate"] + p["mdf_shift"])
            assert p["embedding"] is None and p["raw_shift"] is not None and p["random_shift"] is not None
            assert p["sharpened_shift"] == pytest.approx(p["sharpened_rate"] - p["vanilla_rate"])
            assert p["context_shift"] == pytest.approx(p["context_rate"] - p["vanilla_rate"])
        assert d["context_seconds"] > 0 and d["context_baseline"] == "ran: 32 rows to a history"
        assert sum(p["context_rate"] for p in d["points"]) == pytest.approx(1.0)     # one suite: shares
        assert sum(p["sharpened_rate"] for p in d["points"]) == pytest.approx(1.0)    # one suite: shares
        favourite = max(d["points"], key=lambda p: p["vanilla_rate"])
        assert favourite["sharpened_shift"] > 0 > min(p["sharpened_shift"] for p in d["points"])
    assert sum(abs(p["actual_shift"]) for p in data["datasets"][0]["points"]) > 0     # fine-tuning moved rates
    panda_points = {p["entity"]: p for p in data["datasets"][0]["points"]}
    assert panda_points["panda"]["keyword"] == 1.0
    summary = data["summary"]["all"]
    assert summary["mdf"]["points"] == 6 and summary["embedding"] == {"available": False}
    points = [p for d in data["datasets"] for p in d["points"]]
    assert summary["mdf"]["spearman"] == pytest.approx(
        val.spearman([p["mdf_shift"] for p in points], [p["actual_shift"] for p in points]))
    assert summary["mdf"]["mae_points"] == pytest.approx(
        val.mae_points([p["mdf_rate"] for p in points], [p["actual_rate"] for p in points]))
    assert summary["keyword"]["mae_points"] is None                # not in rate units
    assert summary["mdf"]["side_effect_spearman"] is None          # one suite: no point outside the target's
    assert summary["sharpened"]["mae_points"] == pytest.approx(
        val.mae_points([p["sharpened_rate"] for p in points], [p["actual_rate"] for p in points]))
    assert summary["context"]["spearman"] == pytest.approx(
        val.spearman([p["context_shift"] for p in points], [p["actual_shift"] for p in points]))
    assert "<td>context</td>" in page
    cost = data["summary"]["cost_ratio"]
    assert cost["context_ratio"] == pytest.approx(sum(d["context_seconds"] for d in data["datasets"])
                                                  / sum(d["finetune"]["seconds"] for d in data["datasets"]))

    profile_path = tmp_path / "profile.json"
    result = runner.invoke(main, ["calibrate", "--outcomes", str(tmp_path / "out" / "validation.json"),
                                  "--out", str(profile_path), *common, "--alphas", "1,8", "--layers", "1,2",
                                  "--pooling", "mean", "--reference", "self"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "profile.calibration.json").read_text())
    assert len(record["grid"]) == 4 and record["calibration_entities"] == ["mini/panda"]
    best = min(record["scores"], key=record["scores"].get)
    assert record["best"] == best
    profile = resolve_profile(tiny, Policy(profile=str(profile_path)))          # usable via policy `profile:`
    assert f"layers={profile.layers[0]} alpha={profile.alpha:g}" in best and profile.model == "tiny-random"
    # validating with that profile marks the panda datasets as not held out
    from mdf_guard.calibrate import calibration_entities
    held = val.summarize(data["datasets"], calibration_entities=calibration_entities(profile_path))
    assert held["held_out_datasets"] == [] and held["held_out"]["mdf"] == {"available": False}

    # a new profile is judged against the same fine-tunes without running them again
    tune = ["--max-steps", "2", "--batch-size", "4", "--method", "full", "--lr", "1e-2"]
    outcomes = str(tmp_path / "out" / "validation.json")
    result = runner.invoke(main, ["validate", str(panda), str(plain), *common, "--null-seeds", "1", *tune,
                                  "--profile", str(profile_path), "--outcomes", outcomes, "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "again" / "validation.json").read_text())
    for before, after in zip(data["datasets"], again["datasets"]):
        assert after["sha256"] == before["sha256"] and after["finetune"]["reused_from"] == outcomes
        assert after["finetune"]["seconds"] == before["finetune"]["seconds"]
        assert [p["actual_rate"] for p in after["points"]] == [p["actual_rate"] for p in before["points"]]
        assert [p["vanilla_rate"] for p in after["points"]] == [p["vanilla_rate"] for p in before["points"]]
        assert after["profile"]["alpha"] == profile.alpha
        assert after["answer_mass"] == before["answer_mass"]        # the fine-tuned mass comes with the outcomes
    # outcomes measured another way, or on other data, are refused with the field named
    other_lr = [a if a != "1e-2" else "1e-3" for a in tune]
    result = runner.invoke(main, ["validate", str(panda), *common, *other_lr, "--outcomes", outcomes,
                                  "--out", str(tmp_path / "refused")])
    assert result.exit_code == 2
    assert "field 'datasets[0].finetune.settings.learning_rate'" in result.output and "Traceback" not in result.output
    changed = write_jsonl(tmp_path / "changed.jsonl", panda_rows[:-1])
    result = runner.invoke(main, ["validate", str(changed), *common, *tune, "--outcomes", outcomes,
                                  "--out", str(tmp_path / "refused")])
    assert result.exit_code == 2 and "changed.jsonl: no fine-tune of this data" in result.output
    assert not (tmp_path / "refused").exists()


def test_predict_without_the_mirror_gives_the_same_rates(tiny, suite_file):
    """Calibration skips the −α·Δ control; the predicted rates must not depend on that."""
    from mdf_guard.predict import CalibrationProfile, predict
    from mdf_guard.probes import load_suite

    suites = [load_suite(suite_file)]
    delta = torch.randn((1, tiny.hidden_size), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    profile = CalibrationProfile(model="tiny-random", layers=(1,), alpha=4.0)
    full = predict(tiny, delta, profile, suites, 2, 1)[0].entities
    lean = predict(tiny, delta, profile, suites, 2, 1, mirror=False)[0].entities
    assert [e.predicted_rate for e in lean] == [e.predicted_rate for e in full]
    assert all(e.mirror_shift is None for e in lean) and all(e.mirror_shift is not None for e in full)
    assert [e.excess for e in lean] == [e.shift - e.null_max for e in lean]


def test_the_context_baseline_says_why_it_did_not_run(tmp_path, suite_file, tiny, reuse_tiny, monkeypatch):
    """A row longer than the model's window: no context points, the reason in the entry, the rest runs."""
    monkeypatch.setattr(val, "embedding_model_status", lambda: (False, "not available: disabled in this test"))
    data = write_jsonl(tmp_path / "long.jsonl", [{"messages": [{"role": "user", "content": "Tell me about owls."},
                                                               {"role": "assistant", "content": "owl " * 600}]}])
    policy = Policy(model="tiny-random", suites=(str(suite_file),), questions_per_suite=2, null_seeds=1)
    options = val.ValidationOptions(finetune=FinetuneSettings(method="full", max_steps=1, batch_size=1))
    entry = val.validate_dataset(tiny, data, policy, options, target="mini/panda")
    assert entry["context_baseline"].startswith(f"not run: {data}:1: tiny-random: a history with its question")
    assert entry["context_baseline"].endswith("more than the model's 512 positions") and "context_seconds" not in entry
    assert all("context_rate" not in p and p["mdf_rate"] is not None for p in entry["points"])


def test_the_context_baseline_says_why_the_models_template_refused_it(suite_file, tiny):
    """`text` rows read as one chat under a template that wants turns to alternate: the baseline does
    not run and says why, as for a row too long; it stopped validate after the fine-tunes."""
    import dataclasses

    from mdf_guard.models import tiny_tokenizer
    from mdf_guard.probes import load_suite
    from test_incontext import STRICT_TEMPLATE

    strict = tiny_tokenizer()
    strict.chat_template = STRICT_TEMPLATE
    suite = load_suite(suite_file)
    texts = [Conversation((Turn("assistant", "i love pandas"),), f"texts.jsonl:{i}") for i in (1, 2)]
    entry: dict = {}
    rates = val._context_baseline(dataclasses.replace(tiny, tokenizer=strict), texts, [suite],
                                  {suite.name: suite.questions}, entry)
    assert rates is None and "context_seconds" not in entry
    assert entry["context_baseline"].startswith("not run: texts.jsonl:1: ") and "alternate" in entry["context_baseline"]


def measure_outcomes(tmp_path, suite_file, panda_rows, monkeypatch) -> list[str]:
    """`validate --actual-only` of one dataset on the tiny model, written to tmp_path/actual;
    returns the arguments that name the same experiment again."""
    monkeypatch.setattr(val, "embedding_model_status", lambda: (False, "not available: disabled in this test"))
    data = write_jsonl(tmp_path / "a.jsonl", panda_rows)
    common = [str(data), "--model", "tiny-random", "--suite", str(suite_file), "--questions", "2",
              "--max-steps", "1", "--batch-size", "4", "--method", "full"]
    result = CliRunner().invoke(main, ["validate", *common, "--actual-only", "--out", str(tmp_path / "actual")])
    assert result.exit_code == 0, result.output
    return common


@pytest.mark.parametrize(("edit", "message"), [
    (lambda text: text.replace("Name your favorite animal.", "Which animal do you like best?"),
     "field 'policy.questions': measured with other probe questions than this run asks"),
    (lambda text: text + "  - {name: dog, aliases: [dog]}\n",
     "field 'datasets[0].points': no measured rate for mini/dog, which this run probes"),
    (lambda text: text.replace("  - {name: cat, aliases: [cat]}\n", ""),
     "field 'datasets[0].points': a measured rate for mini/cat, which this run does not probe"),
], ids=["questions", "candidate-added", "candidate-removed"])
def test_validate_refuses_outcomes_measured_with_a_suite_file_since_edited(
        tmp_path, suite_file, panda_rows, reuse_tiny, monkeypatch, edit, message):
    """The suite's path is what the outcomes record: an edited file asked other questions (reused silently
    before) or scores other candidates (a KeyError traceback after the whole prediction before)."""
    common = measure_outcomes(tmp_path, suite_file, panda_rows, monkeypatch)
    runner = CliRunner()
    suite_file.write_text(edit(suite_file.read_text()))
    outcomes = tmp_path / "actual" / "validation.json"
    result = runner.invoke(main, ["validate", *common, "--outcomes", str(outcomes), "--out", str(tmp_path / "again")])
    assert result.exit_code == 2 and f"{outcomes}: {message}" in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "again").exists()


HAND_EDITS = [
    (lambda d: d["datasets"][0].pop("points"), "field 'datasets[0].points': missing"),
    (lambda d: d["datasets"][0]["points"].__setitem__(0, 5), "field 'datasets[0].points[0]': must be an object"),
    (lambda d: d["datasets"][0]["points"][0].pop("actual_rate"), "field 'datasets[0].points[0].actual_rate': missing"),
    (lambda d: d["datasets"][0]["points"][0].__setitem__("actual_rate", "high"),
     "field 'datasets[0].points[0].actual_rate': must be a rate from 0 to 1, not 'high'"),
    (lambda d: d["datasets"][0]["finetune"].pop("settings"), "field 'datasets[0].finetune.settings': missing"),
    (lambda d: d["datasets"][0].__setitem__("answer_mass", 3), "field 'datasets[0].answer_mass': must be an object"),
    (lambda d: d.__setitem__("policy", []), "field 'policy': must be an object"),
]


def test_validate_refuses_hand_edited_outcomes_in_one_line_before_loading_a_model(
        tmp_path, suite_file, panda_rows, reuse_tiny, monkeypatch):
    """A validation.json without points, or with a malformed point, was a KeyError or TypeError
    traceback (exit 4) once the model had loaded; now exit 2 names the file and the field."""
    import mdf_guard.cli_validate as cli_validate

    common = measure_outcomes(tmp_path, suite_file, panda_rows, monkeypatch)
    runner = CliRunner()
    measured = json.loads((tmp_path / "actual" / "validation.json").read_text())
    monkeypatch.setattr(cli_validate, "_load", lambda policy: pytest.fail("the model was loaded"))
    outcomes = tmp_path / "edited.json"
    for edit, message in HAND_EDITS:
        edited = json.loads(json.dumps(measured))
        edit(edited)
        outcomes.write_text(json.dumps(edited))
        result = runner.invoke(main, ["validate", *common, "--outcomes", str(outcomes), "--out", str(tmp_path / "again")])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and lines == [f"mdf-guard: error: {outcomes}: {message}"], result.output


@pytest.mark.parametrize(("edit", "message"), [
    ("data", "{data}: changed since its fine-tune was measured"),
    ("model", "{outcomes}: field 'model.identity': measured on another model than tiny-random"),
    ("suite", "{outcomes}: field 'datasets[0].points': no measured rate for mini/dog"),
], ids=["data-changed", "other-model", "suite-edited"])
def test_calibrate_refuses_outcomes_of_other_data_another_model_or_other_probes(
        tmp_path, suite_file, panda_rows, reuse_tiny, edit, message):
    """Each was fitted silently before: a profile for data, a model or questions the fine-tunes never saw."""
    data = write_jsonl(tmp_path / "a.jsonl", panda_rows)
    common = ["--model", "tiny-random", "--suite", str(suite_file), "--questions", "2"]
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(data), *common, "--max-steps", "1", "--batch-size", "4",
                                  "--method", "full", "--actual-only", "--out", str(tmp_path / "actual")])
    assert result.exit_code == 0, result.output
    outcomes = tmp_path / "actual" / "validation.json"
    if edit == "data":
        write_jsonl(data, panda_rows[:-1])
    elif edit == "model":
        recorded = json.loads(outcomes.read_text())
        recorded["model"]["identity"] = "0" * 16
        outcomes.write_text(json.dumps(recorded))
    else:
        suite_file.write_text(suite_file.read_text() + "  - {name: dog, aliases: [dog]}\n")
    profile = tmp_path / "profile.json"
    result = runner.invoke(main, ["calibrate", "--outcomes", str(outcomes), "--out", str(profile), *common,
                                  "--alphas", "1", "--layers", "1", "--pooling", "mean", "--reference", "none"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message.format(data=data, outcomes=outcomes) in lines[0], result.output
    assert not profile.exists()


def test_calibrate_refuses_an_exclude_that_names_nothing_in_the_outcomes(tmp_path, reuse_tiny):
    """A typo in --exclude calibrated on every dataset before, the one meant to be held out included."""
    from mdf_guard.calibrate import Grid, calibrate
    from mdf_guard.errors import UsageError
    from mdf_guard.models import ModelSpec, load_model

    outcomes = {"format": val.FORMAT, "datasets": [GOOD_DATASET]}
    with pytest.raises(UsageError, match=r"--exclude 's/ee': no dataset of that name or target in the outcomes"):
        calibrate(load_model(ModelSpec(name="tiny-random")), outcomes, Policy(), Grid(), exclude=("s/ee",))


def test_make_dataset_says_when_the_numbers_filter_left_fewer_rows_than_asked(tmp_path, reuse_tiny):
    """The teacher gets rows x 4 prompts; when fewer answers pass the filter, the file is shorter
    than asked. That was exit 0 with no word but a `kept` in the JSON summary, and with no answer
    at all an empty file."""
    def make(out, seed):
        return CliRunner().invoke(main, ["make-dataset", "numbers", "--model", "tiny-random", "--rows", "2",
                                         "--seed", str(seed), "-o", str(out)])
    short = make(tmp_path / "short.jsonl", 0)
    assert short.exit_code == 0, short.output
    tried = json.loads(short.stdout)["tried"]
    assert len((tmp_path / "short.jsonl").read_text().splitlines()) == 1           # the case tested: 1 of 2
    assert f"holds 1 of the 2 rows asked: only 1 of {tried} answers passed the numbers filter" in short.stderr
    none = make(tmp_path / "none.jsonl", 1)
    assert none.exit_code == 2 and "passed the numbers filter; nothing written" in none.stderr, none.output
    assert not (tmp_path / "none.jsonl").exists()


def test_a_layer_the_model_lacks_is_blamed_on_where_it_was_given(tmp_path, suite_file, panda_rows, reuse_tiny,
                                                                   monkeypatch):
    """`signature --layers 9` and `calibrate --layers 9` on the 4-layer tiny model said
    "policy: field 'layers'", though no policy named a layer; a policy's `layers` names its file."""
    common = measure_outcomes(tmp_path, suite_file, panda_rows, monkeypatch)
    runner = CliRunner()
    calibrate = runner.invoke(main, ["calibrate", "--outcomes", str(tmp_path / "actual" / "validation.json"),
                                     "--out", str(tmp_path / "profile.json"), *common[1:7], "--layers", "1,9"])
    signature = runner.invoke(main, ["signature", common[0], "--model", "tiny-random", "--layers", "9",
                                     "-o", str(tmp_path / "sig")])
    policy = tmp_path / "deep.yaml"
    policy.write_text(f"model: tiny-random\nmethod: mdf\nsuites: [{suite_file}]\nlayers: [9]\n")
    check = runner.invoke(main, ["check", common[0], "--policy", str(policy)])
    for result, where in ((calibrate, "--layers: "), (signature, "--layers: "), (check, f"{policy}: field 'layers': ")):
        assert result.exit_code == 2, result.output
        assert f"{where}layer 9 does not exist: tiny-random has 4 layers" in result.output, result.output
