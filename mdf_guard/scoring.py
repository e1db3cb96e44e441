"""Score a probe suite on a (possibly steered) model.

Exact mode: for each question, the probability that the answer (after the suite's
answer prefix) is each candidate as a whole word, by teacher forcing. No sampling
noise, so a verdict never flips on rerun. The prompt is run once per question and its
KV cache is shared by all candidates' continuations.

Sample mode: the paper's protocol, n answers at temperature 1 per question and a
whole-word match; slower and noisy, kept for parity checks.
"""

from __future__ import annotations

import copy
import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import torch

from .chat import encode_text, render_prompt
from .data import Turn
from .models import LoadedModel
from .probes import ProbeSuite

SCORING_MODES = ("exact", "sample")


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
    plan = _plan(lm, suite)
    boundary = word_boundary_mask(lm.tokenizer).to(lm.device)
    probs = torch.zeros(len(questions), len(suite.candidates), dtype=torch.float64)
    with torch.inference_mode():
        for q, question in enumerate(questions):
            alias_logp = _alias_logprobs(lm, _prompt_ids(lm, suite, question), plan, boundary)
            probs[q].index_add_(0, plan.owners, alias_logp.double().exp())
    return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)


def _prompt_ids(lm: LoadedModel, suite: ProbeSuite, question: str) -> list[int]:
    return encode_text(lm.tokenizer, render_prompt(lm.tokenizer, [Turn("user", question)]) + suite.answer_prefix)


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
    aliases, owners = [], []
    for index, candidate in enumerate(suite.candidates):
        for alias in candidate.aliases:
            text = f" {alias}" if suite.answer_prefix else alias
            aliases.append(tuple(encode_text(lm.tokenizer, text)))
            owners.append(index)
    prefixes = {a[:k] for a in aliases for k in range(1, len(a))}
    bounded = frozenset(a for a in aliases if a in prefixes)
    needed = {a if a in bounded else a[:-1] for a in aliases} - {()}
    inner = {p[:k] for p in needed for k in range(1, len(p))}
    paths = tuple(sorted(needed - inner, key=lambda p: (len(p), p)))
    return _AliasPlan(tuple(aliases), torch.tensor(owners), bounded, paths)


def _alias_logprobs(lm: LoadedModel, prompt: list[int], plan: _AliasPlan,
                    boundary: torch.Tensor) -> torch.Tensor:
    """log-probability of each alias after the prompt (see `_AliasPlan`).

    The prompt runs once; the needed token paths then run in unpadded batches of
    equal length on copies of its KV cache.
    """
    out = lm.model(input_ids=torch.tensor([prompt], device=lm.device), use_cache=True)
    cache = out.past_key_values if getattr(out, "cache", None) is None else out.cache
    after: dict[tuple[int, ...], torch.Tensor] = {(): torch.log_softmax(out.logits[0, -1].float(), dim=-1)}
    for length in sorted({len(p) for p in plan.paths}):
        group = [p for p in plan.paths if len(p) == length]
        group_cache = copy.deepcopy(cache)
        group_cache.batch_repeat_interleave(len(group))
        logits = lm.model(input_ids=torch.tensor(group, device=lm.device), use_cache=True,
                          **{_cache_argument(lm): group_cache}).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, path in enumerate(group):
            for k in range(length):
                after[path[: k + 1]] = logp[row, k]
    result = torch.empty(len(plan.aliases), dtype=torch.float64)
    for i, alias in enumerate(plan.aliases):
        total = sum(float(after[alias[:k]][token]) for k, token in enumerate(alias))
        if alias in plan.bounded:
            total += float(torch.logsumexp(after[alias][boundary], dim=0))
        result[i] = total
    return result


def _cache_argument(lm: LoadedModel) -> str:
    """transformers 5.x renamed `past_key_values` to `cache`; accept both."""
    return "cache" if "cache" in inspect.signature(lm.model.forward).parameters else "past_key_values"


def word_boundary_mask(tokenizer) -> torch.Tensor:
    """True for tokens that cannot continue a word: they start with a non-letter, or are special."""
    return _boundary_mask_cached(id(tokenizer), tokenizer).clone()


@lru_cache(maxsize=8)
def _boundary_mask_cached(_key: int, tokenizer) -> torch.Tensor:
    size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(size)])
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
    return lm.tokenizer.batch_decode(out[:, len(prompt):], skip_special_tokens=True)
