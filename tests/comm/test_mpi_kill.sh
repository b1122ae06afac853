#!/usr/bin/env bash
# A rank of a data-parallel run dies (kill -9 of rank 1 of `mpirun -np 2 hydralora train`, after
# a few checkpoints):
#  a. mpirun's default (it ends the other ranks): the run ends within a minute, non-zero, and
#     rank 0 says which rank died (rank 1, its pid) and which checkpoint is the last complete one;
#     that checkpoint exists and a one-process --resume from it runs the job to its end;
#  b. a launcher that lets the others run on (--enable-recovery): rank 0's reduction gives up
#     after HL_COMM_TIMEOUT_S naming rank 1, the error is in metrics.jsonl, and the run ends.
# Skips (77) without mpirun or without MPI in the build.
set -u
. "$(dirname "$0")/../cli/train_common.sh"
if ! command -v mpirun >/dev/null 2>&1; then echo "skipped: mpirun not found (Debian: openmpi-bin)"; exit 77; fi
B=${HL_BUILD_DIR:-.}
if ! "$B/mpi_collectives" info 2>/dev/null | grep -q "mpi=1"; then echo "skipped: this build has no MPI (HL_MPI)"; exit 77; fi
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
MPIRUN="mpirun --oversubscribe $ROOT --mca btl self,vader,tcp --mca btl_tcp_if_include lo -x OMP_NUM_THREADS=1"
export OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 HL_TEST_STEP_DELAY_MS=250
RUN="--model $MODEL --data $DATA --set max_steps=40 --set max_len=64 --set micro_batch=2 --set grad_accum=2 \
 --set save_every=3 --set eval_every=0 --set val_split=6 --set threads=1 --set keep_last=0 --quiet"

# the pid of rank $2 among the processes mpirun ($1) started
rank_pid() {
    local c
    for c in $(ps -o pid= --ppid "$1"); do
        if tr '\0' '\n' < /proc/$c/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$c"; return; fi
    done
}
wait_file() { local t=0; while [ ! -e "$1" ] && [ $t -lt $(( $2 * 10 )) ]; do sleep 0.1; t=$((t + 1)); done; [ -e "$1" ]; }
# wait up to $2 s for pid $1 to end; its exit status in $rc (124: still running, then killed)
wait_end() {
    local t=0
    while kill -0 "$1" 2>/dev/null && [ $t -lt $(( $2 * 10 )) ]; do sleep 0.1; t=$((t + 1)); done
    if kill -0 "$1" 2>/dev/null; then kill -9 "$1"; wait "$1" 2>/dev/null; rc=124; else wait "$1"; rc=$?; fi
}

for part in a b; do
    R=$WORK/run_$part
    if [ $part = a ]; then
        $MPIRUN -x HL_TEST_STEP_DELAY_MS -np 2 "$TBIN" train $RUN --out "$R" > "$WORK/$part.out" 2>&1 &
    else
        HL_COMM_TIMEOUT_S=4 $MPIRUN --enable-recovery -x HL_COMM_TIMEOUT_S -x HL_TEST_STEP_DELAY_MS -np 2 \
            "$TBIN" train $RUN --out "$R" > "$WORK/$part.out" 2>&1 &
    fi
    mp=$!
    wait_file "$R/checkpoints/step-6/state.json" 120 || fail "$part: no checkpoint step-6 after 120 s: $(tail -3 $WORK/$part.out)"
    victim=$(rank_pid $mp 1)
    check '[ -n "$victim" ]' "$part: rank 1 not found among mpirun's children"
    [ -n "$victim" ] && kill -9 "$victim"
    wait_end $mp 90
    echo "--- part $part: rank 1 (pid $victim) killed; mpirun exit $rc; output:"
    grep -v '^\s*$' "$WORK/$part.out" | grep -v -- '-----' | head -12
    # (with --enable-recovery Open MPI's mpirun exits 0 even after MPI_Abort: only its own ending counts)
    check '[ $rc -ne 124 ] && { [ $part = b ] || [ $rc -ne 0 ]; }' "$part: the run should end non-zero by itself (rc $rc; 124 = it hung)"
    if [ $part = a ]; then
        check 'grep -q "rank 0: the run ends because a rank died: rank 1 (pid $victim" $WORK/a.out' \
            "a: rank 0 should name rank 1 (pid $victim)"
        last=$(sed -n 's/.*the last complete checkpoint is step-\([0-9]*\).*/\1/p' "$WORK/a.out" | head -1)
    else
        check 'grep -q "rank 1 (pid $victim on [^)]*) is gone (no answer for [0-9]* s)" $WORK/b.out' \
            "b: the reduction's timeout should name rank 1 (pid $victim)"
        check 'grep "\"event\":\"error\"" $R/metrics.jsonl | grep -q "rank 1 (pid $victim"' "b: metrics.jsonl should record the error"
        last=$(ls "$R/checkpoints" | sed -n 's/^step-\([0-9]*\)$/\1/p' | sort -n | tail -1)
    fi
    check '[ -n "$last" ] && [ "$last" -ge 6 ] && [ -f $R/checkpoints/step-$last/state.json ]' \
        "$part: the last complete checkpoint (step-$last) should exist"
    # intact: one process resumes from it and finishes the run
    unset HL_TEST_STEP_DELAY_MS
    # (a checkpoint finished in the last moments may be newer than the one rank 0 had seen)
    "$BIN" train --resume "$R" > "$WORK/$part.resume" 2>&1
    rc=$?
    export HL_TEST_STEP_DELAY_MS=250
    from=$(sed -n 's/.*resumed from checkpoint step-\([0-9]*\).*/\1/p' "$WORK/$part.resume" | head -1)
    check '[ $rc -eq 0 ] && [ -n "$from" ] && [ "$from" -ge "$last" ]' \
        "$part: resume from step-$last failed (rc $rc, resumed from '$from'): $(tail -3 $WORK/$part.resume)"
    check '[ -f $R/adapter/adapter_model.safetensors ]' "$part: the resumed run should finish and export"
done
finish
