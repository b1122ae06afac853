#!/usr/bin/env bash
# Data-parallel training under Open MPI's mpirun on this host (loopback, oversubscribed), on
# stories260K-hf for 20 steps with a global batch of 4 micro-batches x 2 examples:
#  1. mpirun -np 2 gives an adapter within 1e-6 of one process with the same config and seed
#     (per tensor, ||a-b|| / ||b||; exporting f32) and per-step losses within 1e-6 relative, the
#     same global token count at every step (the same examples), and one metrics.jsonl written
#     by rank 0 alone (20 step lines, ranks=2);
#     mpirun -np 1 gives the one-process adapter bit for bit; the same with packing off;
#  2. the same with 3 ranks (3 does not divide the 4 micro-batches: blocks of 2, 1, 1);
#  3. a K=1 resume from the K=2 run's step-10 checkpoint continues the same data order: steps
#     11..20 have the same token counts and losses (within 1e-6) and the adapter matches; and a
#     K=2 resume from the one-process run's checkpoint matches the one-process run.
# (The sums of a K-rank run are not bit-identical to one process adding the micro-batch
# gradients one after the other in f32: K partial sums are added instead; see core/comm/comm.h.)
# Skips (77) without mpirun or without MPI in the build.
set -u
. "$(dirname "$0")/../cli/train_common.sh"
PY=${HL_PYTHON:-/usr/bin/python3}
DIFF="$PY $(dirname "$0")/adapter_diff.py"
if ! command -v mpirun >/dev/null 2>&1; then echo "skipped: mpirun not found (Debian: openmpi-bin)"; exit 77; fi
B=${HL_BUILD_DIR:-.}
if ! "$B/mpi_collectives" info 2>/dev/null | grep -q "mpi=1"; then echo "skipped: this build has no MPI (HL_MPI)"; exit 77; fi
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
MPIRUN="mpirun --oversubscribe $ROOT --mca btl self,vader,tcp --mca btl_tcp_if_include lo -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY"
export OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1

RUN="--model $MODEL --data $DATA --set max_steps=20 --set max_len=64 --set micro_batch=2 --set grad_accum=4 \
 --set save_every=10 --set eval_every=5 --set val_split=6 --set threads=1 --set keep_last=0 --set seed=7 --quiet"
AD=adapter/adapter_model.safetensors

# step k's "tokens loss" per line
steps_tl() { grep '"event":"step"' "$1/metrics.jsonl" | sed 's/.*"step":\([0-9]*\),.*"loss":\([^,]*\),.*"tokens":\([0-9]*\),.*/\1 \3 \2/'; }
# same step numbers and token counts, losses within 1e-6 relative ($3, $4: first/last step)
same_steps() {
    awk -v lo="$3" -v hi="$4" 'NR == FNR { if ($1 >= lo && $1 <= hi) { t[$1] = $2; l[$1] = $3; n++ } next }
        $1 >= lo && $1 <= hi { m++; if (!($1 in t) || t[$1] != $2) { print "step " $1 ": tokens " $2 " vs " t[$1]; bad++ }
            d = $3 - l[$1]; if (d < 0) d = -d; if (d > 1e-6 * (l[$1] < 0 ? -l[$1] : l[$1])) { print "step " $1 ": loss " $3 " vs " l[$1]; bad++ } }
        END { if (m != n || n != hi - lo + 1) { print "step lines: " n " vs " m " (want " hi - lo + 1 ")"; bad++ } exit bad > 0 }' \
        <(steps_tl "$1") <(steps_tl "$2")
}

# ---- 1. one process and 2 ranks ----
"$BIN" train $RUN --out "$WORK/one" > "$WORK/one.out" 2>&1
check '[ $? -eq 0 ] && [ -f $WORK/one/$AD ]' "one-process run failed: $(tail -3 $WORK/one.out)"
timeout 300 $MPIRUN -np 2 "$BIN" train $RUN --out "$WORK/two" > "$WORK/two.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && [ -f $WORK/two/$AD ]' "2-rank run failed (rc $rc): $(tail -5 $WORK/two.out)"
out=$($DIFF "$WORK/one/$AD" "$WORK/two/$AD" 2>&1)
check '[ $? -eq 0 ]' "2 ranks vs one process: $out"
echo "2 ranks vs 1 process: $out"
d=$(same_steps "$WORK/one" "$WORK/two" 1 20)
check '[ $? -eq 0 ]' "2 ranks: step losses/tokens differ from one process: $d"
check '[ $(grep -c "\"event\":\"step\"" $WORK/two/metrics.jsonl) -eq 20 ]' "2 ranks: metrics.jsonl should have 20 step lines (rank 0 alone writes)"
check 'grep -q "\"ranks\":2" $WORK/two/metrics.jsonl && grep -q "\"comm_s\":" $WORK/two/metrics.jsonl' "2 ranks: step lines name the ranks and the communication time"
check '[ $(grep -c "finished at step 20/20" $WORK/two.out) -eq 1 ]' "2 ranks: exactly one rank reports (got $(grep -c 'finished at step' $WORK/two.out))"
check 'grep -q "2 ranks (mpi)" $WORK/two.out' "2 ranks: the CLI says it runs 2 ranks"
# the routing statistics over the global batch: the same router means as one process (to 1e-4 as printed)
r1=$(grep '"event":"eval","step":20' "$WORK/one/metrics.jsonl" | grep -o '"weight_mean":\[\[\[[0-9.e,-]*' | cut -c1-60)
r2=$(grep '"event":"eval","step":20' "$WORK/two/metrics.jsonl" | grep -o '"weight_mean":\[\[\[[0-9.e,-]*' | cut -c1-60)
check '[ -n "$r1" ] && [ "${r1:0:30}" = "${r2:0:30}" ]' "router weights at the last eval: '$r1' vs '$r2'"

