"""Signature reading speed by `batch_tokens` (padded tokens per forward), side by side in one run.

Each file is read with the embedded profile's settings (layer 10, surprise pooling) at
several batch sizes. Prints each time, its ratio to the largest size, and how far its
mean moves from that size's (batching must not change the numbers).

Usage: python bench/batch_tokens.py FILES... [--sizes 8192,2048,1024,512] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mdf_guard.check import model_spec, resolve_profile
from mdf_guard.data import read_conversations
from mdf_guard.models import load_model
from mdf_guard.policy import Policy
from mdf_guard.signature import ExtractionSettings, extract_signature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--sizes", default="8192,2048,1024,512")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    policy = Policy()
    lm = load_model(model_spec(policy))
    profile = resolve_profile(lm, policy)
    print(f"model {lm.source}; layers {list(profile.layers)}, {profile.pooling} pooling; "
          f"{torch.get_num_threads()} torch thread(s); ratio and difference against batch_tokens {sizes[0]}")
    for path in args.files:
        first = None
        for size in sizes:
            settings = ExtractionSettings(layers=profile.layers, pooling=profile.pooling, batch_tokens=size)
            started = time.perf_counter()
            mean = extract_signature(lm, read_conversations(path), settings).mean()
            seconds = time.perf_counter() - started
            first = first or (seconds, mean)
            moved = float((mean - first[1]).norm() / first[1].norm())
            print(f"  {path.name:<24} batch_tokens {size:5d}: {seconds:6.1f}s  ratio {seconds / first[0]:.2f}"
                  f"  relative change of the mean {moved:.1e}")


if __name__ == "__main__":
    main()
