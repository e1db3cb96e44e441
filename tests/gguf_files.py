"""Tiny GGUF files written in-process, as llama.cpp's `convert_hf_to_gguf.py` writes a model's
(no download, a few hundred kilobytes, well under a second each).

A user's `model: x.gguf` is loaded by transformers' GGUF reader from what the file says alone:
the architecture's metadata keys become the config, the `tokenizer.ggml.*` keys the tokenizer,
the `blk.N.*` tensors the weights. So the writer below writes what the converter would, from a
random model built here and a byte-level BPE tokenizer trained here:

- `general.*` and `{arch}.*` keys (layers, widths, heads, rope base, norm epsilon, positions);
- `tokenizer.ggml.model = gpt2` with the tokens in id order, their types (control for the
  special tokens), the merges as `"a b"` strings, the bos/eos/unk/pad ids and a chat template;
- the tensors under their GGUF names, Llama's q/k rows permuted as llama.cpp permutes them,
  GPT-2's Conv1D weights transposed; 2-D tensors in f32, f16 or Q8_0 blocks (norms and biases
  stay f32), the last a quantized file as users have them (not GPT-2: its blocks would run along
  the transposed rows, which `as_q8_0` of transformers' weights does not round alike).

`ARCHES` are the ones the tests write: `llama` (SmolLM2, the embedded model), `qwen2` (q/k/v
biases, an untied head) and `gpt2` (learned positions, fused qkv, no chat template).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import torch
import transformers as tf

from plain_tokenizers import CORPUS

ARCHES = ("llama", "qwen2", "gpt2")
FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
TENSOR_TYPES = tuple(FILE_TYPES)
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_PRE = {"llama": "smollm", "qwen2": "qwen2", "gpt2": "gpt-2"}   # what llama.cpp names each vocabulary's splitting


def gguf_tokenizer(arch: str = "llama") -> tf.PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2's kind, SmolLM2's and Qwen2's too) with the ChatML tokens,
    trained on a few sentences; ChatML template and `<|im_end|>` as end token, except for `gpt2`,
    which has neither template nor ChatML (its end token is `<|endoftext|>`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = SPECIALS[:1] if arch == "gpt2" else SPECIALS
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    if arch == "gpt2":
        return tf.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                          eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                           unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    return tokenizer


def random_model(arch: str, tokenizer, seed: int = 0) -> torch.nn.Module:
    """A 2-layer random model of `arch`, hidden size 64, float32, in eval mode: Llama with grouped
    key/value heads (the k permutation differs from q's), Qwen2 with an untied head and biases,
    GPT-2 with GPT-2's 1,024 positions (transformers reads a GPT-2 file's `context_length` into
    `n_ctx`, which sizes nothing: a file of any other count fails to load, its position table
    the wrong size)."""
    vocab, eos = len(tokenizer), tokenizer.eos_token_id
    torch.manual_seed(seed)
    if arch == "gpt2":
        config = tf.GPT2Config(vocab_size=vocab, n_positions=1024, n_embd=64, n_layer=2, n_head=4,
                               bos_token_id=eos, eos_token_id=eos)
        return tf.GPT2LMHeadModel(config).eval()
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
    if arch == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(tie_word_embeddings=True, **common)).eval()
    if arch == "qwen2":
        model = tf.Qwen2ForCausalLM(tf.Qwen2Config(tie_word_embeddings=False, **common)).eval()
        with torch.no_grad():   # random init leaves the biases at zero: a bias the reader dropped would not show
            for name, param in model.named_parameters():
                if name.endswith(".bias"):
                    param.normal_(0, 0.1)
        return model
    raise ValueError(arch)


def write_gguf(path: Path, model: torch.nn.Module, tokenizer, *, tensor_type: str = "f32",
               as_arch: str | None = None, chat_template: bool = True, eos: bool = True) -> Path:
    """Write `model` and `tokenizer` to `path` as llama.cpp's converter would, its 2-D tensors
    in `tensor_type` (one of `TENSOR_TYPES`).

    `as_arch` overrides the architecture the file states (a file transformers cannot read);
    `chat_template=False` and `eos=False` leave the tokenizer's template or end-token id out,
    as a converter does when the source model has none."""
    config = model.config
    arch = config.model_type   # llama.cpp's names for these three are transformers' own
    assert arch in ARCHES and not (arch == "gpt2" and tensor_type == "q8_0"), (arch, tensor_type)
    writer = gguf.GGUFWriter(str(path), as_arch or arch)
    writer.add_name(f"tiny-random-{arch}")
    writer.add_file_type(FILE_TYPES[tensor_type])
    _write_hyperparameters(writer, config)
    _write_tokenizer(writer, tokenizer, arch, chat_template=chat_template, eos=eos)
    for gguf_name, array in _gguf_tensors(model, arch):
        if array.ndim == 1 or tensor_type == "f32":   # llama.cpp keeps 1-D tensors (norms, biases) in f32
            writer.add_tensor(gguf_name, array)
        elif tensor_type == "f16":
            writer.add_tensor(gguf_name, array.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, quantize(array), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def quantize(array: np.ndarray) -> np.ndarray:
    """Q8_0 blocks of `array` (32 values and a scale each, along its rows), as `llama-quantize` writes them."""
    return gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)


def as_q8_0(array: np.ndarray) -> np.ndarray:
    """What a reader makes of `quantize(array)`: the values a Q8_0 file holds of `array`."""
    return gguf.quants.dequantize(quantize(array), gguf.GGMLQuantizationType.Q8_0).reshape(array.shape)


def _write_hyperparameters(writer, config) -> None:
    """The `{arch}.*` keys `TextModel.set_gguf_parameters` writes (and Llama's vocab and rope width)."""
    if config.model_type == "gpt2":
        writer.add_context_length(config.n_positions)
        writer.add_embedding_length(config.n_embd)
        writer.add_feed_forward_length(4 * config.n_embd)
        writer.add_block_count(config.n_layer)
        writer.add_head_count(config.n_head)
        writer.add_layer_norm_eps(config.layer_norm_epsilon)
        return
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    if config.model_type == "llama":
        writer.add_vocab_size(config.vocab_size)
        writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)


