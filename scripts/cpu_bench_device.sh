#!/usr/bin/env bash
# CPU speed on the GPU machine's CPU (16-core Xeon with AMX and AVX512-BF16), one go, <= 8 minutes:
#   build Release with oneDNN, run the unit tests (the bf16 paths run natively there), bench_train
#   and bench_decode at 16 threads with that machine's PyTorch (2.11) as the peer, a profiled
#   training step (where the time goes), and bench_train on the f32 path for comparison.
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
P=${BUILD_DIR:-/tmp/hl_cpu_build}-prof
elapsed() { echo $(($(date +%s) - start)); }
part() { echo; echo "=== $* (t=$(elapsed) s)"; }

part machine
{
  lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Core|Socket|NUMA node|L2|L3|Flags' | cut -c1-400
  grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16|avx512f' /proc/cpuinfo | sort | uniq -c
  free -g | head -2
  python3 -c 'import torch; print("peer: torch", torch.__version__, "threads", torch.get_num_threads())' 2>&1
} | tee "$OUT/machine.txt"

part build
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_DNNL=ON \
  -DHL_SHARED_DIR="${HL_SHARED:-$PWD/../shared}" >"$OUT/build.txt" 2>&1 &&
  cmake --build "$B" -j"$THREADS" >>"$OUT/build.txt" 2>&1
rc=$?
grep -E 'oneDNN|warning|error' "$OUT/build.txt" | head -20
if [ $rc -ne 0 ]; then tail -40 "$OUT/build.txt"; echo "build failed"; exit 1; fi
# the profiling build of bench_train in the background while the tests run
(cmake -S . -B "$P" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_DNNL=ON \
   -DCMAKE_C_FLAGS=-DHL_ENGINE_PROFILE >"$OUT/build-prof.txt" 2>&1 &&
   cmake --build "$P" -j4 --target bench_train >>"$OUT/build-prof.txt" 2>&1) &
prof_pid=$!

export HL_BENCH_PYTHON=$(command -v python3)
export OMP_NUM_THREADS=$THREADS

part "unit tests (bf16 paths natively)"
(cd "$B" && timeout 150 ctest -R '^unit/' -j8 --timeout 120 2>&1 | tail -15) | tee "$OUT/tests.txt"
for t in test_gemm_paths test_compute_bf16; do
  (cd "$B" && timeout 60 ./$t 2>&1 | grep -v '^FAIL' | tail -12; timeout 60 ./$t 2>&1 | grep '^FAIL' | head -20) |
    tee -a "$OUT/tests.txt"
done

wait $prof_pid # nothing else runs during the measurements

part "bench_train (compute auto, PyTorch peer)"
(cd "$B" && timeout 170 ./bench_train --threads "$THREADS" --steps 3) 2>&1 | tee "$OUT/bench_train.txt" | grep -v '^  step'

part "bench_decode (PyTorch peer)"
(cd "$B" && timeout 150 ./bench_decode --threads "$THREADS" --tokens 32) 2>&1 | tee "$OUT/bench_decode.txt"

part "profiled training step (where the time goes; OMP_WAIT_POLICY=ACTIVE to compare)"
left=$((470 - $(elapsed)))
if [ -x "$P/bench_train" ] && [ $left -gt 40 ]; then
  (cd "$P" && OMP_WAIT_POLICY=ACTIVE timeout $((left - 30)) ./bench_train --threads "$THREADS" --steps 3 --no-pytorch) 2>&1 |
    tee "$OUT/bench_train_profile.txt" | grep -v '^  step'
else
  echo "skipped (profiling build missing or $left s left)"
fi

part "bench_train on the f32 path (compute f32, no peer)"
left=$((470 - $(elapsed)))
if [ $left -gt 40 ]; then
  (cd "$B" && timeout $((left - 10)) ./bench_train --threads "$THREADS" --steps 2 --no-pytorch --compute f32) 2>&1 |
    tee "$OUT/bench_train_f32.txt" | grep -v '^  step'
else
  echo "skipped ($left s left)"
fi
part "done"
