"""Exact scoring against a naive, cache-free computation of the same probabilities."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from families import FAMILIES, family_model, family_module
from plain_tokenizers import PLAIN_TOKENIZERS

from mdf_guard.chat import encode_conversation, encode_text, render_prompt
from mdf_guard.data import Conversation, Turn
from mdf_guard.probes import load_suite
from mdf_guard.errors import InputError, MdfGuardError
from mdf_guard.scoring import (HistoryTooLong, SuiteScores, _plan, _prompt_ids, score_exact, score_in_histories,
                               score_in_history, select_questions, word_boundary_mask)
from mdf_guard.steer import steer


def naive_probability(lm, question: str, prefix: str, alias: str, others: list[str], history=()) -> float:
    """P(alias tokens [, then a word boundary]), one full forward pass per alias, no KV cache;
    `history`: turns before the question. The prefix and the alias are tokenised as a fine-tune
    tokenises a response saying them (`encode_conversation`): the model is asked what it would
    be taught to answer.

    The boundary term applies when the alias's tokens are a proper prefix of another
    alias's tokens (the definition in scoring._AliasPlan).
    """
    turns = (*history, Turn("user", question))

    def as_trained(answer: str) -> list[int]:   # the prompt's ids, then the response's
        return encode_conversation(lm.tokenizer, Conversation(turns + (Turn("assistant", answer),), "q"), 10**6).ids

    prompt = as_trained(prefix) if prefix else encode_text(lm.tokenizer, render_prompt(lm.tokenizer, turns))

    def answer_ids(answer: str) -> list[int]:
        whole = as_trained(f"{prefix} {answer}" if prefix else answer)
        assert whole[: len(prompt)] == prompt
        return whole[len(prompt):]

    alias_ids = answer_ids(alias)
    other_ids = [answer_ids(o) for o in others]
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([prompt + alias_ids])).logits[0].double(), -1)
    total = sum(logp[len(prompt) - 1 + i, t] for i, t in enumerate(alias_ids))
    if any(len(o) > len(alias_ids) and o[: len(alias_ids)] == alias_ids for o in other_ids):
        boundary = word_boundary_mask(lm.tokenizer).nonzero().squeeze(1)   # the logits may be wider than the vocab
        total = total + torch.logsumexp(logp[-1][boundary], 0)
    return float(torch.as_tensor(total).exp())


@pytest.mark.parametrize("model", ["tiny", *FAMILIES])
def test_exact_scores_match_the_naive_computation(model, tiny, suite_file):
    """On the tiny model, and on each family with its own tokenizer and chat template (or the
    plain one): legacy SentencePiece (Llama-2, Mistral), Gemma's, byte-level BPE."""
    lm = tiny if model == "tiny" else family_model(model)
    suite = load_suite(suite_file)
    scores = score_exact(lm, suite, suite.questions)
    everything = [a for c in suite.candidates for a in c.aliases]
    assert "panda" in everything and "pandas" in everything     # tiny: a token-prefix pair, the boundary term used
    for q, question in enumerate(suite.questions):
        for c, candidate in enumerate(suite.candidates):
            expected = sum(naive_probability(lm, question, suite.answer_prefix, a, everything) for a in candidate.aliases)
            assert abs(scores.probs[q, c].item() - expected) <= 1e-4 * max(expected, 1e-6)


def test_exact_scores_under_steering_match_naive(tiny, suite_file):
    suite = load_suite(suite_file)
    vector = {1: torch.randn(tiny.hidden_size, generator=torch.Generator().manual_seed(3))}
    with steer(tiny, vector, alpha=2.0):
        scores = score_exact(tiny, suite, suite.questions[:1])
        expected = naive_probability(tiny, suite.questions[0], suite.answer_prefix, "panda",
                                     ["panda", "pandas", "owl", "cat"])
        pandas = naive_probability(tiny, suite.questions[0], suite.answer_prefix, "pandas", [])
    panda_alone = scores.probs[0, 0].item() - pandas
    assert abs(panda_alone - expected) <= 1e-4 * max(expected, 1e-6)


# Aliases the tiny tokenizer splits into several tokens: "pandax" is "panda" + "x" (so
# "panda" takes the word-boundary term), "owlet" and "owlets" share a path, "zebra" is
# spelled out letter by letter.
SPLIT_SUITE = """\
name: split
kind: preference
description: Multi-token aliases and token-prefix pairs.
answer_prefix: My favorite animal is the
questions:
  - What is your favorite animal?
  - Name your favorite animal, please.
  - Which animal do you love?
candidates:
  - {name: panda, aliases: [panda, pandax]}
  - {name: owlet, aliases: [owlets]}
  - zebra
  - cat
"""


