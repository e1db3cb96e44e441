"""Benchmark: mdf_guard kernels (extension) vs the pure-torch reference, side by side.

    python bench/kernels.py [--repeats 7] [--device cpu|cuda|all] [--hidden 576 4096] [--threads N]

Realistic shapes: batch 16 x 512 tokens (right padded, rows 256-512 long), hidden 576
(SmolLM2-135M) and 4096 (7-8B models), float32 and bfloat16; last-token mask and
response mask (the tokens after a 16-128 token prompt). Times are medians over
repeats, the two backends interleaved so that machine noise hits both alike. The
ratio column (reference time / extension time) is last. GB/s counts the activation bytes
the op must move (pooling reads the selected tokens; injection reads and writes them);
on CUDA it is given per call (wall time, which includes launches and the sync that
returning an int needs) and per GPU busy time (profiler), the latter compared with a
same-size `clone` (read + write) measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mdf_guard import kernels as K  # noqa: E402

B, T = 16, 512


def masks(gen: torch.Generator) -> dict[str, torch.Tensor]:
    lengths = torch.randint(256, T + 1, (B,), generator=gen)
    prompts = torch.randint(16, 129, (B,), generator=gen)
    pos = torch.arange(T)
    last = pos[None, :] == (lengths - 1)[:, None]
    response = (pos[None, :] >= prompts[:, None]) & (pos[None, :] < lengths[:, None])
    return {"last": last, "response": response}


def timer(device: torch.device):
    """Seconds taken by fn(), synchronised on CUDA."""
    if device.type == "cuda":
        def run(fn, inner):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / inner
    else:
        def run(fn, inner):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            return (time.perf_counter() - t0) / inner
    return run


def side_by_side(fns: dict, device, repeats: int, inner: int) -> dict[str, float]:
    run = timer(device)
    for fn in fns.values():  # warm up (first-call allocations, lazy init)
        run(fn, 1)
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(run(fn, inner))
    return {name: statistics.median(s) for name, s in samples.items()}


def copy_bandwidth(x: torch.Tensor, repeats: int, inner: int) -> float:
    """GB/s of x.clone() (read + write), the practical bandwidth ceiling."""
    t = side_by_side({"clone": lambda: x.clone()}, x.device, repeats, inner)["clone"]
    return 2 * x.numel() * x.element_size() / t / 1e9


def device_seconds(fn, inner: int) -> float | None:
    """GPU busy time per call (sum of its kernels and copies, from the profiler).

    A call's wall time also holds the launch overhead and the sync that returning the
    row count as an int needs; this is what the kernels themselves take.
    """
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(inner):
                fn()
            torch.cuda.synchronize()
        us = sum(e.time_range.elapsed_us() for e in prof.events()
                 if e.device_type == DeviceType.CUDA)
        return us / 1e6 / inner if us > 0 else None
    except Exception as err:  # the profiler API moves between torch versions
        print(f"(no device time: {type(err).__name__}: {err})")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--hidden", type=int, nargs="+", default=[576, 4096])
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    os.environ.pop("MDF_GUARD_KERNELS", None)
    info = K.backend_info()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; backend: {info.name} "
          f"(cuda kernels: {info.cuda}) - {info.reason}")
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
        print(f"GPU: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
    ext_ok = {d.type: info.name == "cpp" and (d.type == "cpu" or info.cuda) for d in devices}

    gen = torch.Generator().manual_seed(0)
    mask_cpu = masks(gen)
    header = (f"{'op':<7}{'dev':<5}{'dtype':<6}{'H':>5} {'mask':<9}{'tokens':>7}{'ext ms':>9}"
              f"{'torch ms':>10}{'call GB/s':>10}{'kern GB/s':>10}{'% copy':>7}{'ratio':>9}")
    print(header)
    print("-" * len(header))
    for device in devices:
        cuda = device.type == "cuda"
        inner = 20 if cuda else 1
        for H in args.hidden:
            for dtype in (torch.float32, torch.bfloat16):
                dt = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
                hidden = (torch.randn(B, T, H, generator=gen) * 2).to(dtype).to(device)
                copy_gbs = copy_bandwidth(hidden, args.repeats, inner) if cuda else None
                sums = torch.zeros(H, dtype=torch.float64, device=device)
                sumsq = torch.zeros_like(sums)
                vector = torch.randn(H, generator=gen).to(device)
                for mname, mask in mask_cpu.items():
                    mask = mask.to(device)
                    selected = int(mask.sum())
                    ops = {  # name: (extension, reference, passes over the selected bytes)
                        "pool": (lambda m=mask: K.pool_rows(hidden, m, sums, sumsq),
                                 lambda m=mask: K.torch_pool_rows(hidden, m, sums, sumsq), 1),
                        "inject": (lambda m=mask: K.inject_(hidden, m, 1e-3, vector),
                                   lambda m=mask: K.torch_inject_(hidden, m, 1e-3, vector), 2),
                    }
                    for op, (ext_fn, ref_fn, passes) in ops.items():
                        fns = {"ref": ref_fn, "ext": ext_fn} if ext_ok[device.type] else {"ref": ref_fn}
                        t = side_by_side(fns, device, args.repeats, inner)
                        t_ext = t.get("ext")
                        moved = passes * selected * H * hidden.element_size() / 1e9
                        call = kern = pct = ""
                        if t_ext:
                            call = f"{moved / t_ext:.1f}"
                        if cuda and t_ext:
                            t_dev = device_seconds(ext_fn, inner)
                            if t_dev:
                                kern, pct = f"{moved / t_dev:.0f}", f"{100 * moved / t_dev / copy_gbs:.0f}%"
                        ext_ms = f"{t_ext * 1e3:.3f}" if t_ext else "-"
                        ratio = f"{t['ref'] / t_ext:.2f}x" if t_ext else "-"
                        print(f"{op:<7}{device.type:<5}{dt:<6}{H:>5} {mname:<9}{selected:>7}{ext_ms:>9}"
                              f"{t['ref'] * 1e3:>10.3f}{call:>10}{kern:>10}{pct:>7}{ratio:>9}")
                if copy_gbs:
                    print(f"{'clone':<7}{device.type:<5}{dt:<6}{H:>5} {'-':<9}{B * T:>7}{'':>9}"
                          f"{'':>10}{'':>10}{copy_gbs:>10.0f}{'100%':>7}")
    print("call GB/s: selected activation bytes moved (pool reads them, inject reads and writes "
          "them) / wall time of one call; kern GB/s: the same / GPU busy time of the call; "
          "% copy: kern GB/s / clone() GB/s on the same tensor size")
    print("ratio = torch reference time / extension time (higher is better)")


if __name__ == "__main__":
    main()
