# Shared setup for the tests/cli/test_train_*.sh scripts (sourced, not a test itself).
# Gives: $BIN, $TBIN (hydralora-testhooks: the same CLI, plus failures injected from HL_TEST_*
# variables), $SHARED, $WORK (a temp dir removed on exit), $DATA (a small instruction
# data set), $COMMON (train flags for a short, deterministic run), fail(), steps_hex().
set -u
BIN=${HL_BIN:-./hydralora}
TBIN=${HL_TESTHOOKS_BIN:-./hydralora-testhooks}
SHARED=${HL_SHARED:-../shared}
MODEL=$SHARED/models/stories260K-hf
WORK=$(mktemp -d /tmp/hl_train_test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; fi; }
finish() { echo "$PASSES passed, $FAILS failed"; [ "$FAILS" -eq 0 ]; }

# 48 short records: "instruction/input/output" with varied lengths.
DATA=$WORK/data.jsonl
for i in $(seq 1 48); do
  a=$((i * 7 % 23)); b=$((i * 5 % 17))
  if [ $((i % 3)) -eq 0 ]; then
    printf '{"instruction":"Add the two numbers.","input":"%d and %d","output":"The sum is %d."}\n' $a $b $((a + b))
  else
    printf '{"instruction":"What is %d plus %d?","input":"","output":"%d plus %d is %d. Lily was happy."}\n' $a $b $a $b $((a + b))
  fi
done > "$DATA"

COMMON="--model $MODEL --data $DATA --set max_steps=12 --set max_len=64 --set micro_batch=2 --set grad_accum=2 \
 --set save_every=4 --set eval_every=4 --set val_split=6 --set threads=2 --set keep_last=0 --quiet"

# The exact loss sequence of a run: "step loss_hex" per line, from metrics.jsonl.
steps_hex() {
  grep '"event":"step"' "$1/metrics.jsonl" | sed 's/.*"step":\([0-9]*\),.*"loss_hex":"\([^"]*\)".*/\1 \2/'
}

# Wait (up to $3 s) until the run dir $1 has at least $2 step lines in metrics.jsonl.
wait_steps() {
  local t=0
  while [ $t -lt $(( $3 * 10 )) ]; do
    local n=0
    [ -f "$1/metrics.jsonl" ] && n=$(grep -c '"event":"step"' "$1/metrics.jsonl" || true)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1; t=$((t + 1))
  done
  return 1
}
