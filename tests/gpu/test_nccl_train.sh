#!/usr/bin/env bash
# hydralora train on the GPU with its gradients summed through NCCL (one rank per GPU; here one
# rank under mpirun) against the same run without NCCL: 20 steps of stories260K-hf, 4 micro-
# batches of 2: the run says it sums through NCCL, and the adapter and every step's loss are bit
# for bit those of the plain GPU run. Exits 77 without a usable GPU, without NCCL in the build or
# without mpirun.
set -u
. "$(dirname "$0")/../cli/train_common.sh"
B=${HL_BUILD_DIR:-.}
export NCCL_NVLS_ENABLE=0 # NVLink multicast off (the GPU machines here require it)
if ! command -v mpirun >/dev/null 2>&1; then echo "skipped: mpirun not found"; exit 77; fi
if ! "$B/mpi_collectives" info 2>/dev/null | grep -q "nccl=1"; then echo "skipped: this build has no NCCL (HL_NCCL)"; exit 77; fi
if ! "$BIN" model info "$MODEL" --device cuda >/dev/null 2>&1; then echo "skipped: no CUDA device"; exit 77; fi
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
RUN="--model $MODEL --data $DATA --set device=cuda --set max_steps=20 --set max_len=64 --set micro_batch=2 \
 --set grad_accum=4 --set save_every=10 --set eval_every=5 --set val_split=6"
AD=adapter/adapter_model.safetensors

"$BIN" train $RUN --out "$WORK/plain" > "$WORK/plain.out" 2>&1
check '[ $? -eq 0 ] && [ -f $WORK/plain/$AD ]' "plain GPU run failed: $(tail -3 $WORK/plain.out)"
timeout 300 mpirun $ROOT --mca btl self,vader --mca pml ob1 --mca btl_vader_single_copy_mechanism none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH -np 1 \
    "$BIN" train $RUN --out "$WORK/nccl" > "$WORK/nccl.out" 2>&1
check '[ $? -eq 0 ] && [ -f $WORK/nccl/$AD ]' "GPU run under mpirun failed: $(tail -3 $WORK/nccl.out)"
check 'grep -q "GPU gradients are summed through NCCL over 1 rank" $WORK/nccl.out' "the mpirun run should say it sums through NCCL"
check 'cmp -s $WORK/plain/$AD $WORK/nccl/$AD' "the adapter with NCCL (1 rank) should be bit-identical to the plain GPU run"
check '[ "$(steps_hex $WORK/plain)" = "$(steps_hex $WORK/nccl)" ] && [ $(steps_hex $WORK/nccl | wc -l) -eq 20 ]' \
    "the 20 step losses should be bit-identical"
echo "plain vs NCCL: $(steps_hex $WORK/plain | tail -1) / $(steps_hex $WORK/nccl | tail -1)"
finish
