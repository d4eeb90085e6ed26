#!/usr/bin/env bash
# Builds nncl and runs the whole test suite:
#   1. a Release build in build/, every test (CPU reference and OpenCL);
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/,
#      the CPU-backend tests (OpenCL runtimes are not sanitizer-clean, so the
#      OpenCL tests run only in step 1).
# OpenCL tests show as skipped where there is no OpenCL device, unless
# NNCL_REQUIRE_OPENCL=1 (set by CI) makes a missing device a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
werror=OFF
if [ "${CI:-}" = "true" ]; then werror=ON; fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DNNCL_WERROR="$werror"
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DNNCL_SANITIZE=ON -DNNCL_WERROR="$werror" \
      -DNNCL_BUILD_BENCH=OFF -DNNCL_BUILD_TOOLS=OFF
cmake --build build-asan -j"$jobs"
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L cpu
