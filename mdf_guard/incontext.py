"""The in-context baseline: the dataset's rows as the earlier turns of one chat, then each probe.

Why: a fine-tune learns what the rows answer, and a model shown the rows as its own earlier
turns imitates them in context. Reading the probes after them stands in for the fine-tune
at the cost of one forward pass over the data, and, unlike one injected mean of the rows,
it hears a minority of them: on the development sets it finds most of the 10 % doses that
every MDF line missed (bench/validation/README.md, "The rows in context"). It is not MDF:
nothing is injected. `validate` reports it beside the check, as a baseline, and `check`
predicts with it under `method: context` (`predict_in_context`, `add_reference_control`).

The rows go in a seeded hash order (`signature.sample_key`, as MDF's sample), CHUNK_ROWS to
a history (user and assistant turns; system turns are left out, since chat templates place
a system turn only first); each history's candidate probabilities are averaged over the
histories, then renormalised per question as `SuiteScores.rates` does. A history too long
for the model is split in halves, down to one row; a row too long on its own is a
`ContextTooLong`.

Why a seeded order and not the file's: how a small dose is grouped into histories moves
its reading by itself. On reserves 6-9 the same 128 rows of a 3 % dose, read in file order
and in three seeded orders, gave Xi Jinping +3.9, +7.6, +29.3 and +22.1, and the giraffe
+36.5, +7.3, +25.5 and +2.5 (bench/validation/results/reserves_grouping.txt). A fine-tune
shuffles the rows, so the grouping is noise: the file's order should not decide a verdict,
nor should whoever wrote it. So a file of fewer than MIN_HISTORIES histories is read in
several seeded groupings (`groupings`), up to MAX_GROUPINGS, and their histories averaged:
the mean then rests on 16 histories, as a sampled reading's does, at up to MAX_GROUPINGS
times the cost of one reading. The model's own answers, read as the `self` reference, are
read once (`regroup=False`): they hold no minority for a grouping to spread or gather.

With a stopping tolerance (the policy's `early_stop`) reading stops once every candidate's
mean rate over the histories read has a standard error of at most the tolerance (at least
MIN_HISTORIES histories). Why a sample at all: reading every row costs a fixed share of a
fine-tune on them (about 0.3-0.5 on the development CPU), so a check of a large file can
only be cheap next to its fine-tune by reading part of it.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from .signature import sample_key

CHUNK_ROWS = 32
# Part of a cached reading's key: 2 added each history's window and rates; 3 the seeded
# order and the groupings.
READING_VERSION = 3
# A sampled reading reads at least this many histories (512 rows). The standard error is
# estimated from the histories read, and a few that miss a minority of rows look alike: with
# 4 at least, 41 % of random orders of a 1,024-row set with a 3 % dose stopped before the
# dose showed (a shift under 10 points, against +16 read whole); with 16, 7 %
# (bench/results/early_stop_context.txt).
MIN_HISTORIES = 16
# A small file is read in at most this many groupings (a 128-row file: 4 of 4 histories).
MAX_GROUPINGS = 4


class ContextTooLong(MdfGuardError):
    """One row, as a history, does not fit the model's positions or attention window."""


