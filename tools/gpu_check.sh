#!/usr/bin/env bash
# gpu_check.sh - the checks to run on a lent NVIDIA GPU machine, in one call:
# build against the OpenCL loader, CLBlast and cmocka unpacked into .gpu/ by
# ../shared/gpu/prepare, run the OpenCL tests (parity, goldens, GEMM, network)
# on NVIDIA's OpenCL, then the benchmarks, and PyTorch CUDA on the same card
# when it is there (fp32, TF32 off, batch 256 as issue 5 asks).
# Prepare here:   ../shared/gpu/prepare
# Run there:      bash tools/gpu_check.sh   (carry .gpu; writes $OUT/gpu_check.txt when OUT is set)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}/gpu_check.txt
exec > >(tee "$out") 2>&1
source .gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
b=build-gpu
cmake -S . -B $b -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$NNCL_GPU_SYSROOT/usr" -DNNCL_BUILD_TOOLS=ON > /dev/null \
  && cmake --build $b -j16 > /dev/null || { echo "build failed"; exit 1; }
$b/tools/nncl/nncl devices
export NNCL_REQUIRE_OPENCL=1
ctest --test-dir $b -L opencl -E "cli_smoke|cli_resume" --output-on-failure -j4 --timeout 240
$b/bench/bench_gemm 20
$b/bench/bench_train --backend opencl examples/fashion_mlp.spec examples/fashion_cnn.spec
$b/bench/bench_train --backend opencl --batch 256 examples/fashion_cnn.spec
if python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
  python3 tools/bench_torch.py --device cuda --batch 256 examples/fashion_cnn.spec
  python3 tools/bench_torch.py --device cuda --batch 64 examples/fashion_mlp.spec examples/fashion_cnn.spec
  python3 tools/bench_torch.py --device cuda --gemm
else
  echo "no PyTorch with CUDA on this machine"
fi