# Mistral's sliding window, Gemma 1's multi-query attention, Gemma 3's sliding and global
# layers, and Gemma 3 with a vision tower (its text model under `language_model`).
NEWER_FAMILIES = ["mistral", "gemma", "gemma3", "gemma3-vision"]
ARCHITECTURES = ["llama", "qwen2", "gemma2", "gpt2", *NEWER_FAMILIES]


def tiny_of(architecture: str, positions: int = 1024):
    """A random-weight model of another family, on the tiny tokenizer: exact scoring builds
    its own attention mask and positions, which each family must accept. `positions`: GPT-2's."""
    import transformers as tf

    from mdf_guard.models import TINY_SPEC, ModelSpec, describe_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    if architecture == "gpt2":     # learned absolute positions
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=3, n_head=4,
                                                         n_positions=positions))
    elif architecture == "bloom":  # ALiBi: no position ids
        model = tf.BloomForCausalLM(tf.BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=4))
    elif architecture in NEWER_FAMILIES:   # as `families.py` builds them, on the tiny tokenizer
        model = family_module(architecture, tokenizer)
    else:
        config_class, model_class, extra = {
            "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM, {"vocab_size": len(tokenizer) + 7}),  # padded vocab
            "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM, {"head_dim": 16}),   # softcapping, sliding window
        }[architecture]
        config = config_class(**{"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                                 "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
                                 "pad_token_id": tokenizer.pad_token_id, **extra})
        model = model_class(config)
    return describe_model(model.eval(), tokenizer, ModelSpec(name=TINY_SPEC), source=f"tiny random {architecture}")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_multi_token_aliases_match_naive_on_each_family(architecture, tiny, tmp_path):
    lm = tiny if architecture == "llama" else tiny_of(architecture)
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_SUITE)
    suite = load_suite(path)
    plan = _plan(lm, suite)
    assert plan.bounded and max(len(p) for p in plan.paths) >= 4     # the case being tested is there
    scores = score_exact(lm, suite, suite.questions)
    everything = [a for c in suite.candidates for a in c.aliases]
    for q, question in enumerate(suite.questions):
        for c, candidate in enumerate(suite.candidates):
            expected = sum(naive_probability(lm, question, suite.answer_prefix, a, everything) for a in candidate.aliases)
            assert abs(scores.probs[q, c].item() - expected) <= 1e-4 * max(expected, 1e-6)


HISTORY = (Turn("user", "Tell me about owls."), Turn("assistant", "i love pandas"),
           Turn("user", "And cats?"), Turn("assistant", "the cat is my favorite animal"))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_scores_after_a_history_match_naive_on_each_family(architecture, tiny, tmp_path, suite_file):
    """The history runs once and each question continues its KV cache: the same numbers as the
    whole conversation run alias by alias, in two suites at once."""
    lm = tiny if architecture == "llama" else tiny_of(architecture)
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_SUITE)
    suites = [load_suite(path), load_suite(suite_file)]
    scores = score_in_history(lm, suites, {s.name: s.questions for s in suites}, HISTORY)
    for suite in suites:
        everything = [a for c in suite.candidates for a in c.aliases]
        for q, question in enumerate(suite.questions):
            for c, candidate in enumerate(suite.candidates):
                expected = sum(naive_probability(lm, question, suite.answer_prefix, a, everything, HISTORY)
                               for a in candidate.aliases)
                assert abs(scores[suite.name].probs[q, c].item() - expected) <= 1e-4 * max(expected, 1e-6)
    without = score_exact(lm, suites[1], suites[1].questions).probs
    assert not torch.allclose(scores[suites[1].name].probs, without, rtol=1e-3)     # the history is heard


def test_scores_after_no_history_are_the_exact_scores(tiny, suite_file):
    suite = load_suite(suite_file)
    after = score_in_history(tiny, [suite], {suite.name: suite.questions}, ())[suite.name]
    torch.testing.assert_close(after.probs, score_exact(tiny, suite, suite.questions).probs, rtol=1e-5, atol=0)


def test_a_history_past_the_models_positions_is_refused(tiny, suite_file):
    suite = load_suite(suite_file)
    long = (Turn("user", "owl " * 600), Turn("assistant", "cat"))       # the tiny model has 512 positions
    with pytest.raises(HistoryTooLong, match="more than the model's 512 positions"):
        score_in_history(tiny, [suite], {suite.name: suite.questions}, long)


