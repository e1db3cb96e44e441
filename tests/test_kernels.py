"""Kernels: the extension agrees with a float64 oracle and with the torch reference.

Pooling sums exactly representable inputs in float64, so every backend must match the
oracle to ~1e-12 whatever the input dtype; injection must be bit-identical to torch.
Tests needing the compiled extension skip when it is not built, except under
MDF_GUARD_REQUIRE_EXTENSION=1 (CI), where `test_extension_required` fails instead.
"""

from __future__ import annotations

import os
import types
import zlib

import pytest
import torch

from mdf_guard import kernels as K

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Inputs are exact in float64, so the only error is float64 summation: tight for all.
TOL = {torch.float32: 1e-12, torch.bfloat16: 1e-12, torch.float16: 1e-12}
BITS = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}
MASK_KINDS = ["random", "last_token", "empty_rows", "all_padding", "all_true"]
CUDA = torch.cuda.is_available()


@pytest.fixture
def ext(monkeypatch):
    """The extension backend, or a skip saying why it is not there."""
    monkeypatch.delenv("MDF_GUARD_KERNELS", raising=False)
    info = K.backend_info()
    if info.name != "cpp":
        pytest.skip(f"extension not loaded: {info.reason}")
    return info


def seed(*parts) -> int:
    """A per-case seed that, unlike hash(), is the same in every run."""
    return zlib.crc32(repr(parts).encode())


def make_mask(kind: str, B: int, T: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "random":
        return torch.rand(B, T, generator=gen) < 0.4
    if kind == "last_token":  # right padding: True at each row's last real token
        mask = torch.zeros(B, T, dtype=torch.bool)
        mask[torch.arange(B), torch.randint(0, T, (B,), generator=gen)] = True
        return mask
    if kind == "empty_rows":
        mask = torch.rand(B, T, generator=gen) < 0.6
        mask[::2] = False
        return mask
    if kind == "all_padding":
        return torch.zeros(B, T, dtype=torch.bool)
    return torch.ones(B, T, dtype=torch.bool)


def oracle(hidden: torch.Tensor, mask: torch.Tensor):
    """Float64 row means of the masked tokens, the slow obvious way."""
    h, m = hidden.double().cpu(), mask.cpu()
    rows = [h[b][m[b]].mean(0) for b in range(h.shape[0]) if m[b].any()]
    if not rows:
        z = torch.zeros(h.shape[2], dtype=torch.float64)
        return z, z.clone(), 0
    r = torch.stack(rows)
    return r.sum(0), (r * r).sum(0), len(rows)


def run_pool(fn, hidden, mask, start=None):
    H = hidden.shape[2]
    sums = torch.zeros(H, dtype=torch.float64, device=hidden.device)
    if start is not None:
        sums += start
    sumsq = sums.clone()
    n = fn(hidden, mask, sums, sumsq)
    return sums, sumsq, n


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(BITS[t.dtype])


def random_hidden(B, T, H, dtype, gen, device="cpu", scale=3.0):
    x = torch.randn(B, T, H, generator=gen) * scale + 0.5
    return x.to(dtype).to(device)


# ---------------------------------------------------------------------------------
# Backend selection and loading


def test_extension_required(monkeypatch):
    if os.environ.get("MDF_GUARD_REQUIRE_EXTENSION") != "1":
        pytest.skip("MDF_GUARD_REQUIRE_EXTENSION=1 not set")
    monkeypatch.delenv("MDF_GUARD_KERNELS", raising=False)
    info = K.backend_info()
    assert info.name == "cpp", f"extension required but not loaded: {info.reason}"
    if CUDA:
        assert info.cuda, "a GPU is visible but the extension has no CUDA kernels"


def test_forced_torch_backend(monkeypatch):
    monkeypatch.setenv("MDF_GUARD_KERNELS", "torch")
    info = K.backend_info()
    assert (info.name, info.cuda, info.reason) == ("torch", False, "disabled by MDF_GUARD_KERNELS=torch")
    gen = torch.Generator().manual_seed(0)
    hidden, mask = random_hidden(3, 9, 17, torch.bfloat16, gen), make_mask("random", 3, 9, gen)
    a = run_pool(K.pool_rows, hidden, mask)
    b = run_pool(K.torch_pool_rows, hidden, mask)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_backend_info_reason_is_one_line():
    info = K.backend_info()
    assert info.name in ("cpp", "torch") and info.reason and "\n" not in info.reason
    assert not info.cuda or info.name == "cpp"


@pytest.mark.parametrize("error, expected", [
    (ModuleNotFoundError("No module named 'mdf_guard._kernels'", name="mdf_guard._kernels"),
     "not built"),
    (ImportError("_kernels.so: undefined symbol: _ZN3c1017RegisterOperators"), "undefined symbol"),
    (OSError("libc10.so: cannot open shared object file"), "failed to load"),
])
def test_load_failure_reasons(monkeypatch, error, expected):
    def fail(name):
        raise error
    monkeypatch.delenv("MDF_GUARD_JIT", raising=False)
    monkeypatch.setattr(K.importlib, "import_module", fail)
    ext, reason = K._import_extension()
    assert ext is None and expected in reason and "\n" not in reason
    assert "--no-build-isolation" in reason


def test_extension_for_another_torch_is_refused(monkeypatch):
    fake = types.SimpleNamespace(torch_version="1.0.0", has_cuda=False)
    monkeypatch.setattr(K.importlib, "import_module", lambda name: fake)
    ext, reason = K._import_extension()
    assert ext is None and "built with torch 1.0.0" in reason and torch.__version__ in reason


# ---------------------------------------------------------------------------------
# Argument checks (shared by both backends)


@pytest.mark.parametrize("fn", [K.pool_rows, K.torch_pool_rows])
def test_pool_rejects_bad_arguments(fn):
    h = torch.zeros(2, 3, 4)
    ok = torch.zeros(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="mask"):
        fn(h, torch.ones(2, 3, dtype=torch.long), ok, ok.clone())
    with pytest.raises(ValueError, match="mask"):
        fn(h, torch.ones(3, 2, dtype=torch.bool), ok, ok.clone())
    with pytest.raises(ValueError, match="sums"):
        fn(h, torch.ones(2, 3, dtype=torch.bool), torch.zeros(4), ok.clone())
    with pytest.raises(ValueError, match="hidden"):
        fn(h[0], torch.ones(2, 3, dtype=torch.bool), ok, ok.clone())


@pytest.mark.parametrize("fn", [K.inject_, K.torch_inject_])
def test_inject_rejects_bad_arguments(fn):
    h = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="vector"):
        fn(h, None, 1.0, torch.ones(5))
    with pytest.raises(ValueError, match="mask"):
        fn(h, torch.ones(2, 3), 1.0, torch.ones(4))


