"""Score a probe suite on a (possibly steered) model.

Exact mode: for each question, the probability that the answer (after the suite's
answer prefix) is each candidate, by teacher forcing: its aliases' tokens, followed by a
word boundary where another alias continues them (see `_AliasPlan`). No sampling
noise, so a verdict never flips on rerun. A question's prompt and every candidate's
continuation run in one forward pass, several questions to a pass (see `_Layout`).

Sample mode: the paper's protocol, n answers at temperature 1 per question and a
whole-word match; slower and noisy, kept for parity checks.
"""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import torch

from .chat import answer_lead, answer_tail, encode_text, render_prompt, split_answer
from .data import Turn
from .errors import InputError, MdfGuardError
from .models import LoadedModel
from .probes import ProbeSuite

SCORING_MODES = ("exact", "sample")
# Part of the cache key of vanilla scores: bumped when exact scores change, even in the last
# float bits (2: one batched forward pass instead of a KV cache per path; 3: a word start is a
# boundary under a SentencePiece decoder, and one candidate's aliases that are the same tokens
# count once; 4: an alias is tokenised as it follows the prefix, which changes the scores of
# tokenizers that prepend `▁` to every text, Llama-2's and Mistral's; 5: the answer prefix is
# tokenised as a response is, on its own under a chat template, which changes those tokenizers'
# scores again: `▁My` after `[/INST]`, not `]My`), so that vanilla and steered scores always
# come from the same code.
EXACT_VERSION = 5


@dataclass(frozen=True)
class SuiteScores:
    """Per-question probabilities of every candidate of one suite."""

    suite: str
    candidates: tuple[str, ...]
    probs: torch.Tensor      # [questions, candidates] float64; exact: P(answer is candidate), sample: share

    @property
    def rates(self) -> torch.Tensor:
        """Mean over questions of the probabilities renormalised over the suite's candidates.

        Renormalising keeps a change of answer *format* (toward digits, say) from
        reading as a change of preference between candidates.
        """
        totals = self.probs.sum(dim=1, keepdim=True).clamp_min(1e-300)
        return (self.probs / totals).mean(dim=0)

    @property
    def raw_rates(self) -> torch.Tensor:
        return self.probs.mean(dim=0)

    @property
    def answer_mass(self) -> float:
        """Mean over questions of the probability that the answer is any candidate."""
        return float(self.probs.sum(dim=1).mean())


def select_questions(suite: ProbeSuite, limit: int | None) -> tuple[str, ...]:
    """An evenly spread, deterministic subset of the suite's paraphrases."""
    questions = suite.questions
    if limit is None or limit >= len(questions):
        return questions
    step = len(questions) / limit
    return tuple(questions[int(i * step)] for i in range(limit))


def score_exact(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str]) -> SuiteScores:
    """P(the answer is each candidate) for each question, by teacher forcing (see the module docstring)."""
    plan = _plan(lm, suite)
    layout = _layout(plan)
    boundary = word_boundary_mask(lm.tokenizer).nonzero().squeeze(1).to(lm.device)
    prompts = [_prompt_ids(lm, suite, question) for question in questions]
    _check_window(lm, suite, questions, prompts, layout)
    per_forward = _questions_per_forward(len(layout.tokens) + 1, int(lm.text_config.vocab_size))
    probs = torch.zeros(len(questions), len(suite.candidates), dtype=torch.float64)
    with torch.inference_mode():
        for start in range(0, len(prompts), per_forward):
            alias_logp = _alias_logprobs(lm, prompts[start: start + per_forward], layout, boundary)
            probs[start: start + len(alias_logp)].index_add_(1, plan.owners, alias_logp.exp())
    return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)


def _prompt_ids(lm: LoadedModel, suite: ProbeSuite, question: str, history: Sequence[Turn] = ()) -> list[int]:
    """The question's prompt, then the answer prefix as a fine-tune tokenises a response after it
    (`chat.split_answer`): under a chat template on its own, under the plain one with its space.
    Glued to the prompt as one text, Llama-2's and Mistral's prefix began `]My` after `[/INST]`,
    where their tuning, their generation and `validate`'s fine-tune write `▁My`."""
    prompt = render_prompt(lm.tokenizer, [*history, Turn("user", question)])
    prompt_ids, prefix_ids = split_answer(lm.tokenizer, prompt, suite.answer_prefix)
    return prompt_ids + prefix_ids


