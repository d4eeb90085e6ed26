#!/usr/bin/env bash
# Installs what nncl needs to build, test and run on Debian 12 or a recent
# Ubuntu: a C compiler, CMake, the OpenCL loader and headers, CLBlast, cmocka,
# zlib, PoCL (an OpenCL implementation on the CPU, so that every machine has
# at least one OpenCL device) and the Fashion-MNIST data set.
#   --with-torch  also Debian's PyTorch and NumPy (with OpenBLAS, not the slow
#                 reference BLAS), for the PyTorch parity tests,
#                 the goldens script and the PyTorch side of the benchmarks
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
  libclblast-dev libcmocka-dev zlib1g-dev
  dataset-fashion-mnist
)
for arg in "$@"; do
  case $arg in
  --with-torch) packages+=(python3-torch python3-numpy libopenblas0-pthread) ;;
  *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${packages[@]}"
