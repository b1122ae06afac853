#!/usr/bin/env bash
# CPU speed on the GPU machine's CPU (16-core Xeon with AMX and AVX512-BF16) in one go, at most 4
# minutes in all (the whole script re-runs itself under `timeout`): build (Release, oneDNN, engine
# phase timers), the tests that need native bf16 (oneDNN on AMX, the AVX512-BF16 fused dot; the rest
# is proven on the 2-core machine), bench_train and bench_decode at 16 threads with that machine's
# PyTorch (2.11) as the peer.
#
# Run from the repository root on that machine. The device kit (.device/) must hold the Debian
# packages of oneDNN besides the usual ones: libdnnl-dev, libdnnl2 and ocl-icd-libopencl1
# (libdnnl2 links libOpenCL.so.1); without them the build falls back to OpenBLAS f32 and says so.
#   bash scripts/cpu_bench_device.sh            (BUDGET=seconds, default 235; PARTS=tests,train,decode)
#   PARTS=decode BUDGET=115 bash scripts/cpu_bench_device.sh     (decode only: scripts/cpu_bench_decode_device.sh)
# At most 8 files go to $OUT (default /tmp/hl_cpu_bench). Every part has its own time limit and the
# script goes on after a failure, so one run brings back as much as it can.
set -uo pipefail
BUDGET=${BUDGET:-235}
if [ -z "${HL_CPU_BENCH_INNER:-}" ]; then
    export HL_CPU_BENCH_INNER=1
    exec timeout -k 5 "$BUDGET" stdbuf -oL -eL bash "$0" "$@"
fi
start=$(date +%s)
OUT=${OUT:-/tmp/hl_cpu_bench}
mkdir -p "$OUT"
[ -f .device/env.sh ] && source .device/env.sh
# env.sh asks OpenMP for PASSIVE waiting (threads sleep at once after each parallel region): right
# on a shared machine, wrong for a 16-thread benchmark of many short parallel loops. The default
# policy spins briefly, then sleeps (so the PyTorch subprocess does not compete with spinning
# workers); PyTorch runs under the same setting.
unset OMP_WAIT_POLICY
THREADS=${THREADS:-16}
PARTS=${PARTS:-tests,train,decode}
B=${BUILD_DIR:-/tmp/hl_cpu_build}
elapsed() { echo $(($(date +%s) - start)); }
left() { echo $((BUDGET - 8 - $(elapsed))); }
part() { echo; echo "=== $* (t=$(elapsed) s)"; }

part machine
{
    lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Core|Socket|NUMA node|L2|L3' | cut -c1-200
    grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16|avx512f' /proc/cpuinfo | sort | uniq -c
    free -g | head -2
    ls .device/debs 2>/dev/null | grep -E 'dnnl|opencl' || echo "no oneDNN packages in .device/debs"
    python3 -c 'import torch; print("peer: torch", torch.__version__, "threads", torch.get_num_threads())' 2>&1
} | tee "$OUT/machine.txt"

part build
# HL_ENGINE_PROFILE: bench_train also prints where a step's time goes (a clock read per phase).
targets=""
[[ $PARTS == *tests* ]] && targets+=" test_gemm_paths test_compute_bf16 test_stories_greedy"
[[ $PARTS == *train* ]] && targets+=" bench_train"
[[ $PARTS == *decode* ]] && targets+=" bench_decode"
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_DNNL=AUTO -DHL_CUDA=OFF \
    -DCMAKE_C_FLAGS=-DHL_ENGINE_PROFILE -DHL_SHARED_DIR="${HL_SHARED:-$PWD/../shared}" >"$OUT/build.txt" 2>&1 &&
    timeout 90 cmake --build "$B" -j"$THREADS" --target $targets >>"$OUT/build.txt" 2>&1
rc=$?
grep -E 'oneDNN|warning|error' "$OUT/build.txt" | head -20
if [ $rc -ne 0 ]; then
    tail -40 "$OUT/build.txt"
    echo "build failed (exit $rc)"
    exit 1
fi

export HL_BENCH_PYTHON=$(command -v python3)
export HL_SHARED=${HL_SHARED:-$PWD/../shared} # the tests run from the build folder
export OMP_NUM_THREADS=$THREADS

if [[ $PARTS == *tests* ]]; then
    part "tests that need native bf16"
    for t in test_gemm_paths test_compute_bf16 test_stories_greedy; do
        echo "-- $t"
        (cd "$B" && timeout 40 ./$t >"$OUT/$t.txt" 2>&1; echo "exit $?" >>"$OUT/$t.txt")
        grep -v '^FAIL' "$OUT/$t.txt" | tail -8
        grep '^FAIL' "$OUT/$t.txt" | head -15
    done
fi

if [[ $PARTS == *train* ]]; then
    part "bench_train (compute auto, PyTorch peer, phase timers)"
    (cd "$B" && timeout $(($(left) > 120 ? 110 : $(left) * 6 / 10)) ./bench_train --threads "$THREADS" --steps 3) 2>&1 |
        tee "$OUT/bench_train.txt" | grep -v '^  step'
fi

if [[ $PARTS == *decode* ]]; then
    part "bench_decode (7B shape batch 1/16, weight product M=1..128; PyTorch peer)"
    l=$(left)
    (cd "$B" && timeout $((l > 20 ? l : 20)) ./bench_decode --threads "$THREADS" --tokens 24 \
        --shared /nonexistent) 2>&1 | tee "$OUT/bench_decode.txt"
fi
part "done"
