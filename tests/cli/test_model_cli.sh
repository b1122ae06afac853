# `hydralora model info` and `hydralora generate` as a user meets them: the four stories260K
# forms, --json, estimates for LLaMA-2-7B from its config.json alone (bf16 weights 13.48 GB,
# docs/file-formats.md §6), the golden greedy story streamed to stdout, usage errors (exit 2), clear
# errors (exit 1).
set -u
BIN=${HL_BIN:-./hydralora}
SHARED=${HL_SHARED:-../shared}
M=$SHARED/models
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/hl_model_cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; cat "$WORK/err" >&2; fi; }
run() { "$BIN" "$@" > "$WORK/out" 2> "$WORK/err"; echo $? > "$WORK/rc"; }
rc() { cat "$WORK/rc"; }
jget() { $PY -c "import json,sys; d=json.load(open('$WORK/out')); print($1)"; }

run model
check '[ $(rc) -eq 2 ]' "model without subcommand is a usage error"
run model info --help
check '[ $(rc) -eq 0 ] && grep -q -- "--json" $WORK/out && grep -q "KV cache" $WORK/out' "model info --help"
run model info
check '[ $(rc) -eq 2 ]' "model info without PATH"
run model info "$WORK/nope"
check '[ $(rc) -eq 1 ] && grep -q "no such file" $WORK/err' "missing model: exit 1 with the reason"

for form in stories260K/stories260K.bin stories260K-hf stories260K-hf-f16-sharded stories260K-gguf/stories260K.gguf; do
    run model info --json "$M/$form"
    check '[ $(rc) -eq 0 ]' "model info $form"
    check '[ "$(jget "d[\"config\"][\"dim\"], d[\"config\"][\"n_layers\"], d[\"config\"][\"n_kv_heads\"], d[\"config\"][\"vocab_size\"]")" = "64 5 4 512" ]' "$form config"
done
run model info --json "$M/stories260K/stories260K.bin"
check '[ "$(jget "d[\"format\"], d[\"params\"], d[\"dtype\"]")" = "llama2c-v0 260032 F32" ]' "v0 format, 260,032 params"
run model info --json "$M/stories260K-hf-f16-sharded"
check '[ "$(jget "d[\"format\"], d[\"files\"], d[\"dtype\"], d[\"config\"][\"tie_word_embeddings\"]")" = "hf-safetensors 2 F16 False" ]' "sharded f16 untied"
run model info --json "$M/stories260K-gguf/stories260K.gguf"
check '[ "$(jget "d[\"config\"][\"max_seq_len\"], d[\"tokenizer\"][\"pieces\"]")" = "2048 512" ]' "gguf context 2048 and embedded vocab"
run model info "$M/stories260K-hf"
check '[ $(rc) -eq 0 ] && grep -q "260,032" $WORK/out && grep -q "tokenizer.model" $WORK/out' "text output"
check 'grep -q "^matmuls      compute auto (default): OpenBLAS f32$" $WORK/out' "f32 model: auto runs the f32 matmuls"
# the matmul path of each compute mode, chosen on this machine (oneDNN bf16 only where the CPU has bf16)
run model info --json "$M/stories260K-hf-f16-sharded"
check '[ "$(jget "d[\"device\"][\"matmuls\"][\"f32\"], d[\"device\"][\"matmuls\"][\"auto\"]")" = "OpenBLAS f32 OpenBLAS f32 (matrices too small to gain from bf16)" ]' "tiny f16 model: auto stays f32 and says why"
check '[ "$(jget "int(d[\"device\"][\"matmuls\"][\"bf16\"].startswith((\"oneDNN\", \"OpenBLAS f32 (no bf16 matmul on this CPU\", \"OpenBLAS f32 (built without oneDNN\")))")" = "1" ]' "bf16: oneDNN or the named fallback"

# LLaMA-2-7B planning from config.json alone (docs/file-formats.md §6 config, bf16 storage).
mkdir -p "$WORK/llama7b"
cat > "$WORK/llama7b/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
 "hidden_size": 4096, "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
 "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32, "rms_norm_eps": 1e-05,
 "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000}
