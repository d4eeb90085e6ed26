#!/usr/bin/env bash
# train_vs_torch.sh - nncl and PyTorch training throughput in one run, on the
# reference networks at batch 64, and the ratio.
# Usage: bash bench/train_vs_torch.sh [BUILD_DIR]   (default build)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
specs=("$repo/examples/fashion_mlp.spec" "$repo/examples/fashion_cnn.spec")
"$build/bench/bench_train" "${specs[@]}" | tee /tmp/nncl_bench_train.$$
echo
# PyTorch at its best: all cores, and without this machine's OpenBLAS overrides.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 "$repo/tools/bench_torch.py" "${specs[@]}" \
  | tee /tmp/torch_bench_train.$$
echo
for net in fashion_mlp.spec fashion_cnn.spec; do
  ours=$(awk -v n="$net" '$1 == n && $2 == "opencl" {print $6}' /tmp/nncl_bench_train.$$)
  theirs=$(awk -v n="$net" '$1 == n {print $(NF-1)}' /tmp/torch_bench_train.$$)
  awk -v n="$net" -v a="$ours" -v b="$theirs" \
    'BEGIN {printf "%-18s nncl opencl %8.0f images/s, pytorch cpu %8.0f images/s: ratio %.2f\n", n, a, b, a / b}'
done
rm -f /tmp/nncl_bench_train.$$ /tmp/torch_bench_train.$$
