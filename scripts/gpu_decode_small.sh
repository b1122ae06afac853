#!/usr/bin/env bash
# The one-row decode kernels on the GPU machine in one go: build, their kernel test
# (test_cuda_gemv), the decoder against the CPU engine (test_cuda_decode), eval bbh / generate
# on cuda vs cpu (test_cuda_bbh.sh), batch-1 decode with and without them (+ phase profiles with
# HL_BENCH_PROFILE=1), and a profiled BBH pass of up to 256 sequences. Logs to $OUT (else ./gpu-logs).
#   bash scripts/gpu_decode_small.sh         (from the repository root, on the GPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
build=${HL_GPU_BUILD:-/tmp/hl-small-build}
t0=$(date +%s)
src=$PWD
gpu_build "$build" "$out/build.log" hydralora test_cuda_gemv test_cuda_decode bench_bbh_gpu || exit 1
echo "build: $(( $(date +%s) - t0 )) s"
echo "== test_cuda_gemv"
(cd "$build" && timeout 120 ./test_cuda_gemv) > "$out/test_gemv.log" 2>&1; echo "exit $?"
grep -E "FAIL|passed" "$out/test_gemv.log" | head -20
echo "== test_cuda_decode"
(cd "$build" && timeout 150 ./test_cuda_decode) > "$out/test_decode.log" 2>&1; echo "exit $?"
grep -E "FAIL|passed" "$out/test_decode.log" | head -20
if [ "${HL_SMALL_BBH_TEST:-1}" = 1 ]; then
  echo "== test_cuda_bbh.sh"
  (cd "$build" && HL_BIN="$build/hydralora" timeout 150 bash "$src/tests/gpu/test_cuda_bbh.sh") > "$out/test_bbh.log" 2>&1
  echo "exit $?"; tail -5 "$out/test_bbh.log"
fi
echo "== batch 1 ($(( $(date +%s) - t0 )) s)"
HL_BENCH_PROFILE=1 timeout 150 stdbuf -oL "$build/bench_bbh_gpu" --batch1-only --kernels 2>&1 | tee "$out/b1.log" |
  grep -E "batch 1|profile|RESULT|copy|gemv"
if [ "${HL_SMALL_BIG:-1}" = 1 ]; then
  echo "== profiled pass, 270 examples x 64 tokens ($(( $(date +%s) - t0 )) s)"
  HL_CUDA_PROFILE=1 timeout 150 stdbuf -oL "$build/bench_bbh_gpu" --examples 270 --max-new 64 --prefill-examples 54 \
    --no-batch1 2>&1 | tee "$out/big.log" | grep -E "prefill:|generate:|profile|RESULT"
fi
echo "total $(( $(date +%s) - t0 )) s"
