#!/usr/bin/env bash
# wmpi-2 on the GPU machine (1 H200 + 16 Xeon cores), run from the worktree root:
#   bash scripts/gpu_mpi_run2.sh
# The NCCL half of data-parallel training on the one GPU, and the CPU data-parallel bench:
# 1. build (Release, CUDA for sm_90 only, MPI: the machine's own, NCCL) -> $OUT/build.log;
# 2. tests/gpu/test_nccl_reduce: through the seam, a CUDA session whose gradients are summed by
#    the NCCL all-reduce (one rank) against one without it: gradients, parameters and grad norms
#    bit for bit after 6 AdamW steps, f32/bf16 weights, HydraLoRA/LoRA -> $OUT/nccl_reduce.log;
#    tests/comm/test_comm_nccl.sh (the communicator's device all-reduce) appended;
# 3. tests/gpu/test_nccl_train.sh: `hydralora train` on cuda for 20 steps, alone and as
#    `mpirun -np 1` (NCCL path): the same adapter bit for bit, the same loss bits per step, and
#    the NCCL line -> $OUT/cli.log;
# 4. bench/bench_dp on the CPU: 1 rank x 16 threads, 2 x 8, 4 x 4; stories260K steps of 4 x 512
#    tokens (4 timed steps) and 7B-shaped 2-layer steps of 4 x 256 tokens (1 timed step: the f32
#    path takes ~14 s for it) -> $OUT/bench_dp.log, table $OUT/bench_dp_table.txt.
# Everything under one `timeout` (145 s); each part keeps going after a failure of another.
set -u
if [ -z "${HL_WMPI_INNER:-}" ]; then
    OUT=${OUT:-/tmp/wmpi2-out}
    mkdir -p "$OUT"
    export OUT HL_WMPI_INNER=1
    timeout 145 stdbuf -oL -eL bash "$0" "$@" > "$OUT/run.log" 2>&1
    rc=$?
    echo "=== wmpi-2 exit $rc (124 = the 145 s limit) ==="
    grep -h -E '^(PASS|FAIL|test_|plain|mpirun|build exit|MPI:|[0-9]+ passed)' "$OUT/run.log" | head -30
    [ -f "$OUT/bench_dp_table.txt" ] && cat "$OUT/bench_dp_table.txt"
    exit "$rc"
fi
t_start=$(date +%s)
el() { echo "[$(( $(date +%s) - t_start )) s]"; }
[ -f .device/env.sh ] && source .device/env.sh
export NCCL_NVLS_ENABLE=0 # NVLink multicast off (this machine requires it)

MPI_ARGS="" MPIRUN=""
sys_mpicc=$(command -v mpicc || true)
if [ -n "$sys_mpicc" ] && "$sys_mpicc" -showme >/dev/null 2>&1 && command -v mpirun >/dev/null; then
    MPIRUN=$(command -v mpirun)
    # the machine's own MPI libraries (libpmix, libmpi) before anything .device/env.sh unpacked
    export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
elif [ -x /tmp/sys/usr/bin/mpicc.openmpi ]; then
    M=/tmp/sys/usr
    export OPAL_PREFIX=$M PATH=$M/bin:$PATH PMIX_INSTALL_PREFIX=$M/lib/x86_64-linux-gnu/pmix2
    export LD_LIBRARY_PATH=$M/lib/x86_64-linux-gnu:$M/lib/x86_64-linux-gnu/openmpi/lib:$LD_LIBRARY_PATH
    MPI_ARGS="-DMPI_C_COMPILER=$M/bin/mpicc.openmpi"
    MPIRUN=$M/bin/mpirun.openmpi
fi
echo "MPI: ${MPIRUN:-none}"

echo "$(el) building"
B=${HL_WMPI_BUILD:-/tmp/b-wmpi2}
GPU=0; TARGETS="hydralora bench_dp"
[ -d core/backend/cuda ] && { GPU=1; TARGETS="$TARGETS test_nccl_reduce mpi_nccl mpi_collectives"; }
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_MPI=AUTO $MPI_ARGS \
    $([ $GPU = 1 ] && echo "-DHL_CUDA=ON -DHL_NCCL=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc") \
    > "$OUT/build.log" 2>&1
