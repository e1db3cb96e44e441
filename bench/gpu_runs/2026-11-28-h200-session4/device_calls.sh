#!/usr/bin/env bash
# Device session 4 (2026-11-28): lab run 6 (cp.async ring), gpu_check with the ring kernel, check_share.
set -x
export PYTHONUNBUFFERED=1
T0=$(date +%s)
nvidia-smi -L
python3 - <<'PY'
import importlib.util, pathlib, subprocess, sys, zipfile
missing = []
for whl in sorted(pathlib.Path(".whl").glob("*.whl")):
    tops = set()
    for name in zipfile.ZipFile(whl).namelist():
        first = name.split("/")[0]
        if first.endswith((".dist-info", ".data")):
            continue
        tops.add(first.split(".")[0])
    if any(importlib.util.find_spec(t) is None for t in tops if t.isidentifier()):
        missing.append(str(whl))
print("installing", [pathlib.Path(m).name for m in missing])
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *missing], check=False)
PY
python3 -c "import transformers, torch; print('transformers', transformers.__version__, 'torch', torch.__version__)"
echo "deps done at $(( $(date +%s) - T0 )) s"
nvcc -O3 -std=c++17 -arch=sm_90 bench/pool_lab.cu -o /tmp/pool_lab && timeout 150 /tmp/pool_lab ring block > "$OUT/lab6_ring.txt" 2>&1
echo "lab rc $? at $(( $(date +%s) - T0 )) s"
grep -E "^==|^copy|ring|acqrel fin1  |FAIL" "$OUT/lab6_ring.txt"
OUT="$OUT" timeout 330 bash bench/gpu_check.sh > "$OUT/gpu_check.txt" 2>&1
echo "gpu_check rc $? at $(( $(date +%s) - T0 )) s"
grep -E "passed|failed|error|pool |inject |clone |GPU work" "$OUT/gpu_check.txt" | head -60
for shape in 8x4096 30x576; do
  timeout 100 python3 bench/check_share.py --random-shape $shape --device cuda --dtype bfloat16 > "$OUT/check_share_${shape}_bf16.txt" 2>&1
  echo "check_share $shape rc $? at $(( $(date +%s) - T0 )) s"
  tail -n 15 "$OUT/check_share_${shape}_bf16.txt"
done
# gpu_check with the shipped kernel, check_share on CUDA.
set -x
export PYTHONUNBUFFERED=1
T0=$(date +%s)
python3 - <<'PY'
import importlib.util, pathlib, subprocess, sys, zipfile
missing = []
for whl in sorted(pathlib.Path(".whl").glob("*.whl")):
    tops = {n.split("/")[0].split(".")[0] for n in zipfile.ZipFile(whl).namelist()
            if not n.split("/")[0].endswith((".dist-info", ".data"))}
    if any(importlib.util.find_spec(t) is None for t in tops if t.isidentifier()):
        missing.append(str(whl))
print("installing", [pathlib.Path(m).name for m in missing])
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *missing], check=False)
PY
nvcc -O3 -std=c++17 -arch=sm_90 bench/pool_lab.cu -o /tmp/pool_lab && timeout 120 /tmp/pool_lab block > "$OUT/lab7_bf16_pairs.txt" 2>&1
echo "lab rc $? at $(( $(date +%s) - T0 )) s"
grep -E "^==|^copy|^read|acqrel fin1  |f2f|pairs|FAIL" "$OUT/lab7_bf16_pairs.txt"
OUT="$OUT" timeout 300 bash bench/gpu_check.sh > "$OUT/gpu_check.txt" 2>&1
echo "gpu_check rc $? at $(( $(date +%s) - T0 )) s"
grep -E "passed|failed|error|cuda cold|GPU work" "$OUT/gpu_check.txt" | head -40
for shape in 8x4096 30x576; do
  PYTHONPATH=. timeout 100 python3 bench/check_share.py --random-shape $shape --device cuda --dtype bfloat16 > "$OUT/check_share_${shape}_bf16.txt" 2>&1
  echo "check_share $shape rc $? at $(( $(date +%s) - T0 )) s"
  tail -n 14 "$OUT/check_share_${shape}_bf16.txt"
done
set -x
export PYTHONUNBUFFERED=1 CUDA_HOME=/usr/local/cuda PATH=/usr/local/cuda/bin:$PATH
T0=$(date +%s)
python3 - <<'PY'
import importlib.util, pathlib, subprocess, sys, zipfile
missing = []
for whl in sorted(pathlib.Path(".whl").glob("*.whl")):
    tops = {n.split("/")[0].split(".")[0] for n in zipfile.ZipFile(whl).namelist()
            if not n.split("/")[0].endswith((".dist-info", ".data"))}
    if any(importlib.util.find_spec(t) is None for t in tops if t.isidentifier()):
        missing.append(str(whl))
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *missing], check=False)
PY
rm -f mdf_guard/_kernels*.so
FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=16 timeout 120 python3 setup.py build_ext --inplace > "$OUT/build.txt" 2>&1
echo "build rc $? at $(( $(date +%s) - T0 )) s"
for shape in 8x4096 30x576; do
  PYTHONPATH=. timeout 100 python3 bench/check_share.py --random-shape $shape --device cuda --dtype bfloat16 > "$OUT/check_share_${shape}_bf16.txt" 2>&1
  echo "check_share $shape rc $? at $(( $(date +%s) - T0 )) s"
  tail -n 8 "$OUT/check_share_${shape}_bf16.txt"
done
