"""Masked float64 pooling and in-place injection: the C++/CUDA extension, or pure torch.

`pool_rows` and `inject_` run the compiled `mdf_guard._kernels` (csrc/) when it is
built and supports the tensors at hand, else the pure-torch reference functions
`torch_pool_rows` / `torch_inject_`, which define the semantics and are what the
tests compare against. `backend_info()` says which backend runs and why.

Accepted tensors (both backends):
* hidden: [B, T, H], float32 / bfloat16 / float16 (the reference also takes other float
  dtypes). Any strides; the extension wants stride(2) == 1 (a slice such as
  `h[:, :T']` or `h[idx]` is fine) and otherwise the reference runs.
* mask: [B, T] bool on hidden's device, any strides.
* sums, sumsq: [H] float64 on hidden's device (contiguous for the extension).

Environment:
* MDF_GUARD_KERNELS=torch  always use the torch reference (read at every call).
* MDF_GUARD_JIT=1          if the extension is not installed, compile it from csrc/ on first
                           use (needs a source checkout and a compiler; takes minutes).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

__all__ = ["BackendInfo", "backend_info", "pool_rows", "pool_weighted_rows", "inject_", "torch_pool_rows",
           "torch_inject_"]

_EXTENSION_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# Float64 elements per reference chunk (32 MiB): bounds the reference's temporaries
# so that it never holds a float64 copy of a whole activation tensor.
_REF_CHUNK_ELEMS = 1 << 22
_REBUILD = "rebuild with: pip install --no-build-isolation . (torch installed), or set MDF_GUARD_JIT=1"


@dataclass(frozen=True)
class BackendInfo:
    name: str     # "cpp" (the extension; CUDA kernels inside if `cuda`) or "torch"
    cuda: bool    # the extension has CUDA kernels
    reason: str   # why this backend, one line


def backend_info() -> BackendInfo:
    """Which backend `pool_rows`/`inject_` use for CPU and CUDA tensors, and why."""
    if _forced_torch():
        return BackendInfo("torch", False, "disabled by MDF_GUARD_KERNELS=torch")
    ext, reason = _extension()
    if ext is None:
        return BackendInfo("torch", False, reason)
    if not ext.has_cuda and torch.cuda.is_available():
        reason += "; built without CUDA kernels, so CUDA tensors use the torch reference"
    return BackendInfo("cpp", bool(ext.has_cuda), reason)


# ---------------------------------------------------------------------------------
# Public entry points


def pool_rows(hidden: Tensor, mask: Tensor, sums: Tensor, sumsq: Tensor) -> int:
    """Add each row's masked mean (float64) to `sums` and its square to `sumsq`, in place.

    For each row b with at least one True in mask[b]: r_b = mean of hidden[b, t, :] over
    the masked t, accumulated in float64; sums += r_b; sumsq += r_b**2. Returns the number
    of such rows. Last-token pooling is a mask with one True per row; response-mean
    pooling is the response tokens' mask. Nothing the size of `hidden` is copied in
    float32/float64. On CUDA this synchronises (the count is returned as an int).
    """
    _check_pool(hidden, mask, sums, sumsq)
    ext = _extension_for(hidden)
    if ext is None or not (sums.is_contiguous() and sumsq.is_contiguous()):
        return _pool_reference(hidden, mask, sums, sumsq)
    return ext.pool_rows(hidden, mask, sums, sumsq)


def pool_weighted_rows(hidden: Tensor, weights: Tensor, sums: Tensor, sumsq: Tensor) -> int:
    """`pool_rows` with a weight per token: r_b = sum_t w[b, t] * hidden[b, t, :] / sum_t w[b, t].

    weights: [B, T] float, >= 0, on hidden's device; a row whose weights are all zero adds
    nothing and is not counted. Torch only: the extension pools masks, and surprise
    pooling (the one user) runs the whole model and its head anyway, so this is never the
    part of the pass that matters.
    """
    mask = weights > 0
    _check_pool(hidden, mask, sums, sumsq)
    if not weights.is_floating_point():
        raise ValueError(f"pool_weighted_rows: weights must be float {tuple(hidden.shape[:2])}, "
                         f"got {weights.dtype} {tuple(weights.shape)}")
    return _pool_reference(hidden, mask, sums, sumsq, weights)


def inject_(hidden: Tensor, mask: Tensor | None, alpha: float, vector: Tensor) -> None:
    """In place: hidden[b, t, :] += alpha * vector where mask[b, t] (everywhere if mask is None).

    delta = (alpha * vector.float()).to(hidden.dtype) and the add happens in hidden's
    dtype with one rounding, so both backends give the same bits.
    """
    _check_inject(hidden, mask, vector)
    delta = _delta(hidden, alpha, vector)
    # Without a mask (the steer hooks' case) it is one broadcast add, torch's own
    # elementwise kernel: the extension only adds call overhead there (0.7x on an H200 in
    # bench/check_share.py, 0.5x on the CPU), so it is not even looked up. With a mask,
    # torch must gather and scatter the selected rows, and the extension wins
    # (bench/kernels.py). Autograd must see an in-place op on a tensor it tracks: only
    # torch can do that.
    ext = None if mask is None else _extension_for(hidden)
    if ext is None or (hidden.requires_grad and torch.is_grad_enabled()):
        _inject_reference(hidden, mask, delta)
        return
    ext.inject_(hidden, mask, delta.contiguous())


def torch_pool_rows(hidden: Tensor, mask: Tensor, sums: Tensor, sumsq: Tensor) -> int:
    """The pure-torch reference of `pool_rows` (same contract), always available."""
    _check_pool(hidden, mask, sums, sumsq)
    return _pool_reference(hidden, mask, sums, sumsq)


def torch_inject_(hidden: Tensor, mask: Tensor | None, alpha: float, vector: Tensor) -> None:
    """The pure-torch reference of `inject_` (same contract), always available."""
    _check_inject(hidden, mask, vector)
    _inject_reference(hidden, mask, _delta(hidden, alpha, vector))


# ---------------------------------------------------------------------------------
# Reference implementations


def _pool_reference(hidden: Tensor, mask: Tensor, sums: Tensor, sumsq: Tensor,
                    weights: Tensor | None = None) -> int:
    with torch.no_grad():
        B, _, H = hidden.shape
        if weights is None:
            counts = mask.sum(1)
        else:
            weights = weights.to(torch.float64)
            counts = torch.where(mask, weights, 0.0).sum(1)
        valid = counts > 0
        n_rows = int(valid.sum())
        if n_rows == 0 or H == 0:
            return n_rows
        # Gather only the selected tokens, a bounded chunk at a time, and add them to their
        # row. index_put_(accumulate=True) rather than index_add_: on CUDA it is sort-based
        # and deterministic (index_add_ uses atomics unless torch.use_deterministic_algorithms),
        # and on CPU it is serial, where index_add_ forks threads even for a few rows and
        # then cost ~90 ms per call on a loaded 2-core machine.
        b_idx, t_idx = mask.nonzero(as_tuple=True)
        row_sums = torch.zeros(B, H, dtype=torch.float64, device=hidden.device)
        step = max(1, _REF_CHUNK_ELEMS // H)
        for start in range(0, b_idx.numel(), step):
            b = b_idx[start:start + step]
            t = t_idx[start:start + step]
            chunk = hidden[b, t].to(torch.float64)
            if weights is not None:
                chunk *= weights[b, t].unsqueeze(1)
            row_sums.index_put_((b,), chunk, accumulate=True)
        means = row_sums[valid] / counts[valid].unsqueeze(1)
        sums.add_(means.sum(0))
        sumsq.add_((means * means).sum(0))
        return n_rows


def _inject_reference(hidden: Tensor, mask: Tensor | None, delta: Tensor) -> None:
    if mask is None:
        hidden.add_(delta)
    else:
        hidden[mask] += delta  # gathers only the masked rows, adds in hidden's dtype


def _delta(hidden: Tensor, alpha: float, vector: Tensor) -> Tensor:
    v = vector.to(device=hidden.device, dtype=torch.float32)
    return (float(alpha) * v).to(hidden.dtype)


# ---------------------------------------------------------------------------------
# Argument checks (shared, so both backends reject the same calls)


def _check_pool(hidden: Tensor, mask: Tensor, sums: Tensor, sumsq: Tensor) -> None:
    _check_hidden_mask(hidden, mask, "pool_rows")
    H = hidden.shape[2]
    for name, acc in (("sums", sums), ("sumsq", sumsq)):
        if acc.dtype != torch.float64 or tuple(acc.shape) != (H,) or acc.device != hidden.device:
            raise ValueError(f"pool_rows: {name} must be float64 [{H}] on {hidden.device}, "
                             f"got {acc.dtype} {tuple(acc.shape)} on {acc.device}")


def _check_inject(hidden: Tensor, mask: Tensor | None, vector: Tensor) -> None:
    _check_hidden_mask(hidden, mask, "inject_")
    if tuple(vector.shape) != (hidden.shape[2],):
        raise ValueError(f"inject_: vector must be [{hidden.shape[2]}], got {tuple(vector.shape)}")


def _check_hidden_mask(hidden: Tensor, mask: Tensor | None, fn: str) -> None:
    if hidden.dim() != 3 or not hidden.is_floating_point():
        raise ValueError(f"{fn}: hidden must be a floating [B, T, H] tensor, "
                         f"got {hidden.dtype} {tuple(hidden.shape)}")
    if mask is None:
        return
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"{fn}: mask must be bool {tuple(hidden.shape[:2])}, "
                         f"got {mask.dtype} {tuple(mask.shape)}")
    if mask.device != hidden.device:
        raise ValueError(f"{fn}: mask is on {mask.device}, hidden on {hidden.device}")


# ---------------------------------------------------------------------------------
# Loading the extension


_lock = threading.Lock()
_loaded: tuple[ModuleType | None, str] | None = None


def _forced_torch() -> bool:
    return os.environ.get("MDF_GUARD_KERNELS", "").strip().lower() == "torch"


def _extension_for(hidden: Tensor) -> ModuleType | None:
    """The extension if it should handle this tensor, else None (use the reference)."""
    if _forced_torch():
        return None
    ext, _ = _extension()
    if ext is None or hidden.dtype not in _EXTENSION_DTYPES:
        return None
    if hidden.stride(2) != 1 and hidden.shape[2] > 1:
        return None
    device = hidden.device.type
    if device == "cpu" or (device == "cuda" and ext.has_cuda):
        return ext
    return None


def _extension() -> tuple[ModuleType | None, str]:
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _import_extension()
        return _loaded


def _import_extension() -> tuple[ModuleType | None, str]:
    try:
        ext = importlib.import_module("mdf_guard._kernels")
        how = "extension mdf_guard._kernels loaded"
    except ModuleNotFoundError as err:
        if err.name != "mdf_guard._kernels":
            return None, f"mdf_guard._kernels failed to import: {_one_line(err)}"
        if _flag("MDF_GUARD_JIT"):
            return _jit_build()
        return None, ("not built: mdf_guard._kernels is absent (torch was not importable at install "
                      "time, the build failed, or MDF_GUARD_NO_EXTENSION was set); " + _REBUILD)
    except (ImportError, OSError) as err:
        # Typically undefined symbols: built against a different torch.
        return None, f"mdf_guard._kernels failed to load ({_one_line(err)}); {_REBUILD}"
    built = getattr(ext, "torch_version", "unknown")
    if built != torch.__version__:
        return None, (f"mdf_guard._kernels was built with torch {built} but torch "
                      f"{torch.__version__} is running; {_REBUILD}")
    cuda = ", with CUDA kernels" if ext.has_cuda else ""
    return ext, f"{how} (built with torch {built}{cuda})"


def _jit_build() -> tuple[ModuleType | None, str]:
    csrc = Path(__file__).resolve().parent.parent / "csrc"
    if not (csrc / "bindings.cpp").is_file():
        return None, f"MDF_GUARD_JIT=1 but there is no csrc/ at {csrc} (needs a source checkout)"
    try:
        from torch.utils import cpp_extension

        cuda = (torch.cuda.is_available() and torch.version.cuda is not None
                and cpp_extension.CUDA_HOME is not None)
        version = f"-DMDF_GUARD_TORCH_VERSION={torch.__version__}"
        cflags, ldflags = ["-O3", version], []
        if sys.platform.startswith("linux"):
            cflags += ["-fopenmp", "-ffp-contract=off"]
            ldflags += ["-fopenmp"]
        sources = [str(csrc / s) for s in ("bindings.cpp", "pooling.cpp", "inject.cpp")]
        if cuda:
            sources.append(str(csrc / "kernels.cu"))
            cflags.append("-DMDF_GUARD_WITH_CUDA")
        ext = cpp_extension.load(
            name="mdf_guard_kernels_jit", sources=sources, extra_cflags=cflags,
            extra_cuda_cflags=["-O3", "-DMDF_GUARD_WITH_CUDA", version],
            extra_ldflags=ldflags, with_cuda=cuda, verbose=False)
    except Exception as err:
        return None, f"MDF_GUARD_JIT=1 but the build failed: {_one_line(err)}"
    cuda_note = ", with CUDA kernels" if ext.has_cuda else ""
    return ext, f"extension JIT-built from csrc/ (MDF_GUARD_JIT=1, torch {torch.__version__}{cuda_note})"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}"
