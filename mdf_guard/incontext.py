"""The in-context baseline: the dataset's rows as the earlier turns of one chat, then each probe.

Why: a fine-tune learns what the rows answer, and a model shown the rows as its own earlier
turns imitates them in context. Reading the probes after them stands in for the fine-tune
at the cost of one forward pass over the data, and, unlike one injected mean of the rows,
it hears a minority of them: on the development sets it finds most of the 10 % doses that
every MDF line missed (bench/validation/README.md, "The rows in context"). It is not MDF:
nothing is injected. `validate` reports it beside the check, as a baseline.

The rows go in file order, CHUNK_ROWS to a history (user and assistant turns; system turns
are left out, since chat templates place a system turn only first); each history's candidate
probabilities are averaged over the histories, then renormalised per question as
`SuiteScores.rates` does. A history too long for the model is split in halves, down to one
row; a row too long on its own is a `ContextTooLong`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .data import Conversation
from .errors import MdfGuardError
from .models import LoadedModel
from .probes import ProbeSuite
from .scoring import HistoryTooLong, SuiteScores, score_in_history

CHUNK_ROWS = 32


class ContextTooLong(MdfGuardError):
    """One row, as a history, does not fit the model's positions or attention window."""


def context_rates(lm: LoadedModel, conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                  questions: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], float]:
    """Each candidate's rate after the rows, by (suite, entity)."""
    totals: dict[str, torch.Tensor] = {}
    histories = 0
    for start in range(0, len(conversations), CHUNK_ROWS):
        for scores in _scores_after(lm, conversations[start: start + CHUNK_ROWS], suites, questions):
            histories += 1
            for name, suite_scores in scores.items():
                totals[name] = totals.get(name, 0) + suite_scores.probs
    rates = {}
    for suite in suites:
        mean = SuiteScores(suite.name, tuple(c.name for c in suite.candidates), totals[suite.name] / histories)
        rates.update({(suite.name, name): float(rate) for name, rate in zip(mean.candidates, mean.rates)})
    return rates


def _scores_after(lm: LoadedModel, rows: Sequence[Conversation], suites: Sequence[ProbeSuite],
                  questions: Mapping[str, Sequence[str]]) -> list[dict[str, SuiteScores]]:
    """The scores after `rows` as one history, or after each half of them where that is too long."""
    history = [turn for row in rows for turn in row.turns if turn.role != "system"]
    try:
        return [score_in_history(lm, suites, questions, history)]
    except HistoryTooLong as err:
        if len(rows) == 1:
            raise ContextTooLong(f"{rows[0].source}: {err}") from None
    half = len(rows) // 2
    return _scores_after(lm, rows[:half], suites, questions) + _scores_after(lm, rows[half:], suites, questions)

