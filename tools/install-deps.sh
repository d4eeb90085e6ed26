#!/usr/bin/env bash
# Installs what nncl needs to build, test and run on Debian 12 or a recent
# Ubuntu: a C compiler, CMake, the OpenCL loader and headers, CLBlast, cmocka,
# zlib, and PoCL (an OpenCL implementation on the CPU, so that every machine
# has at least one OpenCL device).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  ocl-icd-opencl-dev opencl-headers pocl-opencl-icd
  libclblast-dev libcmocka-dev zlib1g-dev
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${packages[@]}"
