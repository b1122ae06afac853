#!/usr/bin/env bash
# wmpi-1 on the GPU machine (16-core Xeon + 1 H200), run from the worktree root:
#   bash scripts/gpu_mpi_run1.sh
# 1. which MPI: the machine's own (mpi.h + libmpi + mpirun) if complete, else Debian 12's Open MPI
#    from .device/debs (unpacked under /tmp/sys by .device/env.sh; relocated with OPAL_PREFIX);
# 2. build (Release, HL_MPI=ON, NCCL when found) -> $OUT/build.log;
# 3. the data-parallel CPU bench (bench/bench_dp): stories260K and 7B-shaped 2-layer steps, one
#    global batch of 4 micro-batches x 512 tokens, as 1 rank x 16 threads, 2 x 8 and 4 x 4, with
#    the communication time per step -> $OUT/bench_dp.log, table $OUT/bench_dp_table.txt;
# 4. the communicator tests under mpirun on this host (tests/comm/test_comm_mpi.sh) and NCCL through
#    the communicator on the GPU (tests/comm/test_comm_nccl.sh: 1 rank, the buffer bit for bit) ->
#    $OUT/comm_tests.log.
# Everything under one `timeout` (230 s); each part keeps going after a failure of another.
set -u
if [ -z "${HL_WMPI_INNER:-}" ]; then
    OUT=${OUT:-/tmp/wmpi-out}
    mkdir -p "$OUT"
    export OUT HL_WMPI_INNER=1
    timeout 230 stdbuf -oL -eL bash "$0" "$@" 2>&1 | tee "$OUT/run.log"
    rc=${PIPESTATUS[0]}
    echo "=== wmpi-1 exit $rc (124 = the 230 s limit) ==="
    [ -f "$OUT/bench_dp_table.txt" ] && cat "$OUT/bench_dp_table.txt"
    exit "$rc"
fi