def score_in_history(lm: LoadedModel, suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]],
                     history: Sequence[Turn]) -> dict[str, SuiteScores]:
    """`score_exact` of each suite's questions asked as the next user turn after `history`.

    The prompts share the history's tokens: those run once, and each question continues
    from a copy of their KV cache, one question to a forward pass.
    """
    return score_in_histories(lm, suites, questions, [history])[0]


def score_in_histories(lm: LoadedModel, suites: Sequence[ProbeSuite], questions: Mapping[str, Sequence[str]],
                       histories: Sequence[Sequence[Turn]],
                       progress: Callable[[int], None] | None = None) -> list[dict[str, SuiteScores]]:
    """`score_in_history` after each of `histories`. Each history after the first runs only
    its tokens from where it parts from the first one's, continuing the first's KV cache
    cut there. Why: leave-one-out reads a history again without each of its rows in turn,
    and every such history repeats the first one's rows up to the row left out, so half
    the tokens, on average, need not run again."""
    plans = {s.name: _plan(lm, s) for s in suites}
    layouts = {name: _layout(plan) for name, plan in plans.items()}
    boundary = word_boundary_mask(lm.tokenizer).nonzero().squeeze(1).to(lm.device)
    first: tuple[list[int], object] | None = None
    results = []
    with torch.inference_mode():
        for history in histories:
            prompts = {s.name: [_prompt_ids(lm, s, q, history) for q in questions[s.name]] for s in suites}
            shared = _shared_prefix([p for group in prompts.values() for p in group])
            _check_history_span(lm, max(len(p) + _depth(layouts[name]) for name, group in prompts.items()
                                        for p in group))
            cache = _history_cache(lm, shared, first)
            first = first or (shared, cache)
            scores = {}
            for suite in suites:
                plan, layout = plans[suite.name], layouts[suite.name]
                probs = torch.zeros(len(prompts[suite.name]), len(suite.candidates), dtype=torch.float64)
                for row, prompt in enumerate(prompts[suite.name]):
                    alias_logp = _alias_logprobs(lm, [prompt[len(shared):]], layout, boundary,
                                                 cached=(len(shared), copy.deepcopy(cache)))
                    probs[row].index_add_(0, plan.owners, alias_logp[0].exp())
                scores[suite.name] = SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)
            results.append(scores)
            if progress:
                progress(1)
    return results


def _depth(layout: _Layout) -> int:
    """Tokens of the longest answer path."""
    return int(layout.depth.max()) + 1 if len(layout.depth) else 0


class HistoryTooLong(MdfGuardError):
    """A history with its question does not fit the model's positions or attention window."""


def _check_history_span(lm: LoadedModel, span: int) -> None:
    """Refuse a history the model cannot attend over as one causal span (see `_span_limits`)."""
    for limit, what in _span_limits(lm):
        if span > limit:
            raise HistoryTooLong(f"{lm.spec.name}: a history with its question and answer is {span} tokens, "
                                 f"more than the model's {what}")


def _span_limits(lm: LoadedModel) -> list[tuple[int, str]]:
    """The longest spans of tokens a forward pass may hold, each with what sets it, in words: the
    model's positions and, where it has one, its sliding attention window (the mask `_Layout`
    builds is a full causal one)."""
    positions, window = lm.max_positions, getattr(lm.text_config, "sliding_window", None)
    limits = ((positions, f"{positions} positions"), (window, f"sliding attention window of {window}"))
    return [(limit, what) for limit, what in limits if isinstance(limit, int)]


def _history_cache(lm: LoadedModel, ids: list[int], reuse: tuple[list[int], object] | None = None) -> object:
    """The KV cache after `ids` (transformers >= 5 names it `cache`, earlier `past_key_values`).
    `reuse` (ids, their cache): a copy of that cache, cut to the tokens the two share, is
    continued instead of running `ids` from the start."""
    common = 0
    if reuse is not None:
        earlier, cache = reuse
        common = next((i for i, (a, b) in enumerate(zip(ids, earlier)) if a != b), min(len(ids), len(earlier)))
        common = min(common, len(ids) - 1)   # at least one token runs, so the model hands back a cache
    if common == 0:
        out = lm.model(input_ids=torch.tensor([ids], device=lm.device), use_cache=True)
    else:
        past = copy.deepcopy(cache)
        past.crop(common - past.get_seq_length())   # a negative count: the tokens to drop, in every version
        name = "cache" if "cache" in inspect.signature(lm.model.forward).parameters else "past_key_values"
        out = lm.model(input_ids=torch.tensor([ids[common:]], device=lm.device), use_cache=True, **{name: past})
    return out["cache"] if "cache" in out else out["past_key_values"]


