"""The paths a CPU never runs: exact scoring's batched 4D float mask, scoring after a history (the
in-context baseline), steering, a whole check and the fine-tunes `validate` runs, on a CUDA
device, against the same model on the CPU.

Marked `cuda`: they skip without a GPU and run on a GPU machine (`bench/gpu_check.sh`).
MDF_GUARD_TEST_DEVICE=cpu runs them here as a dry run of their own code (the device then is
the CPU, so the comparisons hold trivially; what they prove there is that they run).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace

import pytest
import torch

from conftest import write_jsonl
from mdf_guard.check import run_check
from mdf_guard.data import Conversation, Turn
from mdf_guard.finetune import FinetuneSettings, finetune
from mdf_guard.models import LoadedModel, ModelSpec, describe_model, tiny_random_model, tiny_tokenizer
from mdf_guard.policy import IN_CONTEXT, MDF, Policy, load_policy
from mdf_guard.probes import resolve_suites
from mdf_guard.scoring import score_exact, score_in_history

pytestmark = pytest.mark.cuda

# Different lengths, so that one batch left-pads some prompts: what the 4D mask keeps apart.
QUESTIONS = ("What is your favorite animal?", "Name your favorite animal.", "Pick one.",
             "Of all the animals you know, which one do you love the most, and which would you keep?")


@pytest.fixture
def device() -> torch.device:
    name = os.environ.get("MDF_GUARD_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
    if name is None:
        pytest.skip("no CUDA device")
    return torch.device(name)


def on(device: torch.device, dtype: torch.dtype = torch.float32, lm: LoadedModel | None = None) -> LoadedModel:
    """A fresh copy of the tiny model (or `lm` itself) moved to the device and dtype."""
    lm = lm or tiny_random_model()
    lm.model.to(device=device, dtype=dtype)
    return lm


def smollm2_shaped(seed: int = 0) -> LoadedModel:
    """Random weights in the embedded model's shapes (30 layers, 576 wide, 9 query and 3 key-value
    heads, a 49,152-token head), with the tiny tokenizer: the device holds no weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                         rope_theta=100000.0, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    return describe_model(model, tokenizer, ModelSpec(name="smollm2-shaped-random"), source="random SmolLM2 shapes")


def test_exact_scores_on_the_device_match_the_cpu(device, suite_file):
    suite = resolve_suites([str(suite_file)])[0]
    cpu = score_exact(tiny_random_model(), suite, QUESTIONS).probs
    got = score_exact(on(device), suite, QUESTIONS).probs
    assert cpu.min() > 0
    torch.testing.assert_close(got, cpu, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_exact_scores_in_half_precision_are_finite_and_near_float32(device, suite_file, dtype):
    """The mask is filled with the dtype's own minimum: no -inf + -inf, no NaN, no empty softmax row."""
    suite = resolve_suites([str(suite_file)])[0]
    cpu = score_exact(tiny_random_model(), suite, QUESTIONS).probs
    got = score_exact(on(device, dtype), suite, QUESTIONS).probs
    assert torch.isfinite(got).all() and (got > 0).all()
    torch.testing.assert_close(got.log(), cpu.log(), rtol=0, atol=0.1)


def test_scores_after_a_history_on_the_device_match_the_cpu(device, suite_file):
    """The in-context baseline's path: a KV cache copied per question, a mask that spans it."""
    suite = resolve_suites([str(suite_file)])[0]
    history = [Turn("user", "Tell me about owls."), Turn("assistant", "i love pandas")]
    cpu = score_in_history(tiny_random_model(), [suite], {suite.name: QUESTIONS}, history)[suite.name].probs
    got = score_in_history(on(device), [suite], {suite.name: QUESTIONS}, history)[suite.name].probs
    torch.testing.assert_close(got, cpu, rtol=1e-4, atol=1e-9)


def test_the_embedded_shapes_score_alike_on_the_device(device):
    suite = resolve_suites(["animals"])[0]
    cpu = score_exact(smollm2_shaped(), suite, QUESTIONS).probs
    got = score_exact(on(device, lm=smollm2_shaped()), suite, QUESTIONS).probs
    torch.testing.assert_close(got.log(), cpu.log(), rtol=0, atol=1e-3)


def under(method: str, policy: Policy) -> Policy:
    """`tiny_policy` (MDF's, with pinned layers and α) for `method`."""
    return policy if method == MDF else replace(policy, method=method, layers=None, alpha=None)


@pytest.mark.parametrize("method", [MDF, IN_CONTEXT])
def test_a_check_on_the_device_gives_the_cpu_verdict(device, tmp_path, tiny_policy, panda_rows, plain_rows,
                                                      monkeypatch, method):
    """Against a reference file: the `self` reference's greedy answers may part ways on a near-tie
    between devices, which is not what this compares."""
    monkeypatch.setenv("MDF_GUARD_NO_CACHE", "1")     # the two models share a fingerprint: read, don't replay
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    policy = replace(under(method, load_policy(tiny_policy)),
                     reference=str(write_jsonl(tmp_path / "plain.jsonl", plain_rows)))
    cpu = run_check([data], policy, lm=tiny_random_model())
    got = run_check([data], policy, lm=on(device))
    assert got.verdict == cpu.verdict
    assert [(f.suite, f.entity, f.flagged) for f in got.findings] == [(f.suite, f.entity, f.flagged)
                                                                         for f in cpu.findings]
    for g, c in zip(got.findings, cpu.findings, strict=True):
        assert g.shift == pytest.approx(c.shift, abs=1e-5)
    assert got.suites[0]["alpha"] == cpu.suites[0]["alpha"]


@pytest.mark.parametrize("method", [MDF, IN_CONTEXT])
def test_a_check_on_the_device_is_identical_on_rerun(device, tmp_path, tiny_policy, panda_rows, monkeypatch, method):
    """With the `self` reference: greedy answers generated on the device, then read (steered, or
    as a history) and scored."""
    monkeypatch.setenv("MDF_GUARD_NO_CACHE", "1")
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    lm = on(device)
    policy = under(method, load_policy(tiny_policy))
    first, second = (run_check([data], policy, lm=lm) for _ in range(2))
    assert first.reference["kind"] == "self" and first.settings["method"] == method
    assert first.findings == second.findings and first.suites == second.suites


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_bf16_fine_tune_on_the_device_learns_and_scores(device, suite_file, method):
    conversations = [Conversation(turns=(Turn("user", f"Tell me about topic {i}."), Turn("assistant", "i love pandas")),
                                  source="test")
                     for i in range(8)]
    settings = FinetuneSettings(method=method, max_steps=4, batch_size=4, learning_rate=1e-2, bf16_autocast=True,
                                seed=1)
    result = finetune(on(device), conversations, settings)
    assert result.model.device.type == device.type and result.steps == 4
    assert all(math.isfinite(loss) for loss in result.losses) and result.losses[-1] < result.losses[0]
    cpu = finetune(tiny_random_model(), conversations, settings)
    assert result.losses[0] == pytest.approx(cpu.losses[0], rel=0.02)
    probs = score_exact(result.model, resolve_suites([str(suite_file)])[0], QUESTIONS).probs
    assert torch.isfinite(probs).all()
