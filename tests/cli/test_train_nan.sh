# A loss that becomes NaN stops the run with a message naming the step, keeps the last good
# checkpoint (no checkpoint of the bad step), exits 1, and the run can be resumed from it.
. "$(dirname "$0")/train_common.sh"

HL_TEST_NAN_STEP=7 "$TBIN" train $COMMON --out "$WORK/a" > "$WORK/a.out" 2>&1
rc=$?
check '[ $rc -eq 1 ]' "NaN run should exit 1 (got $rc)"
check 'grep -q "loss is nan at step 7" $WORK/a.out' "message should name step 7: $(tail -2 $WORK/a.out)"
check 'grep -q "step-4" $WORK/a.out' "message should name the last good checkpoint step-4"
check '[ -f $WORK/a/checkpoints/step-4/state.json ]' "step-4 checkpoint kept"
check '[ ! -e $WORK/a/checkpoints/step-7 ] && [ ! -e $WORK/a/checkpoints/step-8 ]' "no checkpoint after the NaN"
check '[ $(steps_hex $WORK/a | wc -l) -eq 6 ]' "steps 1-6 logged, not the NaN step"
check 'grep -q "\"event\":\"error\"" $WORK/a/metrics.jsonl' "metrics should record the error"
# The saved parameters are finite (read back by the resume below: it must reach the end).
"$BIN" train --resume "$WORK/a" > "$WORK/a2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "resume from the last good checkpoint failed: $(tail -2 $WORK/a2.out)"
check 'grep -q "resumed from checkpoint step-4" $WORK/a2.out' "resume should start at step-4"
finish
