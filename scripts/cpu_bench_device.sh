#!/usr/bin/env bash
# CPU speed on the GPU machine's CPU (16-core Xeon with AMX and AVX512-BF16) in one go, <= 4 minutes:
# build (Release, oneDNN, engine phase timers), the tests that need native bf16 (oneDNN on AMX, the
# AVX512-BF16 fused dot; everything else is proven on the 2-core machine), bench_train and
# bench_decode at 16 threads with that machine's PyTorch (2.11) as the peer.
#
# Run from the repository root on that machine, with the device kit (.device/, made here by
#   bash ../shared/device/prep.sh libdnnl-dev libdnnl2 ocl-icd-libopencl1):
#   bash scripts/cpu_bench_device.sh
# Logs go to $OUT (default /tmp/hl_cpu_bench). Every part runs under its own time limit and the
# script goes on after a failure, so one run brings back as much as it can.
set -uo pipefail
start=$(date +%s)
OUT=${OUT:-/tmp/hl_cpu_bench}
mkdir -p "$OUT"
[ -f .device/env.sh ] && source .device/env.sh
THREADS=${THREADS:-16}
B=${BUILD_DIR:-/tmp/hl_cpu_build}
elapsed() { echo $(($(date +%s) - start)); }
part() { echo; echo "=== $* (t=$(elapsed) s)"; }

part machine
{
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Core|Socket|NUMA node|L2|L3' | cut -c1-200
  grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16|avx512f' /proc/cpuinfo | sort | uniq -c
  free -g | head -2
  python3 -c 'import torch; print("peer: torch", torch.__version__, "threads", torch.get_num_threads())' 2>&1
} | tee "$OUT/machine.txt"

part build
# HL_ENGINE_PROFILE: bench_train also prints where a step's time goes (a clock read per phase).
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_DNNL=ON \
  -DCMAKE_C_FLAGS=-DHL_ENGINE_PROFILE -DHL_SHARED_DIR="${HL_SHARED:-$PWD/../shared}" >"$OUT/build.txt" 2>&1 &&
  cmake --build "$B" -j"$THREADS" --target bench_train bench_decode test_gemm_paths test_compute_bf16 \
    test_stories_greedy >>"$OUT/build.txt" 2>&1
rc=$?
grep -E 'oneDNN|warning|error' "$OUT/build.txt" | head -20
if [ $rc -ne 0 ]; then tail -40 "$OUT/build.txt"; echo "build failed"; exit 1; fi

export HL_BENCH_PYTHON=$(command -v python3)
export OMP_NUM_THREADS=$THREADS

part "tests that need native bf16"
for t in test_gemm_paths test_compute_bf16 test_stories_greedy; do
  echo "-- $t"
  (cd "$B" && timeout 90 ./$t >"$OUT/$t.txt" 2>&1; echo "exit $?" >>"$OUT/$t.txt")
  grep -v '^FAIL' "$OUT/$t.txt" | tail -9
  grep '^FAIL' "$OUT/$t.txt" | head -15
done

part "bench_train (compute auto, PyTorch peer, phase timers)"
(cd "$B" && timeout 110 ./bench_train --threads "$THREADS" --steps 3) 2>&1 | tee "$OUT/bench_train.txt" |
  grep -v '^  step'

part "bench_decode (7B shape; PyTorch peer)"
left=$((225 - $(elapsed)))
(cd "$B" && timeout $((left > 30 ? left : 30)) ./bench_decode --threads "$THREADS" --tokens 24 \
  --shared /nonexistent) 2>&1 | tee "$OUT/bench_decode.txt"
part "done"