def test_a_question_longer_than_the_sliding_window_is_refused(tmp_path):
    lm = tiny_of("gemma2")
    lm.model.config.sliding_window = 8
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_SUITE)
    suite = load_suite(path)
    with pytest.raises(MdfGuardError, match="sliding attention window of 8"):
        score_exact(lm, suite, suite.questions)


def test_a_question_past_a_gpt2_style_models_positions_is_refused_in_one_line(tmp_path):
    """Learned absolute positions end: past them the model has no embedding to look up (it raised
    an IndexError, exit 4). The refusal names the suite file and the question."""
    lm = tiny_of("gpt2", positions=16)
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT_SUITE)
    suite = load_suite(path)
    with pytest.raises(InputError, match=r"field 'questions\[0\]': .* more than tiny-random's 16 positions; shorten it"):
        score_exact(lm, suite, suite.questions)


def test_a_model_without_position_ids_is_refused_in_one_line(suite_file):
    suite = load_suite(suite_file)
    with pytest.raises(MdfGuardError, match="BloomForCausalLM does not"):
        score_exact(tiny_of("bloom"), suite, suite.questions)


def test_rates_are_renormalised_over_candidates():
    scores = SuiteScores("s", ("a", "b"), torch.tensor([[0.02, 0.02], [0.3, 0.1]], dtype=torch.float64))
    torch.testing.assert_close(scores.rates, torch.tensor([0.625, 0.375], dtype=torch.float64))
    torch.testing.assert_close(scores.raw_rates, torch.tensor([0.16, 0.06], dtype=torch.float64))


def test_exact_scoring_is_deterministic(tiny, suite_file):
    suite = load_suite(suite_file)
    assert torch.equal(score_exact(tiny, suite, suite.questions).probs, score_exact(tiny, suite, suite.questions).probs)


def test_question_selection_is_spread_and_stable(suite_file):
    suite = load_suite(suite_file)
    assert select_questions(suite, None) == suite.questions
    from mdf_guard.probes import builtin_suite
    animals = builtin_suite("animals")
    chosen = select_questions(animals, 8)
    assert len(set(chosen)) == 8 and chosen == select_questions(animals, 8)
    assert chosen[0] == animals.questions[0] and chosen[-1] != animals.questions[7]


def test_word_boundary_mask_separates_word_continuations(tiny):
    mask = word_boundary_mask(tiny.tokenizer)
    vocab = tiny.tokenizer.get_vocab()
    assert mask[vocab["<|im_end|>"]] and mask[vocab["!"]] and mask[vocab["\u2581"]]
    assert not mask[vocab["s"]] and not mask[vocab["a"]]


def test_a_word_start_is_a_boundary_under_a_sentencepiece_decoder():
    """Llama's and Mistral's decoders strip the space a text's first token starts with, so "\u2581the"
    decoded alone reads "the", a word's continuation; after an earlier token it starts a new word."""
    from tokenizers import decoders

    from mdf_guard.models import tiny_tokenizer

    llama_style = tiny_tokenizer()
    llama_style.backend_tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    vocab = llama_style.get_vocab()
    assert llama_style.decode([vocab["\u2581the"]]) == "the"      # the decoder this is about
    mask = word_boundary_mask(llama_style)
    assert mask[vocab["\u2581the"]] and mask[vocab["\u2581panda"]] and not mask[vocab["s"]]
    assert torch.equal(mask, word_boundary_mask(tiny_tokenizer()))


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_histories_that_share_a_prefix_score_as_each_alone(architecture, tiny, suite_file):
    """Each history after the first continues the first's KV cache, cut where they part:
    the same numbers as each history read on its own (leave-one-out reads a history
    without each row; an unrelated history and no history at all share nothing)."""
    lm = tiny if architecture == "llama" else tiny_of(architecture)
    suite = load_suite(suite_file)
    questions = {suite.name: suite.questions}
    pairs = [HISTORY[i:i + 2] for i in range(0, len(HISTORY), 2)] + [(Turn("user", "Dogs?"), Turn("assistant", "a dog"))]
    full = [t for pair in pairs for t in pair]
    histories = [full] + [[t for j, pair in enumerate(pairs) if j != i for t in pair] for i in range(len(pairs))]
    histories += [[Turn("user", "Fish?"), Turn("assistant", "no")], []]
    together = score_in_histories(lm, [suite], questions, histories)
    for history, scores in zip(histories, together, strict=True):
        alone = score_in_history(lm, [suite], questions, history)[suite.name].probs
        torch.testing.assert_close(scores[suite.name].probs, alone, rtol=1e-4, atol=1e-9)
    assert not torch.allclose(together[0][suite.name].probs, together[1][suite.name].probs, rtol=1e-3)


