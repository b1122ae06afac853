# Malformed data: bad lines are reported with their line number and skipped, the run still
# trains on the good records; a file with no usable record and bad config values fail with
# clear messages (field, value, allowed range).
. "$(dirname "$0")/train_common.sh"

BAD=$WORK/bad.jsonl
{ head -20 "$DATA"; echo '{"instruction": "broken json", "output": '; head -40 "$DATA" | tail -20;
  echo '["not", "an", "object"]'; echo '{"instruction": "no output field"}'; tail -8 "$DATA"; } > "$BAD"
"$BIN" train $COMMON --set max_steps=2 --data "$BAD" --out "$WORK/a" > "$WORK/a.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "training on partly malformed data should succeed: $(tail -3 $WORK/a.out)"
check 'grep -q "line 21" $WORK/a.out' "the broken JSON line (21) should be reported: $(cat $WORK/a.out)"
check 'grep -q "3 malformed" $WORK/a.out' "3 malformed lines should be counted"
check 'grep -q "\"malformed_skipped\":3" $WORK/a/metrics.jsonl' "metrics start event counts 3 malformed lines"

printf 'not json at all\n{"x": 1}\n' > "$WORK/none.jsonl"
"$BIN" train $COMMON --data "$WORK/none.jsonl" --out "$WORK/b" > "$WORK/b.out" 2>&1
rc=$?
check '[ $rc -eq 1 ]' "no usable record should fail (got $rc)"
check 'grep -q "none.jsonl" $WORK/b.out' "error should name the file: $(cat $WORK/b.out)"

"$BIN" train $COMMON --data "$WORK/missing.jsonl" --out "$WORK/c" > "$WORK/c.out" 2>&1
rc=$?
check '[ $rc -eq 1 ] && grep -q "missing.jsonl" $WORK/c.out' "missing data file should fail naming it"

"$BIN" train $COMMON --set lr=50 --out "$WORK/d" > "$WORK/d.out" 2>&1
rc=$?
check '[ $rc -eq 2 ] && grep -q "lr: 50 is out of range (0, 10\]" $WORK/d.out' "bad lr: $(cat $WORK/d.out)"
"$BIN" train $COMMON --set variant=hydrra --out "$WORK/d" > "$WORK/d.out" 2>&1
check 'grep -q "hydra, lora, lora-split, uniform" $WORK/d.out' "bad variant should list choices: $(cat $WORK/d.out)"
"$BIN" train $COMMON --set lerning_rate=1 --out "$WORK/d" > "$WORK/d.out" 2>&1
check 'grep -q "unknown config field" $WORK/d.out' "unknown field: $(cat $WORK/d.out)"
printf '{"model": "x", "r": 0}\n' > "$WORK/cfg.json"
"$BIN" train --config "$WORK/cfg.json" --data "$DATA" > "$WORK/e.out" 2>&1
check 'grep -q "r: 0 is out of range \[1, 4096\]" $WORK/e.out' "bad r in a config file: $(cat $WORK/e.out)"
finish
