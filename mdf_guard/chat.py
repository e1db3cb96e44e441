"""Turn conversations into token ids the way fine-tuning would see them.

The prompt is rendered with the model's chat template (with the generation prompt), and
the response's ids are appended, so that we know exactly which positions are response
tokens: the ones a fine-tune's loss would fall on.

A model without a chat template (a base model) reads a plain template, `User: ...` lines
ending at `Assistant:`. Its answer starts with a space, tokenised together with the
answer's first word (` Sure`), as in the text the model was trained on: a prompt that
ended in the space would put that space in a token of its own, before a word written
without its space, a sequence the model never saw. Every caller that puts text after the
prompt (a response, an answer prefix, an alias, a generated answer) goes through
`answer_lead`, `split_answer` or `answer_tail`, so the space is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .data import Conversation, Turn
from .errors import MdfGuardError

_PLAIN_TEMPLATE_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
# The plain template's version, held by the cache keys and `validate` outcomes of a model without
# a chat template (`template_mark`), so that numbers computed under an earlier plain template are
# never served. 2: the prompt ends at "Assistant:" and the answer brings its own space (1 ended
# the prompt in that space).
PLAIN_TEMPLATE_VERSION = 2


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
    """The text a model sees before it starts answering the last user turn; under the plain
    template it ends at `Assistant:`, the answer's space being the answer's (`answer_lead`)."""
    from jinja2 import TemplateError   # what a template's raise_exception raises

    messages = [{"role": t.role, "content": t.content} for t in turns]
    if has_chat_template(tokenizer):
        try:
            return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ChatTemplateError(f"the model's chat template refuses the conversation: {first}") from None
    lines = [f"{_PLAIN_TEMPLATE_ROLES.get(m['role'], m['role'])}: {m['content']}" for m in messages]
    return "\n".join(lines + ["Assistant:"])


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def template_mark(tokenizer) -> str:
    """Empty under the model's own chat template, which the model fingerprint hashes; the plain
    template's version otherwise, since that template is this code's, not the model's."""
    return "" if has_chat_template(tokenizer) else f"plain-{PLAIN_TEMPLATE_VERSION}"


def answer_lead(tokenizer) -> str:
    """What comes between a rendered prompt and the assistant's first words: nothing after a
    chat template's generation prompt (unchanged: the answer was always appended as is), one
    space after the plain template's `Assistant:`, the space an earlier turn's `Assistant: ...`
    line has too."""
    return "" if has_chat_template(tokenizer) else " "


def split_answer(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """(ids of the rendered `prompt`, ids of `answer` after it).

    Under a chat template the answer is tokenised on its own, as it always was. Under the
    plain template it is the tail of the whole text's ids after the prompt's, so that its
    leading space is tokenised with its first word, whichever way the tokenizer marks a
    space (GPT-2's `Ġ`, SentencePiece's `▁`). Where the whole text's ids do not start with
    the prompt's (a token merged across `Assistant:` and the answer), the answer with its
    space is tokenised on its own: the prompt's ids stay those that scoring and generation
    condition on, so a fine-tune never learns to continue a prompt they never show.
    """
    prompt_ids = encode_text(tokenizer, prompt)
    lead = answer_lead(tokenizer)
    if not lead or not answer:
        return prompt_ids, encode_text(tokenizer, answer)
    return prompt_ids, ids_after(tokenizer, prompt, lead + answer, prompt_ids)


def answer_tail(tokenizer, prompt: str, answer: str, continuation: str,
                answer_ids: list[int] | None = None) -> list[int]:
    """The ids of `continuation` as written after `answer` in the assistant's turn: the tail of
    the longer answer's ids (`split_answer`) past `answer`'s. A probe's alias after its answer
    prefix is read this way, so the prefix and the alias are tokenised as a fine-tune tokenises
    a response that says them. Where a token merges across the two, the continuation is
    tokenised on its own."""
    head = split_answer(tokenizer, prompt, answer)[1] if answer_ids is None else answer_ids
    whole = split_answer(tokenizer, prompt, answer + continuation)[1]
    return whole[len(head):] if whole[: len(head)] == head else encode_text(tokenizer, continuation)


def ids_after(tokenizer, text: str, continuation: str, text_ids: list[int] | None = None) -> list[int]:
    """The ids of `continuation` as the tokenizer writes it after `text`: the tail of the whole
    text's ids past `text`'s. Tokenised on its own, a continuation that starts with a space can
    read differently: a SentencePiece tokenizer that prepends `▁` to every text (Llama-2's,
    Mistral's) writes " panda" as `▁` + `▁panda`. Where a token merges across the two (the whole
    text's ids do not start with `text`'s), the continuation is tokenised on its own."""
    head = encode_text(tokenizer, text) if text_ids is None else text_ids
    whole = encode_text(tokenizer, text + continuation)
    return whole[len(head):] if whole[: len(head)] == head else encode_text(tokenizer, continuation)


def encode_text(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def encode_conversation(tokenizer, conversation: Conversation, max_tokens: int) -> EncodedConversation:
    """Prompt + response ids, cut from the left so the response's end always survives. A row the
    chat template refuses (a system turn under Gemma's) is named by its file and line: the
    signature, the reference and a fine-tune read every row through here."""
    try:
        rendered = render_prompt(tokenizer, conversation.prompt)
    except ChatTemplateError as err:
        raise ChatTemplateError(f"{conversation.source}: {err}") from None
    prompt, response = split_answer(tokenizer, rendered, conversation.response)
    if not response:
        response = [tokenizer.eos_token_id]
    ids = prompt + response
    start = len(prompt)
    if len(ids) > max_tokens:
        cut = len(ids) - max_tokens
        ids = ids[cut:]
        start = max(0, start - cut)
    return EncodedConversation(ids=ids, response_start=start)