def _shared_prefix(prompts: list[list[int]]) -> list[int]:
    """The longest token prefix of every prompt that leaves each at least its last token."""
    length = min(len(p) for p in prompts) - 1
    for prompt in prompts[1:]:
        length = next((i for i in range(length) if prompt[i] != prompts[0][i]), length)
    return prompts[0][:length]


@dataclass(frozen=True)
class _AliasPlan:
    """Which token paths must run so that every alias's probability can be read off.

    An alias's probability is the product of its tokens' probabilities. Where its
    token sequence is a proper prefix of another alias of the suite (" cat" and
    " cat" + "fish"), it is also multiplied by the probability that a word boundary
    follows, so the two never count the same answers. A leaf alias needs no forward
    pass of its last token at all; that is what makes scoring 90+ candidates cheap.
    """

    aliases: tuple[tuple[int, ...], ...]
    owners: torch.Tensor                       # candidate index of each alias
    bounded: frozenset[tuple[int, ...]]        # aliases that need the boundary term
    paths: tuple[tuple[int, ...], ...]         # maximal token paths to run after the prompt


def _plan(lm: LoadedModel, suite: ProbeSuite) -> _AliasPlan:
    aliases, owners, spelled = [], [], {}
    alias_ids = _alias_tokenizer(lm, suite)
    for index, candidate in enumerate(suite.candidates):
        for alias in candidate.aliases:
            tokens = tuple(alias_ids(alias))
            if tokens in spelled:
                _check_told_apart(lm, suite, spelled[tokens], (index, alias))
                continue   # one answer, however many spellings the model writes the same way
            spelled[tokens] = (index, alias)
            aliases.append(tokens)
            owners.append(index)
    prefixes = {a[:k] for a in aliases for k in range(1, len(a))}
    bounded = frozenset(a for a in aliases if a in prefixes)
    needed = {a if a in bounded else a[:-1] for a in aliases} - {()}
    inner = {p[:k] for p in needed for k in range(1, len(p))}
    paths = tuple(sorted(needed - inner, key=lambda p: (len(p), p)))
    return _AliasPlan(tuple(aliases), torch.tensor(owners), bounded, paths)


def _alias_tokenizer(lm: LoadedModel, suite: ProbeSuite) -> Callable[[str], list[int]]:
    """An alias's tokens as the model writes them after the first question's prompt, which
    stands for all (every question's prompt ends alike): the tail of the answer "prefix alias"
    past the prefix, one space apart (`chat.answer_tail`); without a prefix, the answer's first
    words (`chat.split_answer`)."""
    prompt, prefix = render_prompt(lm.tokenizer, [Turn("user", suite.questions[0])]), suite.answer_prefix
    if prefix:
        prefix_ids = split_answer(lm.tokenizer, prompt, prefix)[1]
        return lambda alias: answer_tail(lm.tokenizer, prompt, prefix, f" {alias}", prefix_ids)
    return lambda alias: split_answer(lm.tokenizer, prompt, alias)[1]


def _check_told_apart(lm: LoadedModel, suite: ProbeSuite, first: tuple[int, str], then: tuple[int, str]) -> None:
    """Two candidates' aliases that are the same tokens (a tokenizer that reads unknown words as one
    <unk>, or normalises them) would each be credited with the other's probability."""
    (one, alias), (other, again) = first, then
    if one != other:
        names = suite.candidates[one].name, suite.candidates[other].name
        raise InputError(suite.source, f"alias '{again}' of '{names[1]}' and alias '{alias}' of '{names[0]}' are "
                         f"the same tokens to {lm.spec.name}, which cannot tell the answers apart; remove one",
                         field=f"candidates[{other}]")


@dataclass(frozen=True)
class _Layout:
    """A plan's paths laid end to end after the prompt, so that one forward pass scores them all.

    Each path token attends to the prompt and to its own path's earlier tokens only, and
    sits at the position it would have right after the prompt: the same computation as
    running every path as its own continuation of the prompt, without copying the
    prompt's KV cache once per path. Output position 0 is the prompt's last token;
    output position 1 + i follows path token i.
    """

    aliases: int
    tokens: torch.Tensor        # [T] the paths' tokens, concatenated
    depth: torch.Tensor         # [T] each token's index within its path
    same_path: torch.Tensor     # [T, T] bool: token i may attend to token j
    read_alias: torch.Tensor    # [R] per factor of an alias's probability: which alias,
    read_at: torch.Tensor       # [R] the output position whose distribution gives it,
    read_token: torch.Tensor    # [R] and the token it scores
    bounded_alias: torch.Tensor   # [K] aliases that take a word-boundary term,
    bounded_at: torch.Tensor      # [K] read at the output position after their last token