JSON
run model info --json "$WORK/llama7b"
check '[ $(rc) -eq 0 ]' "7B config-only info"
check '[ "$(jget "d[\"params\"], d[\"weight_bytes\"], d[\"dtype\"]")" = "6738415616 13476831232 BF16" ]' "7B: 6,738,415,616 params, 13.48 GB bf16"
# adapter gate/up/down r=8 N=4: per layer 2*(8*4096 + 4*11008*8 + 4*4096) + (8*11008 + 4*4096*8 + 4*11008)
check '[ "$(jget "d[\"training\"][\"adapter\"][\"params\"]")" = "34111488" ]' "7B adapter parameter count"
# KV cache f32 at 4096 context: 2 * 32 layers * 4096 * 4096 * 4 B
check '[ "$(jget "d[\"inference\"][\"kv_cache\"]")" = "4294967296" ]' "7B KV cache"
check '[ "$(jget "int(14e9 < d[\"training\"][\"total_checkpointing\"] < 24e9 and 17e9 < d[\"inference\"][\"total\"] < 19e9)")" = "1" ]' "7B totals are realistic"
check '[ "$(jget "int(d[\"device\"][\"matmuls\"][\"auto\"] == d[\"device\"][\"matmuls\"][\"bf16\"])")" = "1" ]' "7B bf16: auto is bf16 compute"

# generate: the golden greedy story (docs/file-formats.md §7.1) streamed to stdout.
cat > "$WORK/golden" <<'TXT'
Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.
Lily's mom said, "Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with your ball, but I can't find it."
Lily was sad and didn't know what to do. She said, "I'm sorry, Lily. I didn't know what to do."
Lily didn't want to help her mom, so she said, "I'm sorry, mom. I didn't know what to do." Her mom said, "Don't worry, Lily. We can help you.
TXT
run generate -m "$M/stories260K/stories260K.bin" -z "$M/stories260K/tok512.bin" -q
check '[ $(rc) -eq 0 ] && cmp -s $WORK/out $WORK/golden' "generate from the .bin reproduces the golden story"
run generate -m "$M/stories260K/stories260K.bin" -z "$M/stories260K/tok512.bin" -q --compute f32
check '[ $(rc) -eq 0 ] && cmp -s $WORK/out $WORK/golden' "generate --compute f32 reproduces the golden story"
run generate -m "$M/stories260K/stories260K.bin" -z "$M/stories260K/tok512.bin" -q --compute bf16 --max-tokens 8
check '[ $(rc) -eq 0 ] && grep -q "^Once upon a time" $WORK/out' "generate --compute bf16"
run generate -m "$M/stories260K/stories260K.bin" --compute fp8
check '[ $(rc) -eq 2 ] && grep -q "auto, bf16, f32" $WORK/err' "generate --compute fp8: usage error naming the modes"
run generate -m "$M/stories260K-gguf/stories260K.gguf" --max-tokens 10
check '[ $(rc) -eq 0 ] && grep -q "^Once upon a time" $WORK/out && grep -q "10 generated" $WORK/err' "generate from gguf with its embedded tokenizer"
run generate -m "$M/stories260K-hf" -p "Once upon a time" --stop "Lily" -q
check '[ $(rc) -eq 0 ] && [ "$(cat $WORK/out)" = "Once upon a time, there was a little girl named " ]' "prompt and stop string"
mkdir -p "$WORK/lonely" && cp "$M/stories260K/stories260K.bin" "$WORK/lonely/"
run generate -m "$WORK/lonely/stories260K.bin"
check '[ $(rc) -eq 1 ] && grep -q -- "--tokenizer" $WORK/err' "a .bin without a tokenizer next to it: hint to pass --tokenizer"
run generate -m "$M/stories260K/stories260K.bin" -q --max-tokens 5
check '[ $(rc) -eq 0 ] && grep -q "^Once upon" $WORK/out' "tok512.bin next to the .bin is found"
run generate -p hi
check '[ $(rc) -eq 2 ] && grep -q -- "--model" $WORK/err' "generate without --model"
run generate --help
check '[ $(rc) -eq 0 ] && grep -q -- "--top-p" $WORK/out' "generate --help"

echo "$PASSES passed, $FAILS failed"
[ $FAILS -eq 0 ]
