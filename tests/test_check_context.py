"""`check` under `method: context` on the tiny model: the rows read in context, the reference as the control."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import chat, write_jsonl
from mdf_guard import incontext
from mdf_guard.cli import main
from mdf_guard.data import read_conversations
from mdf_guard.probes import load_suite
from mdf_guard.scoring import score_exact

CONTEXT_POLICY = """\
model: tiny-random
method: context
suites: [{suite}]
questions_per_suite: 2
reference_samples: {samples}
thresholds: {{max_shift: {max_shift}, min_excess: {min_excess}, min_odds_ratio: 1}}
"""


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def policy_text(suite_file, max_shift=0.0, min_excess=0.0, samples=4) -> str:
    return CONTEXT_POLICY.format(suite=suite_file, max_shift=max_shift, min_excess=min_excess, samples=samples)


def policy_file(tmp_path, suite_file, max_shift=0.0, min_excess=0.0, samples=4, extra: str = "") -> str:
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(policy_text(suite_file, max_shift, min_excess, samples) + extra)
    return str(path)


def json_check(*args: str) -> tuple[int, dict]:
    code, out, err = run_cli("check", *args, "--format", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


def test_shift_is_against_the_vanilla_model_and_the_control_is_the_reference_read_the_same_way(
        tmp_path, tiny, suite_file, panda_rows, plain_rows, single_torch_thread):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    reference = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    _, report = json_check(str(data), "--policy", policy_file(tmp_path, suite_file), "--reference", str(reference))
    assert report["settings"]["method"] == "context"
    assert report["settings"]["rows_per_history"] == incontext.CHUNK_ROWS
    assert report["files"][0]["examples"] == 6 and report["reference"]["kind"] == "file"
    assert report["reference"]["examples"] == 6 and "profile" not in report["settings"]

    lm, suite = tiny, load_suite(suite_file)
    questions = {suite.name: suite.questions[:2]}
    vanilla = score_exact(lm, suite, questions[suite.name]).rates
    after = incontext.context_rates(lm, list(read_conversations(data)), [suite], questions)
    control = incontext.context_rates(lm, list(read_conversations(reference)), [suite], questions)
    for finding in report["findings"]:
        i = [c.name for c in suite.candidates].index(finding["entity"])
        key = (suite.name, finding["entity"])
        assert finding["vanilla_rate"] == pytest.approx(float(vanilla[i]), abs=1e-9)
        assert finding["shift"] == pytest.approx(after[key] - float(vanilla[i]), abs=1e-9)
        assert finding["null_max"] == pytest.approx(control[key] - float(vanilla[i]), abs=1e-9)
        assert finding["excess"] == pytest.approx(after[key] - control[key], abs=1e-9)
        assert finding["mirror_shift"] is None
    assert any(abs(f["excess"]) > 1e-4 for f in report["findings"])   # the two files do read differently


def test_against_a_copy_of_itself_nothing_clears_the_control(tmp_path, suite_file, panda_rows, single_torch_thread):
    """Every shift over policy, yet the reference lifts each candidate exactly as much: pass."""
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    same = write_jsonl(tmp_path / "copy.jsonl", panda_rows)
    code, report = json_check(str(data), "--policy", policy_file(tmp_path, suite_file, min_excess=0.001),
                              "--reference", str(same))
    assert code == 0 and report["verdict"] == "pass"
    assert all(abs(f["excess"]) < 1e-12 for f in report["findings"])
    over = [f for f in report["findings"] if f["shift"] > 0]
    assert over and all("the reference's rows in context lift it" in f["reason"] for f in over)


def test_the_thresholds_decide_and_the_reports_name_the_reference_as_the_control(
        tmp_path, suite_file, panda_rows, single_torch_thread):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    strict = policy_file(tmp_path, suite_file, max_shift=0.0, min_excess=-1, extra="reference: none\n")
    code, out, _ = run_cli("check", str(data), "--policy", strict)
    assert code == 1 and "RISK" in out and "reference" in out.splitlines()[3]
    header, row = out.splitlines()[3:5]                         # no empty mirror column between them
    assert header.index("verdict") == row.rindex(" ") + 1 and header.endswith("reference  verdict")
    code, report = json_check(str(data), "--policy", strict)      # min_excess -1: the control cannot matter
    assert report["reference"] == {"kind": "none", "examples": 0} and report["suites"][0]["controls_skipped"]
    assert all(f["null_max"] is None for f in report["findings"])
    with_control = policy_file(tmp_path, suite_file, max_shift=0.0, min_excess=0.0, extra="reference: none\n")
    _, report = json_check(str(data), "--policy", with_control)
    assert all(f["null_max"] == 0.0 and f["excess"] == f["shift"] for f in report["findings"])
    markdown = run_cli("check", str(data), "--policy", strict, "--format", "markdown")[1]
    assert "| shift | reference |" in markdown and "the rows read in context, 32 to a history" in markdown
    lax = tmp_path / "lax.yaml"
    lax.write_text(policy_text(suite_file, max_shift=1.0))
    code, report = json_check(str(data), "--policy", str(lax))
    assert code == 0
    assert report["reference"] == {"kind": "self", "examples": 0, "skipped": "no candidate over policy"}
    assert report["suites"][0]["controls_skipped"] and all(f["null_max"] is None for f in report["findings"])


def test_a_missing_reference_file_is_an_error_even_where_no_suite_would_read_it(tmp_path, suite_file, plain_rows):
    """The context check reads a reference only for a suite with a candidate over policy: under a lax
    policy none is, and a typo in the path would pass unseen until a risky file came along."""
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    lax = tmp_path / "lax.yaml"
    lax.write_text(policy_text(suite_file, max_shift=1.0))
    assert json_check(str(data), "--policy", str(lax))[1]["reference"]["skipped"] == "no candidate over policy"
    missing = tmp_path / "referense.jsonl"
    code, _, err = run_cli("check", str(data), "--policy", str(lax), "--reference", str(missing))
    assert code == 2 and err.strip() == f"mdf-guard: error: {missing}: no such file or folder", err


def test_self_reference_answers_a_sample_and_a_rerun_gives_the_same_report(
        tmp_path, suite_file, panda_rows, single_torch_thread, monkeypatch):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    policy = policy_file(tmp_path, suite_file)
    _, first = json_check(str(data), "--policy", policy)
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "fresh-cache"))   # recompute, don't replay
    _, second = json_check(str(data), "--policy", policy)
    assert first["reference"]["kind"] == "self" and first["reference"]["examples"] == 4
    for report in (first, second):
        report.pop("timing")
    assert first == second


@pytest.mark.parametrize("extra, field", [("layers: [1]\n", "layers"), ("pooling: mean\n", "pooling")])
def test_mdf_only_keys_under_method_context_are_one_line_errors(tmp_path, suite_file, panda_rows, extra, field):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    code, _, err = run_cli("check", str(data), "--policy", policy_file(tmp_path, suite_file, extra=extra))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert field in err and "applies to method mdf only" in err


def test_an_unknown_method_is_a_one_line_error(tmp_path, suite_file, panda_rows):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    path = tmp_path / "bad.yaml"
    path.write_text(policy_text(suite_file).replace("method: context", "method: icl"))
    code, _, err = run_cli("check", str(data), "--policy", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "method" in err and "mdf, context" in err


def test_the_self_reference_samples_each_file_in_proportion_to_its_rows(
        tmp_path, suite_file, panda_rows, plain_rows, single_torch_thread):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", panda_rows)                     # 6 rows
    write_jsonl(folder / "b.jsonl", plain_rows[:2])                 # 2 rows
    policy = policy_file(tmp_path, suite_file, samples=8)
    _, report = json_check(str(folder), "--policy", policy)
    assert [f["examples"] for f in report["files"]] == [6, 2]
    assert report["reference"]["examples"] == 6 + 2                  # ceil(8 * 6/8) + ceil(8 * 2/8)


def test_context_is_the_default_method_and_mdf_is_one_option_away(tmp_path, suite_file, panda_rows,
                                                                  single_torch_thread):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    plain = tmp_path / "plain.yaml"
    plain.write_text(policy_text(suite_file).replace("method: context\n", ""))
    _, report = json_check(str(data), "--policy", str(plain))
    assert report["settings"]["method"] == "context" and report["reference"]["kind"] == "self"
    assert "profile" not in report["settings"]                       # `reference: profile` means self here
    _, report = json_check(str(data), "--policy", str(plain), "--method", "mdf")
    assert report["settings"]["method"] == "mdf" and report["settings"]["profile"]["layers"]
    tuned = tmp_path / "tuned.yaml"                                    # a policy written for MDF
    tuned.write_text(plain.read_text() + "layers: [1]\n")
    code, _, err = run_cli("check", str(data), "--policy", str(tuned))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "add `method: mdf`" in err
    code, _, err = run_cli("check", str(data), "--policy", policy_file(tmp_path, suite_file, extra="layers: [1]\n"),
                           "--method", "context")
    assert code == 2 and "field 'layers'" in err                     # an override is checked like the file


def test_each_files_reading_is_cached_so_a_one_file_change_reads_that_file_again(
        tmp_path, tiny, suite_file, panda_rows, plain_rows, single_torch_thread, monkeypatch):
    """`run_check` itself (the CLI would replay the whole report from repo_check's result cache)."""
    from mdf_guard.check import run_check
    from mdf_guard.policy import load_policy

    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", panda_rows)
    write_jsonl(folder / "b.jsonl", plain_rows)
    policy = load_policy(tmp_path / policy_file(tmp_path, suite_file, extra="reference: none\n"))

    def check() -> dict:
        return run_check([folder], policy, lm=tiny).to_dict()

    first, again = check(), check()
    assert [f["cached"] for f in first["files"]] == [False, False]
    assert [f["cached"] for f in again["files"]] == [True, True] and again["findings"] == first["findings"]
    write_jsonl(folder / "b.jsonl", plain_rows[:3])
    edited = check()
    assert [f["cached"] for f in edited["files"]] == [True, False] and edited["findings"] != first["findings"]
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "fresh-cache"))   # the cache changes no number
    fresh = check()
    assert [f["cached"] for f in fresh["files"]] == [False, False] and fresh["findings"] == edited["findings"]


