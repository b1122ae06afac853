# Choosing the device a user meets it: --device on generate, score, eval bbh and model info,
# the run config's "device" (train, --help-config), "auto", and an unknown device refused by
# every one of them with the list of the available devices (exit 1 for commands, 2 for a bad
# run config), before any model is loaded.
set -u
BIN=${HL_BIN:-./hydralora}
SHARED=${HL_SHARED:-../shared}
M=$SHARED/models/stories260K-hf
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/hl_device_cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; cat "$WORK/err" >&2; fi; }
run() { "$BIN" "$@" > "$WORK/out" 2> "$WORK/err"; echo $? > "$WORK/rc"; }
rc() { cat "$WORK/rc"; }
refused() { grep -q "unknown device 'tpu'" "$WORK/err" && grep -q "available: cpu" "$WORK/err"; }

printf '1 5 9 14 2\n1 7 7 3\n' > "$WORK/ids.txt"
printf '{"instruction":"Say hi.","output":"Hi."}\n{"instruction":"Count.","output":"1 2 3."}\n' > "$WORK/d.jsonl"

# an unknown device: every command says which devices there are
run generate -m "$M" --device tpu -p "Once" -n 4
check '[ $(rc) -eq 1 ] && refused' "generate --device tpu"
run score -m "$M" --ids "$WORK/ids.txt" --device tpu
check '[ $(rc) -eq 1 ] && refused' "score --ids --device tpu"
run score -m "$M" --data "$WORK/d.jsonl" --device tpu
check '[ $(rc) -ne 0 ] && refused' "score --data --device tpu"
run model info "$M" --device tpu
check '[ $(rc) -eq 1 ] && refused' "model info --device tpu"
run eval bbh -m "$M" --device tpu -o "$WORK/bbh" --data "$SHARED/datasets/bbh" --tasks snarks --limit 1
check '[ $(rc) -eq 1 ] && refused && [ ! -e "$WORK/bbh/samples.jsonl" ]' "eval bbh --device tpu (nothing written)"
run train --model "$M" --data "$WORK/d.jsonl" --set device=tpu --out "$WORK/run"
check '[ $(rc) -eq 2 ] && grep -q "device" $WORK/err && refused && [ ! -e "$WORK/run" ]' "train --set device=tpu"

# the field is part of the run config
run train --help-config
check '[ $(rc) -eq 0 ] && grep -q "^ *device" $WORK/out && grep -q "auto" $WORK/out' "--help-config lists device"
run train --model "$M" --data "$WORK/d.jsonl" --set device=CPU --print-config
check '[ $(rc) -eq 0 ] && grep -q "\"device\":[[:space:]]*\"CPU\"" $WORK/out' "device in the printed config"

# cpu and auto work and agree
run generate -m "$M" --device cpu -p "Once upon a time" -n 8 -q
cp "$WORK/out" "$WORK/gen_cpu"
check '[ $(rc) -eq 0 ] && [ -s $WORK/gen_cpu ]' "generate --device cpu"
run generate -m "$M" --device auto -p "Once upon a time" -n 8 -q
check '[ $(rc) -eq 0 ] && cmp -s $WORK/out $WORK/gen_cpu' "generate --device auto = cpu here"
run score -m "$M" --ids "$WORK/ids.txt" --device cpu
check '[ $(rc) -eq 0 ] && grep -q "^mean_loss=" $WORK/out' "score --device cpu"
run model info "$M" --device cpu --json
check '[ $(rc) -eq 0 ] && $PY -c "import json; d=json.load(open(\"$WORK/out\")); assert d[\"device\"][\"name\"] == \"cpu\" and (\"OpenBLAS\" in d[\"device\"][\"compute\"] or \"oneDNN\" in d[\"device\"][\"compute\"]); assert d[\"training\"][\"total\"] > d[\"training\"][\"weights\"]"' \
    "model info --json names the device and its plan"
run model info "$M" --device cpu
check '[ $(rc) -eq 0 ] && grep -q "^device  *cpu:" $WORK/out && grep -q "training .* on cpu" $WORK/out' "model info shows the device"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