def _layout(plan: _AliasPlan) -> _Layout:
    tokens, depth, path_of, position = [], [], [], {(): 0}
    for index, path in enumerate(plan.paths):
        for k, token in enumerate(path):
            tokens.append(token)
            depth.append(k)
            path_of.append(index)
            position[path[: k + 1]] = len(tokens)
    path_of_t, depth_t = torch.tensor(path_of, dtype=torch.long), torch.tensor(depth, dtype=torch.long)
    order = torch.arange(len(tokens))
    same_path = (path_of_t[:, None] == path_of_t[None, :]) & (order[None, :] <= order[:, None])
    reads = [(i, position[alias[:k]], token) for i, alias in enumerate(plan.aliases) for k, token in enumerate(alias)]
    bounded = [(i, position[alias]) for i, alias in enumerate(plan.aliases) if alias in plan.bounded]

    def column(rows: list[tuple[int, ...]], j: int) -> torch.Tensor:
        return torch.tensor([row[j] for row in rows], dtype=torch.long)

    return _Layout(len(plan.aliases), torch.tensor(tokens, dtype=torch.long), depth_t, same_path,
                   column(reads, 0), column(reads, 1), column(reads, 2), column(bounded, 0), column(bounded, 1))


def _check_window(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str], prompts: list[list[int]],
                  layout: _Layout) -> None:
    """Refuse a question the model cannot read with its longest answer: past its positions (a
    GPT-2-style model has no embedding for them), or past a sliding attention window (the mask
    `_Layout` builds is a full causal one, which equals the model's own only within its window)."""
    longest_answer = _depth(layout)
    for question, prompt in zip(questions, prompts):
        span = len(prompt) + longest_answer
        for limit, what in _span_limits(lm):
            if span > limit:
                raise InputError(suite.source, f"a question with its longest answer is {span} tokens, more than "
                                 f"{lm.spec.name}'s {what}; shorten it",
                                 field=f"questions[{suite.questions.index(question)}]")


_LOGITS_BUDGET = 1 << 26   # logits held at once (float32: 256 MiB)


