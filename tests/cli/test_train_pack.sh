# Packed micro-batches in training (the run-config field `packing`, default on):
#  - the field is listed with its default and a bad value is refused with a clear message;
#  - every step of metrics.jsonl records tokens, tokens_computed and padding_share, the progress
#    line shows the padding share, and packing computes less padding than padded batches;
#  - a run of whole epochs knows its step count before step 1 (from the lengths and the seeded
#    order) and ends exactly when the epochs are consumed;
#  - SIGINT mid-run checkpoints; --resume continues the packed run bit for bit (loss sequence and
#    final adapter equal to an uninterrupted run).
. "$(dirname "$0")/train_common.sh"
# rows of 128 tokens hold 3-4 of these records (32-45 tokens each); padded, one per row
COMMON="$COMMON --set max_len=128"

"$BIN" train --help-config > "$WORK/fields.out" 2>&1
check 'grep -A1 "^  packing " $WORK/fields.out | grep -q "default true"' "--help-config should list packing (default true)"
"$BIN" train $COMMON --set packing=maybe --out "$WORK/bad" > "$WORK/bad.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && grep -q "hydralora train: .*packing" $WORK/bad.out' "packing=maybe should be refused naming the field (rc $rc)"
"$BIN" train $COMMON --print-config > "$WORK/cfg.out" 2>&1
check 'grep -Eq "\"packing\":[[:space:]]*true" $WORK/cfg.out' "the printed config should hold packing: true"

# sum of a metrics.jsonl step field over the run
field_sum() { grep '"event":"step"' "$1/metrics.jsonl" | sed "s/.*\"$2\":\([0-9.]*\).*/\1/" | awk '{s += $1} END {print s + 0}'; }

"$BIN" train $COMMON --out "$WORK/a" > "$WORK/a.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "packed run failed: $(tail -3 $WORK/a.out)"
check '[ $(steps_hex $WORK/a | wc -l) -eq 12 ]' "packed run should log 12 steps"
check '[ $(grep "\"event\":\"step\"" $WORK/a/metrics.jsonl | grep -c "\"padding_share\":0\.[0-9]*,") -eq 12 ]' \
  "every step line should carry padding_share"
"$BIN" train $COMMON --set packing=false --out "$WORK/p" > "$WORK/p.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "padded run failed: $(tail -3 $WORK/p.out)"
ta=$(field_sum "$WORK/a" tokens); ca=$(field_sum "$WORK/a" tokens_computed)
tp=$(field_sum "$WORK/p" tokens); cp=$(field_sum "$WORK/p" tokens_computed)
echo "packed: $ta real of $ca computed; padded: $tp real of $cp computed"
check 'awk -v a=$ta -v b=$ca -v c=$tp -v d=$cp "BEGIN { exit !(b > 0 && d > 0 && (b - a) / b < (d - c) / d) }"' \
  "packing should compute a smaller padding share ($ta/$ca) than padded batches ($tp/$cp)"
check 'awk -v a=$ta -v c=$tp "BEGIN { exit !(a > 1.5 * c) }"' \
  "12 packed steps should see more examples' tokens than 12 padded steps of 2 rows ($ta vs $tp)"
if diff <(steps_hex "$WORK/a") <(steps_hex "$WORK/p") > /dev/null; then fail "packed and padded runs gave the same losses"; else pass; fi

# the progress line (not --quiet) shows the padding share
"$BIN" train $(echo "$COMMON" | sed 's/--quiet//') --set max_steps=2 --out "$WORK/l" > "$WORK/l.out" 2>&1
check 'grep -q "tok/s  pad [0-9.]*%" $WORK/l.out' "the progress line should show 'pad N%': $(grep step $WORK/l.out | head -2)"

# whole epochs: the step count is known up front and the run ends when 2 epochs are consumed
"$BIN" train $COMMON --set max_steps=0 --set epochs=2 --out "$WORK/e" > "$WORK/e.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "epoch run failed: $(tail -3 $WORK/e.out)"
total=$(sed -n 's/.*"event":"start".*"total_steps":\([0-9]*\).*/\1/p' "$WORK/e/metrics.jsonl" | head -1)
n=$(steps_hex "$WORK/e" | wc -l)
last_epoch=$(grep '"event":"step"' "$WORK/e/metrics.jsonl" | tail -1 | sed 's/.*"epoch":\([0-9.]*\),.*/\1/')
prev_epoch=$(grep '"event":"step"' "$WORK/e/metrics.jsonl" | tail -2 | head -1 | sed 's/.*"epoch":\([0-9.]*\),.*/\1/')
check '[ "$n" = "$total" ] && awk -v l=$last_epoch -v p=$prev_epoch "BEGIN { exit !(l >= 2 && p < 2) }"' \
  "2 epochs: $n steps logged of $total planned; epoch $prev_epoch then $last_epoch (want < 2 then >= 2)"
check '[ "$total" -lt 21 ]' "2 packed epochs of 42 records should take fewer steps than padded (21): $total"

# kill mid-run, resume: bit for bit
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
"$BIN" train --resume "$WORK/b" --quiet > "$WORK/b2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "resume failed: $(tail -3 $WORK/b2.out)"
if diff <(steps_hex "$WORK/a") <(steps_hex "$WORK/b") > "$WORK/diff"; then pass; else
  fail "resumed packed loss sequence differs from the uninterrupted one:"; cat "$WORK/diff" >&2; fi
check 'cmp -s $WORK/a/adapter/adapter_model.safetensors $WORK/b/adapter/adapter_model.safetensors' "final adapters differ"
# resuming with packing switched off would change the math: refused
"$BIN" train --resume "$WORK/b" --set packing=false --quiet > "$WORK/b3.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && grep -q packing $WORK/b3.out' "resume with packing=false should be refused: $(tail -2 $WORK/b3.out)"
# a run saved before the packing field existed (its config.json has no "packing") trained padded:
# resuming it continues padded, bit for bit
cp -r "$WORK/p" "$WORK/old"
sed -i '/"packing"/d' "$WORK/old/config.json"
rm -rf "$WORK/old/checkpoints/step-8" "$WORK/old/checkpoints/step-12" "$WORK/old/adapter"
check '! grep -q packing $WORK/old/config.json && [ -d $WORK/old/checkpoints/step-4 ]' "old-run fixture"
"$BIN" train --resume "$WORK/old" --quiet > "$WORK/old.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "resuming a run without the packing field failed: $(tail -3 $WORK/old.out)"
if diff <(steps_hex "$WORK/p") <(steps_hex "$WORK/old") > "$WORK/diff"; then pass; else
  fail "a pre-packing run should resume padded, bit for bit:"; cat "$WORK/diff" >&2; fi
finish
