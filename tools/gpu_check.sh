#!/usr/bin/env bash
# gpu_check.sh - the checks to run on a lent NVIDIA GPU machine, in one call:
# build against the OpenCL loader, CLBlast, cmocka and zlib unpacked into .gpu/
# by ../shared/gpu/prepare (zlib added by hand, see below), then: the
# start-up times, the benchmarks on NVIDIA's OpenCL next to PyTorch CUDA on
# the same card (fp32, TF32 off, cuDNN autotuning on; batch 256 as issue 5
# asks, and batch 64), the GEMM and convolution choices measured on the card,
# the README's training run on Fashion-MNIST with a profile, and last the
# OpenCL tests (parity, goldens, GEMM on each implementation, network).
# Prepare here:
#   ../shared/gpu/prepare
#   (cd /tmp && apt-get download zlib1g zlib1g-dev) and dpkg -x both into .gpu/sysroot,
#     with usr/lib/x86_64-linux-gnu/libz.so made a copy of the library, not a link
#   mkdir -p .data && cp /usr/share/datasets/fashion-mnist/*.gz .data/   (both git-excluded)
# Run there:   bash tools/gpu_check.sh [quick]   (carry .gpu and .data; writes $OUT/gpu_check.txt
#              and $OUT/trace.json when OUT is set; quick: only the OpenCL tests, then the
#              batch-256 CNN against PyTorch in three alternating rounds)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
exec > >(tee "$out/gpu_check.txt") 2>&1
# The loader: the machine's image presets OCL_ICD_FILENAMES=libpocl.so.2:libnvidia-opencl.so.1, and
# with it, or with NVIDIA's library named there by its path (env.sh), the ICD loader from .gpu listed
# PoCL alone. A vendors folder that names NVIDIA's library alone (OCL_ICD_VENDORS) works.
unset OCL_ICD_FILENAMES
source .gpu/env.sh
mkdir -p /tmp/icd && echo "$OCL_ICD_FILENAMES" > /tmp/icd/nvidia.icd
unset OCL_ICD_FILENAMES
export OCL_ICD_VENDORS=/tmp/icd
clinfo -l | grep -qi nvidia || { clinfo -l; echo "no NVIDIA OpenCL platform: stopping"; exit 1; }
clinfo -l
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
b=build-gpu
t0=$(date +%s.%N)
mkdir -p $b
cmake -S . -B $b -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$NNCL_GPU_SYSROOT/usr" > $b/build.log 2>&1 \
  && cmake --build $b -j16 >> $b/build.log 2>&1 || { tail -30 $b/build.log; echo "build failed"; exit 1; }
echo "build: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s"
nncl=$b/tools/nncl/nncl
$nncl devices
export NNCL_CACHE_DIR=$PWD/$b/nncl-cache NNCL_REQUIRE_OPENCL=1
torch_ok=0
python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null && torch_ok=1
tp() { [ $torch_ok = 1 ] && timeout 120 python3 tools/bench_torch.py --device cuda --steps 200 "$@"; }

if [ "${1:-}" = quick ]; then # the OpenCL tests, then the batch-256 CNN against PyTorch, three alternating rounds
  ctest --test-dir $b -L opencl -E "cli_smoke|cli_resume" --output-on-failure -j8 --timeout 120
  for round in 1 2 3; do
    timeout 120 $b/bench/bench_train --backend opencl --batch 256 --steps 200 examples/fashion_cnn.spec | tail -1
    tp --batch 256 examples/fashion_cnn.spec | tail -1
  done
  exit 0
fi

echo; echo "== start-up: nncl train to the end of its first step, every cache cold, then warm =="
cold=$(mktemp -d)
for run in cold warm; do
  s=$(date +%s.%N)
  NNCL_CACHE_DIR=$cold/nncl POCL_CACHE_DIR=$cold/pocl CUDA_CACHE_PATH=$cold/cuda timeout 120 $nncl train --spec examples/fashion_cnn.spec --data .data --max-steps 1 --limit 256 --test-limit 256 > /dev/null
  echo "$run: $(awk "BEGIN{print $(date +%s.%N) - $s}") s (whole one-step run, data loading included)"
done

echo; echo "== CNN, batch 256 (the issue's GPU target) =="
timeout 120 $b/bench/bench_train --backend opencl --batch 256 --steps 200 --profile examples/fashion_cnn.spec
tp --batch 256 examples/fashion_cnn.spec
echo "-- the same with every GEMM on CLBlast (NNCL_GEMM=clblast):"
NNCL_GEMM=clblast timeout 120 $b/bench/bench_train --backend opencl --batch 256 --steps 200 examples/fashion_cnn.spec |
  tail -1
timeout 120 $b/bench/bench_train --backend opencl --batch 256 --steps 200 --inference examples/fashion_cnn.spec
tp --batch 256 --inference examples/fashion_cnn.spec
echo; echo "== batch 64 =="
timeout 120 $b/bench/bench_train --backend opencl --steps 200 examples/fashion_mlp.spec examples/fashion_cnn.spec
tp --batch 64 examples/fashion_mlp.spec examples/fashion_cnn.spec
echo; echo "== GEMM =="
timeout 60 $b/bench/bench_gemm 20
tp --gemm
[ $torch_ok = 1 ] || echo "no PyTorch with CUDA on this machine"
echo; echo "== the choices nncl measured on this device (key ... value) =="
for f in "$NNCL_CACHE_DIR"/gemm3-*.txt "$NNCL_CACHE_DIR"/conv-*.txt; do [ -e "$f" ] && { echo "$f"; cat "$f"; }; done

echo; echo "== the README's training run (3 epochs of the reference CNN) with a profile =="
timeout 150 $nncl train --spec examples/fashion_cnn.spec --data .data --profile "$out/trace.json"

echo; echo "== the OpenCL tests on the GPU =="
ctest --test-dir $b -L opencl -E "cli_smoke|cli_resume" --output-on-failure -j8 --timeout 120
