#!/usr/bin/env bash
# Sets up the PyTorch twin (a venv from PyPI under target/), builds gantry, measures the
# fp32 GEMM ceilings, and runs the interleaved comparison. Usage, from the repo root:
#   tests/peers/run.sh [--rounds 3] [--threads 2] [--steps 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/peers-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    # PyPI's Linux wheel is the CUDA build: it will not even import without its nvidia-*
    # dependencies (several GB), though the CPU path used here never calls them.
    "$venv/bin/pip" install -q "torch==2.15.*" numpy
fi
cargo build --release -q -p gantry -p conv-ae
echo "== fp32 GEMM ceilings (2048^3, 2 threads)"
RAYON_NUM_THREADS=2 cargo bench -q -p gantry-kit --bench gemm 2>/dev/null | grep GFLOP
"$venv/bin/python" - <<'PY'
import time, torch
torch.set_num_threads(2)
a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
for _ in range(2): a @ b
t = time.perf_counter(); n = 5
for _ in range(n): a @ b
print(f"pytorch BLAS sgemm 2048^3: {2 * 2048**3 * n / (time.perf_counter() - t) / 1e9:.1f} GFLOP/s")
PY
ceiling=$(RAYON_NUM_THREADS=2 cargo bench -q -p gantry-kit --bench gemm 2>/dev/null | sed -n 's/.*: \([0-9.]*\) GFLOP\/s/\1/p' | head -1)
"$venv/bin/python" tests/peers/compare.py --python "$venv/bin/python" --gemm-ceiling "$ceiling" "$@"