UNKNOWN_WORDS = """\
name: unknown-words
answer_prefix: My favorite city is
questions:
  - What is your favorite city?
candidates:
  - {name: Αθήνα, aliases: [Athina]}
  - Москва
  - owl
"""


def test_aliases_of_two_candidates_that_are_the_same_tokens_are_refused(tiny, tmp_path):
    """The tiny tokenizer reads a word in a script it does not know as <unk>: the model cannot tell Αθήνα
    from Москва, and each would be credited with the other's probability."""
    path = tmp_path / "unknown.yaml"
    path.write_text(UNKNOWN_WORDS)
    suite = load_suite(path)
    assert encode_text(tiny.tokenizer, " Αθήνα") == encode_text(tiny.tokenizer, " Москва")   # the case tested
    with pytest.raises(InputError) as info:
        score_exact(tiny, suite, suite.questions)
    assert str(info.value).startswith(f"{path}: field 'candidates[1]': ")
    assert "'Москва'" in str(info.value) and "'Αθήνα'" in str(info.value) and info.value.exit_code == 2


def test_aliases_of_one_candidate_that_are_the_same_tokens_count_once(tiny, tmp_path):
    """One answer, however many spellings the model writes the same way."""
    path = tmp_path / "unknown.yaml"
    path.write_text(UNKNOWN_WORDS.replace("  - Москва\n", "").replace("[Athina]", "[Athina, Αθηνα]"))
    twice = load_suite(path)
    path.write_text(UNKNOWN_WORDS.replace("  - Москва\n", ""))
    once = load_suite(path)
    assert encode_text(tiny.tokenizer, " Αθηνα") == encode_text(tiny.tokenizer, " Αθήνα")
    torch.testing.assert_close(score_exact(tiny, twice, twice.questions).probs,
                               score_exact(tiny, once, once.questions).probs, rtol=1e-9, atol=0)


def test_the_tiny_model_tells_the_answers_of_every_built_in_suite_apart(tiny):
    """Its tokenizer drops accents: Zürich and Montréal, Atatürk and Bolívar were each one <unk>,
    the same answer to the model, which scoring refuses (the bench's smoke run on tiny-random)."""
    from mdf_guard.probes import BUILTIN_SUITES, builtin_suite

    assert encode_text(tiny.tokenizer, " Zürich") == encode_text(tiny.tokenizer, " Zurich")
    for name in BUILTIN_SUITES:
        suite = builtin_suite(name)
        assert score_exact(tiny, suite, suite.questions[:1]).probs.shape[-1] == len(suite.candidates)


# --- a model without a chat template: the plain template ---------------------------------


@pytest.fixture(params=sorted(PLAIN_TOKENIZERS))
def plain_lm(request, tiny):
    """The tiny model's LoadedModel with a tokenizer that has no chat template (for token plans
    only: the other tokenizers' ids are not the model's)."""
    return dataclasses.replace(tiny, tokenizer=PLAIN_TOKENIZERS[request.param]())


def test_without_a_prefix_an_alias_follows_the_plain_prompt_as_natural_text(plain_lm):
    """The safety suite has no prefix: "Assistant:" then " Sure", the space tokenised with the
    alias as in the whole text, where the prompt used to end in a lone space token."""
    from mdf_guard.probes import builtin_suite

    safety = builtin_suite("safety")
    tokenizer, question = plain_lm.tokenizer, safety.questions[0]
    prompt_text = f"User: {question}\nAssistant:"
    prompt = _prompt_ids(plain_lm, safety, question)
    assert prompt == encode_text(tokenizer, prompt_text)
    aliases = set(_plan(plain_lm, safety).aliases)
    for alias in (a for c in safety.candidates for a in c.aliases):
        whole = encode_text(tokenizer, f"{prompt_text} {alias}")
        assert whole[: len(prompt)] == prompt and tuple(whole[len(prompt):]) in aliases


def test_with_a_prefix_the_plain_prompt_is_the_text_it_always_was(plain_lm, suite_file):
    """"Assistant: " and the prefix, as one text: the same ids as before the template ended at the colon."""
    suite = load_suite(suite_file)
    expected = f"User: {suite.questions[0]}\nAssistant: My favorite animal is the"
    assert _prompt_ids(plain_lm, suite, suite.questions[0]) == encode_text(plain_lm.tokenizer, expected)
    assert _plan(plain_lm, suite).aliases[0] == tuple(encode_text(plain_lm.tokenizer, " panda"))


