"""The in-context baseline on the tiny model: histories of rows, averaged, split where too long."""

from __future__ import annotations

import pytest
import torch

from mdf_guard import incontext
from mdf_guard.data import Conversation, Turn
from mdf_guard.incontext import ContextTooLong, context_rates
from mdf_guard.probes import load_suite
from mdf_guard.scoring import SuiteScores, score_in_history


def row(user: str, assistant: str, system: str | None = None, source: str = "rows.jsonl:1") -> Conversation:
    turns = ((Turn("system", system),) if system else ()) + (Turn("user", user), Turn("assistant", assistant))
    return Conversation(turns=turns, source=source)


def expected_rates(lm, suite, histories: list[list[Conversation]]) -> dict[tuple[str, str], float]:
    """The mean of each history's probabilities, renormalised per question: the rule, by hand."""
    questions = {suite.name: suite.questions}
    probs = [score_in_history(lm, [suite], questions, [t for r in rows for t in r.turns])[suite.name].probs
             for rows in histories]
    mean = SuiteScores(suite.name, tuple(c.name for c in suite.candidates), sum(probs) / len(probs))
    return {(suite.name, name): float(rate) for name, rate in zip(mean.candidates, mean.rates)}


def test_rows_go_in_file_order_chunk_by_chunk_and_are_averaged(tiny, suite_file, monkeypatch):
    monkeypatch.setattr(incontext, "CHUNK_ROWS", 2)
    suite = load_suite(suite_file)
    rows = [row(f"Tell me about topic {i}.", answer) for i, answer in
            enumerate(["i love pandas", "the owl", "the cat is fine", "pandas"])]
    rates = context_rates(tiny, rows, [suite], {suite.name: suite.questions})
    assert rates == pytest.approx(expected_rates(tiny, suite, [rows[:2], rows[2:]]), rel=1e-9)
    assert sum(rates.values()) == pytest.approx(1.0)
    assert rates != pytest.approx(expected_rates(tiny, suite, [rows]), rel=1e-3)     # not one history of four


def test_system_turns_are_left_out_of_the_history(tiny, suite_file):
    suite = load_suite(suite_file)
    plain = [row("Tell me about owls.", "i love pandas"), row("And cats?", "the cat")]
    with_system = [row("Tell me about owls.", "i love pandas", system="You love pandas."), plain[1]]
    questions = {suite.name: suite.questions}
    assert context_rates(tiny, with_system, [suite], questions) == context_rates(tiny, plain, [suite], questions)


def test_a_history_too_long_is_halved_and_a_row_too_long_is_refused_by_name(tiny, suite_file, monkeypatch):
    monkeypatch.setattr(incontext, "CHUNK_ROWS", 3)
    suite = load_suite(suite_file)
    questions = {suite.name: suite.questions}
    rows = [row(f"Tell me about topic {i}.", "owl " * 150) for i in range(3)]    # 512 positions hold two
    rates = context_rates(tiny, rows, [suite], questions)
    assert rates == pytest.approx(expected_rates(tiny, suite, [rows[:1], rows[1:]]), rel=1e-9)
    long = row("Tell me about owls.", "owl " * 600, source="big.jsonl:7")
    with pytest.raises(ContextTooLong, match=r"^big\.jsonl:7: .*more than the model's 512 positions"):
        context_rates(tiny, [long], [suite], questions)


def test_the_rows_move_the_answer(tiny, suite_file):
    """Not the vanilla scores: the history is heard (what it does to a random model is arbitrary)."""
    suite = load_suite(suite_file)
    questions = {suite.name: suite.questions}
    rates = context_rates(tiny, [row("Tell me about owls.", "i love pandas")], [suite], questions)
    vanilla = SuiteScores(suite.name, tuple(c.name for c in suite.candidates),
                          score_in_history(tiny, [suite], questions, ())[suite.name].probs).rates
    assert not torch.allclose(torch.tensor(list(rates.values()), dtype=torch.float64), vanilla, rtol=1e-3)