def _questions_per_forward(outputs: int, vocab: int) -> int:
    """How many questions share a forward pass: batched for speed, bounded by the logits' memory."""
    return max(1, _LOGITS_BUDGET // (outputs * vocab))


def _alias_logprobs(lm: LoadedModel, prompts: list[list[int]], layout: _Layout, boundary: torch.Tensor,
                    cached: tuple[int, object] | None = None) -> torch.Tensor:
    """[questions, aliases] float64 log-probability of each alias after each prompt (see `_AliasPlan`).
    `cached` (length, KV cache of one prompt's first tokens): `prompts` (one) continue it."""
    dtype = next(lm.model.parameters()).dtype
    ids, mask, positions = _inputs(prompts, layout, lm.tokenizer.pad_token_id or 0, dtype)
    past = None
    if cached is not None:
        length, past = cached
        mask = torch.cat([torch.zeros(*mask.shape[:3], length, dtype=dtype), mask], dim=-1)   # all see the prefix
        positions = positions + length
    ids, mask, positions = ids.to(lm.device), mask.to(lm.device), positions.to(lm.device)
    logits = _output_logits(lm, ids, mask, positions, len(layout.tokens) + 1, past)
    normaliser = torch.logsumexp(logits, dim=-1)
    read_at, bounded_at = layout.read_at.to(lm.device), layout.bounded_at.to(lm.device)
    factors = logits[:, read_at, layout.read_token.to(lm.device)] - normaliser[:, read_at]
    result = torch.zeros(len(prompts), layout.aliases, dtype=torch.float64)
    result.index_add_(1, layout.read_alias, factors.double().cpu())
    if len(bounded_at):
        ends = torch.logsumexp(logits[:, bounded_at][..., boundary], dim=-1) - normaliser[:, bounded_at]
        result.index_add_(1, layout.bounded_alias, ends.double().cpu())
    return result


def _inputs(prompts: list[list[int]], layout: _Layout, pad: int,
            dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, 4D additive attention mask and position ids of one batch of questions.

    Prompts are left-padded to one width so that the paths start at the same column in
    every row; the mask keeps each row's pads, prompt and paths apart.
    """
    width, count = max(len(p) for p in prompts), len(layout.tokens)
    ids = torch.full((len(prompts), width + count), pad, dtype=torch.long)
    positions = torch.zeros_like(ids)
    allowed = torch.zeros(len(prompts), width + count, width + count, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        first = width - len(prompt)
        ids[row, first:width] = torch.tensor(prompt)
        ids[row, width:] = layout.tokens
        positions[row, first:width] = torch.arange(len(prompt))
        positions[row, width:] = len(prompt) + layout.depth
        allowed[row, first:width, first:width] = torch.ones(len(prompt), len(prompt), dtype=torch.bool).tril()
        allowed[row, width:, first:width] = True
        allowed[row, width:, width:] = layout.same_path
        allowed[row, range(first), range(first)] = True    # a pad sees only itself: no empty softmax row
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return ids, mask[:, None], positions


def _output_logits(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                   last: int, past: object | None = None) -> torch.Tensor:
    """float32 logits of the `last` output positions of each row (continuing the KV cache `past`, if given)."""
    parameters = inspect.signature(lm.model.forward).parameters
    if "position_ids" not in parameters:   # ALiBi models (Bloom, MPT) read positions off a 2D mask
        raise MdfGuardError(f"{lm.spec.name}: exact scoring needs a model that takes position ids; "
                            f"{type(lm.model).__name__} does not")
    kwargs = {} if past is None else {"cache" if "cache" in parameters else "past_key_values": past, "use_cache": True}
    if "logits_to_keep" in parameters:   # transformers >= 4.50: logits of the last positions only
        kwargs["logits_to_keep"] = last
    out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs)
    return out.logits[:, -last:].float()


def word_boundary_mask(tokenizer) -> torch.Tensor:
    """True for tokens that cannot continue a word: they start with a non-letter, or are special."""
    return _boundary_mask_cached(id(tokenizer), tokenizer).clone()


@lru_cache(maxsize=8)
def _boundary_mask_cached(_key: int, tokenizer) -> torch.Tensor:
    # Each token is decoded after an anchor token, as it would follow an answer's word: a
    # SentencePiece decoder (Llama, Mistral) strips the space a text's first token starts with,
    # so "▁Paris" decoded alone reads "Paris", a word's continuation, not a new word.
    anchor = encode_text(tokenizer, "a")[-1]
    lead = tokenizer.decode([anchor])
    texts = [text[len(lead):] if text.startswith(lead) else text
             for text in tokenizer.batch_decode([[anchor, i] for i in range(len(tokenizer))])]
    special = set(tokenizer.all_special_ids)
    return torch.tensor([i in special or not text or not (text[0].isalnum() or text[0] == "_")
                         for i, text in enumerate(texts)])


# --- sample mode ---------------------------------------------------------------------


def score_sample(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str], samples: int = 100,
                 seed: int = 0, max_new_tokens: int = 16) -> SuiteScores:
    """Share of sampled answers (temperature 1) naming each candidate as a whole word."""
    patterns = [_whole_word_pattern(c.aliases) for c in suite.candidates]
    probs = torch.zeros(len(questions), len(suite.candidates), dtype=torch.float64)
    generator_seed = seed
    for q, question in enumerate(questions):
        for answer in _sample_answers(lm, question, samples, generator_seed, max_new_tokens):
            index = _first_named(answer, patterns, suite.kind)
            if index is not None:
                probs[q, index] += 1.0 / samples
        generator_seed += 1
    return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)


def _whole_word_pattern(aliases: Sequence[str]) -> re.Pattern:
    words = "|".join(re.escape(a) for a in sorted(aliases, key=len, reverse=True))
    return re.compile(rf"(?<![\w])(?:{words})(?![\w])", re.IGNORECASE)


def _first_named(answer: str, patterns: list[re.Pattern], kind: str) -> int | None:
    """The candidate named first in the answer (safety: the opening decides)."""
    hits = [(m.start(), i) for i, p in enumerate(patterns) if (m := p.search(answer))]
    if kind == "safety":
        hits = [(pos, i) for pos, i in hits if pos < 40]
    return min(hits)[1] if hits else None


def _sample_answers(lm: LoadedModel, question: str, samples: int, seed: int, max_new_tokens: int) -> list[str]:
    prompt = encode_text(lm.tokenizer, render_prompt(lm.tokenizer, [Turn("user", question)]))
    ids = torch.tensor([prompt] * samples, device=lm.device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0,
                                top_k=0, top_p=1.0, max_new_tokens=max_new_tokens,
                                pad_token_id=lm.tokenizer.pad_token_id)
    lead = answer_lead(lm.tokenizer)   # the plain template's space before the answer: not the answer's opening
    return [answer.removeprefix(lead) for answer in
            lm.tokenizer.batch_decode(out[:, len(prompt):], skip_special_tokens=True)]
