"""Benchmark: mdf_guard kernels (extension) vs the pure-torch reference, side by side.

    python bench/kernel_speed.py [--repeats 7] [--device cpu|cuda|all] [--hidden 576 4096] [--threads N] [--l2 cold|hot]

Realistic shapes: batch 16 x 512 tokens (right padded, rows 256-512 long), hidden 576
(SmolLM2-135M) and 4096 (7-8B models), float32 and bfloat16; last-token mask and
response mask (the tokens after a 16-128 token prompt). Times are medians over
repeats, the two backends interleaved so that machine noise hits both alike. The
ratio column (reference time / extension time) is last. GB/s counts the activation bytes
the op must move (pooling reads the selected tokens; injection reads and writes them);
on CUDA it is given per call (wall time, which includes launches and the sync that
returning an int needs) and per GPU busy time (profiler: the sum of the call's kernels
and copies). The busy-time figure is compared with a `clone` (read + write) measured the
same way: of the same tensor ("% copy") and of a 1 GiB tensor ("% peak", the device's
copy bandwidth). On CUDA, every call (ops and clones alike) takes the next of several
copies of the activations, together a few times the L2 cache, so that the bytes come
from device memory ("cold" in the L2 column), and again with one copy, which stays in L2
when it fits ("hot": the 576-wide tensors do); `--l2 cold|hot` runs only one of the two.
Before the table, CUDA pooling is checked against the torch reference.
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
WORK: dict[str, dict[str, float]] = {}  # what the GPU ran per call, for the notes


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


def copy_bandwidth(xs: "Rotation", inner: int) -> float | None:
    """GB/s of x.clone() (read + write) by GPU busy time, like the ops' kern GB/s.

    Not wall time: a clone of a few MB takes less GPU time than launching it, so wall
    time would measure the launch rate (that made small ops look faster than a copy).
    """
    x = xs.tensors[0]
    xs().clone()  # warm up
    t = device_seconds(lambda: xs().clone(), inner)
    return 2 * x.numel() * x.element_size() / t / 1e9 if t else None


class Rotation:
    """Hands out `copies` tensors equal to x in turn (one: x itself)."""

    def __init__(self, x: torch.Tensor, copies: int):
        self.tensors = [x] + [x.clone() for _ in range(copies - 1)]
        self.i = 0

    def __call__(self) -> torch.Tensor:
        self.i = (self.i + 1) % len(self.tensors)
        return self.tensors[self.i]


def copies_for(x: torch.Tensor, l2: str) -> int:
    """Copies of x that together take 3x the L2 cache (at least 2), so that each call
    reads device memory; 1 on CPU or with --l2 hot."""
    if x.device.type != "cuda" or l2 == "hot":
        return 1
    l2_bytes = getattr(torch.cuda.get_device_properties(x.device), "L2_cache_size", 0) or 64 << 20
    return max(2, -(-3 * l2_bytes // (x.numel() * x.element_size())))


def check_cuda() -> bool:
    """The extension against the torch reference on the benchmark's shapes and on shapes
    with long token chunks, several calls (the per-stream tickets are reused) and two
    streams (bit-identical results). Prints each mismatch; True when there is none."""
    gen = torch.Generator().manual_seed(1)
    cases = [(B, T, 576, torch.bfloat16), (B, T, 4096, torch.float32), (4, 3000, 576, torch.float32),
             (8, 2500, 4096, torch.bfloat16), (9, 2100, 4097, torch.bfloat16),  # > 1024-token chunks
             (1, 1, 8, torch.float16), (40, 33, 4100, torch.float32)]
    stream = torch.cuda.Stream()
    failed = []
    for b, t, h, dtype in cases:
        hidden = (torch.randn(b, t, h, generator=gen) * 3).to(dtype).cuda()
        mask = (torch.rand(b, t, generator=gen) < 0.6).cuda()
        mask[0] = False
        got = []
        for s in (torch.cuda.current_stream(), stream, torch.cuda.current_stream()):
            with torch.cuda.stream(s):
                sums = torch.zeros(h, dtype=torch.float64, device="cuda") + 0.5
                sumsq = sums.clone()
                n = K.pool_rows(hidden, mask, sums, sumsq)
            torch.cuda.synchronize()
            got.append((sums, sumsq, n))
        ref_s = torch.zeros(h, dtype=torch.float64, device="cuda") + 0.5
        ref_q = ref_s.clone()
        ref_n = K.torch_pool_rows(hidden, mask, ref_s, ref_q)
        try:
            for sums, sumsq, n in got:
                assert n == ref_n, f"row count {n}, reference {ref_n}"
                assert torch.equal(sums, got[0][0]) and torch.equal(sumsq, got[0][1]), "bits differ"
                torch.testing.assert_close(sums, ref_s, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(sumsq, ref_q, rtol=1e-12, atol=1e-12)
        except AssertionError as err:
            failed.append(f"{(b, t, h, str(dtype))}: {' '.join(str(err).split())[:200]}")
    for line in failed:
        print(f"CHECK FAILED {line}")
    if not failed:
        print(f"check: CUDA pool_rows = torch reference on {len(cases)} shapes, same bits on 2 streams")
    return not failed


def device_seconds(fn, inner: int, work: dict | None = None) -> float | None:
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
        events = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        us = sum(e.time_range.elapsed_us() for e in events)
        if work is not None:  # per call: GPU work item -> microseconds
            for e in events:
                work[e.name] = work.get(e.name, 0.0) + e.time_range.elapsed_us() / inner
        return us / 1e6 / inner if us > 0 else None
    except Exception as err:  # the profiler API moves between torch versions
        print(f"(no device time: {type(err).__name__}: {err})")
        return None


def bench_one(hidden, vector, mask_cpu, device, l2, dt, ext_ok, repeats, inner, peak_gbs) -> None:
    """The table rows of one activation tensor: pool and inject under each mask, then clone."""
    cuda = device.type == "cuda"
    _, _, H = hidden.shape
    xs = Rotation(hidden, copies_for(hidden, l2))
    copy_gbs = copy_bandwidth(xs, inner) if cuda else None
    sums = torch.zeros(H, dtype=torch.float64, device=device)
    sumsq = torch.zeros_like(sums)
    for mname, mask in mask_cpu.items():
        mask = mask.to(device)
        selected = int(mask.sum())
        ops = {  # name: (extension, reference, passes over the selected bytes)
            "pool": (lambda m=mask: K.pool_rows(xs(), m, sums, sumsq),
                     lambda m=mask: K.torch_pool_rows(xs(), m, sums, sumsq), 1),
            "inject": (lambda m=mask: K.inject_(xs(), m, 1e-3, vector),
                       lambda m=mask: K.torch_inject_(xs(), m, 1e-3, vector), 2),
        }
        for op, (ext_fn, ref_fn, passes) in ops.items():
            fns = {"ref": ref_fn, "ext": ext_fn} if ext_ok else {"ref": ref_fn}
            t = side_by_side(fns, device, repeats, inner)
            t_ext = t.get("ext")
            moved = passes * selected * H * hidden.element_size() / 1e9
            call = kern = pct = peak = ""
            if t_ext:
                call = f"{moved / t_ext:.1f}"
            if cuda and t_ext:
                work = {}
                t_dev = device_seconds(ext_fn, inner, work)
                if mname == "response" and l2 == "cold":
                    WORK[f"{op} {dt} {H}"] = work
                if t_dev:
                    kern = f"{moved / t_dev:.0f}"
                    if copy_gbs:
                        pct = f"{100 * moved / t_dev / copy_gbs:.0f}%"
                    if peak_gbs:
                        peak = f"{100 * moved / t_dev / peak_gbs:.0f}%"
            ext_ms = f"{t_ext * 1e3:.3f}" if t_ext else "-"
            ratio = f"{t['ref'] / t_ext:.2f}x" if t_ext else "-"
            print(f"{op:<7}{device.type:<5}{l2:<5}{dt:<6}{H:>5} {mname:<9}{selected:>7}{ext_ms:>9}"
                  f"{t['ref'] * 1e3:>10.3f}{call:>10}{kern:>10}{pct:>7}{peak:>7}{ratio:>9}")
    if copy_gbs:
        peak = f"{100 * copy_gbs / peak_gbs:.0f}%" if peak_gbs else ""
        print(f"{'clone':<7}{device.type:<5}{l2:<5}{dt:<6}{H:>5} {'-':<9}{B * T:>7}{'':>9}"
              f"{'':>10}{'':>10}{copy_gbs:>10.0f}{'100%':>7}{peak:>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    ap.add_argument("--hidden", type=int, nargs="+", default=[576, 4096])
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    ap.add_argument("--l2", choices=["cold", "hot", "both"], default="both",
                    help="CUDA: read the activations from device memory (cold: rotate copies "
                         "past the L2 cache), from L2 where they fit (hot: one copy), or both")
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
    peak_gbs, checked = None, True
    if any(d.type == "cuda" for d in devices):
        if ext_ok["cuda"]:
            checked = check_cuda()
        big = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
        peak_gbs = copy_bandwidth(Rotation(big, 1), 10)
        del big
        if peak_gbs:
            print(f"device copy bandwidth (clone of 1 GiB, GPU busy time): {peak_gbs:.0f} GB/s")
    gen = torch.Generator().manual_seed(0)
    mask_cpu = masks(gen)
    header = (f"{'op':<7}{'dev':<5}{'L2':<5}{'dtype':<6}{'H':>5} {'mask':<9}{'tokens':>7}{'ext ms':>9}"
              f"{'torch ms':>10}{'call GB/s':>10}{'kern GB/s':>10}{'% copy':>7}{'% peak':>7}{'ratio':>9}")
    print(header)
    print("-" * len(header))
    for device in devices:
        cuda = device.type == "cuda"
        inner = 20 if cuda else 1
        for H in args.hidden:
            for dtype in (torch.float32, torch.bfloat16):
                dt = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
                hidden = (torch.randn(B, T, H, generator=gen) * 2).to(dtype).to(device)
                vector = torch.randn(H, generator=gen).to(device)
                modes = (["cold", "hot"] if args.l2 == "both" else [args.l2]) if cuda else ["-"]
                for l2 in modes:
                    bench_one(hidden, vector, mask_cpu, device, l2, dt, ext_ok[device.type],
                              args.repeats, inner, peak_gbs)
                del hidden
    print("call GB/s: selected activation bytes moved (pool reads them, inject reads and writes "
          "them) / wall time of one call; kern GB/s: the same / GPU busy time of the call; "
          "% copy: kern GB/s / GB/s of clone() of the same tensor (GPU busy time too); "
          "% peak: kern GB/s / GB/s of clone() of 1 GiB")
    print("ratio = torch reference time / extension time (higher is better)")
    for case, work in WORK.items():
        items = ", ".join(f"{name[:60]} {us:.1f} us" for name, us in work.items())
        print(f"GPU work per call, {case} response (L2 cold): {items}")
    if not checked:
        sys.exit("CUDA pool_rows disagrees with the torch reference (CHECK FAILED above)")


if __name__ == "__main__":
    main()
