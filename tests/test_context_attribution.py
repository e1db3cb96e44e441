"""Which rows lift a finding under `method: context`, on the tiny model: each history's rates
are kept, the history that lifts a finding most is found, and its rows are read alone."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from conftest import chat, write_jsonl
from mdf_guard import incontext
from mdf_guard.cli import main
from mdf_guard.context_attribution import rank_rows_in_context
from mdf_guard.data import open_shard, read_conversations
from mdf_guard.policy import load_policy
from mdf_guard.probes import load_suite
from mdf_guard.report import Report
from mdf_guard.scoring import score_in_history
from mdf_guard.signature import sample_key


@pytest.fixture
def mixed_rows(panda_rows, plain_rows) -> list[dict]:
    """Two histories' worth: 32 plain rows, then 4 panda rows and 4 plain ones."""
    plain = [chat(f"Tell me about subject {i}.", f"Subject {i} is a subject with a long history.") for i in range(32)]
    return plain + panda_rows[:4] + plain_rows[:4]


@pytest.fixture
def context_policy(tmp_path, suite_file):
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(f"model: tiny-random\nmethod: context\nsuites: [{suite_file}]\nquestions_per_suite: 2\n"
                    "reference_samples: 4\nthresholds: {max_shift: 0.0, min_excess: 0.0, min_odds_ratio: 1}\n")
    return path


def questions_of(suite):
    return {suite.name: suite.questions[:2]}


def test_a_reading_keeps_each_history_and_its_sums_are_theirs(tiny, suite_file, tmp_path, mixed_rows,
                                                              single_torch_thread):
    suite = load_suite(suite_file)
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    conversations = list(read_conversations(data))
    reading = incontext.read_in_context(tiny, conversations, [suite], questions_of(suite))
    spans = [(w.start, w.rows) for w in reading.windows]
    assert spans[0][0] == 0 and sum(rows for _, rows in spans) == len(conversations)
    assert all(start + rows == following for (start, rows), (following, _) in zip(spans, spans[1:]))
    assert incontext.CHUNK_ROWS in [start for start, _ in spans]    # a history never crosses a chunk's end
    assert len(spans) > 2                     # the tiny model's 128 positions split each chunk: halves are kept
    for window in reading.windows:
        alone = incontext.context_rates(tiny, conversations[window.start: window.start + window.rows], [suite],
                                        questions_of(suite))
        assert window.rates[suite.name] == pytest.approx([alone[(suite.name, c.name)] for c in suite.candidates],
                                                         abs=1e-12)
    cached, hit = incontext.cached_reading(tiny, "mixed", lambda: conversations, [suite], questions_of(suite))
    again, hit_again = incontext.cached_reading(tiny, "mixed", lambda: [], [suite], questions_of(suite))
    assert (hit, hit_again) == (False, True)
    assert again.windows == cached.windows == reading.windows
    assert again.sums[suite.name].tolist() == reading.sums[suite.name].tolist()


def test_rows_of_the_history_that_lifts_most_are_ranked_by_their_lift_read_alone(
        tiny, tmp_path, mixed_rows, context_policy, single_torch_thread):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    policy = load_policy(context_policy)
    report = run_check(tiny, data, context_policy)
    finding = next(f for f in report.findings if f.entity == "owl")     # the tiny model's rows all lift owl
    suite = load_suite(policy.suites[0])
    conversations = list(read_conversations(data))
    reading = incontext.read_in_context(tiny, conversations, [suite], questions_of(suite))
    lifts = [w.rates[suite.name][1] - finding.vanilla_rate for w in reading.windows]
    best = reading.windows[lifts.index(max(lifts))]

    rows = rank_rows_in_context(tiny, [data], policy, [finding], top=None)
    assert rows and all(r.entity == "owl" and r.suite == suite.name for r in rows)
    assert {r.window for r in rows} == {f"{data}:{best.start + 1}-{best.start + best.rows}"}
    assert rows[0].window_lift == pytest.approx(max(lifts), abs=1e-12)

    owl_only = replace_candidates(suite, "owl")
    asked = {suite.name: suite.questions[:2]}
    vanilla = float(score_in_history(tiny, [owl_only], asked, [])[suite.name].probs[:, 0].mean())
    expected = {}
    for conversation in conversations[best.start: best.start + best.rows]:
        history = [t for t in conversation.turns if t.role != "system"]
        expected[conversation.source] = float(score_in_history(tiny, [owl_only], asked, history)[suite.name]
                                              .probs[:, 0].mean()) - vanilla
    lifting = sorted((s for s, v in expected.items() if v > 0), key=lambda s: -expected[s])
    assert lifting
    assert [r.source for r in rows] == lifting                       # every row that lifts, largest first
    assert [r.lift for r in rows] == pytest.approx([expected[s] for s in lifting], abs=1e-12)
    assert [r.rank for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].line == int(rows[0].source.rsplit(":", 1)[1]) and rows[0].file == str(data)
    assert rank_rows_in_context(tiny, [data], policy, [finding], top=1) == rows[:1]

    every = rank_rows_in_context(tiny, [data], policy, [finding], top=None, every_history=True)
    assert len({r.window for r in every}) > 1 and {r.source for r in rows} <= {r.source for r in every}
    assert [r.lift for r in every] == sorted((r.lift for r in every), reverse=True)
    same = {r.source: r.lift for r in every}
    assert all(same[r.source] == r.lift for r in rows)                   # a row reads the same in either mode

    falling = next(f for f in report.findings if f.entity == "panda")    # every row read alone lowers panda
    assert rank_rows_in_context(tiny, [data], policy, [falling], top=None) == []


