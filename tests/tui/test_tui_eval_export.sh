#!/usr/bin/env bash
# BBH from the workbench (a limited run: 2 tasks, 3 examples each, base and adapter) with
# its per-task table and sample browser; then an export and its key/shape manifest.
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/run.json" 6

t_start 100 30 C.UTF-8 workbench --config "$T_DIR/run.json"
t_keys 2
t_wait "parameters      260,032" 15 "model open"
t_keys 4 r
t_wait "FINISHED" 60 "a short run finishes (gives an adapter)"

# Eval: zero-shot, 3 examples per task, 16 new tokens, boolean_expressions + sports_understanding
t_keys 6
t_wait "BBH tasks 2/27" 5 "two tasks preselected"
t_keys m m
t_wait "zeroshot (m)" 3 "mode zero-shot"
t_keys t
t_wait "16 new tokens" 3 "16 new tokens"
t_check "limit 3 per task" t_has "3/task"
t_check "base + adapter" t_has "base + adapter"
t_keys r
t_wait_re 'base: [0-9]+/[0-9]+ examples|Results' 10 "evaluation runs"
t_wait "BBH: base" 60 "evaluation finishes"
t_check "table row boolean_expressions" t_has_re 'boolean_expressions +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ +3'
t_check "table row sports_understanding" t_has_re 'sports_understanding +[0-9.]+ +[0-9.]+ +[-+][0-9.]+ +3'
t_check "averages for base and adapter" t_has_re 'adapter +mean'
base_dir=$(ls -d "$T_DIR"/runs/tui-test/eval/bbh-zeroshot-paper-t16-base-* 2>/dev/null | head -1)
t_check "result folder for the base model" test -s "$base_dir/summary.json"
t_check "samples.jsonl has 6 lines" test "$(wc -l <"$base_dir/samples.jsonl")" -eq 6
ad_dir=$(ls -d "$T_DIR"/runs/tui-test/eval/bbh-zeroshot-paper-t16-adapter-* 2>/dev/null | head -1)
t_check "result folder for the adapter" test -s "$ad_dir/summary.json"

# sample browser
t_keys v
t_wait "Samples 12" 5 "12 samples (2 tasks x 3 x 2 models)"
t_check "sample shows the extracted answer and the target" t_has_re 'extracted ".*" +target "(True|False|yes|no)"'
t_check "sample shows the prompt" t_has "prompt"
t_check "sample shows the generation" t_has "generation"
t_keys l j
t_wait "#1" 3 "j moves to the next sample"
t_keys v

# Export
t_keys 7
t_wait "Export adapter" 5 "export screen"
t_check "source is the run with checkpoints" t_has "(newest checkpoint)"
t_keys r
t_wait "adapter written to" 20 "export writes"
t_wait "Written keys 90" 5 "90 keys listed: 5 layers x 3 modules x (lora_A + lora_B0..B3 + lora_route)"
t_check "83,280 parameters (docs/method.md formula for r=8, N=4)" t_has "83,280 parameters"
t_check "a lora_route key with its shape [4, 64], f32 by default (as the CLI)" t_has_re 'layers\.0\.mlp\.gate_proj\.lora_route\.weight +\[4, 64\] +F32'
t_check "a lora_B3 key with its shape [64, 8]" t_has_re 'layers\.0\.mlp\.down_proj\.lora_B3\.weight +\[64, 8\]'
t_check "adapter_model.bin written" test -s "$T_DIR/runs/tui-test/export/adapter_model.bin"
t_check "adapter_config.json written" grep -q '"lora_nums"' "$T_DIR/runs/tui-test/export/adapter_config.json"
t_keys f
t_wait "HydraLoRA, bf16" 3 "f cycles the format"
t_keys f f r
t_wait "collapsed rank-8 LoRA" 30 "plain-LoRA export reports the loss of both"
t_wait_re 'lora_B\.weight +\[172, 8\]' 5 "collapsed keys have one B"

t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_finish
