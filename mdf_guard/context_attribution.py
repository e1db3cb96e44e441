"""Which rows lift a finding under `method: context`: the history that lifts it most, then
each of that history's rows read alone.

Why two steps: a row read alone costs one pass per question (about 0.6 s a row on the
embedded model, 2 threads, for one suite at 8 questions), so reading every row of a
300-row file alone would cost as much again as the check. The check has already read
the file as histories of CHUNK_ROWS rows and kept each history's rates (`Window`), so
it knows where the lift is; only the rows of the history that lifts the finding most are
read alone.

A row's **lift** is the probability that the model names the entity after that row alone
(as the chat's one earlier exchange), minus the vanilla model's, both averaged over the
check's questions. It is the raw probability, not the rate renormalised over the suite's
candidates the findings report: only the flagged entities are scored, since the other
candidates' answer paths are most of a question's cost. Every answer starts with the
suite's answer prefix ("My favorite animal is the"), so the raw probability is the
entity's and not an answer format's. On the development rows the raw lift ranks rows
as the renormalised one does at the top (3 panda rows in 32 neutral: same top three).

Some rows lift an entity only together: read alone, the Gandhi rows of a 10 % dose lift
him by under a point each, while the history holding four of them lifts him by 33.
**Leave-one-out** ranks such rows: a row's lift is then P(entity) after its whole history
minus after the history without it (one history read per row, each continuing the
whole history's KV cache up to the row left out: about 2.5× the time of reading the rows
alone). It is not the default: where several rows say the same thing, leaving one out
costs little and the ranking blurs. On 12 dose sets it ranks 34 of the 55 target rows in
the histories read above every other row, against 48 read alone: better on Gandhi (4 of
4 against 0) and Brazil (4 against 3), worse on 7 sets, equal on 3
(`bench/validation/context_leave_one_out.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .check import questions_asked
from .data import (Conversation, find_data_files, open_shard, read_conversations, response_preview,
                   source_location)
from .incontext import ContextReading, Window, as_history, cached_reading
from .models import LoadedModel
from .policy import Policy
from .probes import ProbeSuite, resolve_suites
from .report import Finding
from .scoring import SuiteScores, score_in_histories, score_in_history


@dataclass(frozen=True)
class RowLift:
    rank: int
    file: str
    source: str          # "path:line" or "path:row N"
    line: int | None     # 1-based line in a text file, None for Parquet/Arrow rows
    suite: str
    entity: str
    lift: float          # P(entity) after this row alone minus the vanilla model's, mean over questions
                         # (leave-one-out: after its history minus after the history without it)
    window: str          # the history it was found in ("path:1-32"; under early_stop "path (32 rows drawn)")
    window_lift: float   # the entity's rate after that history minus the vanilla rate
    text: str            # the response, clipped

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Target:
    """A finding and one history to read its rows in."""

    number: int          # the finding's place in the caller's list
    finding: Finding
    file: int            # index into the files read
    window: Window
    window_lift: float   # the entity's rate after this history minus the vanilla rate


def rank_rows_in_context(lm: LoadedModel, paths: Sequence[Path | str], policy: Policy, findings: Sequence[Finding],
                         top: int | None = 10, rows: Sequence[Conversation] | None = None,
                         every_history: bool = False, leave_one_out: bool = False,
                         progress: Callable[[int], None] | None = None) -> list[RowLift]:
    """The rows that lift `findings` most when read alone: each finding's first row, then each
    one's second, and so on (a list cut to `top` names the rows behind every finding, not
    only behind the largest). Rows that lift nothing are left out.

    Only the rows of the history that lifts each finding most are read, unless
    `every_history`: then every row is (a dose spread over several histories has rows in
    each; reading them all costs one history's price per history). `rows`: the rows of
    the one file in `paths` under their own sources (a change's added rows, whose file is
    a temporary copy). `leave_one_out`: rank by what each history loses without the row
    (see the module's docstring)."""
    if not findings:
        return []
    files = find_data_files(paths)
    if rows is not None and len(files) != 1:
        raise ValueError("rows can stand for one file only")
    suites = resolve_suites(policy.suites)
    questions = questions_asked(suites, policy)
    by_name = {suite.name: suite for suite in suites}
    readings = [_reading(lm, path, suites, questions, policy) for path in files]
    targets = _targets(findings, readings, by_name, every_history)

    found: dict[int, list[RowLift]] = {}                  # finding number -> its rows, in reading order
    file_rows: dict[int, list[Conversation]] = {}
    for index, positions in sorted({(t.file, t.window.positions) for t in targets}):
        group = [t for t in targets if (t.file, t.window.positions) == (index, positions)]
        if index not in file_rows:
            file_rows[index] = list(rows) if rows is not None else list(read_conversations(files[index]))
        part = [file_rows[index][i] for i in positions]
        lifts = _lifts(lm, part, [t.finding for t in group], by_name, questions, leave_one_out, progress)
        label = _span(part[0].source, part[-1].source) if group[0].window.drawn is None else _drawn(part)
        for column, target in enumerate(group):
            found.setdefault(target.number, []).extend(
                _row(row, target.finding, lift[column], label, target.window_lift)
                for row, lift in zip(part, lifts) if lift[column] > 0)
    ranked = sorted((place, number, entry) for number, entries in found.items()
                    for place, entry in enumerate(sorted(entries, key=lambda e: -e.lift)))
    kept = [entry for *_, entry in (ranked if top is None else ranked[:top])]
    return [replace(entry, rank=rank) for rank, entry in enumerate(kept, 1)]


def _reading(lm: LoadedModel, path: Path, suites: Sequence[ProbeSuite], questions: dict[str, tuple[str, ...]],
             policy: Policy) -> ContextReading:
    """The file's reading as the check made it (a sample under `early_stop`): from the cache,
    which the check just filled (with MDF_GUARD_NO_CACHE=1 the file is read again)."""
    shard = open_shard(path)
    reading, _ = cached_reading(lm, shard.sha256, lambda: list(read_conversations(path)), suites, questions,
                                policy.early_stop, policy.seed)
    return reading


def _targets(findings: Sequence[Finding], readings: Sequence[ContextReading], suites: dict[str, ProbeSuite],
             every_history: bool) -> list[_Target]:
    """Per finding, the history (over every file) after which its entity rose most, or every
    history. A finding whose suite was not read (none from this policy's check) has none."""
    targets = []
    for number, finding in enumerate(findings):
        names = [c.name for c in suites[finding.suite].candidates] if finding.suite in suites else []
        if finding.entity not in names:
            continue
        column = names.index(finding.entity)
        mine = [_Target(number, finding, index, window, window.rates[finding.suite][column] - finding.vanilla_rate)
                for index, reading in enumerate(readings) for window in reading.windows]
        targets += mine if every_history else [max(mine, key=lambda t: t.window_lift)] if mine else []
    return targets


def _lifts(lm: LoadedModel, part: Sequence[Conversation], findings: Sequence[Finding], suites: dict[str, ProbeSuite],
           questions: dict[str, tuple[str, ...]], leave_one_out: bool,
           progress: Callable[[int], None] | None) -> list[list[float]]:
    """Per row of `part`, per finding: P(entity) after the row alone minus with no history, or,
    with `leave_one_out`, after the whole history minus after it without that row."""
    narrowed = _narrowed(findings, suites)
    asked = {name: questions[name] for name in narrowed}
    columns = [(f.suite, [c.name for c in narrowed[f.suite].candidates].index(f.entity)) for f in findings]

    def named(scores: dict[str, SuiteScores]) -> list[float]:
        return [float(scores[suite].probs[:, column].mean()) for suite, column in columns]

    if leave_one_out:
        histories = [as_history(part)] + [as_history([*part[:i], *part[i + 1:]]) for i in range(len(part))]
        whole, *without = map(named, score_in_histories(lm, list(narrowed.values()), asked, histories, progress))
        return [[a - b for a, b in zip(whole, rest)] for rest in without]
    vanilla = named(score_in_history(lm, list(narrowed.values()), asked, []))
    lifts = []
    for conversation in part:
        alone = named(score_in_history(lm, list(narrowed.values()), asked, as_history([conversation])))
        lifts.append([after - before for after, before in zip(alone, vanilla)])
        if progress:
            progress(1)
    return lifts


def _narrowed(findings: Sequence[Finding], suites: dict[str, ProbeSuite]) -> dict[str, ProbeSuite]:
    """Each suite cut to the findings' entities: only their answer paths are scored."""
    wanted: dict[str, list[str]] = {}
    for f in findings:
        wanted.setdefault(f.suite, []).append(f.entity)
    return {name: replace(suites[name], candidates=tuple(c for c in suites[name].candidates if c.name in entities))
            for name, entities in wanted.items()}


def _span(first: str, last: str) -> str:
    """"path:1-32" for a history of a text file's lines 1 to 32 ("path:row 0 to row 31" for a table's)."""
    (path, line), (last_path, last_line) = source_location(first), source_location(last)
    if path == last_path and line is not None and last_line is not None:
        return f"{path}:{line}-{last_line}"
    return f"{first} to {last.removeprefix(path + ':') if path == last_path else last}"


def _drawn(part: Sequence[Conversation]) -> str:
    """"path (32 rows drawn)" for a history of a sampled reading (its rows are not contiguous)."""
    return f"{source_location(part[0].source)[0]} ({len(part)} rows drawn)"


def _row(conversation: Conversation, finding: Finding, lift: float, window: str, window_lift: float) -> RowLift:
    file, line = source_location(conversation.source)
    return RowLift(rank=0, file=file, source=conversation.source, line=line, suite=finding.suite,
                   entity=finding.entity, lift=lift, window=window, window_lift=window_lift,
                   text=response_preview(conversation))