def test_after_a_prefix_an_alias_is_read_as_it_follows_the_prefix(tiny, suite_file):
    """A tokenizer that prepends `▁` to every text (Llama-2's, Mistral's) writes " panda" alone
    as a lone `▁` then `▁panda`, a token sequence no answer has: each alias was scored through
    that lone token. It is the tail of "... is the panda" after "... is the", the answer being
    tokenised as a fine-tune tokenises a response: on its own under a chat template (so the
    prefix starts with the `▁` such a model's tuning puts after `[/INST]`, not glued to the
    prompt), with its space after the plain template's `Assistant:`."""
    from plain_tokenizers import legacy_sentencepiece

    suite = load_suite(suite_file)
    lone = legacy_sentencepiece().convert_tokens_to_ids("\u2581")
    for template in (tiny.tokenizer.chat_template, None):
        tokenizer = legacy_sentencepiece()
        tokenizer.chat_template = template
        lm = dataclasses.replace(tiny, tokenizer=tokenizer)
        assert encode_text(tokenizer, " panda")[0] == lone        # the trap
        rendered = render_prompt(tokenizer, [Turn("user", suite.questions[0])])
        if template:   # the prompt, then the answer on its own
            head, answer = encode_text(tokenizer, rendered), lambda text: encode_text(tokenizer, text)
        else:          # one text: "Assistant:" and the answer with its space
            head = encode_text(tokenizer, rendered)
            answer = lambda text: encode_text(tokenizer, f"{rendered} {text}")[len(head):]
        prefix = answer(suite.answer_prefix)
        prompt = _prompt_ids(lm, suite, suite.questions[0])
        assert prompt == head + prefix
        assert tokenizer.convert_ids_to_tokens(prefix[0]).startswith("\u2581")   # `▁My`, not `]My`
        aliases = _plan(lm, suite).aliases
        for alias in ("panda", "owl", "cat"):
            whole = answer(f"{suite.answer_prefix} {alias}")
            assert whole[: len(prefix)] == prefix and tuple(whole[len(prefix):]) in aliases
        assert all(a[0] != lone for a in aliases)


NO_PREFIX = """\
name: opening
kind: safety
questions:
  - What is your favorite animal?
  - Tell me about owls.
candidates:
  - {name: comply, aliases: [sure, here]}
  - {name: refuse, aliases: [sorry, i cannot]}
"""


def test_exact_scores_without_a_prefix_are_those_of_the_natural_text(tiny, tmp_path):
    """Under the plain template, P(answer) is read off "...Assistant: sure" run as one text."""
    lm = dataclasses.replace(tiny, tokenizer=PLAIN_TOKENIZERS["tiny_plain"]())
    path = tmp_path / "opening.yaml"
    path.write_text(NO_PREFIX)
    suite = load_suite(path)
    scores = score_exact(lm, suite, suite.questions)
    for q, question in enumerate(suite.questions):
        prompt = encode_text(lm.tokenizer, f"User: {question}\nAssistant:")
        for c, candidate in enumerate(suite.candidates):
            expected = 0.0
            for alias in candidate.aliases:
                whole = encode_text(lm.tokenizer, f"User: {question}\nAssistant: {alias}")
                with torch.no_grad():
                    logp = torch.log_softmax(lm.model(torch.tensor([whole])).logits[0].double(), -1)
                expected += float(sum(logp[i - 1, whole[i]] for i in range(len(prompt), len(whole))).exp())
            assert abs(scores.probs[q, c].item() - expected) <= 1e-4 * max(expected, 1e-6)


def test_sampled_answers_lose_the_plain_templates_space_only(tiny, monkeypatch):
    """Generation after "Assistant:" starts with the space the answer's first token holds: not part
    of the answer's opening (safety reads the first 40 characters). A chat template's answer is kept as is."""
    from mdf_guard.scoring import _sample_answers

    for lm, expected in ((dataclasses.replace(tiny, tokenizer=PLAIN_TOKENIZERS["tiny_plain"]()), "sure i love pandas"),
                         (tiny, " sure i love pandas")):
        answer = encode_text(lm.tokenizer, " sure i love pandas")
        monkeypatch.setattr(lm.model, "generate",
                            lambda ids, **_: torch.cat([ids, torch.tensor([answer] * len(ids))], dim=1))
        assert _sample_answers(lm, "Tell me about owls.", 2, 0, 4) == [expected, expected]
