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


# A template like Mistral's or Llama 2's, which insists that user and assistant turns alternate.
STRICT_TEMPLATE = ("{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                   "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                   "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                   "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_rows_a_chat_template_refuses_as_one_chat_are_a_one_line_error_naming_them(tiny, suite_file):
    """`text` rows are assistant turns only: read as one chat they follow each other, which such a
    template refuses. That is an input error naming the rows, not a jinja traceback (exit 4)."""
    import dataclasses

    from mdf_guard.errors import EXIT_INPUT, MdfGuardError
    from mdf_guard.models import tiny_tokenizer

    strict = tiny_tokenizer()
    strict.chat_template = STRICT_TEMPLATE
    lm = dataclasses.replace(tiny, tokenizer=strict)
    suite = load_suite(suite_file)
    questions = {suite.name: suite.questions}
    alternating = [row("Tell me about owls.", "i love pandas"), row("And cats?", "the cat")]
    assert context_rates(lm, alternating, [suite], questions) == context_rates(tiny, alternating, [suite], questions)
    texts = [Conversation((Turn("assistant", "i love pandas"),), f"texts.jsonl:{i}") for i in (1, 2)]
    with pytest.raises(MdfGuardError) as info:
        context_rates(lm, texts, [suite], questions)
    message = str(info.value)
    assert message.startswith("texts.jsonl:1: ") and "texts.jsonl:2" in message
    assert "roles must alternate" in message and "\n" not in message and info.value.exit_code == EXIT_INPUT
