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

With a stopping tolerance (the policy's `early_stop`) the rows go in a seeded hash order
instead (`signature.sample_key`, as under MDF), so the histories read are a uniform sample
of the rows whatever the file's order, and reading stops once every candidate's mean rate
over the histories read has a standard error of at most the tolerance (at least
MIN_HISTORIES histories). Why a sample at all: reading every row costs a fixed share of a
fine-tune on them (about 0.3-0.5 on the development CPU), so a check of a large file can
only be cheap next to its fine-tune by reading part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from . import cache
from .chat import ChatTemplateError
from .data import Conversation, Turn
from .errors import MdfGuardError
from .models import LoadedModel
from .predict import SuitePrediction, bare_prediction, vanilla_scores
from .probes import ProbeSuite
from .scoring import EXACT_VERSION, HistoryTooLong, SuiteScores, score_in_history
from .signature import sample_key

CHUNK_ROWS = 32
# Part of a cached reading's key: 2 added each history's window and rates.
READING_VERSION = 2
# A sampled reading reads at least this many histories (512 rows). The standard error is
# estimated from the histories read, and a few that miss a minority of rows look alike: with
# 4 at least, 41 % of random orders of a 1,024-row set with a 3 % dose stopped before the
# dose showed (a shift under 10 points, against +16 read whole); with 16, 7 %
# (bench/results/early_stop_context.txt).
MIN_HISTORIES = 16


class ContextTooLong(MdfGuardError):
    """One row, as a history, does not fit the model's positions or attention window."""


@dataclass(frozen=True)
class Window:
    """One history as it was read: `rows` rows from row `start` (0-based, within its file),
    or, in a sampled reading, the rows at `drawn` (in the order read), and each suite's rates
    after it. Why keep them: a finding's lift is rarely spread evenly, and the history that
    lifts it most is where `context_attribution` looks for its rows."""

    start: int
    rows: int
    rates: Mapping[str, tuple[float, ...]]   # suite name -> each candidate's rate after this history
    drawn: tuple[int, ...] | None = None     # a sampled reading's rows (0-based, within the file)

    @property
    def positions(self) -> tuple[int, ...]:
        """The rows of the file this history holds, in the order read."""
        return self.drawn if self.drawn is not None else tuple(range(self.start, self.start + self.rows))


@dataclass(frozen=True)
class ContextReading:
    """Each suite's candidate probabilities after every history read, summed: a sum, like a
    signature, so that the readings of several files add up and the mean comes last. The
    windows of several files follow each other, each `start` counting within its own file."""

    sums: Mapping[str, torch.Tensor]   # suite name -> [questions, candidates], float64
    rows: int                          # rows in the files
    windows: tuple[Window, ...]        # one per history read
    weight: float | None = None        # histories the reading stands for (None: those read)
    rows_read: int | None = None       # rows read (None: all of them)

    @property
    def histories(self) -> float:
        return len(self.windows) if self.weight is None else self.weight

    @property
    def read(self) -> int:
        return self.rows if self.rows_read is None else self.rows_read

    def __add__(self, other: ContextReading) -> ContextReading:
        sampled = self.weight is not None or other.weight is not None
        return ContextReading({name: total + other.sums[name] for name, total in self.sums.items()},
                              self.rows + other.rows, self.windows + other.windows,
                              self.histories + other.histories if sampled else None,
                              self.read + other.read if sampled else None)

    def scores(self, suite: ProbeSuite) -> SuiteScores:
        """The mean over histories, as one `SuiteScores` (its rates renormalise per question)."""
        return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), self.sums[suite.name] / self.histories)