# one rank under mpirun is the one-process run, bit for bit
timeout 300 $MPIRUN -np 1 "$BIN" train $RUN --out "$WORK/one_mpi" > "$WORK/one_mpi.out" 2>&1
check '[ $? -eq 0 ] && cmp -s $WORK/one/$AD $WORK/one_mpi/$AD' "mpirun -np 1 should give the one-process adapter bit for bit"

# the same with padded micro-batches (packing off: one example per row)
"$BIN" train $RUN --set packing=false --out "$WORK/one_pad" > "$WORK/one_pad.out" 2>&1
timeout 300 $MPIRUN -np 2 "$BIN" train $RUN --set packing=false --out "$WORK/two_pad" > "$WORK/two_pad.out" 2>&1
check '[ $? -eq 0 ]' "2-rank padded run failed: $(tail -3 $WORK/two_pad.out)"
out=$($DIFF "$WORK/one_pad/$AD" "$WORK/two_pad/$AD" 2>&1)
check '[ $? -eq 0 ]' "2 ranks vs one process, packing off: $out"
d=$(same_steps "$WORK/one_pad" "$WORK/two_pad" 1 20)
check '[ $? -eq 0 ]' "2 ranks, packing off: step losses/tokens differ: $d"
echo "2 ranks vs 1 process, packing off: $out"

# ---- 2. 3 ranks for 4 micro-batches ----
timeout 300 $MPIRUN -np 3 "$BIN" train $RUN --out "$WORK/three" > "$WORK/three.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "3-rank run failed (rc $rc): $(tail -5 $WORK/three.out)"
out=$($DIFF "$WORK/one/$AD" "$WORK/three/$AD" 2>&1)
check '[ $? -eq 0 ]' "3 ranks vs one process: $out"
echo "3 ranks vs 1 process: $out"
d=$(same_steps "$WORK/one" "$WORK/three" 1 20)
check '[ $? -eq 0 ]' "3 ranks: step losses/tokens differ: $d"

# ---- 3. resume with another K ----
cp -r "$WORK/two" "$WORK/two_r1"
rm -rf "$WORK/two_r1/checkpoints/step-20" "$WORK/two_r1/adapter"
"$BIN" train --resume "$WORK/two_r1" --quiet > "$WORK/two_r1.out" 2>&1
check '[ $? -eq 0 ]' "K=1 resume of the K=2 run failed: $(tail -3 $WORK/two_r1.out)"
check 'grep -q "\"event\":\"resume\"" $WORK/two_r1/metrics.jsonl' "the K=1 run did not resume from the checkpoint"
d=$(same_steps "$WORK/two" "$WORK/two_r1" 1 20)
check '[ $? -eq 0 ]' "K=1 resume from K=2: steps 11..20 differ (data order?): $d"
out=$($DIFF "$WORK/two/$AD" "$WORK/two_r1/$AD" 2>&1)
check '[ $? -eq 0 ]' "K=1 resume from K=2: adapter: $out"
echo "K=1 resumed from the K=2 checkpoint vs the K=2 run: $out"

cp -r "$WORK/one" "$WORK/one_r2"
rm -rf "$WORK/one_r2/checkpoints/step-20" "$WORK/one_r2/adapter"
timeout 300 $MPIRUN -np 2 "$BIN" train --resume "$WORK/one_r2" --quiet > "$WORK/one_r2.out" 2>&1
check '[ $? -eq 0 ]' "K=2 resume of the one-process run failed: $(tail -3 $WORK/one_r2.out)"
d=$(same_steps "$WORK/one" "$WORK/one_r2" 1 20)
check '[ $? -eq 0 ]' "K=2 resume from K=1: steps differ: $d"
out=$($DIFF "$WORK/one/$AD" "$WORK/one_r2/$AD" 2>&1)
check '[ $? -eq 0 ]' "K=2 resume from K=1: adapter: $out"
finish