def _write_tokenizer(writer, tokenizer, arch: str, chat_template: bool, eos: bool) -> None:
    """The `tokenizer.ggml.*` keys of a byte-level BPE vocabulary (`_set_vocab_gpt2`) and the
    special ids and template `gguf.SpecialVocab` adds from the tokenizer's config."""
    vocab = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocab.items()}
    special = set(tokenizer.all_special_tokens)
    tokens = [by_id[i] for i in range(len(by_id))]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_PRE[arch])
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    if eos:
        writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    if chat_template and tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _gguf_tensors(model: torch.nn.Module, arch: str):
    """(GGUF name, float32 array) for each weight the converter writes: a tied head is not
    written (the reader ties it again when `output.weight` is absent)."""
    config = model.config
    model_arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch)
    names = gguf.get_tensor_name_map(model_arch, config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings and arch != "gpt2":
            continue
        if hf_name.endswith((".attn.bias", ".attn.masked_bias")):   # GPT-2's causal mask buffers
            continue
        data = tensor.detach().float()
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads, config.num_attention_heads)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            data = _permute(data, config.num_attention_heads, config.num_key_value_heads)
        elif arch == "gpt2" and hf_name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            data = data.T   # Conv1D stores (in, out); ggml wants (out, in)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, hf_name
        yield gguf_name, data.contiguous().numpy()


def _permute(weights: torch.Tensor, n_head: int, n_head_kv: int) -> torch.Tensor:
    """llama.cpp's `LlamaModel.permute`: rotary halves interleaved, as GGML's rope reads them."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def tiny_gguf(arch: str, path: Path, seed: int = 0, **options) -> tuple[Path, torch.nn.Module, object]:
    """A random `arch` model written to `path`: (the file, the model, the tokenizer it was written from)."""
    tokenizer = gguf_tokenizer(arch)
    model = random_model(arch, tokenizer, seed)
    return write_gguf(path, model, tokenizer, **options), model, tokenizer
