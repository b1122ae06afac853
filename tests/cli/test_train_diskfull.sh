# A full disk while saving a checkpoint leaves the previous checkpoint intact, says so, and
# the run can be resumed from it (elsewhere) to the same losses as an uninterrupted run.
# Real ENOSPC on a 2 MiB tmpfs when we may mount one (root), and always the injected failure
# (HL_TEST_CKPT_ENOSPC=<step> of the test-only hydralora-testhooks, see tests/hooks/).
. "$(dirname "$0")/train_common.sh"

"$BIN" train $COMMON --out "$WORK/ref" > "$WORK/ref.out" 2>&1 || fail "reference run failed"

check_full() { # $1 run dir, $2 output file, $3 label
  RD=$1; RO=$2; RL=$3
  check 'grep -q "checkpoint at step 8 not written" $RO' "$RL: should say step 8 was not written: $(tail -2 $RO)"
  check 'grep -q "previous checkpoint step-4 is intact" $RO' "$RL: should say step-4 is intact"
  check 'grep -qi "space" $RO' "$RL: should mention the full disk"
  check '[ -f $RD/checkpoints/step-4/state.json ] && [ -f $RD/checkpoints/step-4/state.safetensors ]' "$RL: step-4 intact"
  check '[ ! -e $RD/checkpoints/step-8 ]' "$RL: no step-8"
  check '[ -z "$(ls -A $RD/checkpoints | grep tmp)" ]' "$RL: no temporary directories left: $(ls -A $RD/checkpoints)"
  cp -r "$RD" "$WORK/copy-$RL"
  "$BIN" train --resume "$WORK/copy-$RL" > "$WORK/resume-$RL.out" 2>&1
  local rc=$?
  check '[ $rc -eq 0 ]' "$RL: resume from step-4 failed: $(tail -2 $WORK/resume-$RL.out)"
  if diff <(steps_hex "$WORK/ref") <(steps_hex "$WORK/copy-$RL") > "$WORK/diff"; then pass; else
    fail "$RL: losses after resume differ"; cat "$WORK/diff" >&2; fi
}

HL_TEST_CKPT_ENOSPC=8 "$TBIN" train $COMMON --out "$WORK/inj" > "$WORK/inj.out" 2>&1
rc=$?
check '[ $rc -eq 1 ]' "injected ENOSPC should fail the run (rc $rc)"
check_full "$WORK/inj" "$WORK/inj.out" injected

mkdir -p "$WORK/small"
if mount -t tmpfs -o size=1600k tmpfs "$WORK/small" 2>/dev/null; then
  trap 'umount "$WORK/small" 2>/dev/null; rm -rf "$WORK"' EXIT
  # Each checkpoint of this adapter is ~1 MB: step-4 fits, step-8 does not.
  "$BIN" train $COMMON --out "$WORK/small/run" > "$WORK/tmpfs.out" 2>&1
  rc=$?
  check '[ $rc -eq 1 ]' "tmpfs: a full disk should fail the run (rc $rc): $(tail -2 $WORK/tmpfs.out)"
  check_full "$WORK/small/run" "$WORK/tmpfs.out" tmpfs
  umount "$WORK/small"
else
  echo "note: cannot mount a tmpfs here (not root?); only the injected failure was tested"
fi
finish