t_start=$(date +%s)
el() { echo "[$(( $(date +%s) - t_start )) s]"; }
[ -f .device/env.sh ] && source .device/env.sh
{
    echo "== machine"; nproc; lscpu | grep -E 'Model name|Socket|Core|Thread|NUMA node|Flags' | cut -c1-200
    echo "== the machine's MPI"
    for c in mpirun mpicc mpiexec ompi_info; do printf '%s: ' "$c"; command -v "$c" || echo "(none)"; done
    command -v mpirun >/dev/null && { mpirun --version 2>&1 | head -2; readlink -f "$(command -v mpirun)"; dpkg -S "$(readlink -f "$(command -v mpirun)")" 2>&1 | head -1; }
    ls -d /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h /usr/include/mpi.h /usr/include/x86_64-linux-gnu/openmpi* \
          /usr/include/x86_64-linux-gnu/mpich* /usr/lib/x86_64-linux-gnu/libmpi.so* 2>&1 | head
    echo "== NCCL"; ls /usr/lib/x86_64-linux-gnu/libnccl* /usr/include/nccl.h 2>&1 | head -4
    nvidia-smi -L 2>&1 | head -2
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt" | sed -n '1,40p'

# ---- 1. which MPI ----
MPI_ARGS=""
MPIRUN=""
sys_mpicc=$(command -v mpicc || true)
if [ -n "$sys_mpicc" ] && "$sys_mpicc" -showme >/dev/null 2>&1 && command -v mpirun >/dev/null; then
    MPIRUN=$(command -v mpirun)
    # the machine's own MPI libraries (libpmix, libmpi) before anything .device/env.sh unpacked
    export LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "MPI: the machine's ($sys_mpicc, $MPIRUN)"
elif [ -x /tmp/sys/usr/bin/mpicc.openmpi ]; then
    M=/tmp/sys/usr
    export OPAL_PREFIX=$M PATH=$M/bin:$PATH PMIX_INSTALL_PREFIX=$M/lib/x86_64-linux-gnu/pmix2
    export LD_LIBRARY_PATH=$M/lib/x86_64-linux-gnu:$M/lib/x86_64-linux-gnu/openmpi/lib:$LD_LIBRARY_PATH
    MPI_ARGS="-DMPI_C_COMPILER=$M/bin/mpicc.openmpi"
    MPIRUN=$M/bin/mpirun.openmpi
    echo "MPI: Debian 12 Open MPI from .device/debs, relocated to $M ($("$MPIRUN" --version 2>&1 | head -1))"
else
    echo "MPI: NONE usable (no mpicc with headers here and no Debian Open MPI under /tmp/sys): only 1-rank figures"
    echo "     the lead should add the .debs of /work/coord/gpu/debs-wmpi/ to .device/debs"
fi

# ---- 2. build ----
echo "$(el) building"
B=${HL_WMPI_BUILD:-/tmp/b-wmpi}
cmake -S . -B $B -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_MPI=AUTO $MPI_ARGS -DHL_BENCH=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCUDAToolkit_ROOT=/usr/local/cuda > "$OUT/build.log" 2>&1
cmake --build $B -j${HL_WMPI_JOBS:-16} --target hydralora bench_dp mpi_collectives mpi_nccl >> "$OUT/build.log" 2>&1
echo "build exit $?; $(grep -E '^-- (MPI|NCCL):' "$OUT/build.log" | tr '\n' ' ')"
grep -E 'error|Error' "$OUT/build.log" | head -5
"$B/mpi_collectives" info 2>&1 | head -2

# ---- 3. the CPU bench ----
echo "$(el) bench_dp"
ROOT=""; [ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
MCA="--mca btl self,vader --mca pml ob1 --mca btl_vader_single_copy_mechanism none"
: > "$OUT/bench_dp.log"
run_one() { # shape K T steps
    local shape=$1 K=$2 T=$3 steps=$4
    echo "--- $shape: $K rank(s) x $T threads" | tee -a "$OUT/bench_dp.log"
    if [ "$K" = 1 ]; then
        OMP_NUM_THREADS=$T timeout 80 "$B/bench_dp" --shape "$shape" --threads "$T" --steps "$steps" >> "$OUT/bench_dp.log" 2>&1
        return
    fi
    [ -n "$MPIRUN" ] || { echo "(no MPI: skipped)" >> "$OUT/bench_dp.log"; return; }
    # each rank on its own T cores; where the mapping is refused, unbound
    if ! timeout 80 "$MPIRUN" $ROOT $MCA -np "$K" --map-by "slot:PE=$T" --bind-to core -x OMP_NUM_THREADS=$T \
         -x OMP_WAIT_POLICY -x LD_LIBRARY_PATH "$B/bench_dp" --shape "$shape" --threads "$T" --steps "$steps" \
         >> "$OUT/bench_dp.log" 2>&1; then
        echo "(PE mapping failed: again with --bind-to none)" >> "$OUT/bench_dp.log"
        timeout 80 "$MPIRUN" $ROOT $MCA --oversubscribe -np "$K" --bind-to none -x OMP_NUM_THREADS=$T \
            -x OMP_WAIT_POLICY -x LD_LIBRARY_PATH "$B/bench_dp" --shape "$shape" --threads "$T" --steps "$steps" \
            >> "$OUT/bench_dp.log" 2>&1
    fi
}
for cfg in "1 16" "2 8" "4 4"; do run_one stories $cfg 6; done
if [ -z "${HL_WMPI_NO_7B:-}" ]; then # (HL_WMPI_NO_7B=1: a rehearsal on a small machine)
    for cfg in "1 16" "2 8" "4 4"; do run_one 7b $cfg 3; echo "$(el) 7b $cfg done"; done
fi
{
    echo "bench_dp on $(nproc) cores: one optimizer step = 4 micro-batches x 512 tokens; times are per step (mean, the slowest rank)"
    printf '%-8s %5s %7s %11s %9s %9s %9s %10s %8s\n' shape ranks threads tokens/s step_s compute_s wait_s reduce_s reduce%
    grep '^RESULT' "$OUT/bench_dp.log" | sed 's/[a-z_]*=//g' | awk '{ printf "%-8s %5s %7s %11s %9s %9s %9s %10s %8s\n", $2, $3, $4, $5, $6, $7, $8, $9, $11 }'
} > "$OUT/bench_dp_table.txt"
cat "$OUT/bench_dp_table.txt"

# ---- 4. communicator tests ----
echo "$(el) comm tests"
{
    if [ -n "$MPIRUN" ]; then
        mkdir -p /tmp/mpibin && ln -sf "$MPIRUN" /tmp/mpibin/mpirun
        PATH=/tmp/mpibin:$PATH HL_BUILD_DIR=$B timeout 100 bash tests/comm/test_comm_mpi.sh; echo "test_comm_mpi exit $?"
    fi
    HL_BUILD_DIR=$B timeout 40 bash tests/comm/test_comm_nccl.sh; echo "test_comm_nccl exit $? (77 = skipped)"
} > "$OUT/comm_tests.log" 2>&1
tail -6 "$OUT/comm_tests.log"
echo "$(el) done"
