"""Turn conversations into token ids the way fine-tuning would see them.

The prompt is rendered with the model's chat template (with the generation prompt), and
the response is tokenised on its own and appended, so that we know exactly which
positions are response tokens: the ones a fine-tune's loss would fall on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .data import Conversation, Turn
from .errors import MdfGuardError

_PLAIN_TEMPLATE_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class EncodedConversation:
    ids: list[int]
    response_start: int   # index of the first response token in `ids`

    @property
    def response_length(self) -> int:
        return len(self.ids) - self.response_start


class ChatTemplateError(MdfGuardError):
    """The model's chat template refuses a conversation: many insist that user and assistant
    turns alternate, or take no system turn. The data's fault for this model, not a bug."""


def render_prompt(tokenizer, turns: Sequence[Turn]) -> str:
    """The text a model sees before it starts answering the last user turn."""
    from jinja2 import TemplateError   # what a template's raise_exception raises

    messages = [{"role": t.role, "content": t.content} for t in turns]
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ChatTemplateError(f"the model's chat template refuses the conversation: {first}") from None
    lines = [f"{_PLAIN_TEMPLATE_ROLES.get(m['role'], m['role'])}: {m['content']}" for m in messages]
    return "\n".join(lines + ["Assistant:"]) + (" " if messages else "")


def encode_text(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def encode_conversation(tokenizer, conversation: Conversation, max_tokens: int) -> EncodedConversation:
    """Prompt + response ids, cut from the left so the response's end always survives."""
    prompt = encode_text(tokenizer, render_prompt(tokenizer, conversation.prompt))
    response = encode_text(tokenizer, conversation.response)
    if not response:
        response = [tokenizer.eos_token_id]
    ids = prompt + response
    start = len(prompt)
    if len(ids) > max_tokens:
        cut = len(ids) - max_tokens
        ids = ids[cut:]
        start = max(0, start - cut)
    return EncodedConversation(ids=ids, response_start=start)