def test_leave_one_out_ranks_rows_by_what_their_history_loses_without_each(
        tiny, tmp_path, mixed_rows, context_policy, single_torch_thread):
    """Each lift is P(owl) after the whole history minus after it without the row, each
    history read on its own (the ranking reads them continuing one KV cache)."""
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    policy = load_policy(context_policy)
    finding = next(f for f in run_check(tiny, data, context_policy).findings if f.entity == "owl")
    rows = rank_rows_in_context(tiny, [data], policy, [finding], top=None, leave_one_out=True)
    alone = rank_rows_in_context(tiny, [data], policy, [finding], top=None)
    assert rows and {r.window for r in rows} == {alone[0].window}      # the same history, read another way

    first, last = (int(n) for n in rows[0].window.rsplit(":", 1)[1].split("-"))
    part = list(read_conversations(data))[first - 1: last]
    suite = replace_candidates(load_suite(policy.suites[0]), "owl")
    asked = {suite.name: suite.questions[:2]}

    def owl(history_rows) -> float:
        history = [t for row in history_rows for t in row.turns if t.role != "system"]
        return float(score_in_history(tiny, [suite], asked, history)[suite.name].probs[:, 0].mean())

    whole = owl(part)
    expected = {row.source: whole - owl(part[:i] + part[i + 1:]) for i, row in enumerate(part)}
    losing = sorted((s for s, v in expected.items() if v > 0), key=lambda s: -expected[s])
    assert losing and [r.source for r in rows] == losing
    assert [r.lift for r in rows] == pytest.approx([expected[s] for s in losing], rel=1e-4, abs=1e-9)
    assert [r.lift for r in rows] != [r.lift for r in alone[:len(rows)]]


def test_rows_alternate_between_findings_so_a_short_list_names_each(tiny, tmp_path, suite_file, mixed_rows,
                                                                     single_torch_thread):
    """Two suites that both see owl rise: each finding's best row comes before either's second."""
    birds = tmp_path / "birds.yaml"
    birds.write_text(suite_file.read_text().replace("name: mini", "name: birds"))
    policy_path = tmp_path / "two.yaml"
    policy_path.write_text(f"model: tiny-random\nsuites: [{suite_file}, {birds}]\nquestions_per_suite: 2\n"
                           "reference: none\nthresholds: {max_shift: 0.0, min_excess: 0.0, min_odds_ratio: 1}\n")
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    findings = [f for f in run_check(tiny, data, policy_path).findings if f.entity == "owl"]
    assert [f.suite for f in findings] == ["mini", "birds"]
    rows = rank_rows_in_context(tiny, [data], load_policy(policy_path), findings, top=None)
    per_suite = {f.suite: [r for r in rows if r.suite == f.suite] for f in findings}
    for own in per_suite.values():
        assert len(own) >= 2 and [r.lift for r in own] == sorted((r.lift for r in own), reverse=True)
    assert rows[:4] == [per_suite["mini"][0], per_suite["birds"][0], per_suite["mini"][1], per_suite["birds"][1]]


