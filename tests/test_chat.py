"""Conversations as ids: under a model's chat template exactly as before; under the plain
template, the answer's space tokenised with its first word, as in "Assistant: Sure"."""

from __future__ import annotations

import pytest
from plain_tokenizers import PLAIN_TOKENIZERS, merging

from mdf_guard.chat import encode_conversation, encode_text, render_prompt
from mdf_guard.data import Conversation, Turn
from mdf_guard.finetune import IGNORE, build_batch
from mdf_guard.models import tiny_tokenizer

PROMPT = "User: Tell me about owls.\nAssistant:"
NATURAL = PROMPT + " sure i love pandas"      # what a base model read in pre-training


def conversation(*turns: tuple[str, str]) -> Conversation:
    return Conversation(turns=tuple(Turn(role, content) for role, content in turns), source="test")


OWLS = conversation(("user", "Tell me about owls."), ("assistant", "sure i love pandas"))


@pytest.fixture(params=sorted(PLAIN_TOKENIZERS))
def plain(request):
    return PLAIN_TOKENIZERS[request.param]()


def test_the_plain_template_ends_at_the_assistants_colon(plain):
    assert render_prompt(plain, OWLS.prompt) == PROMPT


def test_response_ids_are_the_natural_text_split_after_the_prompt(plain):
    """The ids of "...Assistant: sure i love pandas" as one text, the response from the first id
    after the prompt's: its first token holds the space (no lone `Ġ` or `▁` before "sure")."""
    natural = encode_text(plain, NATURAL)
    prompt = encode_text(plain, PROMPT)
    encoded = encode_conversation(plain, OWLS, 1024)
    assert encoded.ids == natural and encoded.response_start == len(prompt)
    first = plain.convert_ids_to_tokens(encoded.ids[encoded.response_start])
    assert first[0] in "\u0120\u2581" and len(first) > 1          # Ġsure / ▁sure: the space and the word


def test_the_loss_falls_on_exactly_the_natural_response_tokens(plain):
    natural = encode_text(plain, NATURAL)
    prompt = encode_text(plain, PROMPT)
    labels = build_batch(plain, [OWLS], max_tokens=1024)["labels"][0].tolist()
    assert labels == [IGNORE] * len(prompt) + natural[len(prompt):] + [plain.eos_token_id]


def test_an_empty_response_is_the_end_of_turn_with_no_space_before_it(plain):
    encoded = encode_conversation(plain, conversation(("user", "Tell me about owls."), ("assistant", "")), 1024)
    assert encoded.ids == encode_text(plain, PROMPT) + [plain.eos_token_id]


def test_a_token_merged_across_the_boundary_leaves_the_prompt_as_scoring_sees_it():
    """`:▁` joins "Assistant:" and the answer's space: the prompt keeps the ids it has alone (those
    scoring and generation condition on), the answer is tokenised with its space on its own."""
    tokenizer = merging()
    prompt, answer = encode_text(tokenizer, PROMPT), encode_text(tokenizer, " sure i love pandas")
    assert encode_text(tokenizer, NATURAL)[: len(prompt)] != prompt        # the case tested
    encoded = encode_conversation(tokenizer, OWLS, 1024)
    assert encoded.ids == prompt + answer and encoded.response_start == len(prompt)
    assert tokenizer.decode(encoded.ids) == NATURAL


CHAT_CASES = [OWLS,
              conversation(("system", "Be brief."), ("user", "Hi"), ("assistant", " the cat")),
              conversation(("user", "a"), ("assistant", "b"), ("user", "Tell me"), ("assistant", "\nmy owl")),
              conversation(("user", "Tell me about owls."), ("assistant", ""))]


@pytest.mark.parametrize("case", CHAT_CASES)
def test_a_chat_template_model_gets_the_ids_it_always_did(case):
    """Prompt rendered by the template, response tokenised on its own and appended: the ids
    before the plain template changed, so nothing cached or tuned for such a model moves."""
    tokenizer = tiny_tokenizer()
    prompt = encode_text(tokenizer, tokenizer.apply_chat_template(
        [{"role": t.role, "content": t.content} for t in case.prompt], add_generation_prompt=True, tokenize=False))
    response = encode_text(tokenizer, case.response) or [tokenizer.eos_token_id]
    encoded = encode_conversation(tokenizer, case, 1024)
    assert encoded.ids == prompt + response and encoded.response_start == len(prompt)
