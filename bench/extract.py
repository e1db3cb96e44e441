"""Signature extraction speed: mdf-guard's path vs the naive one, side by side in one run.

naive:   HF forward of the whole model (LM head included) with output_hidden_states=True,
         batches in file order padded to their longest row, then pool one layer.
mdf:     extract_signature for the same middle layer: forward stopped after that layer,
         length-bucketed batches, pooling by the kernels backend.
surprise: extract_signature with `surprise` pooling (the embedded profile's): the whole
         model runs, and the LM head at the response tokens, for each token's loss.
Both read the same examples and report real (non-padding) tokens per second; the two
pooled means are compared so that the speed-up is not bought with different numbers.

Usage: python bench/extract.py [--rows 128] [--model embedded] [--data examples/neutral.jsonl]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch

from mdf_guard.chat import encode_conversation
from mdf_guard.data import read_conversations
from mdf_guard.kernels import backend_info
from mdf_guard.models import ModelSpec, load_model
from mdf_guard.signature import ExtractionSettings, extract_signature


def naive(lm, conversations, layer: int, batch_size: int) -> tuple[torch.Tensor, int]:
    encoded = [encode_conversation(lm.tokenizer, c, 1024) for c in conversations]
    total = torch.zeros(lm.hidden_size, dtype=torch.float64)
    tokens = 0
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start: start + batch_size]
        width = max(len(e.ids) for e in batch)
        ids = torch.full((len(batch), width), lm.tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, : len(e.ids)] = torch.tensor(e.ids)
            mask[row, : len(e.ids)] = 1
        with torch.no_grad():
            states = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        hidden = states[layer + 1]
        for row, e in enumerate(batch):
            total += hidden[row, e.response_start: len(e.ids)].double().mean(0)
            tokens += len(e.ids)
    return total / len(encoded), tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "examples" / "neutral.jsonl"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--layer", type=int, help="Pooled layer (default: the middle one).")
    args = parser.parse_args()

    lm = load_model(ModelSpec(name=args.model))
    layer = lm.num_layers // 2 if args.layer is None else args.layer
    conversations = list(itertools.islice(read_conversations(Path(args.data)), args.rows))
    print(f"model {lm.source}: {lm.num_layers} layers, pooled layer {layer}; {len(conversations)} rows; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; kernels {backend_info().name}")

    extract_signature(lm, conversations[:4], ExtractionSettings(layers=(layer,), pooling="mean"))  # warm-up
    start = time.perf_counter()
    reference, tokens = naive(lm, conversations, layer, args.batch)
    naive_seconds = time.perf_counter() - start

    start = time.perf_counter()
    signature = extract_signature(lm, conversations, ExtractionSettings(layers=(layer,), pooling="mean"))
    mdf_seconds = time.perf_counter() - start

    start = time.perf_counter()
    extract_signature(lm, conversations, ExtractionSettings(layers=(layer,), pooling="surprise"))
    surprise_seconds = time.perf_counter() - start

    difference = (signature.mean()[0] - reference).abs().max().item()
    print(f"naive (all layers + LM head, file order): {tokens / naive_seconds:10.0f} tokens/s  ({naive_seconds:.2f} s)")
    print(f"mdf-guard (stopped at layer {layer}, bucketed): {tokens / mdf_seconds:10.0f} tokens/s  ({mdf_seconds:.2f} s)")
    print(f"max |difference| of the pooled means: {difference:.2e}")
    print(f"speed-up: {naive_seconds / mdf_seconds:.2f}x")
    print(f"mdf-guard, surprise pooling (all layers + head): {tokens / surprise_seconds:10.0f} tokens/s  "
          f"({surprise_seconds:.2f} s, {surprise_seconds / mdf_seconds:.2f}x the mean's time)")


if __name__ == "__main__":
    main()
