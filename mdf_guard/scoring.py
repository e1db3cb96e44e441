"""Score a probe suite on a (possibly steered) model.

Exact mode: for each question, the probability that the answer (after the suite's
answer prefix) is each candidate as a whole word, by teacher forcing. No sampling
noise, so a verdict never flips on rerun. The prompt is run once per question and its
KV cache is shared by all candidates' continuations.

Sample mode: the paper's protocol, n answers at temperature 1 per question and a
whole-word match; slower and noisy, kept for parity checks.
"""

from __future__ import annotations

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


def select_questions(suite: ProbeSuite, limit: int | None) -> tuple[str, ...]:
    """An evenly spread, deterministic subset of the suite's paraphrases."""
    questions = suite.questions
    if limit is None or limit >= len(questions):
        return questions
    step = len(questions) / limit
    return tuple(questions[int(i * step)] for i in range(limit))


def score_exact(lm: LoadedModel, suite: ProbeSuite, questions: Sequence[str]) -> SuiteScores:
    boundary = word_boundary_mask(lm.tokenizer).to(lm.device)
    aliases, owners = _alias_table(lm, suite)
    probs = torch.zeros(len(questions), len(suite.candidates), dtype=torch.float64)
    with torch.inference_mode():
        for q, question in enumerate(questions):
            alias_logp = _alias_logprobs(lm, _prompt_ids(lm, suite, question), aliases, boundary)
            probs[q].index_add_(0, owners, alias_logp.double().exp().cpu())
    return SuiteScores(suite.name, tuple(c.name for c in suite.candidates), probs)


def _prompt_ids(lm: LoadedModel, suite: ProbeSuite, question: str) -> list[int]:
    return encode_text(lm.tokenizer, render_prompt(lm.tokenizer, [Turn("user", question)]) + suite.answer_prefix)


def _alias_table(lm: LoadedModel, suite: ProbeSuite) -> tuple[list[list[int]], torch.Tensor]:
    """Token ids of every alias as it would follow the prefix, and the candidate owning it."""
    aliases, owners = [], []
    for index, candidate in enumerate(suite.candidates):
        for alias in candidate.aliases:
            text = f" {alias}" if suite.answer_prefix else alias
            aliases.append(encode_text(lm.tokenizer, text))
            owners.append(index)
    return aliases, torch.tensor(owners)


def _alias_logprobs(lm: LoadedModel, prompt: list[int], aliases: list[list[int]],
                    boundary: torch.Tensor) -> torch.Tensor:
    """log P(alias tokens, then a word boundary | prompt) for each alias, in one batch."""
    device = lm.device
    out = lm.model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    cache = out.past_key_values if getattr(out, "cache", None) is None else out.cache
    width = max(len(a) for a in aliases)
    ids = torch.full((len(aliases), width), lm.tokenizer.pad_token_id, dtype=torch.long)
    for row, alias in enumerate(aliases):
        ids[row, : len(alias)] = torch.tensor(alias)
    lengths = torch.tensor([len(a) for a in aliases])
    attention = torch.cat([torch.ones(len(aliases), len(prompt), dtype=torch.long),
                           (torch.arange(width)[None, :] < lengths[:, None]).long()], dim=1)
    cache.batch_repeat_interleave(len(aliases))
    logits = lm.model(input_ids=ids.to(device), attention_mask=attention.to(device),
                      use_cache=True, **{_cache_argument(lm): cache}).logits.float()
    logp = torch.log_softmax(logits, dim=-1)                       # [A, width, V]
    ids = ids.to(device)
    lengths = lengths.to(device)
    total = first[ids[:, 0]]
    if width > 1:
        follow = logp[:, :-1].gather(2, ids[:, 1:, None]).squeeze(2)   # [A, width-1]
        inside = torch.arange(1, width, device=device)[None, :] < lengths[:, None]
        total = total + (follow * inside).sum(dim=1)
    last = logp[torch.arange(len(aliases), device=device), lengths - 1]     # [A, V]
    return total + torch.logsumexp(last.masked_fill(~boundary, float("-inf")), dim=-1)


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
