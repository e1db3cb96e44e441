"""How much of a whole `mdf-guard check` is pooling and injection, before and after the extension.

The same check runs twice in one process, with no cache: first with the pure-torch
kernels (MDF_GUARD_KERNELS=torch, what the package does without the extension), then
with the C++ extension. An untimed check on a few rows with each backend comes first, so
that one-time costs (CUDA module loading, cuBLAS handles, the extension's first call)
are charged to neither. The two kernel entry points that the check calls
(`signature.pool_rows` and `steer.inject_`) are wrapped with timers. Prints, per run,
the check's time, the time inside each kernel and its share of the whole, and the
ratios; and checks that both runs gave the same findings.

Usage: python bench/check_share.py [--model embedded] [--data examples/panda_overt.jsonl]
           [--rows 96] [--suite animals] [--questions 4]
       python bench/check_share.py --random-shape 8x4096 --device cuda --dtype bfloat16

`--random-shape LAYERSxHIDDEN` checks with a random-weight Llama of that depth and width
(the unit tests' tiny model, word-level tokenizer, MLP 2x hidden) instead of `--model`:
what a GPU machine without weights can run at a real hidden size. Its forward is cheaper
than a real model's of that width, so the kernels' share it shows is an upper bound.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from mdf_guard import signature, steer
from mdf_guard.check import model_spec, run_check
from mdf_guard.kernels import backend_info
from mdf_guard.models import TINY_SPEC, load_model, tiny_random_model
from mdf_guard.policy import MDF, Policy

SECONDS = {"pooling": 0.0, "injection": 0.0}
SYNC_CUDA = False  # on a GPU, time each call between two synchronizations


def timed(name: str, fn):
    """Adds fn's time to SECONDS[name]. On CUDA the work queued before the call is drained
    first and the call's own kernels after it, so that an asynchronous launch is charged
    its GPU time and not the forward pass queued ahead of it."""
    def wrapper(*args, **kwargs):
        if SYNC_CUDA:
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if SYNC_CUDA:
                torch.cuda.synchronize()
            SECONDS[name] += time.perf_counter() - started
    return wrapper


def one_check(data: Path, policy: Policy, lm, backend: str) -> tuple[float, dict, list]:
    os.environ["MDF_GUARD_KERNELS"] = backend
    for key in SECONDS:
        SECONDS[key] = 0.0
    started = time.perf_counter()
    report = run_check([data], policy, lm=lm)
    return time.perf_counter() - started, dict(SECONDS), report.to_dict()["findings"]


def random_model(shape: str, device: str, dtype: str):
    """The unit tests' random Llama at LAYERSxHIDDEN, moved to the device and dtype."""
    try:
        layers, hidden = (int(part) for part in shape.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--random-shape: expected LAYERSxHIDDEN such as 8x4096, got {shape!r}") from None
    lm = tiny_random_model(num_layers=layers, hidden_size=hidden)
    lm.model.to(device=torch.device(device), dtype=getattr(torch, dtype))
    return lm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--data", type=Path, default=Path("examples/panda_overt.jsonl"))
    parser.add_argument("--rows", type=int, default=96, help="first N rows of --data")
    parser.add_argument("--suite", default="animals")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--random-shape", help="LAYERSxHIDDEN: a random-weight model instead of --model")
    parser.add_argument("--device", default="cpu", help="with --random-shape: cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="with --random-shape")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if backend_info().name != "cpp":
        raise SystemExit(f"the extension is not loaded ({backend_info().reason}): nothing to compare")

    signature.pool_rows = timed("pooling", signature.pool_rows)
    steer.inject_ = timed("injection", steer.inject_)
    model = TINY_SPEC if args.random_shape else args.model
    # Mean pooling: the extension pools masks (last/mean); `surprise` pooling, the embedded
    # model's profile, weights tokens and always runs in torch (kernels.pool_weighted_rows).
    policy = replace(Policy(), model=model, method=MDF, suites=(args.suite,), questions_per_suite=args.questions,
                     null_seeds=1, pooling="mean")
    lm = random_model(args.random_shape, args.device, args.dtype) if args.random_shape else load_model(model_spec(policy))
    global SYNC_CUDA
    SYNC_CUDA = lm.device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        lines = args.data.read_text().splitlines(keepends=True)
        subset = Path(tmp) / args.data.name
        subset.write_text("".join(lines[: args.rows]))
        os.environ["MDF_GUARD_NO_CACHE"] = "1"
        warmup = Path(tmp) / f"warmup-{args.data.name}"
        warmup.write_text("".join(lines[:8]))
        for backend in ("torch", "cpp"):
            one_check(warmup, policy, lm, backend)
        runs = {backend: one_check(subset, policy, lm, backend) for backend in ("torch", "cpp")}

    print(f"model {lm.source} on {lm.device}; {args.rows} rows of {args.data}; suite {args.suite}, {args.questions} questions, "
          f"1 random direction + mirror; {args.threads} torch thread(s); no cache")
    print(f"  {'backend':<22}{'check':>9}{'pooling':>10}{'share':>8}{'injection':>11}{'share':>8}")
    for backend, (total, spent, _) in runs.items():
        name = "torch (before)" if backend == "torch" else "extension (after)"
        print(f"  {name:<22}{total:8.2f}s{spent['pooling']:9.3f}s{100 * spent['pooling'] / total:7.2f}%"
              f"{spent['injection']:10.3f}s{100 * spent['injection'] / total:7.2f}%")
    (t_total, t_spent, t_findings), (c_total, c_spent, c_findings) = runs["torch"], runs["cpp"]
    for key in SECONDS:
        print(f"  {key}: torch / extension time = {t_spent[key] / c_spent[key]:.2f}x"
              if c_spent[key] else f"  {key}: not called")
    print(f"  whole check: torch / extension time = {t_total / c_total:.3f}x")
    same = all(abs(a["shift"] - b["shift"]) < 1e-9 and a["entity"] == b["entity"]
               for a, b in zip(t_findings, c_findings))
    print(f"  findings identical to 1e-9: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
