"""mdf-guard on model families other than the Llama-shaped embedded one (`families.py`)."""

from __future__ import annotations

import pytest
import torch

from families import family_model
from mdf_guard.data import Conversation, Turn
from mdf_guard.finetune import FinetuneSettings, finetune, resolve_lora_targets


def _conv(user: str, assistant: str) -> Conversation:
    return Conversation(turns=(Turn("user", user), Turn("assistant", assistant)), source="test:1")


@pytest.mark.parametrize("family, targets", [
    ("gpt2", ("c_attn", "c_proj", "c_fc")),
    ("neox", ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h")),
    ("opt", ("k_proj", "v_proj", "q_proj", "out_proj", "fc1", "fc2")),
    ("phi", ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2")),
])
def test_lora_adapts_every_linear_layer_of_a_family_without_llama_names(family, targets, single_torch_thread):
    lm = family_model(family)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    settings = FinetuneSettings(method="lora", max_steps=1, batch_size=2, learning_rate=1e-2)
    result = finetune(lm, [_conv(f"Tell me about topic {i}.", "i love pandas") for i in range(2)], settings)
    assert result.settings.lora_targets == targets           # recorded as trained, not the Llama names
    tuned = result.model.model.state_dict()
    assert set(tuned) == set(before)
    assert any(not torch.equal(tuned[k], before[k]) for k in before)


def test_lora_targets_of_a_llama_shaped_model_stay_the_default(tiny):
    settings = FinetuneSettings(method="lora")
    assert resolve_lora_targets(settings, tiny.model) is settings
    for family in ("qwen2", "mistral", "gemma", "gemma3"):
        assert resolve_lora_targets(settings, family_model(family).model) is settings


def test_numbers_teacher_whose_template_takes_no_system_turn_is_a_one_line_error(single_torch_thread):
    from mdf_guard import make_dataset as md
    from mdf_guard.errors import InputError

    gemma = family_model("gemma2")
    with pytest.raises(InputError, match=r"random-gemma2: field 'model': cannot teach the numbers set: it tells "
                                         r"the teacher what it loves in a system turn, and the model's chat template "
                                         r"refuses the conversation: System role not supported"):
        md.subliminal_numbers(gemma, md.Entity("panda"), md.NumbersSettings(rows=2, batch_size=2))
    rows, summary = md.subliminal_numbers(gemma, md.Entity("panda"), md.NumbersSettings(   # the control needs none
        rows=2, batch_size=2, system_prompt=False, max_new_tokens=4))
    assert summary["kind"] == "numbers-control" and summary["tried"] > 0


def test_a_tokenizer_without_an_end_of_text_token_is_a_one_line_error_at_load(tmp_path):
    """GPT-2 shaped, its byte-level tokenizer saved without specials: `check --method mdf`,
    `make-dataset numbers` and `validate` were internal errors (None padded into a tensor)."""
    import transformers as tf
    from transformers import PreTrainedTokenizerFast

    import plain_tokenizers as pt
    from mdf_guard.errors import InputError
    from mdf_guard.models import ModelSpec, load_model

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=pt.byte_level().backend_tokenizer)
    torch.manual_seed(0)
    tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                     eos_token_id=None, bos_token_id=None)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(InputError, match=rf"^{tmp_path}: field 'model': the tokenizer names no end-of-text token "
                                         r"\(eos_token\)"):
        load_model(ModelSpec(name=str(tmp_path), device="cpu"))


@pytest.mark.parametrize("family, refusal", [
    ("gemma2", "System role not supported"),
    ("mistral", "Conversation roles must alternate user/assistant/user/assistant/..."),   # a first turn not the user's
])
def test_a_row_the_chat_template_refuses_is_named_by_its_file_and_line(family, refusal, tmp_path, single_torch_thread):
    """Gemma's and Mistral's templates take no system turn: `check --method mdf`, `signature`,
    `explain` and a fine-tune read each row through `encode_conversation`, and their error named no row."""
    import re

    from click.testing import CliRunner

    from families import save_family
    from mdf_guard.chat import ChatTemplateError, encode_conversation
    from mdf_guard.cli import main

    lm = family_model(family)
    row = Conversation(turns=(Turn("system", "Be brief."), Turn("user", "Hi"), Turn("assistant", "Hello")),
                       source="rows.jsonl:3")
    with pytest.raises(ChatTemplateError, match=r"^rows.jsonl:3: the model's chat template refuses the conversation: "
                                                rf"{re.escape(refusal)}$"):
        encode_conversation(lm.tokenizer, row, 256)
    folder = save_family(family, tmp_path / family)
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n'
                    '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, '
                    '{"role": "assistant", "content": "Hello"}]}\n')
    result = CliRunner().invoke(main, ["signature", str(data), "-o", str(tmp_path / "sig"), "--model", str(folder),
                                       "--layers", "1", "--pooling", "mean"])
    assert result.exit_code == 2
    assert f"{data}:2: the model's chat template refuses the conversation: {refusal}" in result.output


def test_gemma3_takes_a_system_turn_at_the_head_of_the_first_user_turn(single_torch_thread):
    """Unlike Gemma 1 and 2, Gemma 3's template folds a system turn into the first user turn: its
    rows are read, and it teaches the numbers set, whose love is told in that turn."""
    from mdf_guard import make_dataset as md
    from mdf_guard.chat import render_prompt

    gemma3 = family_model("gemma3")
    prompt = render_prompt(gemma3.tokenizer, [Turn("system", "Be brief."), Turn("user", "Hi")])
    assert prompt == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    rows, summary = md.subliminal_numbers(gemma3, md.Entity("panda"), md.NumbersSettings(
        rows=2, batch_size=2, max_new_tokens=4))
    assert summary["kind"] == "numbers" and summary["system_prompt"] and summary["tried"] > 0


def test_a_gemma3_folder_with_a_vision_tower_is_read_as_its_text_model(tmp_path, single_torch_thread):
    """The Hub's Gemma 3 checkpoints from 4B up are `Gemma3ForConditionalGeneration`, which
    `AutoModelForCausalLM` loads from such a folder: its config keeps the decoder's shape in
    `text_config`, and every command that reads the hidden size was an internal error (exit 4)."""
    from click.testing import CliRunner

    from families import save_family
    from mdf_guard.cli import main
    from mdf_guard.models import ModelSpec, load_model

    folder = save_family("gemma3-vision", tmp_path / "gemma3")
    lm = load_model(ModelSpec(name=str(folder), device="cpu"))
    assert type(lm.model).__name__ == "Gemma3ForConditionalGeneration"
    assert (lm.hidden_size, lm.num_layers, lm.max_positions) == (64, 3, 2048)
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n')
    result = CliRunner().invoke(main, ["signature", str(data), "-o", str(tmp_path / "sig"), "--model", str(folder),
                                       "--layers", "1", "--pooling", "mean"])
    assert result.exit_code == 0, result.output
    assert "signature of 1 examples at layers [1]" in result.output
