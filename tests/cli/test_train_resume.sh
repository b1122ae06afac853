# SIGINT (then SIGTERM) mid-run finishes the step, checkpoints and exits 130 (SIGTERM: 143, so
# that `train && export` stops); --resume then
# continues so that the loss sequence equals an uninterrupted run with the same seed, bit for bit.
. "$(dirname "$0")/train_common.sh"

"$BIN" train $COMMON --out "$WORK/a" > "$WORK/a.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "uninterrupted run failed: $(tail -3 $WORK/a.out)"
check '[ $(steps_hex $WORK/a | wc -l) -eq 12 ]' "uninterrupted run should log 12 steps"

HL_TEST_STEP_DELAY_MS=400 "$TBIN" train $COMMON --out "$WORK/b" > "$WORK/b.out" 2>&1 &
pid=$!
wait_steps "$WORK/b" 5 120 || fail "run b never reached step 5"
kill -INT $pid
wait $pid
rc=$?
check '[ $rc -eq 130 ]' "SIGINT should end with exit 130 (got $rc): $(tail -3 $WORK/b.out)"
n=$(steps_hex "$WORK/b" | wc -l)
check '[ $n -ge 5 ] && [ $n -lt 12 ]' "run b should have stopped mid-way (has $n steps)"
check '[ -f $WORK/b/checkpoints/step-$n/state.json ]' "SIGINT should checkpoint the last step ($n)"
check 'grep -q "stopped" $WORK/b.out' "the CLI should say it stopped"

# Resume, and interrupt once more with SIGTERM (same contract as SIGINT).
HL_TEST_STEP_DELAY_MS=400 "$TBIN" train --resume "$WORK/b" --quiet > "$WORK/b1.out" 2>&1 &
pid=$!
wait_steps "$WORK/b" $((n + 2)) 120 || fail "resumed run b never reached step $((n + 2))"
kill -TERM $pid
wait $pid
rc=$?
m=$(steps_hex "$WORK/b" | wc -l)
check '[ $rc -eq 143 ] && [ $m -gt $n ] && [ $m -lt 12 ]' "SIGTERM after resume: rc $rc (want 143), $n -> $m steps"
check '[ -f $WORK/b/checkpoints/step-$m/state.json ]' "SIGTERM should checkpoint step $m"

"$BIN" train --resume "$WORK/b" --quiet > "$WORK/b2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "resume failed: $(tail -3 $WORK/b2.out)"
if diff <(steps_hex "$WORK/a") <(steps_hex "$WORK/b") > "$WORK/diff"; then pass; else
  fail "resumed loss sequence differs from the uninterrupted one:"; cat "$WORK/diff" >&2; fi
check '[ -f $WORK/b/adapter/adapter_model.safetensors ] && [ -f $WORK/b/adapter/adapter_model.bin ]' "finished run should export adapter/"
check 'cmp -s $WORK/a/adapter/adapter_model.safetensors $WORK/b/adapter/adapter_model.safetensors' "final adapters differ"
# A fresh start in the same directory is refused without --overwrite.
"$BIN" train $COMMON --out "$WORK/b" > "$WORK/c.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && grep -q "already holds a run" $WORK/c.out' "a new run over an existing one must be refused"
finish
