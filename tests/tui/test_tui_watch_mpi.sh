#!/usr/bin/env bash
# The workbench follows a data-parallel run live: `mpirun -np 2 hydralora train` (slowed a little
# so that it lasts) writes the run directory while `hydralora watch RUN_DIR` shows it: the step
# count grows on the Train screen, the loss and eval appear, the Experts screen shows the routing
# that rank 0 wrote (over the global batch), and the end state arrives. Exits 77 without mpirun or
# without MPI in the build.
. "$(dirname "$0")/lib.sh"
B=${HL_BUILD_DIR:-.}
if ! command -v mpirun >/dev/null 2>&1; then echo "skipped: mpirun not found (Debian: openmpi-bin)"; exit 77; fi
if ! "$B/mpi_collectives" info 2>/dev/null | grep -q "mpi=1"; then echo "skipped: this build has no MPI (HL_MPI)"; exit 77; fi
TBIN=${HL_TESTHOOKS_BIN:-$B/hydralora-testhooks}
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
export OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 HL_TEST_STEP_DELAY_MS=350

t_link_data
t_config "$T_DIR/run.json" 24 ', "eval_every": 6, "n_heads": 3, "grad_accum": 2, "micro_batch": 2'
RUN="$T_DIR/runs/tui-test"
mpirun --oversubscribe $ROOT --mca btl self,vader,tcp --mca btl_tcp_if_include lo -x OMP_NUM_THREADS \
    -x HL_TEST_STEP_DELAY_MS -np 2 "$TBIN" train --config "$T_DIR/run.json" --quiet >"$T_DIR/train.log" 2>&1 &
mp=$!
for _ in $(seq 1 600); do grep -q '"event":"step"' "$RUN/metrics.jsonl" 2>/dev/null && break; sleep 0.1; done
t_check "the 2-rank run writes steps" grep -q '"ranks":2' "$RUN/metrics.jsonl"

t_start 110 32 C.UTF-8 watch "$RUN"
t_wait "Training (following, read-only)" 10 "the workbench follows the run directory"
t_wait "RUNNING" 10 "the run is shown running"
t_wait_re 'step [0-9]+/24' 10 "a step count out of 24"
s1=$(t_screen | grep -oE 'step [0-9]+/24' | head -1 | sed 's/step \([0-9]*\).*/\1/')
# live: the count grows while the two ranks train
grown=0
for _ in $(seq 1 150); do
    s2=$(t_screen | grep -oE 'step [0-9]+/24' | head -1 | sed 's/step \([0-9]*\).*/\1/')
    if [ -n "$s2" ] && [ "$s2" -gt "${s1:-99}" ]; then grown=1; break; fi
    sleep 0.1
done
t_check "the step count grows live ($s1 -> ${s2:-?})" test $grown = 1
t_wait_re 'eval [0-9.]+@6' 30 "the eval at step 6 appears"
t_wait_re '2 ranks, comm [0-9]+ ms/step' 5 "the Train screen says 2 ranks and their communication time"
t_keys 5
t_wait "Router weight" 10 "Experts screen shows the 2-rank run's routing"
t_wait_re 'following, step [0-9]+' 10 "the heat map says it follows"
t_keys 4
t_wait "FINISHED" 60 "the end of the run arrives"
t_wait_re 'step 24/24' 5 "all 24 steps"
wait $mp
rc=$?
t_check "the 2-rank run finished (mpirun exit $rc)" test $rc -eq 0
t_check "rank 0 alone wrote 24 step lines" test "$(grep -c '"event":"step"' "$RUN/metrics.jsonl")" -eq 24
t_keys q
t_wait "[hydralora exited 0]" 10 "q quits"
echo "$T_PASS passed, $T_FAIL failed"
[ "$T_FAIL" -eq 0 ]
