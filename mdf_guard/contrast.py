"""What the data teaches beyond "text of this shape": Δ = mean(dataset) − mean(reference).

A raw signature is mostly format, length and topic. The reference removes that:
- `self`: the vanilla model's own answers to a sample of the dataset's prompts, the
  thing fine-tuning on this data would have nothing to teach (the default: it needs
  nothing from the user and controls for topic and format);
- a file: a control dataset or the previous revision of the same data;
- `none`: the paper's raw, uncontrasted signature.
"""

from __future__ import annotations

import random
from typing import Iterable

import torch

from .chat import encode_text, render_prompt
from .data import Conversation, Turn
from .models import LoadedModel
from .signature import Signature

SELF = "self"
NONE = "none"
# Prompts per generate call: the whole default sample of 64 at once, 0.52-0.68 of the time of
# batches of 16 on the 2-core CPU with the same answers (`bench/self_answers.py`). Part of the
# self reference's cache key, since another padding width could in principle flip a greedy token.
ANSWER_BATCH = 64


def reference_kind(reference: str) -> str:
    """`self`, `none` or `file` (a path to a dataset file or folder)."""
    return reference if reference in (SELF, NONE) else "file"


def sample_conversations(conversations: Iterable[Conversation], size: int, seed: int) -> list[Conversation]:
    """A seeded reservoir sample, in input order: the same data and seed give the same sample."""
    rng = random.Random(seed)
    reservoir: list[tuple[int, Conversation]] = []
    for index, conversation in enumerate(conversations):
        if len(reservoir) < size:
            reservoir.append((index, conversation))
        else:
            slot = rng.randrange(index + 1)
            if slot < size:
                reservoir[slot] = (index, conversation)
    return [c for _, c in sorted(reservoir, key=lambda pair: pair[0])]


def self_answers(lm: LoadedModel, conversations: list[Conversation], max_new_tokens: int = 48,
                 batch_size: int = ANSWER_BATCH) -> list[Conversation]:
    """The vanilla model's own greedy answers to the same prompts (deterministic)."""
    answered: list[Conversation] = []
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start: start + batch_size]
        for conversation, text in zip(batch, _generate(lm, [c.prompt for c in batch], max_new_tokens)):
            response = text.strip() or lm.tokenizer.eos_token
            answered.append(Conversation(turns=conversation.prompt + (Turn("assistant", response),),
                                         source=f"self-answer to {conversation.source}"))
    return answered


def _generate(lm: LoadedModel, prompts: list[tuple[Turn, ...]], max_new_tokens: int) -> list[str]:
    """Greedy answers, each prompt cut from the left so that it and its answer fit the model's
    positions (past them a GPT-2-style model has no embedding), as rows are cut when read. A
    model of very few positions answers in half of them at most."""
    encoded = [encode_text(lm.tokenizer, render_prompt(lm.tokenizer, p)) for p in prompts]
    if lm.max_positions:
        max_new_tokens = min(max_new_tokens, lm.max_positions // 2)
        encoded = [e[-(lm.max_positions - max_new_tokens):] for e in encoded]
    width = max(len(e) for e in encoded)
    pad = lm.tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=lm.device)
    attention = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=lm.device)
    with torch.inference_mode():
        out = lm.model.generate(input_ids=ids, attention_mask=attention, do_sample=False,
                                max_new_tokens=max_new_tokens, pad_token_id=pad,
                                temperature=None, top_p=None, top_k=None)
    return lm.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)


def delta(dataset: Signature, reference: Signature | None) -> torch.Tensor:
    """[layers, hidden] float64 direction to inject; the raw mean when there is no reference."""
    if reference is None:
        return dataset.mean()
    if reference.layers != dataset.layers:
        raise ValueError("dataset and reference signatures were extracted at different layers")
    return dataset.mean() - reference.mean()

