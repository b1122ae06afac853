#!/usr/bin/env bash
# The GPU machine's whole test run, in one go: build with the CUDA backend (HL_CUDA=ON), run the
# tests labelled `gpu` (every kernel against the CPU engine, whole models against the CPU engine),
# then the kernel test once more under compute-sanitizer's memcheck. Logs go to $OUT when it is set
# (the device tool brings that folder back), else to ./gpu-logs.
#   bash scripts/gpu_test.sh            (from the repository root, on the GPU machine)
# Needs .device/ from ../shared/device/prep.sh (Debian libraries the machine lacks) unless the
# machine has them.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
build=${HL_GPU_BUILD:-/tmp/hl-gpu-build}
jobs=$(nproc)
t0=$(date +%s)

{
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -3
  nvcc --version | tail -1
} 2>&1 | tee "$out/machine.txt"

echo "== build (HL_CUDA=ON)"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_CUDA=ON \
         -DHL_SHARED_DIR="${HL_SHARED:-$PWD/../shared}" &&
       cmake --build "$build" -j"$jobs"; } > "$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  echo "gpu_test: build failed (log: build.log)"
  exit 1
fi
grep -iE "warning" "$out/build.log" | grep -v "^ninja" | head -20
echo "build: $(( $(date +%s) - t0 )) s"

echo "== ctest -L gpu"
(cd "$build" && ctest -L gpu -V --timeout 900) > "$out/ctest.log" 2>&1
rc=$?
grep -E "FAIL|passed,|skipped|Test +#|tests passed|error" "$out/ctest.log" | sed 's/^[0-9]*: //' | tail -80
echo "ctest exit $rc after $(( $(date +%s) - t0 )) s"

echo "== compute-sanitizer memcheck (kernel test; HL_GPU_MEMCHECK=0 skips it)"
if [ "${HL_GPU_MEMCHECK:-1}" = 0 ]; then
  echo "skipped"
elif command -v compute-sanitizer > /dev/null; then
  (cd "$build" && HL_SHARED=${HL_SHARED:-} timeout 300 compute-sanitizer --tool memcheck --print-limit 20 \
      ./test_cuda_ops) > "$out/memcheck.log" 2>&1
  mrc=$?
  grep -E "ERROR SUMMARY|Invalid|out of bounds|passed,|FAIL|Error" "$out/memcheck.log" | head -30
  echo "memcheck exit $mrc (124 = stopped by the 300 s limit)"
else
  echo "compute-sanitizer not found"
fi
echo "total: $(( $(date +%s) - t0 )) s"
if [ "${HL_GPU_BENCH:-0}" = 1 ]; then
  echo "== bench (scripts/gpu_bench.sh)"
  HL_GPU_BUILD=$build bash scripts/gpu_bench.sh
  echo "total with the bench: $(( $(date +%s) - t0 )) s"
fi
exit $rc
