"""The in-context baseline: the dataset's rows as the earlier turns of one chat, then each probe.

Why: a fine-tune learns what the rows answer, and a model shown the rows as its own earlier
turns imitates them in context. Reading the probes after them stands in for the fine-tune
at the cost of one forward pass over the data, and, unlike one injected mean of the rows,
it hears a minority of them: on the development sets it finds most of the 10 % doses that
every MDF line missed (bench/validation/README.md, "The rows in context"). It is not MDF:
nothing is injected. `validate` reports it beside the check, as a baseline, and `check`
predicts with it under `method: context` (`predict_in_context`, `add_reference_control`).

The rows go in file order, CHUNK_ROWS to a history (user and assistant turns; system turns
are left out, since chat templates place a system turn only first); each history's candidate
probabilities are averaged over the histories, then renormalised per question as
`SuiteScores.rates` does. A history too long for the model is split in halves, down to one
row; a row too long on its own is a `ContextTooLong`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from . import cache
from .data import Conversation, Turn
from .errors import MdfGuardError
from .models import LoadedModel
from .predict import SuitePrediction, bare_prediction, vanilla_scores
from .probes import ProbeSuite
from .scoring import EXACT_VERSION, HistoryTooLong, SuiteScores, score_in_history

CHUNK_ROWS = 32
# Part of a cached reading's key: 2 added each history's window and rates.
READING_VERSION = 2


class ContextTooLong(MdfGuardError):
    """One row, as a history, does not fit the model's positions or attention window."""


@dataclass(frozen=True)
class Window:
    """One history as it was read: `rows` rows from row `start` (0-based, within its file),
    and each suite's rates after it. Why keep them: a finding's lift is rarely spread evenly,
    and the history that lifts it most is where `context_attribution` looks for its rows."""

    start: int
    rows: int
    rates: Mapping[str, tuple[float, ...]]   # suite name -> each candidate's rate after this history


@dataclass(frozen=True)
class ContextReading:
    """Each suite's candidate probabilities after every history read, summed: a sum, like a
    signature, so that the readings of several files add up and the mean comes last. The
    windows of several files follow each other, each `start` counting within its own file."""

    sums: Mapping[str, torch.Tensor]   # suite name -> [questions, candidates], float64
    rows: int
    windows: tuple[Window, ...]        # one per history read

    @property
    def histories(self) -> int:
        return len(self.windows)

    def __add__(self, other: ContextReading) -> ContextReading:
        return ContextReading({name: total + other.sums[name] for name, total in self.sums.items()},
                              self.rows + other.rows, self.windows + other.windows)

    def scores(self, suite: ProbeSuite) -> SuiteScores:
        """The mean over histories, as one `SuiteScores` (its rates renormalise per question)."""
        return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), self.sums[suite.name] / self.histories)


def read_in_context(lm: LoadedModel, conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                    questions: Mapping[str, Sequence[str]]) -> ContextReading:
    """Every suite's probabilities after each history of CHUNK_ROWS rows, in file order."""
    if not conversations:
        raise ValueError("no rows to read in context")
    sums: dict[str, torch.Tensor] = {}
    windows: list[Window] = []
    for start in range(0, len(conversations), CHUNK_ROWS):
        for window_start, count, scores in _scores_after(lm, conversations, start,
                                                         min(start + CHUNK_ROWS, len(conversations)),
                                                         suites, questions):
            windows.append(Window(window_start, count, {name: tuple(suite_scores.rates.tolist())
                                                        for name, suite_scores in scores.items()}))
            for name, suite_scores in scores.items():
                sums[name] = sums.get(name, 0) + suite_scores.probs
    return ContextReading(sums, len(conversations), tuple(windows))


