"""Small random models of the families users point mdf-guard at, built in-process (no download):
each family's own layer paths, module names, position scheme and chat template, on small
tokenizers from `plain_tokenizers` or the tiny model's.

- `gpt2`: learned positions, `transformer.h`, Conv1D projections, byte-level BPE, no template;
- `neox`: `gpt_neox.layers`, fused `query_key_value`, byte-level BPE, no template;
- `opt`: `model.decoder.layers`, `q_proj`...`out_proj`, `fc1`/`fc2`, byte-level BPE, no template;
- `phi`: `q_proj`...`dense`, `fc1`/`fc2`, SentencePiece-style BPE, no template;
- `qwen2`: a vocabulary padded past the tokenizer's, untied head, ChatML;
- `gemma2`: sliding window and softcapping, a template that refuses system turns;
- `llama2`: a legacy SentencePiece tokenizer and Llama-2's template (roles must alternate);
- `mistral`: Mistral-7B-Instruct v0.1/v0.2: a sliding window, Llama-2's tokenizer and a template
  with no generation prompt and no system turn (roles must alternate from the first);
- `gemma`: Gemma 1: multi-query attention, Gemma's tokenizer (nothing prepended, a pad token of
  its own) and Gemma 2's template;
- `gemma3`: Gemma 3's text model (`Gemma3ForCausalLM`, gemma-3-1b): sliding and global layers,
  a template that folds a system turn into the first user turn;
- `gemma3-vision`: the Gemma 3 checkpoints with a vision tower (4B and up), as a Hub folder
  holds them (`Gemma3ForConditionalGeneration`, the text model under `language_model`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

import plain_tokenizers as pt
from mdf_guard.models import ModelSpec, describe_model, tiny_tokenizer

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")

# Mistral-7B-Instruct v0.1 and v0.2: the prompt ends at [/INST] (no generation prompt) and a
# first turn that is not the user's (a system turn) is refused as roles that do not alternate.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
# Gemma 3: a system turn is written at the head of the first user turn, a blank line after it
# (text content only: the image branch of the real template is left out).
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")

GEMMA3_IMAGE_TOKENS = ("<start_of_image>", "<end_of_image>", "<image_soft_token>")

FAMILIES = ("gpt2", "neox", "opt", "phi", "qwen2", "gemma2", "llama2", "mistral", "gemma", "gemma3", "gemma3-vision")


def family_tokenizer(family: str):
    """The tokenizer a family's model is built on."""
    if family in ("gpt2", "neox", "opt"):
        return pt.byte_level()
    if family == "phi":
        return pt.sentencepiece()
    tokenizer = tiny_tokenizer()
    if family == "gemma2":
        tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
        tokenizer.chat_template = GEMMA_TEMPLATE
    elif family in ("llama2", "mistral"):
        tokenizer = pt.legacy_sentencepiece()
        tokenizer.add_special_tokens({"bos_token": "<s>"})
        tokenizer.chat_template = LLAMA2_TEMPLATE if family == "llama2" else MISTRAL_TEMPLATE
    elif family in ("gemma", "gemma3", "gemma3-vision"):   # Gemma 3's tokenizer also holds its image tokens
        tokenizer = pt.gemma_sentencepiece()
        images = [] if family == "gemma" else list(GEMMA3_IMAGE_TOKENS)
        tokenizer.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>", *images]})
        tokenizer.chat_template = GEMMA_TEMPLATE if family == "gemma" else GEMMA3_TEMPLATE
    return tokenizer


def family_module(family: str, tokenizer, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A 3-layer random model of `family`, hidden size 64, in eval mode."""
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    common = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=2048)
    torch.manual_seed(0)
    if family == "gpt2":
        model = tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=vocab, n_positions=512, n_embd=64, n_layer=3, n_head=4,
                                                 bos_token_id=eos, eos_token_id=eos))
    elif family == "neox":
        model = tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(vocab_size=vocab, intermediate_size=128, bos_token_id=eos,
                                                       eos_token_id=eos, **common))
    elif family == "opt":
        model = tf.OPTForCausalLM(tf.OPTConfig(vocab_size=vocab, ffn_dim=128, word_embed_proj_dim=64,
                                               pad_token_id=tokenizer.pad_token_id, bos_token_id=eos,
                                               eos_token_id=eos, **common))
    elif family == "phi":
        model = tf.PhiForCausalLM(tf.PhiConfig(vocab_size=vocab, intermediate_size=128, **common))
    elif family == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(vocab_size=vocab + 7, intermediate_size=128, num_key_value_heads=2,
                                                   pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
                                                   **common))
    elif family == "gemma2":
        model = tf.Gemma2ForCausalLM(tf.Gemma2Config(vocab_size=vocab, intermediate_size=128, head_dim=16,
                                                     num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                                                     sliding_window=512, **common))
    elif family == "llama2":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=vocab, intermediate_size=128, num_key_value_heads=2,
                                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                                   tie_word_embeddings=False, **common))
    elif family == "mistral":
        model = tf.MistralForCausalLM(tf.MistralConfig(vocab_size=vocab, intermediate_size=128, num_key_value_heads=2,
                                                       bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                                                       sliding_window=512, **common))
    elif family == "gemma":
        model = tf.GemmaForCausalLM(tf.GemmaConfig(vocab_size=vocab, intermediate_size=128, head_dim=16,
                                                   num_key_value_heads=1, pad_token_id=tokenizer.pad_token_id,
                                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, **common))
    elif family in ("gemma3", "gemma3-vision"):
        model = _gemma3(family, tokenizer, common)
    else:
        raise ValueError(family)
    return model.to(dtype).eval()


def _gemma3(family: str, tokenizer, common: dict) -> torch.nn.Module:
    """Gemma 3 as gemma-3-1b is (two sliding layers to a global one, here), or with a small
    vision tower as the 4B and larger checkpoints are."""
    text = tf.Gemma3TextConfig(vocab_size=len(tokenizer), intermediate_size=128, head_dim=16, num_key_value_heads=1,
                               query_pre_attn_scalar=16, sliding_window=512,
                               layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                               pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                               eos_token_id=tokenizer.eos_token_id, **common)
    if family == "gemma3":
        return tf.Gemma3ForCausalLM(text)
    vision = tf.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                   image_size=28, patch_size=14)
    boi, eoi, image = tokenizer.convert_tokens_to_ids(list(GEMMA3_IMAGE_TOKENS))
    return tf.Gemma3ForConditionalGeneration(tf.Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, boi_token_index=boi, eoi_token_index=eoi,
        image_token_index=image))


def family_model(family: str, dtype: torch.dtype = torch.float32):
    """A `LoadedModel` of `family`, as `load_model` would describe it."""
    tokenizer = family_tokenizer(family)
    model = family_module(family, tokenizer, dtype)
    return describe_model(model, tokenizer, ModelSpec(name=f"random-{family}"), source=f"tiny random {family}")


def save_family(family: str, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
    """A model folder of `family` (weights and tokenizer), for `--model FOLDER`."""
    tokenizer = family_tokenizer(family)
    family_module(family, tokenizer, dtype).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