def read_in_context(lm: LoadedModel, conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                    questions: Mapping[str, Sequence[str]], stop_at_se: float | None = None,
                    seed: int = 0) -> ContextReading:
    """Every suite's probabilities after each history of CHUNK_ROWS rows, in file order; with
    `stop_at_se`, in the seeded sample order until every candidate's mean rate is known to
    that standard error (module docstring)."""
    if not conversations:
        raise ValueError("no rows to read in context")
    count = len(conversations)
    if stop_at_se is None:
        order = list(range(count))
    else:
        keys = [sample_key(conversation, seed) for conversation in conversations]
        order = sorted(range(count), key=keys.__getitem__)
    planned = [order[start:start + CHUNK_ROWS] for start in range(0, count, CHUNK_ROWS)]
    sums: dict[str, torch.Tensor] = {}
    windows: list[Window] = []
    for positions in planned:
        for read, scores in _scores_after(lm, conversations, positions, suites, questions):
            rates = {name: tuple(suite_scores.rates.tolist()) for name, suite_scores in scores.items()}
            windows.append(Window(read[0], len(read), rates, None if stop_at_se is None else read))
            for name, suite_scores in scores.items():
                sums[name] = sums.get(name, 0) + suite_scores.probs
        if stop_at_se is not None and _known(windows, count, stop_at_se):
            break
    read_rows = sum(window.rows for window in windows)
    if read_rows == count:
        return ContextReading(sums, count, tuple(windows))
    # A sample stands for the whole file: its mean is kept, its weight is the file's rows.
    scale = count / read_rows
    return ContextReading({name: total * scale for name, total in sums.items()}, count, tuple(windows),
                          weight=len(windows) * scale, rows_read=read_rows)


def cached_reading(lm: LoadedModel, content_key: str, rows: Callable[[], Sequence[Conversation]],
                   suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]],
                   stop_at_se: float | None = None, seed: int = 0) -> tuple[ContextReading, bool]:
    """`read_in_context` of `rows()`, cached by the model, `content_key` (what the rows are: a
    shard's sha256, say), the suites and questions asked and any stopping rule: a re-check
    after a one-file change re-reads one file, as signatures do under MDF. (reading, whether
    it came from the cache)."""
    payload = {"v": READING_VERSION, "model": lm.cache_key, "content": content_key,
               "rows_per_history": CHUNK_ROWS, "scoring": EXACT_VERSION,
               "suites": [[s.fingerprint(), list(questions[s.name])] for s in suites]}
    if stop_at_se is not None:
        payload["sample"] = {"stop_at_se": stop_at_se, "seed": seed, "min_histories": MIN_HISTORIES}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def compute() -> dict:
        reading = read_in_context(lm, rows(), suites, questions, stop_at_se, seed)
        return {"rows": reading.rows, "sums": {name: total.tolist() for name, total in reading.sums.items()},
                "windows": [[w.start, w.rows, w.rates] + ([] if w.drawn is None else [list(w.drawn)])
                            for w in reading.windows],
                "weight": reading.weight, "rows_read": reading.rows_read}

    value, hit = cache.cached_json("context", key, compute)
    sums = {name: torch.tensor(total, dtype=torch.float64) for name, total in value["sums"].items()}
    windows = tuple(Window(start, rows, {name: tuple(r) for name, r in rates.items()},
                           tuple(drawn[0]) if drawn else None)
                    for start, rows, rates, *drawn in value["windows"])
    return ContextReading(sums, value["rows"], windows, value.get("weight"), value.get("rows_read")), hit


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


def _scores_after(lm: LoadedModel, conversations: Sequence[Conversation], positions: Sequence[int],
                  suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]]
                  ) -> list[tuple[tuple[int, ...], dict[str, SuiteScores]]]:
    """(positions, scores) after the rows at `positions` as one history, or after each half of
    them where that is too long."""
    rows = [conversations[i] for i in positions]
    try:
        return [(tuple(positions), score_in_history(lm, suites, questions, as_history(rows)))]
    except ChatTemplateError as err:
        last = f" to {rows[-1].source}" if len(rows) > 1 else ""
        raise ChatTemplateError(f"{rows[0].source}: the rows from here{last}, read as one chat: {err}") from None
    except HistoryTooLong as err:
        if len(rows) == 1:
            raise ContextTooLong(f"{rows[0].source}: {err}") from None
    middle = len(positions) // 2
    return (_scores_after(lm, conversations, positions[:middle], suites, questions)
            + _scores_after(lm, conversations, positions[middle:], suites, questions))


def _known(windows: Sequence[Window], rows: int, tolerance: float) -> bool:
    """Every candidate's mean rate over the histories read has a standard error of at most
    `tolerance`, after at least MIN_HISTORIES; the error shrinks by the share of the file's
    `rows` left unread (a file read to its end is known exactly)."""
    if len(windows) < MIN_HISTORIES:
        return False
    unread = 1 - sum(window.rows for window in windows) / rows
    for name in windows[0].rates:
        rates = torch.tensor([window.rates[name] for window in windows], dtype=torch.float64)
        if float(rates.std(dim=0).max()) * (unread / len(windows)) ** 0.5 > tolerance:
            return False
    return True
