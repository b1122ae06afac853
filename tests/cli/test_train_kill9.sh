# kill -9 at an arbitrary moment leaves a run that resumes from its last complete
# checkpoint (half-written temporary checkpoint directories are ignored and removed), and
# the resumed run's losses equal an uninterrupted run's, bit for bit.
. "$(dirname "$0")/train_common.sh"

"$BIN" train $COMMON --out "$WORK/a" > "$WORK/a.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "uninterrupted run failed: $(tail -3 $WORK/a.out)"

HL_TEST_STEP_DELAY_MS=300 "$TBIN" train $COMMON --out "$WORK/b" > "$WORK/b.out" 2>&1 &
pid=$!
wait_steps "$WORK/b" 6 120 || fail "run b never reached step 6"
kill -9 $pid
wait $pid 2>/dev/null
check '[ -f $WORK/b/checkpoints/step-4/state.json ]' "step-4 checkpoint should exist after kill -9"
check '[ ! -d $WORK/b/adapter ]' "a killed run has no final adapter"
# Simulate a kill in the middle of a save: a half-written temporary checkpoint directory and
# a torn last line in metrics.jsonl.
mkdir -p "$WORK/b/checkpoints/.tmp-step-8-XXXXXX"
echo "garbage" > "$WORK/b/checkpoints/.tmp-step-8-XXXXXX/state.safetensors"
printf '{"event":"step","step":99,"loss":1' >> "$WORK/b/metrics.jsonl"

"$BIN" train --resume "$WORK/b" > "$WORK/b2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "resume after kill -9 failed: $(tail -3 $WORK/b2.out)"
check 'grep -q "resumed from checkpoint step-" $WORK/b2.out' "resume should name its checkpoint"
check '[ ! -d $WORK/b/checkpoints/.tmp-step-8-XXXXXX ]' "temporary checkpoint directory should be removed"
if diff <(steps_hex "$WORK/a") <(steps_hex "$WORK/b") > "$WORK/diff"; then pass; else
  fail "loss sequence after kill -9 + resume differs:"; cat "$WORK/diff" >&2; fi
check '! grep -q "\"step\":99" $WORK/b/metrics.jsonl' "torn metrics line should be dropped"

# A run killed before its first checkpoint resumes from step 0.
HL_TEST_STEP_DELAY_MS=300 "$TBIN" train $COMMON --set save_every=100 --out "$WORK/c" > "$WORK/c.out" 2>&1 &
pid=$!
wait_steps "$WORK/c" 2 120 || fail "run c never reached step 2"
kill -9 $pid
wait $pid 2>/dev/null
"$BIN" train --resume "$WORK/c" --set save_every=100 > "$WORK/c2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "resume without checkpoint failed: $(tail -3 $WORK/c2.out)"
check 'grep -q "starting from step 0" $WORK/c2.out' "resume without a checkpoint should say it starts at step 0"
if diff <(steps_hex "$WORK/a") <(steps_hex "$WORK/c") > "$WORK/diff"; then pass; else
  fail "restart-from-0 losses differ:"; cat "$WORK/diff" >&2; fi
finish
