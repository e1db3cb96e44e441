"""The injected probe must still answer: α is halved until it keeps the vanilla answer mass."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from conftest import TINY_SUITE
from mdf_guard.models import model_fingerprint, tiny_random_model
from mdf_guard.predict import ALPHA_RETRIES, ALPHA_STEP, CalibrationProfile, add_controls, predict
from mdf_guard.probes import parse_suite

COMMA = 42   # a token that is no candidate's first token


@pytest.fixture(scope="module")
def sharp_tiny():
    """The tiny model with a 10x output head, so that its answers are peaked enough to be
    pushed off the candidates (at the stock scale every answer is near uniform)."""
    lm = tiny_random_model()
    with torch.no_grad():
        lm.model.get_output_embeddings().weight.mul_(10)
    return dataclasses.replace(lm, fingerprint=model_fingerprint(lm.model, lm.tokenizer))


def toward_comma(lm, norm: float) -> torch.Tensor:
    """A direction that makes the last layer's output say ',' instead of an animal."""
    row = lm.model.get_output_embeddings().weight[COMMA].detach().double()
    return (row / row.norm() * norm)[None]


def probe(lm, delta, min_answer_mass, alpha=4.0, null_seeds=1, needs_controls=None):
    suite = parse_suite(yaml.safe_load(TINY_SUITE), "mini")
    profile = CalibrationProfile(model="tiny-random", layers=(lm.num_layers - 1,), alpha=alpha)
    return predict(lm, delta, profile, [suite], 2, null_seeds, min_answer_mass=min_answer_mass,
                   needs_controls=needs_controls)[0]


def test_an_injection_that_stops_the_answers_is_weakened_until_they_come_back(sharp_tiny):
    delta = toward_comma(sharp_tiny, 1.0)
    unguarded = probe(sharp_tiny, delta, min_answer_mass=0.0)
    vanilla_mass, broken_mass = unguarded.answer_mass
    assert unguarded.alpha == 4.0 and broken_mass < 0.1 * vanilla_mass

    guarded = probe(sharp_tiny, delta, min_answer_mass=0.5)
    assert 4.0 / ALPHA_STEP ** ALPHA_RETRIES < guarded.alpha < 4.0
    assert guarded.answer_mass[1] >= 0.5 * vanilla_mass
    # One step less would still have broken the answers: α is the largest that answers.
    stronger = probe(sharp_tiny, delta, min_answer_mass=0.0, alpha=guarded.alpha * ALPHA_STEP)
    assert stronger.answer_mass[1] < 0.5 * vanilla_mass


def test_the_controls_are_probed_at_the_same_weakened_alpha(sharp_tiny):
    delta = toward_comma(sharp_tiny, 1.0)
    guarded = probe(sharp_tiny, delta, min_answer_mass=0.5)
    fixed = probe(sharp_tiny, delta, min_answer_mass=0.0, alpha=guarded.alpha)
    assert guarded.alpha < 4.0
    assert [(e.predicted_rate, e.null_shifts, e.mirror_shift) for e in guarded.entities] == \
           [(e.predicted_rate, e.null_shifts, e.mirror_shift) for e in fixed.entities]


def test_an_injection_that_answers_keeps_the_profile_alpha(sharp_tiny):
    gentle = probe(sharp_tiny, toward_comma(sharp_tiny, 0.01), min_answer_mass=0.5)
    assert gentle.alpha == 4.0 and gentle.answer_mass[1] >= 0.5 * gentle.answer_mass[0]


def test_halving_stops_at_an_eighth_and_says_how_little_was_left(sharp_tiny):
    overwhelming = probe(sharp_tiny, toward_comma(sharp_tiny, 10.0), min_answer_mass=0.5)
    assert overwhelming.alpha == 4.0 / ALPHA_STEP ** ALPHA_RETRIES
    assert overwhelming.answer_mass[1] < 0.5 * overwhelming.answer_mass[0]


def test_controls_run_only_where_needs_controls_asks_and_the_rates_stay(sharp_tiny):
    delta = toward_comma(sharp_tiny, 1.0)
    asked = []
    lean = probe(sharp_tiny, delta, min_answer_mass=0.5, needs_controls=lambda s: asked.append(s) or False)
    full = probe(sharp_tiny, delta, min_answer_mass=0.5, needs_controls=lambda s: True)
    # It is asked once, with the injected rates in and no control yet.
    assert len(asked) == 1 and asked[0].controls_skipped and asked[0].entities[0].predicted_rate > 0
    assert all(e.null_shifts == () and e.mirror_shift is None for e in asked[0].entities)
    assert lean.controls_skipped and not full.controls_skipped
    assert (lean.alpha, lean.answer_mass) == (full.alpha, full.answer_mass)
    assert [(e.predicted_rate, e.shift) for e in lean.entities] == [(e.predicted_rate, e.shift) for e in full.entities]
    assert all(e.null_max is None and e.excess is None for e in lean.entities)
    assert all(len(e.null_shifts) == 1 and e.mirror_shift is not None and e.excess is not None
               for e in full.entities)


def test_controls_added_afterwards_equal_those_predict_runs(sharp_tiny):
    """What `validate` does for its random baseline where `check` skipped the controls."""
    delta = toward_comma(sharp_tiny, 1.0)
    lean = probe(sharp_tiny, delta, min_answer_mass=0.5, null_seeds=2, needs_controls=lambda s: False)
    full = probe(sharp_tiny, delta, min_answer_mass=0.5, null_seeds=2)
    suite = parse_suite(yaml.safe_load(TINY_SUITE), "mini")
    profile = CalibrationProfile(model="tiny-random", layers=(sharp_tiny.num_layers - 1,), alpha=4.0)
    assert lean.alpha < 4.0                          # the controls must use the suite's weakened α
    assert add_controls(sharp_tiny, lean, suite, delta, profile, null_seeds=2) == full


def test_a_model_without_a_chat_template_keys_its_caches_with_the_plain_templates_version(tiny):
    """A chat-template model's key is its fingerprint, as it was: its cached numbers stay valid."""
    from plain_tokenizers import tiny_plain

    from mdf_guard.chat import PLAIN_TEMPLATE_VERSION

    assert tiny.cache_key == tiny.fingerprint
    plain = dataclasses.replace(tiny, tokenizer=tiny_plain())
    assert plain.cache_key == f"{plain.fingerprint}-plain-{PLAIN_TEMPLATE_VERSION}"


def test_vanilla_scores_cached_under_the_earlier_plain_template_are_not_served(tiny):
    """The plain template's prompt changed (it ends at "Assistant:"), and so did a base model's
    scores: those cached before are recomputed. A chat-template model's cache is still served."""
    from plain_tokenizers import tiny_plain

    from mdf_guard import cache
    from mdf_guard.predict import vanilla_scores
    from mdf_guard.scoring import EXACT_VERSION

    suite = parse_suite(yaml.safe_load(TINY_SUITE), "mini")
    stale = torch.full((2, 3), 0.25, dtype=torch.float64)
    plain = dataclasses.replace(tiny, tokenizer=tiny_plain())
    for lm in (tiny, plain):
        cache.cached_tensor("vanilla", f"{lm.fingerprint}-{suite.fingerprint()}-2-x{EXACT_VERSION}", lambda: stale)
    assert torch.equal(vanilla_scores(tiny, suite, suite.questions).probs, stale)
    assert not torch.equal(vanilla_scores(plain, suite, suite.questions).probs, stale)