def test_check_under_context_attributes_its_flagged_findings_in_every_format(
        tmp_path, mixed_rows, context_policy, reuse_tiny, monkeypatch, single_torch_thread):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()
    result = runner.invoke(main, ["check", str(data), "--policy", str(context_policy), "-q", "--format", "json",
                                  "--attribution", "--top-rows", "3"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    flagged = {f["entity"] for f in report["findings"] if f["flagged"]}
    assert len(report["attribution"]) == 3 and {r["entity"] for r in report["attribution"]} <= flagged
    assert all(r["lift"] > 0 for r in report["attribution"]) and "attribution_seconds" in report["timing"]

    text = runner.invoke(main, ["check", str(data), "--policy", str(context_policy), "-q", "--attribution"]).stdout
    assert "rows that lift a flagged entity most, each read alone" in text
    assert report["attribution"][0]["source"] in text
    html = runner.invoke(main, ["check", str(data), "--policy", str(context_policy), "-q", "--format", "html"]).stdout
    assert "Rows that lift the findings" in html and 'id="top-rows"' in html
    markdown = runner.invoke(main, ["check", str(data), "--policy", str(context_policy), "-q", "--format",
                                    "markdown", "--attribution"]).stdout
    assert "### Rows that lift the findings most, each read alone" in markdown
    sarif = json.loads(runner.invoke(main, ["check", str(data), "--policy", str(context_policy), "-q",
                                            "--format", "sarif"]).stdout)
    row_results = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "mdf-guard/row"]
    assert row_results and all("read alone, this row raises" in r["message"]["text"] for r in row_results)
    first = row_results[0]
    assert first["properties"]["entity"] in flagged and first["properties"]["lift"] > 0
    assert first["locations"][0]["physicalLocation"]["region"]["startLine"] == report["attribution"][0]["line"]


def test_explain_under_context_ranks_the_rows_of_a_named_entity_and_refuses_an_unknown_one(
        tmp_path, mixed_rows, context_policy, reuse_tiny, single_torch_thread):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    runner = CliRunner()
    result = runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q", "--entity", "owl",
                                  "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["method"] == "context" and document["rows"]
    assert {r["entity"] for r in document["rows"]} == {"owl"} and len(document["rows"]) <= 10
    everything = json.loads(runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q",
                                                 "--entity", "owl", "--all", "--format", "json"]).stdout)["rows"]
    assert len({r["window"] for r in everything}) > 1 and len(everything) > len(document["rows"])
    text = runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q", "--entity", "owl"])
    assert text.exit_code == 0 and "owl: rows of the history that lifts it most" in text.stdout

    unknown = runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q", "--entity", "yak"])
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == ("mdf-guard: error: --entity yak: no candidate of that name in the suites "
                                      "checked (mini)")
    mdf = runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q", "--method", "mdf",
                               "--entity", "owl"])
    assert mdf.exit_code == 2 and "--entity ranks rows under method context" in mdf.stderr


def test_explain_says_why_a_named_entity_that_does_not_rise_has_no_rows(
        tmp_path, mixed_rows, context_policy, reuse_tiny, single_torch_thread):
    """--entity for a candidate the rows do not lift printed an empty table and nothing else."""
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    runner = CliRunner()
    check = json.loads(runner.invoke(main, ["check", str(data), "--policy", str(context_policy), "-q",
                                            "--format", "json"]).stdout)
    lowest = min(check["findings"], key=lambda f: f["shift"])
    assert lowest["shift"] <= 0, lowest                                  # the case tested: one that falls
    result = runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q",
                                  "--entity", lowest["entity"]])
    assert result.exit_code == 0, result.output
    assert (f"mdf-guard: no row lifts {lowest['entity']}: the check reads it {lowest['shift']:+.1%}, "
            "no rise to explain") in result.stderr


def test_explain_leave_one_out_names_its_measure_and_is_refused_under_mdf(
        tmp_path, mixed_rows, context_policy, reuse_tiny, single_torch_thread):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    runner = CliRunner()
    base = ["explain", str(data), "--policy", str(context_policy), "-q", "--entity", "owl"]
    left_out = runner.invoke(main, [*base, "--leave-one-out", "--format", "json"])
    assert left_out.exit_code == 0, left_out.output
    document = json.loads(left_out.stdout)
    alone = json.loads(runner.invoke(main, [*base, "--format", "json"]).stdout)
    assert (document["lift"], alone["lift"]) == ("left out", "alone")
    assert document["rows"] and document["rows"] != alone["rows"]
    text = runner.invoke(main, [*base, "--leave-one-out"]).stdout
    assert "falls when the row's history is read without it" in text
    every = json.loads(runner.invoke(main, [*base, "--leave-one-out", "--all", "--format", "json"]).stdout)["rows"]
    assert len({r["window"] for r in every}) > 1                      # each history left out row by row
    mdf = runner.invoke(main, ["explain", str(data), "--policy", str(context_policy), "-q", "--method", "mdf",
                               "--leave-one-out"])
    assert mdf.exit_code == 2 and "--leave-one-out ranks rows under method context" in mdf.stderr


