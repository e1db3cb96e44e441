#!/usr/bin/env bash
# GPU check of the mdf-guard kernels, for a CUDA machine without internet access:
# build mdf_guard._kernels in place with its CUDA kernels, run the kernel tests (CUDA
# ones, then CPU ones, with MDF_GUARD_REQUIRE_EXTENSION=1 so that a broken build fails
# instead of skipping), then the benchmark, then the model paths on the GPU (step 5).
# Expects `python3 -c 'import torch'` to give a CUDA torch, and pytest and zstandard (and for
# step 5 transformers and peft) installed, or as wheels in $WHEELS, default ./.whl; for a
# machine without internet: pip download -d .whl --only-binary=:all: --python-version 3.12
# pytest setuptools ninja zstandard, with the device's Python version (3.12 on the H200 of
# 2026-11-28), and for step 5 transformers, peft and what they need but torch, with --no-deps
# (the tree and .whl travel together under 64 MiB; the tree is about 43 MB).
# Usage, from anywhere:  bash bench/gpu_check.sh      (about 3-5 minutes on an H100 for steps 1-4;
# step 5 not yet timed on a GPU: about 1 minute on this CPU with MDF_GUARD_TEST_DEVICE=cpu)
# If $OUT is set, the logs are also written there.
set -euxo pipefail
cd "$(dirname "$0")/.."
LOGS="${OUT:-/tmp}"

# 1. What we run on.
python3 - <<'EOF'
import platform, sys, torch
print("python", sys.version.split()[0], platform.machine())
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("GPU", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
# torch takes CUDA_HOME from the nvcc on PATH, which may be a wrapper script outside the
# toolkit: pick a directory that really has the toolkit (bin/nvcc and the headers),
# preferring one whose major version matches torch's (torch refuses a major mismatch).
if [ -z "${CUDA_HOME:-}" ]; then
  torch_cuda="$(python3 -c 'import torch; print(torch.version.cuda or "none")')"
  nvcc_dir="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc || echo /none/bin/nvcc)")")")"
  for d in /usr/local/cuda-"${torch_cuda%%.*}".* "$nvcc_dir" /usr/local/cuda /usr/local/cuda-*; do
    if [ -x "$d/bin/nvcc" ] && [ -e "$d/include/cuda_runtime.h" ]; then
      export CUDA_HOME="$d" PATH="$d/bin:$PATH"
      break
    fi
  done
fi
echo "CUDA_HOME=${CUDA_HOME:-unset}"
nvcc --version | tail -n 2
# What the kernel tests import beyond torch (the check-level test loads mdf_guard.data,
# which needs zstandard), installed from $WHEELS when missing.
for module in pytest setuptools zstandard; do
  python3 -c "import $module" 2>/dev/null ||
    python3 -m pip install --no-index --find-links "${WHEELS:-.whl}" "$module"
done
python3 -m pytest --version
python3 -c 'import ninja' 2>/dev/null || echo "no ninja: torch compiles the sources one by one (slower)"

# 2. Build in place, for this GPU's arch only unless TORCH_CUDA_ARCH_LIST says otherwise
#    (all archs would triple the nvcc time). FORCE_CUDA=1 makes a CPU-only result an error.
TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$(python3 -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')}"
export TORCH_CUDA_ARCH_LIST
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
rm -f mdf_guard/_kernels*.so
time FORCE_CUDA=1 timeout 360 python3 setup.py build_ext --inplace 2>&1 | tail -n 25
python3 -c 'from mdf_guard.kernels import backend_info as b; i = b(); print(i); assert i.name == "cpp" and i.cuda, i'

# 3. Tests: CUDA, then CPU (the CPU tests include the MDF_GUARD_REQUIRE_EXTENSION check).
#    A failure is remembered, not fatal: the benchmark still runs, the exit status tells.
export MDF_GUARD_REQUIRE_EXTENSION=1
status=0
timeout 240 python3 -m pytest tests/test_kernels.py -m cuda -q -rs -p no:cacheprovider 2>&1 |
  tee "$LOGS/kernels_tests_cuda.txt" || status=1
timeout 120 python3 -m pytest tests/test_kernels.py -m "not cuda" -q -rs -p no:cacheprovider 2>&1 |
  tee "$LOGS/kernels_tests_cpu.txt" || status=1

# 4. Benchmark: extension vs torch reference, GPU and CPU.
timeout 240 python3 bench/kernel_speed.py 2>&1 | tee "$LOGS/kernels_bench.txt" || status=1

# 5. The model paths on the GPU (tests/test_gpu.py): exact scoring's 4D float mask in float32,
#    bf16 and fp16, scoring after a history, a random model of the embedded model's shapes, a
#    check against the CPU and on rerun, bf16 LoRA and full fine-tunes. They need transformers and peft (installed, or
#    wheels in $WHEELS); a module that cannot be had skips this step and says so.
missing=""
for pair in transformers:transformers peft:peft tokenizers:tokenizers safetensors:safetensors yaml:pyyaml \
            click:click numpy:numpy huggingface_hub:huggingface_hub; do
  python3 -c "import ${pair%%:*}" 2>/dev/null ||
    python3 -m pip install --no-index --find-links "${WHEELS:-.whl}" "${pair#*:}" || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  echo "step 5 skipped: cannot install$missing" | tee "$LOGS/gpu_paths_tests.txt"
  status=1
else
  timeout 300 python3 -m pytest tests/test_gpu.py -m cuda -q -rs -p no:cacheprovider 2>&1 |
    tee "$LOGS/gpu_paths_tests.txt" || status=1
fi
exit "$status"
