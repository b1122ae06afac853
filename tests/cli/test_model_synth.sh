# `hydralora model synth` as a user meets it: a tiny random-weight model directory that loads back
# (`model info`), generates a few tokens, is clearly labelled random (config.json field, README.txt),
# is the same bytes for the same seed, takes a given tokenizer, and refuses to overwrite or to take
# a bad shape/dtype (exit 2 usage, exit 1 errors, nothing left behind).
set -u
BIN=${HL_BIN:-./hydralora}
SHARED=${HL_SHARED:-../shared}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/hl_synth_cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; cat "$WORK/err" >&2; fi; }
run() { "$BIN" "$@" > "$WORK/out" 2> "$WORK/err"; echo $? > "$WORK/rc"; }
rc() { cat "$WORK/rc"; }
jget() { $PY -c "import json,sys; d=json.load(open('$1')); print($2)"; }

run model synth --help
check '[ $(rc) -eq 0 ] && grep -q -- "--shape" $WORK/out && grep -q "RANDOM" $WORK/out' "synth --help"
run model synth --out "$WORK/x"
check '[ $(rc) -eq 2 ] && grep -q "shape" $WORK/err' "missing --shape is a usage error"
run model synth --shape 70b --out "$WORK/x"
check '[ $(rc) -eq 2 ] && grep -q "7b, 13b or tiny" $WORK/err && [ ! -e "$WORK/x" ]' "unknown shape names the known ones"
run model synth --shape tiny --dtype f8 --out "$WORK/x"
check '[ $(rc) -eq 2 ] && [ ! -e "$WORK/x" ]' "bad dtype"

run model synth --shape tiny --layers 3 --dtype f16 --seed 5 --out "$WORK/m"
check '[ $(rc) -eq 0 ] && grep -q "RANDOM" $WORK/out' "synth tiny"
check '[ -f "$WORK/m/README.txt" ] && grep -q "NOT A TRAINED MODEL" "$WORK/m/README.txt"' "README says random"
check '[ "$(jget "$WORK/m/config.json" "d[\"hydralora_synthetic\"][\"random_weights\"], d[\"num_hidden_layers\"], d[\"torch_dtype\"]")" = "True 3 float16" ]' "config.json labelled random, 3 layers, f16"
check '[ -f "$WORK/m/model.safetensors.index.json" ] && [ -f "$WORK/m/model-00001-of-00001.safetensors" ] && [ -f "$WORK/m/tokenizer.bin" ]' "sharded safetensors with an index and a tokenizer"
check '[ -z "$(ls -d $WORK/m.tmp-* 2>/dev/null)" ]' "no temporary directory left"
run model info --json "$WORK/m"
check '[ $(rc) -eq 0 ] && [ "$(jget "$WORK/out" "d[\"format\"], d[\"dtype\"], d[\"config\"][\"n_layers\"], d[\"config\"][\"dim\"], d[\"config\"][\"vocab_size\"]")" = "hf-safetensors F16 3 128 512" ]' "model info reads it back"
run generate -m "$WORK/m" -n 5 -p "Once upon a time" -q
check '[ $(rc) -eq 0 ] && grep -q "^Once upon a time" $WORK/out' "generate runs on it"

# same seed -> same bytes; another seed -> other bytes
run model synth --shape tiny --layers 3 --dtype f16 --seed 5 --out "$WORK/m2"
check 'cmp -s "$WORK/m/model-00001-of-00001.safetensors" "$WORK/m2/model-00001-of-00001.safetensors"' "same seed, same weights"
run model synth --shape tiny --layers 3 --dtype f16 --seed 6 --out "$WORK/m3"
check '! cmp -s "$WORK/m/model-00001-of-00001.safetensors" "$WORK/m3/model-00001-of-00001.safetensors"' "other seed, other weights"

# an existing directory is never touched
echo keep > "$WORK/m/keep.txt"
run model synth --shape tiny --out "$WORK/m"
check '[ $(rc) -eq 1 ] && grep -q "already exists" $WORK/err && [ -f "$WORK/m/keep.txt" ]' "refuses to overwrite"

# a given tokenizer is copied in under its standard name (and must match the vocabulary)
run model synth --shape tiny --tokenizer "$SHARED/models/stories260K/tok512.bin" --out "$WORK/t"
check '[ $(rc) -eq 0 ] && cmp -s "$WORK/t/tokenizer.bin" "$SHARED/models/stories260K/tok512.bin" && grep -q "a copy of" "$WORK/t/README.txt"' "tokenizer copied in"
run model synth --shape tiny --tokenizer "$SHARED/models/llama2c-tokenizer/tokenizer.model" --out "$WORK/t2"
check '[ $(rc) -eq 1 ] && grep -q "32000" $WORK/err && [ ! -e "$WORK/t2" ] && [ -z "$(ls -d $WORK/t2.tmp-* 2>/dev/null)" ]' "a tokenizer of another vocabulary is refused, nothing left"

# bf16 and the 7B shape with one layer (embedding and head of the real size)
run model synth --shape 7b --layers 1 --out "$WORK/b"
check '[ $(rc) -eq 0 ] && [ "$(jget "$WORK/b/config.json" "d[\"hidden_size\"], d[\"intermediate_size\"], d[\"vocab_size\"], d[\"torch_dtype\"]")" = "4096 11008 32000 bfloat16" ]' "7b shape, bf16"
run model info --json "$WORK/b"
check '[ $(rc) -eq 0 ] && [ "$(jget "$WORK/out" "d[\"params\"]")" = "464531456" ]' "7b one-layer parameter count"

echo "$PASSES passed, $FAILS failed"
[ $FAILS -eq 0 ]
