#!/usr/bin/env bash
# The Config form: typed input with a validation error on the field, the trainable-parameter
# estimate recomputed from the new value (checked against docs/method.md's formula), choices,
# reset to default, save and load.
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/run.json" 10

t_start 100 30 C.UTF-8 workbench --config "$T_DIR/run.json"
t_keys 2
t_wait "parameters      260,032" 15 "the model from the config is open (stories260K: 260,032 parameters)"
t_wait "matmuls         auto: OpenBLAS f32" 5 "the matmul path of the config's compute mode (f32 model: f32)"
t_keys 3
t_wait "Run config" 5 "config form"
t_wait "config is valid" 5 "the loaded config validates"

# stories260K (dim 64, ffn 172, 5 layers), targets gate/up/down, N heads, rank r:
# per projection A = r*d_in, B_i = d_out*r (N of them), router = N*d_in (docs/method.md §2)
trainable() {
    local r=$1 n=$2 per
    per=$(( (r*64 + n*172*r + n*64) * 2 + (r*172 + n*64*r + n*172) ))
    echo $((per * 5)) | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}
t_wait "trainable $(trainable 8 4)" 5 "estimate for r=8, N=4 ($(trainable 8 4) by the formula)"

# go to the rank field: 13 fields below 'name' (headers are skipped)
for _ in $(seq 13); do t_keys j; done
t_wait "┤r├" 5 "the cursor is on r (help panel titled r)"
t_check "inline help for r" t_has "LoRA rank"

# an invalid value: the message stays on the field
t_keys Enter C-u
t_type "0"
t_keys Enter
t_wait "out of range" 5 "r = 0 is rejected with a range message"
t_check "the message names the field" t_has_re 'r: 0'
t_keys C-u
t_type "abc"
t_keys Enter
t_wait_re 'r: .?abc' 5 "r = abc is rejected"
# a valid value
t_keys C-u
t_type "16"
t_keys Enter
t_wait "trainable $(trainable 16 4)" 5 "estimate follows r = 16 ($(trainable 16 4) by the formula)"
t_check "value shown in the form" t_has_re 'r +16'

# n_heads two rows down: 4 -> 2 by typing
t_keys j j Enter C-u
t_type "2"
t_keys Enter
t_wait "trainable $(trainable 16 2)" 5 "estimate follows N = 2 ($(trainable 16 2) by the formula)"

# reset to default
t_keys D
t_wait "trainable $(trainable 16 4)" 5 "D resets n_heads to its default 4"

# choices: variant is a choice list (Space cycles); lora forces N = 1
t_keys k k k k
t_wait "┤variant├" 5 "on the variant field"
t_keys Space
t_wait_re '◉ lora ' 5 "Space picks the next variant (lora)"
t_keys Space Space Space
t_wait_re '◉ hydra' 5 "and cycles back to hydra"

# save, then load the saved file back
t_keys s
t_wait "Save config" 5 "save dialog"
t_keys C-u
t_type "$T_DIR/saved.json"
t_keys Enter
t_wait "config saved" 5 "saved"
t_check "saved JSON holds r = 16" grep -qE '"r":[[:space:]]*16,' "$T_DIR/saved.json"
t_check "saved JSON holds the model path" grep -q "stories260K-hf" "$T_DIR/saved.json"
t_keys o C-u
t_type "$T_DIR/run.json"
t_keys Enter
t_wait "config loaded" 5 "load a config"
t_wait "trainable $(trainable 8 4)" 5 "the loaded config's r = 8 is back"
t_keys o C-u
t_type "$T_DIR/nonexistent.json"
t_keys Enter
t_wait "Cannot load the config" 5 "loading a missing file shows the engine's error"
t_check "the error names the file" t_has "nonexistent.json"
t_keys Enter
t_finish
