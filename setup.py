"""Build script: the pure-Python package always; the C++ kernels when torch is importable.

Metadata lives in pyproject.toml. This file only decides whether to add the
`mdf_guard._kernels` extension (csrc/, see csrc/README.md):

* torch importable at build time (`pip install --no-build-isolation .`): build it,
  with CUDA kernels when torch has CUDA, nvcc is found (CUDA_HOME or PATH) and either
  a GPU is visible or FORCE_CUDA=1. TORCH_CUDA_ARCH_LIST picks the GPU archs.
* torch not importable (pip's default build isolation; pre-commit): no extension,
  one notice; mdf_guard.kernels then uses its pure-torch reference.
* the build fails (no C++ compiler, or one that cannot compile it): the same, with a notice,
  unless FORCE_CUDA=1 asked for the kernels explicitly.
* MDF_GUARD_NO_EXTENSION=1: no extension, whatever is installed.
"""

import os
import sys

from setuptools import setup

CSRC = "csrc"
CPU_SOURCES = ["bindings.cpp", "pooling.cpp", "inject.cpp"]
CUDA_SOURCES = ["kernels.cu"]


def _notice(message: str) -> None:
    print(f"mdf-guard setup: {message}", file=sys.stderr)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _extension_kwargs() -> dict:
    if _flag("MDF_GUARD_NO_EXTENSION"):
        _notice("MDF_GUARD_NO_EXTENSION is set: pure-Python package, torch reference kernels")
        return {}
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as err:  # ImportError, or a broken torch install
        _notice(f"torch not importable at build time ({type(err).__name__}): pure-Python package, "
                "torch reference kernels. For the C++ kernels: pip install --no-build-isolation .")
        return {}

    # The version is compiled in so that a module built against another torch is refused
    # at import (it would otherwise fail with undefined symbols, or worse, not fail).
    version = f"-DMDF_GUARD_TORCH_VERSION={torch.__version__}"
    if sys.platform == "win32":
        cxx, link = ["/O2", "/openmp"], []
    elif sys.platform == "darwin":
        # Apple clang has no -fopenmp; at::parallel_for then runs on one thread.
        cxx, link = ["-O3"], []
    else:
        # at::parallel_for is an inline `#pragma omp parallel`: without -fopenmp it is
        # silently serial. The libgomp we link is the one torch has already loaded.
        # -g0 undoes Python's -g: debug info of the torch headers triples the build time.
        cxx, link = ["-O3", "-g0", "-fopenmp", "-ffp-contract=off"], ["-fopenmp"]
    cxx.append(version)

    forced = _flag("FORCE_CUDA")
    cuda = _cuda_wanted(torch, cpp_extension)
    sources = [os.path.join(CSRC, s) for s in CPU_SOURCES]
    if cuda:
        sources += [os.path.join(CSRC, s) for s in CUDA_SOURCES]
        flags = {"cxx": cxx + ["-DMDF_GUARD_WITH_CUDA"],
                 "nvcc": ["-O3", "-DMDF_GUARD_WITH_CUDA", version]}
        ext = cpp_extension.CUDAExtension("mdf_guard._kernels", sources,
                                          extra_compile_args=flags, extra_link_args=link)
    else:
        ext = cpp_extension.CppExtension("mdf_guard._kernels", sources,
                                         extra_compile_args={"cxx": cxx}, extra_link_args=link)
    # Optional: a failed build installs the pure-Python package (README: "or without a
    # compiler"); setuptools then skips the missing module in --inplace and editable builds.
    ext.optional = not forced
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "the visible GPUs")
    _notice(f"building mdf_guard._kernels against torch {torch.__version__} "
            + (f"with CUDA {torch.version.cuda} kernels (archs: {arch})" if cuda else "(CPU only)"))
    return {"ext_modules": [ext],
            "cmdclass": {"build_ext": _optional_build_ext(cpp_extension.BuildExtension)}}


def _optional_build_ext(base: type) -> type:
    """torch's BuildExtension whose failure on an optional extension is a notice, not an error.

    setuptools already tolerates an optional extension's compiler errors, but not the
    RuntimeError torch raises when its ninja build fails (the usual path).
    """
    class OptionalBuildExtension(base):
        def build_extension(self, ext):
            try:
                super().build_extension(ext)
            except Exception as err:
                if not ext.optional:
                    raise
                _notice(f"building {ext.name} failed ({type(err).__name__}: {err}): pure-Python package, "
                        "torch reference kernels ('mdf-guard doctor' says which backend runs)")

    return OptionalBuildExtension


def _cuda_wanted(torch, cpp_extension) -> bool:
    forced = _flag("FORCE_CUDA")
    if not forced and not torch.cuda.is_available():
        return False
    if torch.version.cuda is None:
        missing = f"torch {torch.__version__} is a CPU-only build"
    elif cpp_extension.CUDA_HOME is None:
        missing = "nvcc not found (set CUDA_HOME to the CUDA toolkit)"
    else:
        return True
    if forced:  # an explicit request that cannot be met must not pass as a CPU build
        raise SystemExit(f"mdf-guard setup: FORCE_CUDA=1 but {missing}")
    _notice(f"GPU visible but {missing}: building the CPU kernels only")
    return False


setup(**_extension_kwargs())