@pytest.mark.parametrize("shape", [(0, 5, 8), (3, 0, 8), (3, 5, 0)])
def test_empty_shapes(shape):
    B, T, H = shape
    for pool, inject in ((K.pool_rows, K.inject_), (K.torch_pool_rows, K.torch_inject_)):
        hidden = torch.ones(B, T, H, dtype=torch.bfloat16)
        mask = torch.ones(B, T, dtype=torch.bool)
        sums, sumsq, n = run_pool(pool, hidden, mask)
        assert n == (B if T else 0)  # rows with a masked token, even when H == 0
        assert not sums.any() and not sumsq.any()
        inject(hidden, mask, 1.0, torch.ones(H))
        inject(hidden, None, 1.0, torch.ones(H))


# ---------------------------------------------------------------------------------
# Torch reference (always runs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_reference_pool_matches_oracle(dtype, kind, monkeypatch):
    gen = torch.Generator().manual_seed(seed(dtype, kind))
    hidden = random_hidden(5, 13, 37, dtype, gen)
    mask = make_mask(kind, 5, 13, gen)
    # Tiny chunks so that the chunk loop and the cross-chunk row sums are exercised.
    monkeypatch.setattr(K, "_REF_CHUNK_ELEMS", 37 * 4)
    sums, sumsq, n = run_pool(K.torch_pool_rows, hidden, mask, start=1.0)
    es, eq, en = oracle(hidden, mask)
    assert n == en
    torch.testing.assert_close(sums, es + 1.0, rtol=TOL[dtype], atol=TOL[dtype])
    torch.testing.assert_close(sumsq, eq + 1.0, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_weighted_pool_matches_oracle(dtype, kind, monkeypatch):
    gen = torch.Generator().manual_seed(seed("weighted", dtype, kind))
    hidden = random_hidden(5, 13, 37, dtype, gen)
    mask = make_mask(kind, 5, 13, gen)
    weights = torch.rand(5, 13, generator=gen, dtype=torch.float64) * mask
    monkeypatch.setattr(K, "_REF_CHUNK_ELEMS", 37 * 4)
    sums, sumsq, n = run_pool(K.pool_weighted_rows, hidden, weights, start=1.0)
    h = hidden.double()
    rows = [(weights[b, :, None] * h[b]).sum(0) / weights[b].sum() for b in range(5) if weights[b].sum() > 0]
    assert n == len(rows)
    if rows:
        r = torch.stack(rows)
        torch.testing.assert_close(sums, r.sum(0) + 1.0, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(sumsq, (r * r).sum(0) + 1.0, rtol=1e-12, atol=1e-12)
    else:
        assert torch.equal(sums, torch.ones_like(sums))


def test_weighted_pool_with_equal_weights_is_the_masked_mean():
    gen = torch.Generator().manual_seed(seed("equal weights"))
    hidden, mask = random_hidden(4, 9, 16, torch.float32, gen), make_mask("empty_rows", 4, 9, gen)
    a = run_pool(K.pool_weighted_rows, hidden, mask * 2.5)
    b = run_pool(K.torch_pool_rows, hidden, mask)
    torch.testing.assert_close(a[0], b[0], rtol=1e-12, atol=1e-12)
    assert a[2] == b[2]


def test_weighted_pool_rejects_bad_weights():
    hidden = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="weights must be float"):
        run_pool(K.pool_weighted_rows, hidden, torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="mask must be bool"):
        run_pool(K.pool_weighted_rows, hidden, torch.ones(2, 4))


def test_reference_inject_semantics():
    h = torch.zeros(2, 3, 4, dtype=torch.bfloat16)
    mask = torch.tensor([[True, False, True], [False, False, True]])
    v = torch.tensor([1.0, 2.0, 3.0, 1 / 3], dtype=torch.float64)
    K.torch_inject_(h, mask, 2.0, v)
    delta = (2.0 * v.float()).to(torch.bfloat16)
    assert torch.equal(h[mask], delta.expand(3, 4))
    assert not h[~mask].any()
    K.torch_inject_(h, None, 1.0, v)
    assert torch.equal(h[~mask], v.float().to(torch.bfloat16).expand(3, 4))


def test_reference_pool_ignores_autograd():
    x = torch.randn(2, 4, 8, requires_grad=True)
    sums, sumsq = torch.zeros(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    K.pool_rows(x * 2, torch.ones(2, 4, dtype=torch.bool), sums, sumsq)
    assert not sums.requires_grad and not sumsq.requires_grad


def test_inject_under_autograd_uses_torch():
    x = torch.randn(2, 3, 4, requires_grad=True)
    h = x * 1.0
    K.inject_(h, torch.tensor([[True, False, True], [True, True, False]]), 0.5, torch.ones(4))
    h.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


# ---------------------------------------------------------------------------------
# CPU extension vs oracle and reference


def shapes(seed: int, n: int):
    gen = torch.Generator().manual_seed(seed)
    hs = [1, 3, 17, 64, 129, 576, 1000]
    for i in range(n):
        B = int(torch.randint(1, 7, (1,), generator=gen))
        T = int(torch.randint(1, 41, (1,), generator=gen))
        yield B, T, hs[i % len(hs)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_cpu_pool_matches_oracle_and_reference(ext, dtype, kind):
    gen = torch.Generator().manual_seed(seed(dtype, kind, 1))
    for B, T, H in shapes(seed(kind), 7):
        hidden = random_hidden(B, T, H, dtype, gen)
        mask = make_mask(kind, B, T, gen)
        got = run_pool(K.pool_rows, hidden, mask, start=0.25)
        ref = run_pool(K.torch_pool_rows, hidden, mask, start=0.25)
        es, eq, en = oracle(hidden, mask)
        assert got[2] == ref[2] == en
        for g, r, e in ((got[0], ref[0], es + 0.25), (got[1], ref[1], eq + 0.25)):
            torch.testing.assert_close(g, e, rtol=TOL[dtype], atol=TOL[dtype])
            torch.testing.assert_close(g, r, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_pool_non_contiguous(ext, dtype):
    gen = torch.Generator().manual_seed(7)
    big = random_hidden(9, 30, 130, dtype, gen)
    cases = {
        "token slice": big[1:6, 3:20, :101],  # B and T strides of the big tensor
        "transposed B/T": random_hidden(12, 4, 64, dtype, gen).transpose(0, 1),
        "strided H (reference path)": big[:4, :10, ::2],
    }
    for name, hidden in cases.items():
        B, T, _ = hidden.shape
        mask = (torch.rand(T, B, generator=gen) < 0.5).t()  # non-contiguous mask too
        got = run_pool(K.pool_rows, hidden, mask)
        es, eq, en = oracle(hidden, mask)
        assert got[2] == en, name
        torch.testing.assert_close(got[0], es, rtol=TOL[dtype], atol=TOL[dtype], msg=name)
        torch.testing.assert_close(got[1], eq, rtol=TOL[dtype], atol=TOL[dtype], msg=name)


@pytest.mark.parametrize("B, T, H", [(8, 96, 1500),  # parallel over rows
                                     (1, 64, 2600)])  # one row: parallel over column chunks
def test_cpu_pool_deterministic_across_threads(ext, B, T, H):
    gen = torch.Generator().manual_seed(3)
    hidden = random_hidden(B, T, H, torch.bfloat16, gen)  # big enough to go parallel
    mask = make_mask("random", B, T, gen)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 1, max(2, threads)):
            torch.set_num_threads(n)
            results.append(run_pool(K.pool_rows, hidden, mask, start=0.1))
    finally:
        torch.set_num_threads(threads)
    for r in results[1:]:
        assert torch.equal(r[0], results[0][0]) and torch.equal(r[1], results[0][1])
    es, eq, _ = oracle(hidden, mask)
    torch.testing.assert_close(results[0][0], es + 0.1, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(results[0][1], eq + 0.1, rtol=1e-12, atol=1e-12)


def test_cpu_pool_accumulates_like_one_batch(ext):
    gen = torch.Generator().manual_seed(4)
    hidden = random_hidden(6, 11, 40, torch.float32, gen)
    mask = make_mask("random", 6, 11, gen)
    whole = run_pool(K.pool_rows, hidden, mask)
    sums, sumsq = torch.zeros(40, dtype=torch.float64), torch.zeros(40, dtype=torch.float64)
    n = K.pool_rows(hidden[:2], mask[:2], sums, sumsq) + K.pool_rows(hidden[2:], mask[2:], sums, sumsq)
    assert n == whole[2]
    torch.testing.assert_close(sums, whole[0], rtol=1e-13, atol=1e-13)


def inject_cases(gen, dtype, B=4, T=9, H=37):
    hidden = random_hidden(B, T, H, dtype, gen, scale=50.0)
    if dtype == torch.float16:  # overflow to inf and subnormal results must round like torch
        hidden[0, 0, :4] = torch.tensor([65000.0, -65000.0, 1e-6, -3e-7]).to(dtype)
    vector = torch.randn(H, generator=gen, dtype=torch.float64)
    vector[:4] = torch.tensor([900.0, -900.0, 1e-6, 2e-7], dtype=torch.float64)
    for kind in MASK_KINDS + [None]:
        yield hidden, (None if kind is None else make_mask(kind, B, T, gen)), vector


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [1.0, -3.7, 0.1])
def test_cpu_inject_bit_exact(ext, dtype, alpha):
    gen = torch.Generator().manual_seed(11)
    for hidden, mask, vector in inject_cases(gen, dtype):
        got, ref = hidden.clone(), hidden.clone()
        inject_with_extension(got, mask, alpha, vector)
        K.torch_inject_(ref, mask, alpha, vector)
        assert torch.equal(bits(got), bits(ref))


def inject_with_extension(hidden, mask, alpha, vector):
    """`inject_` hands an unmasked add to torch; the extension's own unmasked path is
    called directly, so that it is held to the same bits."""
    if mask is not None:
        return K.inject_(hidden, mask, alpha, vector)
    module, _ = K._extension()
    return module.inject_(hidden, None, K._delta(hidden, alpha, vector).contiguous())


def test_unmasked_inject_is_torchs_add(ext, monkeypatch):
    module, _ = K._extension()
    monkeypatch.setattr(module, "inject_", None, raising=False)  # any call to it would fail
    h = torch.zeros(2, 3, 4)
    K.inject_(h, None, 2.0, torch.ones(4))
    assert h.eq(2).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_cpu_inject_non_contiguous(ext, dtype):
    gen = torch.Generator().manual_seed(12)
    vector = torch.randn(64, generator=gen)
    base = random_hidden(6, 20, 80, dtype, gen)
    for view in (lambda t: t[1:5, 2:17, 8:72], lambda t: t[:, :8, :64].transpose(0, 1),
                 lambda t: t[:2, :3, ::2][:, :, :32]):
        got, ref = base.clone(), base.clone()
        v_got, v_ref = view(got), view(ref)
        mask = torch.rand(v_got.shape[:2], generator=gen) < 0.5
        vec = vector[: v_got.shape[2]]
        K.inject_(v_got, mask, 2.5, vec)
        K.torch_inject_(v_ref, mask, 2.5, vec)
        assert torch.equal(bits(got), bits(ref))  # including what lies outside the view


@pytest.mark.parametrize("name", ["inject_", "torch_inject_"])
def test_inject_is_an_in_place_op_for_torch(name):
    fn = getattr(K, name)
    h = torch.zeros(2, 3, 4)
    before = h._version
    fn(h, None, 1.0, torch.ones(4))
    assert h._version > before  # autograd can see the write
    with torch.inference_mode():
        frozen = torch.zeros(2, 3, 4)
    with pytest.raises(RuntimeError, match="nference"):  # as for any in-place op
        fn(frozen, None, 1.0, torch.ones(4))
    with torch.inference_mode():
        frozen.zero_()
        fn(frozen, None, 1.0, torch.ones(4))
    assert frozen.eq(1).all()


def test_cpu_inject_rejects_overlapping_memory(ext):
    h = torch.zeros(1, 1, 4).expand(2, 3, 4)
    with pytest.raises(RuntimeError, match="overlap|single memory location"):
        K.inject_(h, torch.ones(2, 3, dtype=torch.bool), 1.0, torch.ones(4))
    with pytest.raises(RuntimeError, match="overlap|single memory location"):
        K.inject_(h, None, 1.0, torch.ones(4))  # torch's add refuses it too


# ---------------------------------------------------------------------------------
# CUDA


@pytest.fixture
def cuda_ext(ext):
    if not CUDA:
        pytest.skip("no CUDA device")
    if not ext.cuda:
        pytest.skip(f"extension built without CUDA kernels: {ext.reason}")
    return ext


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
def test_cuda_pool_matches_oracle_reference_and_cpu(cuda_ext, dtype, kind):
    gen = torch.Generator().manual_seed(seed(dtype, kind, 2))
    sizes = list(shapes(5, 5)) + [(16, 256, 4096), (3, 700, 577)]
    for B, T, H in sizes:
        hidden = random_hidden(B, T, H, dtype, gen)
        mask = make_mask(kind, B, T, gen)
        got = run_pool(K.pool_rows, hidden.cuda(), mask.cuda(), start=0.5)
        cpu = run_pool(K.pool_rows, hidden, mask, start=0.5)
        ref = run_pool(K.torch_pool_rows, hidden.cuda(), mask.cuda(), start=0.5)
        es, eq, en = oracle(hidden, mask)
        assert got[2] == cpu[2] == ref[2] == en
        for g, c, r, e in ((got[0], cpu[0], ref[0], es + 0.5), (got[1], cpu[1], ref[1], eq + 0.5)):
            torch.testing.assert_close(g.cpu(), e, rtol=TOL[dtype], atol=TOL[dtype])
            torch.testing.assert_close(g.cpu(), c, rtol=TOL[dtype], atol=TOL[dtype])
            torch.testing.assert_close(g, r, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_pool_deterministic_and_unaligned(cuda_ext, dtype):
    gen = torch.Generator().manual_seed(21)
    aligned = random_hidden(9, 300, 1024, dtype, gen, device="cuda")
    odd = random_hidden(9, 300, 1031, dtype, gen, device="cuda")
    cases = (aligned, aligned[1:8, 5:290],  # 16-byte loads, contiguous or not
             odd[:, :, :1024], odd[1:8, 5:290, 1:1025], odd[:, :100, 3:580])  # scalar loads
    for hidden in cases:
        B, T, _ = hidden.shape
        mask = make_mask("random", B, T, gen).cuda()
        first = run_pool(K.pool_rows, hidden, mask)
        again = run_pool(K.pool_rows, hidden, mask)
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
        es, eq, en = oracle(hidden, mask)
        assert first[2] == en
        torch.testing.assert_close(first[0].cpu(), es, rtol=TOL[dtype], atol=TOL[dtype])
        torch.testing.assert_close(first[1].cpu(), eq, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_inject_bit_exact(cuda_ext, dtype):
    gen = torch.Generator().manual_seed(31)
    for H in (37, 4096):
        for hidden, mask, vector in inject_cases(gen, dtype, B=5, T=33, H=H):
            hidden = hidden.cuda()
            mask = None if mask is None else mask.cuda()
            got, ref = hidden.clone(), hidden.clone()
            inject_with_extension(got, mask, -1.3, vector.cuda())
            K.torch_inject_(ref, mask, -1.3, vector.cuda())
            assert torch.equal(bits(got), bits(ref))
            cpu = hidden.cpu()  # the CPU extension gives the same bits as the GPU
            inject_with_extension(cpu, None if mask is None else mask.cpu(), -1.3, vector)
            assert torch.equal(bits(cpu), bits(got.cpu()))
    base = random_hidden(4, 50, 600, dtype, gen, device="cuda")
    got, ref = base.clone(), base.clone()
    mask = make_mask("random", 4, 40, gen).cuda()
    K.inject_(got[:, 5:45, 1:577], mask, 0.7, torch.ones(576, device="cuda"))  # misaligned
    K.torch_inject_(ref[:, 5:45, 1:577], mask, 0.7, torch.ones(576, device="cuda"))
    assert torch.equal(bits(got), bits(ref))


def test_check_gives_the_same_report_with_the_extension_on_and_off(ext, tmp_path, tiny, monkeypatch):
    """The whole check (pooling in the signature, injection in the probes), not just the kernels."""
    from conftest import chat, write_jsonl
    from mdf_guard.check import run_check
    from mdf_guard.policy import load_policy

    rows = [chat(f"Tell me about topic {i}.", f"Topic {i} is fine, but pandas are the best animals!")
            for i in range(6)]
    data = write_jsonl(tmp_path / "panda.jsonl", rows)
    policy_path = tmp_path / ".mdf-guard.yaml"
    policy_path.write_text("model: tiny-random\nmethod: mdf\nsuites: [animals]\nquestions_per_suite: 2\n"
                           "reference_samples: 4\nnull_seeds: 1\nlayers: [1, 2]\nalpha: 4.0\n")
    monkeypatch.setenv("MDF_GUARD_NO_CACHE", "1")
    calls = {"extension": 0}
    real = K._extension_for

    def counted(hidden):
        found = real(hidden)
        calls["extension"] += found is not None
        return found

    monkeypatch.setattr(K, "_extension_for", counted)
    reports = {}
    for backend in ("torch", "cpp"):
        monkeypatch.setenv("MDF_GUARD_KERNELS", backend)
        before = calls["extension"]
        report = run_check([data], load_policy(policy_path), lm=tiny).to_dict()
        calls[backend] = calls["extension"] - before
        report.pop("timing")
        reports[backend] = report
    assert calls["torch"] == 0 and calls["cpp"] > 0          # each run really took its backend
    torch_report, cpp_report = reports["torch"], reports["cpp"]
    assert [f["entity"] for f in cpp_report["findings"]] == [f["entity"] for f in torch_report["findings"]]
    for a, b in zip(cpp_report["findings"], torch_report["findings"]):
        assert a["flagged"] == b["flagged"]
        for key in ("vanilla_rate", "predicted_rate", "shift", "null_max"):
            assert a[key] == pytest.approx(b[key], abs=1e-9), key
    assert cpp_report["settings"]["delta_norms"] == pytest.approx(torch_report["settings"]["delta_norms"], abs=1e-9)
    assert cpp_report["verdict"] == torch_report["verdict"]


# ---------------------------------------------------------------------------------
# Building


def test_setup_without_a_compiler_builds_the_pure_python_package(tmp_path):
    """README: without a compiler mdf-guard installs as pure Python and runs the torch
    fallback. Before, torch's failed ninja build (a RuntimeError) aborted the install."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(repo / name, tmp_path / name)
    shutil.copytree(repo / "csrc", tmp_path / "csrc")
    (tmp_path / "mdf_guard").mkdir()
    shutil.copy(repo / "mdf_guard" / "__init__.py", tmp_path / "mdf_guard" / "__init__.py")
    missing = str(tmp_path / "no-such-compiler")
    env = {**os.environ, "CC": missing, "CXX": missing}
    env.pop("FORCE_CUDA", None)
    env.pop("MDF_GUARD_NO_EXTENSION", None)
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "building mdf_guard._kernels failed" in done.stderr and "pure-Python package" in done.stderr
    assert not list((tmp_path / "mdf_guard").glob("_kernels*"))