cmake --build $B -j${HL_WMPI_JOBS:-16} --target $TARGETS >> "$OUT/build.log" 2>&1
echo "build exit $?; $(grep -E '^-- (MPI|NCCL|CUDA backend):' "$OUT/build.log" | tr '\n' ' ')"
grep -E 'error' "$OUT/build.log" | head -5

[ $GPU = 1 ] || echo "no CUDA backend in this tree: GPU parts skipped"
[ $GPU = 1 ] && echo "$(el) test_nccl_reduce" && {
    timeout 60 "$B/test_nccl_reduce"; echo "test_nccl_reduce exit $?"
    HL_BUILD_DIR=$B timeout 30 bash tests/comm/test_comm_nccl.sh; echo "test_comm_nccl exit $?"
} > "$OUT/nccl_reduce.log" 2>&1
cat "$OUT/nccl_reduce.log"

[ $GPU = 1 ] && echo "$(el) CLI" && {
    # tests/gpu/test_nccl_train.sh: `hydralora train` on cuda, plain and as mpirun -np 1 (NCCL)
    if [ -n "$MPIRUN" ]; then mkdir -p /tmp/mpibin && ln -sf "$MPIRUN" /tmp/mpibin/mpirun; fi
    PATH=/tmp/mpibin:$PATH HL_BUILD_DIR=$B HL_BIN=$B/hydralora HL_SHARED=${HL_SHARED:-../shared} \
        timeout 60 bash tests/gpu/test_nccl_train.sh
    echo "test_nccl_train exit $? (77 = skipped)"
} > "$OUT/cli.log" 2>&1
[ $GPU = 1 ] && cat "$OUT/cli.log"

echo "$(el) bench_dp"
ROOT=""; [ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
MCA="--mca btl self,vader --mca pml ob1 --mca btl_vader_single_copy_mechanism none"
: > "$OUT/bench_dp.log"
run_one() { # shape K T args...
    local shape=$1 K=$2 T=$3
    shift 3
    echo "--- $shape: $K rank(s) x $T threads" | tee -a "$OUT/bench_dp.log"
    if [ "$K" = 1 ]; then
        OMP_NUM_THREADS=$T timeout 40 "$B/bench_dp" --shape "$shape" --threads "$T" "$@" >> "$OUT/bench_dp.log" 2>&1
        return
    fi
    [ -n "$MPIRUN" ] || { echo "(no MPI: skipped)" >> "$OUT/bench_dp.log"; return; }
    timeout 40 "$MPIRUN" $ROOT $MCA -np "$K" --map-by "slot:PE=$T" --bind-to core -x OMP_NUM_THREADS=$T \
        -x OMP_WAIT_POLICY -x LD_LIBRARY_PATH "$B/bench_dp" --shape "$shape" --threads "$T" "$@" >> "$OUT/bench_dp.log" 2>&1 ||
    { echo "(mpirun with cores per rank failed: again unbound)" | tee -a "$OUT/bench_dp.log"
      timeout 40 "$MPIRUN" $ROOT $MCA --oversubscribe -np "$K" --bind-to none -x OMP_NUM_THREADS=$T -x OMP_WAIT_POLICY \
          -x LD_LIBRARY_PATH "$B/bench_dp" --shape "$shape" --threads "$T" "$@" >> "$OUT/bench_dp.log" 2>&1; }
}
for cfg in "1 16" "2 8" "4 4"; do run_one stories $cfg --steps 4; done
if [ -z "${HL_WMPI_NO_7B:-}" ]; then # (HL_WMPI_NO_7B=1: a rehearsal on a small machine)
    for cfg in "1 16" "2 8" "4 4"; do run_one 7b $cfg --seq 256 --steps 1 --no-warmup; echo "$(el) 7b $cfg done"; done
fi
{
    echo "bench_dp on $(nproc) cores: one optimizer step = 4 micro-batches (stories: 1x512 tokens, 7b: 1x256); per step, the slowest rank"
    printf '%-8s %5s %7s %11s %9s %9s %9s %10s %8s\n' shape ranks threads tokens/s step_s compute_s wait_s reduce_s reduce%
    grep '^RESULT' "$OUT/bench_dp.log" | sed 's/[a-z_]*=//g' | awk '{ printf "%-8s %5s %7s %11s %9s %9s %9s %10s %8s\n", $2, $3, $4, $5, $6, $7, $8, $9, $11 }'
} > "$OUT/bench_dp_table.txt"
cat "$OUT/bench_dp_table.txt"
echo "$(el) done"