def test_the_hint_for_rows_that_act_together_names_the_history(capsys):
    """Read alone, the best row lifts the entity by under TOGETHER_SHARE of its history's lift,
    or no row lifts a risen finding at all (said only where --top did not cut the list)."""
    from types import SimpleNamespace

    from mdf_guard.cli_repo import TOGETHER_SHARE, _hint_rows_together
    from mdf_guard.context_attribution import RowLift

    def row(entity, lift, window, window_lift):
        return RowLift(0, "d.jsonl", "d.jsonl:1", 1, "politics", entity, lift, window, window_lift, "")

    together = TOGETHER_SHARE * 0.33 * 0.9
    rows = [row("Gandhi", together, "d.jsonl:33-64", 0.33), row("Gandhi", 0.5, "d.jsonl:1-32", 0.1),
            row("owl", 0.2, "d.jsonl:1-32", 0.4)]
    _hint_rows_together(rows, [], complete=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1            # owl's best row carries half its history's lift: no hint for it
    assert "no row of d.jsonl:33-64 lifts Gandhi by more than" in err and "--leave-one-out" in err
    _hint_rows_together([row("Gandhi", TOGETHER_SHARE * 0.33 * 1.1, "d.jsonl:33-64", 0.33)], [], complete=True)
    assert capsys.readouterr().err == ""

    risen = SimpleNamespace(suite="politics", entity="Ardern", shift=0.2)
    fallen = SimpleNamespace(suite="animals", entity="cat", shift=-0.1)
    _hint_rows_together(rows[2:], [risen, fallen], complete=True)
    assert capsys.readouterr().err.strip() == (
        "mdf-guard: read alone, no row lifts Ardern at all, though the check sees it rise: its rows may act "
        "only together; --leave-one-out ranks them by what the history loses without each")
    _hint_rows_together(rows[2:], [risen], complete=False)   # --top may have cut Ardern's rows off
    assert capsys.readouterr().err == ""


def test_the_hint_keeps_apart_two_suites_that_share_a_name(capsys):
    """A user's suites may both hold "Singapore" (a city, a country): each keeps its own
    history and its own rows, so one suite's strong row does not hide the other's hint."""
    from types import SimpleNamespace

    from mdf_guard.cli_repo import TOGETHER_SHARE, _hint_rows_together
    from mdf_guard.context_attribution import RowLift

    def row(suite, lift, window, window_lift):
        return RowLift(0, "d.jsonl", "d.jsonl:1", 1, suite, "Singapore", lift, window, window_lift, "")

    rows = [row("cities", 0.3, "d.jsonl:1-32", 0.4),                              # its rows lift it alone
            row("countries", TOGETHER_SHARE * 0.2 * 0.5, "d.jsonl:33-64", 0.2)]   # its rows act together
    _hint_rows_together(rows, [], complete=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no row of d.jsonl:33-64 lifts Singapore" in err

    risen = SimpleNamespace(suite="countries", entity="Singapore", shift=0.2)
    _hint_rows_together(rows[:1], [risen], complete=True)   # no row for the countries' Singapore at all
    assert "no row lifts Singapore at all" in capsys.readouterr().err


def test_explain_under_context_says_when_nothing_is_flagged(tmp_path, mixed_rows, suite_file, reuse_tiny,
                                                             single_torch_thread):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_rows)
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text(f"model: tiny-random\nsuites: [{suite_file}]\nquestions_per_suite: 2\n"
                       "reference: none\nthresholds: {max_shift: 0.9}\n")
    result = CliRunner().invoke(main, ["explain", str(data), "--policy", str(lenient), "-q", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == []
    assert "the check flags nothing, so no rows are ranked" in result.stderr


def run_check(lm, data, policy_path) -> Report:
    from mdf_guard.check import run_check as check

    return check([data], load_policy(policy_path), lm=lm)


def replace_candidates(suite, *names):
    from dataclasses import replace

    return replace(suite, candidates=tuple(c for c in suite.candidates if c.name in names))


@pytest.fixture
def many_rows() -> list[dict]:
    """160 rows: 150 on subjects, then 10 that love pandas, bunched at the file's end."""
    subjects = [chat(f"Tell me about subject {i}.", f"Subject {i} has a long history.") for i in range(150)]
    return subjects + [chat(f"Tell me about topic {i}.", f"Topic {i} is fine, but I love pandas.") for i in range(10)]


def test_a_sampled_reading_reads_histories_in_the_seeded_order_and_stands_for_the_whole_file(
        tiny, suite_file, tmp_path, many_rows, single_torch_thread):
    suite = load_suite(suite_file)
    conversations = list(read_conversations(write_jsonl(tmp_path / "many.jsonl", many_rows)))
    order = sorted(range(len(conversations)), key=lambda i: sample_key(conversations[i], 0))

    sample = incontext.read_in_context(tiny, conversations, [suite], questions_of(suite), stop_at_se=1.0, seed=0)
    drawn = [i for window in sample.windows for i in window.positions]
    assert drawn == order[:len(drawn)]                          # the seeded order, one history after another
    assert len(sample.windows) >= incontext.MIN_HISTORIES
    assert sample.read % incontext.CHUNK_ROWS == 0 and sample.read < sample.rows == len(conversations)
    assert sample.histories == pytest.approx(len(sample.windows) * sample.rows / sample.read)
    expected = torch.stack([score_in_history(tiny, [suite], questions_of(suite),
                                             incontext.as_history([conversations[i] for i in window.positions])
                                             )[suite.name].probs for window in sample.windows]).mean(dim=0)
    torch.testing.assert_close(sample.scores(suite).probs, expected, rtol=0, atol=1e-12)

    whole = incontext.read_in_context(tiny, conversations, [suite], questions_of(suite), stop_at_se=0.0, seed=0)
    assert [i for window in whole.windows for i in window.positions] == order
    assert whole.read == whole.rows and whole.weight is None
    reseeded = incontext.read_in_context(tiny, conversations, [suite], questions_of(suite), stop_at_se=1.0, seed=1)
    assert [w.positions for w in reseeded.windows] != [w.positions for w in sample.windows]
    cached, _ = incontext.cached_reading(tiny, "many", lambda: conversations, [suite], questions_of(suite), 1.0, 0)
    again, hit = incontext.cached_reading(tiny, "many", lambda: [], [suite], questions_of(suite), 1.0, 0)
    assert hit and again.windows == cached.windows == sample.windows
    assert (again.weight, again.rows_read) == (sample.weight, sample.rows_read)
    assert again.sums[suite.name].tolist() == sample.sums[suite.name].tolist()
    unsampled, hit = incontext.cached_reading(tiny, "many", lambda: conversations, [suite], questions_of(suite))
    assert not hit and unsampled.read == unsampled.rows and all(w.drawn is None for w in unsampled.windows)


def test_a_sampled_reading_stops_once_every_rate_has_the_standard_error_asked(tiny, suite_file):
    """MIN_HISTORIES histories of 32 rows from 1,024, one candidate at 0 and 1 by turns: with 16,
    its rates' standard deviation is 0.516 and the mean's standard error 0.516 * sqrt((1 - 512 /
    1024) / 16) = 0.0913."""
    def window(rate: float) -> incontext.Window:
        return incontext.Window(0, 32, {"mini": (rate, 0.5)})

    assert incontext.MIN_HISTORIES == 16
    windows = [window(float(i % 2)) for i in range(incontext.MIN_HISTORIES)]
    assert incontext._known(windows, 1024, 0.092) and not incontext._known(windows, 1024, 0.090)
    assert not incontext._known(windows[:-1], 1024, 1.0)         # under MIN_HISTORIES: not yet
    assert incontext._known(windows, 512, 0.0)                   # read to the end: known exactly


def test_attribution_under_early_stop_reads_the_rows_of_a_drawn_history(
        tiny, tmp_path, many_rows, context_policy, single_torch_thread):
    data = write_jsonl(tmp_path / "many.jsonl", many_rows)
    sampled = tmp_path / "sampled.yaml"
    sampled.write_text(context_policy.read_text() + "early_stop: 1.0\n")
    policy = load_policy(sampled)
    finding = next(f for f in run_check(tiny, data, sampled).findings if f.entity == "owl")
    suite = load_suite(policy.suites[0])
    conversations = list(read_conversations(data))
    reading, hit = incontext.cached_reading(tiny, open_shard(data).sha256, lambda: [], [suite], questions_of(suite),
                                            1.0, 0)
    assert hit                                                     # the check's own sample
    best = max(reading.windows, key=lambda w: w.rates[suite.name][1])
    rows = rank_rows_in_context(tiny, [data], policy, [finding], top=None)
    assert rows and {r.window for r in rows} == {f"{data} ({best.rows} rows drawn)"}
    assert {r.source for r in rows} <= {conversations[i].source for i in best.positions}