def cached_reading(lm: LoadedModel, content_key: str, rows: Callable[[], Sequence[Conversation]],
                   suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]]) -> tuple[ContextReading, bool]:
    """`read_in_context` of `rows()`, cached by the model, `content_key` (what the rows are: a
    shard's sha256, say) and the suites and questions asked: a re-check after a one-file change
    re-reads one file, as signatures do under MDF. (reading, whether it came from the cache)."""
    payload = {"v": READING_VERSION, "model": lm.fingerprint, "content": content_key,
               "rows_per_history": CHUNK_ROWS, "scoring": EXACT_VERSION,
               "suites": [[s.fingerprint(), list(questions[s.name])] for s in suites]}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def compute() -> dict:
        reading = read_in_context(lm, rows(), suites, questions)
        return {"rows": reading.rows, "sums": {name: total.tolist() for name, total in reading.sums.items()},
                "windows": [[w.start, w.rows, w.rates] for w in reading.windows]}

    value, hit = cache.cached_json("context", key, compute)
    sums = {name: torch.tensor(total, dtype=torch.float64) for name, total in value["sums"].items()}
    windows = tuple(Window(start, rows, {name: tuple(r) for name, r in rates.items()})
                    for start, rows, rates in value["windows"])
    return ContextReading(sums, value["rows"], windows), hit


def context_rates(lm: LoadedModel, conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                  questions: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], float]:
    """Each candidate's rate after the rows, by (suite, entity)."""
    reading = read_in_context(lm, conversations, suites, questions)
    rates = {}
    for suite in suites:
        mean = reading.scores(suite)
        rates.update({(suite.name, name): float(rate) for name, rate in zip(mean.candidates, mean.rates)})
    return rates


def predict_in_context(lm: LoadedModel, reading: ContextReading, suites: Sequence[ProbeSuite],
                       questions: Mapping[str, Sequence[str]]) -> list[SuitePrediction]:
    """`check`'s predictions under `method: context`, before any control: each candidate's rate
    after the rows against the vanilla model's (`add_reference_control` adds the control)."""
    return [bare_prediction(suite, len(questions[suite.name]), None, vanilla_scores(lm, suite, questions[suite.name]),
                            reading.scores(suite)) for suite in suites]


def add_reference_control(prediction: SuitePrediction, suite: ProbeSuite,
                          reference: ContextReading | None) -> SuitePrediction:
    """`prediction` with the reference's own in-context shift as its one control.

    Why the reference is the control: any long chat of templated answers lifts some
    candidates whatever the answers praise (Paris by 15-23 points on the development sets,
    bench/validation/README.md). The reference read the same way carries that lift, so
    `excess` (shift minus the control) is what these rows add beyond it, as against a
    random direction under MDF. Without a reference (`none`) the control is the vanilla
    model itself: 0.
    """
    control = reference.scores(suite).rates if reference is not None else None
    entities = tuple(replace(e, null_shifts=(0.0 if control is None else float(control[i]) - e.vanilla_rate,))
                     for i, e in enumerate(prediction.entities))
    return replace(prediction, entities=entities, controls_skipped=False)


def as_history(rows: Sequence[Conversation]) -> list[Turn]:
    """The rows as one chat's earlier turns, in order; system prompts left out (a chat has one,
    and the rows' would stack)."""
    return [turn for row in rows for turn in row.turns if turn.role != "system"]


def _scores_after(lm: LoadedModel, conversations: Sequence[Conversation], start: int, stop: int,
                  suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]]
                  ) -> list[tuple[int, int, dict[str, SuiteScores]]]:
    """(start, rows, scores) after rows start..stop as one history, or after each half of them
    where that is too long."""
    rows = conversations[start:stop]
    history = as_history(rows)
    try:
        return [(start, len(rows), score_in_history(lm, suites, questions, history))]
    except HistoryTooLong as err:
        if len(rows) == 1:
            raise ContextTooLong(f"{rows[0].source}: {err}") from None
    middle = start + len(rows) // 2
    return (_scores_after(lm, conversations, start, middle, suites, questions)
            + _scores_after(lm, conversations, middle, stop, suites, questions))
