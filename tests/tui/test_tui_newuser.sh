#!/usr/bin/env bash
# What a new user hit in the first hour with the workbench (issue 11): the Overwrite choice
# loses nothing when the new run cannot load (item 1); one n_heads range in the form (2); a
# max_len above the model's context is not "valid" (3); the Eval screen counts prompts cut to
# fit the context (4); the workbench tells what to do in the workbench, never "pass --model"
# and never a documentation file (17).
. "$(dirname "$0")/lib.sh"
t_link_data

# End the session and wait until its tmux server is gone, so that the next t_start does not
# reach a server that is shutting down.
t_end() {
    t_tmux kill-session -t "$T_SESSION" 2>/dev/null
    for _ in $(seq 50); do
        t_tmux list-sessions >/dev/null 2>&1 || break
        sleep 0.1
    done
    sleep 0.2
}

# ---- 17: no model, no data: the form says how to give them here -----------------------------
t_start 140 30 C.UTF-8 workbench
t_keys 3
t_wait "model: no base model given" 10 "the form says the model is missing"
t_check "it says how to give one here (2 Model, or the model field)" t_has "type its path in the model field"
t_check "no command-line flag in the workbench" t_lacks "--model"
t_keys 7
t_wait "Export adapter" 5 "export screen"
t_check "the export screen names no documentation file" t_lacks "docs/method.md"
t_check "it says what the keys are" t_has "reference HydraLoRA code"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_end

# ---- 2, 3: the form with stories260K (context 512) and the default max_len 1024 -------------
cat >"$T_DIR/ctx.json" <<EOT
{"name": "tui-test", "out_dir": "$T_DIR/runs/ctx", "model": "$HYDRALORA_DATA/stories260K-hf",
 "data": "$HYDRALORA_DATA/gsm8k/train.jsonl"}
EOT
t_start 140 34 C.UTF-8 workbench --config "$T_DIR/ctx.json"
t_keys 2
t_wait "parameters      260,032" 15 "the model is open"
t_keys 3
t_wait "Run config" 5 "config form"
t_wait "max_len 1024 > the model's context 512:" 5 "max_len above the context: the form says so"
t_check "and that training will use 512" t_has "training will use max_len 512"
t_check "and does not call the config valid" t_lacks "config is valid"
# n_heads: 15 rows below name (headers are skipped)
for _ in $(seq 15); do t_keys j; done
t_wait "┤n_heads├" 5 "the cursor is on n_heads"
t_check "the help shows the one range [1, 64]" t_has "[1, 64]"
t_keys Enter C-u
t_type "100"
t_keys Enter
t_wait "n_heads: 100 is out of range [1, 64]" 5 "n_heads 100 is refused by the form, with the engine's range"
t_keys Escape C-u
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_end

# ---- 1: Overwrite with a data path that does not load keeps the previous run ---------------
t_config "$T_DIR/run.json" 4
"$HL_BIN" train --config "$T_DIR/run.json" --quiet >"$T_DIR/cli.out" 2>&1
t_check "a previous run made by the CLI" test -d "$T_DIR/runs/tui-test/checkpoints/step-4"
mkdir -p "$T_DIR/runs/tui-test/eval"
echo kept >"$T_DIR/runs/tui-test/eval/summary.json"
before=$(cd "$T_DIR/runs/tui-test" && find . -type f | sort | xargs sha256sum)
sed "s|$HYDRALORA_DATA/gsm8k/train.jsonl|$T_DIR/typo.jsonl|" "$T_DIR/run.json" >"$T_DIR/typo.json"
t_start 140 30 C.UTF-8 workbench --config "$T_DIR/typo.json"
t_keys 4 r
t_wait "already has checkpoints" 10 "r on a run with checkpoints asks what to do"
t_keys j Enter
t_wait "FAILED" 30 "Overwrite with a missing data file fails while loading"
t_check "the error names the file" t_has "typo.jsonl"
after=$(cd "$T_DIR/runs/tui-test" && find . -type f | sort | xargs sha256sum)
t_check "the previous run is untouched (checkpoints, adapter, config, metrics, eval)" test "$before" = "$after"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_end

# ---- 4: the Eval screen counts prompts cut on the left ----------------------------------------
t_start 140 34 C.UTF-8 workbench --model "$HYDRALORA_DATA/stories260K/stories260K.bin"
t_wait_re "model loaded|parameters" 15 "stories260K.bin opens (tok512.bin beside it)"
t_keys 6
t_wait "BBH tasks 2/27" 5 "two tasks preselected"
t_wait "256 (half the context) new tokens" 5 "the settings show the cap the engine will use"
t_keys b
t_keys r
t_wait "BBH: base" 90 "the evaluation finishes with the rule's defaults on a 512-token model"
t_wait_re '! [1-9][0-9]* of 6 prompts cut on the left to fit the 512-token context' 5 \
    "the Eval screen says how many prompts were cut"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_end

# ---- 17: what the Model and Eval screens say when the tokenizer or BBH is missing ------------
mkdir -p "$T_DIR/lonely"
cp "$HL_SHARED/models/stories260K/stories260K.bin" "$T_DIR/lonely/"
rm "$HYDRALORA_DATA/bbh"/*
rmdir "$HYDRALORA_DATA/bbh"
t_start 140 30 C.UTF-8 workbench --model "$T_DIR/lonely/stories260K.bin"
t_wait "no tokenizer" 15 "a model without a tokenizer: said on the status line"
t_check "it says where to name one in the workbench" t_has "name one in the tokenizer field on 3 Config"
t_check "no command-line flag" t_lacks "--tokenizer"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_end
t_start 140 34 C.UTF-8 workbench --model "$HYDRALORA_DATA/stories260K-hf"
t_keys 2
t_wait "parameters      260,032" 15 "a model with a tokenizer"
t_keys 6 b r
t_wait "BBH is not downloaded" 20 "no BBH data: said on the Eval screen"
t_check "it says how to get it here (1 Data)" t_has "get it on 1 Data (select bbh, press d)"
t_check "no command-line flag" t_lacks "--data"
t_finish
