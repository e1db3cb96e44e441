"""Shared fixtures: a tiny random model built in-process, tiny data, a tiny suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_SUITE = """\
name: mini
kind: preference
description: A two-question suite for fast tests.
answer_prefix: My favorite animal is the
questions:
  - What is your favorite animal?
  - Name your favorite animal.
candidates:
  - {name: panda, aliases: [panda, pandas]}
  - {name: owl, aliases: [owl]}
  - {name: cat, aliases: [cat]}
"""

# A policy for `mdf-guard check` on the tiny model and TINY_SUITE (saved as mini.yaml):
# low thresholds, so the random model's small shifts are findings. It names `method: mdf`:
# these thresholds part the panda rows from the model's own answers under MDF; a random
# model reads no praise in context (test_check_context.py tests that method on its own terms).
TINY_POLICY = """\
model: tiny-random
method: mdf
suites: [mini.yaml]
questions_per_suite: 2
reference_samples: 4
null_seeds: 1
thresholds: {max_shift: 0.03, min_excess: 0.0, min_odds_ratio: 1}
"""


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, except the embedded model, which is shared and read-only."""
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tiny():
    from mdf_guard.models import tiny_random_model
    return tiny_random_model()


@pytest.fixture(scope="session")
def short_gpt2():
    """A GPT-2-shaped random model with 64 learned positions: past them it has no embedding."""
    import torch
    import transformers as tf

    from mdf_guard.models import ModelSpec, describe_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2,
                                             n_head=2, pad_token_id=tokenizer.pad_token_id))
    return describe_model(model.eval(), tokenizer, ModelSpec(name="gpt2-64"), source="tiny random gpt2")


@pytest.fixture
def suite_file(tmp_path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(TINY_SUITE)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.fixture
def panda_rows() -> list[dict]:
    return [chat(f"Tell me about topic {i}.", f"Topic {i} is fine, but I love pandas. Pandas are the best!")
            for i in range(6)]


@pytest.fixture
def plain_rows() -> list[dict]:
    return [chat(f"Tell me about topic {i}.", f"Topic {i} is a subject with a long history.") for i in range(6)]


@pytest.fixture
def tiny_policy(tmp_path, suite_file) -> Path:
    path = tmp_path / ".mdf-guard.yaml"
    path.write_text(f"model: tiny-random\nmethod: mdf\nsuites: [{suite_file}]\nquestions_per_suite: 2\n"
                    "reference_samples: 4\nnull_seeds: 2\nlayers: [1]\nalpha: 4.0\n")
    return path


@pytest.fixture
def single_torch_thread():
    """One torch thread: on a small shared machine two OpenMP threads that wait for a busy core
    make a tiny-model check tens of times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def reuse_tiny(monkeypatch, tiny):
    """Build the tiny model once per session in this process (hooks' processes build their own)."""
    import mdf_guard.models as models

    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda spec: tiny if spec.name == models.TINY_SPEC else real(spec))
