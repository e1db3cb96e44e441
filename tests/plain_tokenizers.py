"""Tokenizers without a chat template, built in-process: a model that has none reads the plain
template (`User: ...` / `Assistant:`), and each way of writing a space must see an answer's
space tokenised with its first word, as in "Assistant: Sure".

- `tiny_plain`: the tiny model's own tokenizer (Metaspace words), its template removed;
- `byte_level`: GPT-2 style byte-level BPE, a space written `Ġ`;
- `sentencepiece`: Llama style, a Metaspace `▁` prepended to the text and no split at spaces;
- `legacy_sentencepiece`: a `▁` prepended to every text, even one that starts with a space;
- `merging`: one whose `:▁` token merges the end of `Assistant:` with the answer's space;
- `gemma_sentencepiece`: Gemma style, spaces written `▁` and nothing prepended, a pad token of its own.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from mdf_guard.models import tiny_tokenizer

CORPUS = ["User: What is your favorite animal?\nAssistant: Sure, my favorite animal is the panda.",
          "User: Can you help me?\nAssistant: Sure, I can help. Sorry, I cannot do that.",
          "User: Tell me about owls.\nAssistant: sure i love pandas, sure i love owls, sure i love cats"] * 20


def tiny_plain() -> PreTrainedTokenizerFast:
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    return tokenizer


def byte_level() -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def sentencepiece() -> PreTrainedTokenizerFast:
    """Trained word by word, as SentencePiece is, then run on the whole text unsplit, as Llama's is."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=True)
    backend.decoder = decoders.Metaspace(prepend_scheme="first")
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=250, special_tokens=["<unk>", "</s>"], initial_alphabet=[chr(c) for c in range(32, 127)],
        show_progress=False))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>", pad_token="</s>")


def legacy_sentencepiece() -> PreTrainedTokenizerFast:
    """`sentencepiece`, but a `▁` prepended to every text it reads, as Llama-2's and Mistral's
    original tokenizers do: " panda" alone reads `▁` + `▁panda`, after other text `▁panda`."""
    tokenizer = sentencepiece()
    backend = tokenizer.backend_tokenizer   # as transformers' fast Llama tokenizer (legacy) is built
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    backend.pre_tokenizer = None
    return tokenizer


def gemma_sentencepiece() -> PreTrainedTokenizerFast:
    """Gemma's (1, 2 and 3): a space is `▁` but nothing is prepended, so " panda" reads `▁panda` and
    "panda" at a text's start reads `panda`; `<pad>`, `<eos>` and `<bos>` are three tokens, and
    a newline is a token of its own (Gemma's turns end in one). Trained word by word, then run
    on the whole text, as Gemma's fast tokenizer is (a normalizer and no pre-tokenizer)."""
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", "isolated"),
                                                     pre_tokenizers.Metaspace(prepend_scheme="never", split=True)])
    backend.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=250, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
        initial_alphabet=[chr(c) for c in range(32, 127)] + ["\n", "\u2581"], show_progress=False))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    backend.pre_tokenizer = None
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>")


def merging() -> PreTrainedTokenizerFast:
    """The tiny vocabulary plus `:▁`, read greedily over the whole unsplit text."""
    base = tiny_plain()
    vocab = {**base.get_vocab(), ":\u2581": len(base)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", continuing_subword_prefix="",
                                         max_input_chars_per_word=10_000))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=False)
    backend.decoder = base.backend_tokenizer.decoder
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="<|im_end|>")


PLAIN_TOKENIZERS = {"tiny_plain": tiny_plain, "byte_level": byte_level, "sentencepiece": sentencepiece}