def test_a_row_too_long_for_the_model_is_one_line_naming_it_and_the_method_that_reads_it(tmp_path, suite_file,
                                                                                          panda_rows):
    from conftest import chat

    data = write_jsonl(tmp_path / "long.jsonl", panda_rows[:2] + [chat("Tell me about owls.", "owl " * 600)])
    code, _, err = run_cli("check", str(data), "--policy", policy_file(tmp_path, suite_file))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{data}:3:" in err and "512 positions" in err and "`--method mdf` reads a row" in err


def test_early_stop_reads_a_sample_of_each_file_says_so_and_weighs_it_by_the_file_s_rows(
        tmp_path, tiny, suite_file, panda_rows, single_torch_thread):
    big = write_jsonl(tmp_path / "big.jsonl", [chat(f"Tell me about subject {i}.", f"Subject {i} has a long history.")
                                               for i in range(160)])
    small = write_jsonl(tmp_path / "small.jsonl", panda_rows)
    policy = policy_file(tmp_path, suite_file, extra="early_stop: 1.0\nreference: none\n")
    _, report = json_check(str(big), str(small), "--policy", policy)
    suite = load_suite(suite_file)
    questions = {suite.name: suite.questions[:2]}
    readings = [incontext.read_in_context(tiny, list(read_conversations(path)), [suite], questions, 1.0, 0)
                for path in (big, small)]
    assert [(f["examples"], f["rows"]) for f in report["files"]] == [(r.read, r.rows) for r in readings]
    assert readings[0].read < 160 and readings[1].read == 6
    assert report["settings"]["early_stop"] == 1.0 and report["settings"]["seed"] == 0
    # The big file's sample counts as the histories the whole file would give at its rows per history.
    big_mean, small_sums = readings[0].scores(suite).probs, readings[1].sums[suite.name]
    weight = len(readings[0].windows) * 160 / readings[0].read
    mixed = (big_mean * weight + small_sums) / (weight + len(readings[1].windows))
    rates = (mixed / mixed.sum(dim=1, keepdim=True)).mean(dim=0)
    vanilla = score_exact(tiny, suite, questions[suite.name]).rates
    for finding in report["findings"]:
        i = [c.name for c in suite.candidates].index(finding["entity"])
        assert finding["shift"] == pytest.approx(float(rates[i] - vanilla[i]), abs=1e-9)
    text = run_cli("check", str(big), str(small), "--policy", policy)[1]
    assert f"{readings[0].read + 6} of 166 examples read (early stop)" in text


def test_a_row_past_a_local_gpt2_models_positions_is_one_line_under_both_methods(tmp_path, short_gpt2, suite_file):
    """A model folder with 64 learned positions: a long row is refused in context in one line that
    says what `--method mdf` reads instead (the row's last 64 tokens, not 1,024), and mdf reads it."""
    short_gpt2.model.save_pretrained(tmp_path / "gpt2")
    short_gpt2.tokenizer.save_pretrained(tmp_path / "gpt2")
    data = tmp_path / "long.jsonl"
    write_jsonl(data, [chat(f"hi {i}", "the owl is nice " * 30) for i in range(4)])
    base = ["check", str(data), "--model", str(tmp_path / "gpt2"), "--suite", str(suite_file), "--questions", "1"]
    context = CliRunner().invoke(main, base)
    assert context.exit_code == 2 and "more than the model's 64 positions" in context.stderr, context.output
    assert "`--method mdf` reads a row cut to its last 64 tokens" in context.stderr
    mdf = CliRunner().invoke(main, [*base, "--method", "mdf"])
    assert mdf.exit_code in (0, 3) and "error" not in mdf.stderr, mdf.output