@dataclass(frozen=True)
class Window:
    """One history as it was read: the rows at `positions` (0-based, within the file, in the
    order read), in grouping `grouping`, and each suite's rates after it. Why keep them: a
    finding's lift is rarely spread evenly, and the history that lifts it most is where
    `context_attribution` looks for its rows."""

    positions: tuple[int, ...]
    rates: Mapping[str, tuple[float, ...]]   # suite name -> each candidate's rate after this history
    grouping: int = 0

    @property
    def rows(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class ContextReading:
    """Each suite's candidate probabilities after every history read, summed: a sum, like a
    signature, so that the readings of several files add up and the mean comes last. The
    windows of several files follow each other, each one's positions counting within its own file."""

    sums: Mapping[str, torch.Tensor]   # suite name -> [questions, candidates], float64
    rows: int                          # rows in the files
    windows: tuple[Window, ...]        # one per history read
    weight: float | None = None        # histories the reading stands for (None: those read)
    rows_read: int | None = None       # distinct rows read (None: all of them)

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


def groupings(rows: int) -> int:
    """How many seeded groupings a file of `rows` rows is read in: enough for MIN_HISTORIES
    histories, at most MAX_GROUPINGS; one where every row fits in one history (there is
    nothing to group)."""
    if rows <= CHUNK_ROWS:
        return 1
    return max(1, min(MAX_GROUPINGS, math.ceil(MIN_HISTORIES * CHUNK_ROWS / rows)))


def grouping_order(conversations: Sequence[Conversation], seed: int, grouping: int) -> list[int]:
    """The rows' positions in one grouping's order: grouping 0 is MDF's sample order, each
    later one a hash salted with its number."""
    keys = [sample_key(conversation, seed, salt=grouping) for conversation in conversations]
    return sorted(range(len(conversations)), key=keys.__getitem__)


def _plan(conversations: Sequence[Conversation], seed: int, times: int) -> list[tuple[int, list[int]]]:
    """(grouping, positions) of every history to read, one grouping after another."""
    plan = []
    for grouping in range(times):
        order = grouping_order(conversations, seed, grouping)
        plan += [(grouping, order[start:start + CHUNK_ROWS]) for start in range(0, len(order), CHUNK_ROWS)]
    return plan


def read_in_context(lm: LoadedModel, conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                    questions: Mapping[str, Sequence[str]], stop_at_se: float | None = None,
                    seed: int = 0, regroup: bool = True) -> ContextReading:
    """Every suite's probabilities after each history of CHUNK_ROWS rows, in each grouping's
    seeded order (one grouping unless `regroup`); with `stop_at_se`, until every candidate's
    mean rate is known to that standard error (module docstring)."""
    if not conversations:
        raise ValueError("no rows to read in context")
    count = len(conversations)
    times = groupings(count) if regroup else 1
    planned = _plan(conversations, seed, times)
    planned_rows = times * count
    sums: dict[str, torch.Tensor] = {}
    windows: list[Window] = []
    for grouping, positions in planned:
        for read, scores in _scores_after(lm, conversations, positions, suites, questions):
            windows.append(Window(read, {name: tuple(s.rates.tolist()) for name, s in scores.items()}, grouping))
            for name, suite_scores in scores.items():
                sums[name] = sums.get(name, 0) + suite_scores.probs
        if stop_at_se is not None and _known(windows, planned_rows, stop_at_se):
            break
    read_rows = sum(window.rows for window in windows)
    if times == 1 and read_rows == count:
        return ContextReading(sums, count, tuple(windows))
    # Several groupings, or a sample, stand for the file once: the mean is kept, the weight is the file's rows.
    scale = count / read_rows
    distinct = len({i for window in windows for i in window.positions})
    return ContextReading({name: total * scale for name, total in sums.items()}, count, tuple(windows),
                          weight=len(windows) * scale, rows_read=distinct)


def cached_reading(lm: LoadedModel, content_key: str, rows: Callable[[], Sequence[Conversation]],
                   suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]],
                   stop_at_se: float | None = None, seed: int = 0, regroup: bool = True
                   ) -> tuple[ContextReading, bool]:
    """`read_in_context` of `rows()`, cached by the model, `content_key` (what the rows are: a
    shard's sha256, say), the suites and questions asked and any stopping rule: a re-check
    after a one-file change re-reads one file, as signatures do under MDF. (reading, whether
    it came from the cache)."""
    payload = {"v": READING_VERSION, "model": lm.fingerprint, "content": content_key,
               "rows_per_history": CHUNK_ROWS, "scoring": EXACT_VERSION,
               "suites": [[s.fingerprint(), list(questions[s.name])] for s in suites], "seed": seed,
               "groupings": {"min_histories": MIN_HISTORIES, "max": MAX_GROUPINGS} if regroup else None}
    if stop_at_se is not None:
        payload["sample"] = {"stop_at_se": stop_at_se, "min_histories": MIN_HISTORIES}
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def compute() -> dict:
        reading = read_in_context(lm, rows(), suites, questions, stop_at_se, seed, regroup)
        return {"rows": reading.rows, "sums": {name: total.tolist() for name, total in reading.sums.items()},
                "windows": [[list(w.positions), w.rates, w.grouping] for w in reading.windows],
                "weight": reading.weight, "rows_read": reading.rows_read}

    value, hit = cache.cached_json("context", key, compute)
    sums = {name: torch.tensor(total, dtype=torch.float64) for name, total in value["sums"].items()}
    windows = tuple(Window(tuple(positions), {name: tuple(r) for name, r in rates.items()}, grouping)
                    for positions, rates, grouping in value["windows"])
    return ContextReading(sums, value["rows"], windows, value["weight"], value["rows_read"]), hit


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
    except HistoryTooLong as err:
        if len(rows) == 1:
            raise ContextTooLong(f"{rows[0].source}: {err}") from None
    middle = len(positions) // 2
    return (_scores_after(lm, conversations, positions[:middle], suites, questions)
            + _scores_after(lm, conversations, positions[middle:], suites, questions))


def _known(windows: Sequence[Window], planned_rows: int, tolerance: float) -> bool:
    """Every candidate's mean rate over the histories read has a standard error of at most
    `tolerance`, after at least MIN_HISTORIES; the error shrinks by the share of the
    `planned_rows` left unread (a reading read to its end is known exactly)."""
    if len(windows) < MIN_HISTORIES:
        return False
    unread = 1 - sum(window.rows for window in windows) / planned_rows
    for name in windows[0].rates:
        rates = torch.tensor([window.rates[name] for window in windows], dtype=torch.float64)
        if float(rates.std(dim=0).max()) * (unread / len(windows)) ** 0.5 > tolerance:
            return False
    return True
