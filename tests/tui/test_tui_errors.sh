#!/usr/bin/env bash
# Engine errors become messages, never crashes: a model path that does not exist, a config
# the engine refuses, a job that fails while loading; and Ctrl-C during training stops the
# run cleanly (checkpoint written, exit status 0).
. "$(dirname "$0")/lib.sh"
t_link_data

# 1. a model path that does not exist (from the command line, then typed)
t_start 100 30 C.UTF-8 workbench --model "$T_DIR/no/such/model"
t_wait "Cannot open the model" 10 "a dialog reports the failed model load"
t_check "the message names the path" t_has "no/such/model"
t_keys Enter
t_gone "Cannot open the model" 5 "Enter closes the dialog"
t_keys 2
t_wait "Last error:" 5 "the Model screen keeps the last error"
t_keys o C-u
t_type "$T_DIR/also-missing.gguf"
t_keys Enter
t_wait "Cannot open the model" 10 "a typed bad path is reported too"
t_check "the message names the typed path" t_has "also-missing.gguf"
t_keys Enter

# 2. the engine refuses to start: no data in the config
t_keys 4 r
t_wait "Cannot start training" 10 "start without data: the engine's validation message"
t_check "it names the missing field" t_has_re 'data|model'
t_keys Enter
t_check "still idle" t_has "Ready: r starts a new run"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_tmux kill-session -t "$T_SESSION"

# 3. a job that fails in the engine thread: a data file with no usable record
printf 'this is not json\n{"also": "no fields we know"}\n' >"$T_DIR/bad.jsonl"
t_config "$T_DIR/bad.json" 10 ", \"data\": \"$T_DIR/bad.jsonl\""
sed -i 's|"data": "[^"]*gsm8k[^"]*",||' "$T_DIR/bad.json"
t_start 100 30 C.UTF-8 workbench --config "$T_DIR/bad.json"
t_keys 4 r
t_wait "FAILED" 30 "the job fails and says so"
t_check "the engine's error text is shown" t_has "bad.jsonl"
t_keys 1 2 3 5 6 7 4
t_wait "FAILED" 5 "the workbench keeps running after the failure"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_tmux kill-session -t "$T_SESSION"

# 4. Ctrl-C while training: a clean stop with a checkpoint
t_config "$T_DIR/long.json" 5000
t_start 100 30 C.UTF-8 workbench --config "$T_DIR/long.json"
t_keys 4 r
t_wait "RUNNING" 30 "training"
t_wait_re 'step [1-9][0-9]*/5000' 30 "steps are being made"
# x stops with a checkpoint; R resumes the run directory from it
t_keys x
t_wait "STOPPED" 30 "x stops the run"
stopped=$(ls -d "$T_DIR"/runs/tui-test/checkpoints/step-* 2>/dev/null | head -1)
t_check "the stop wrote a checkpoint ($stopped)" test -n "$stopped"
t_keys r
t_wait "already has checkpoints" 5 "r on a run with checkpoints asks what to do"
t_keys Escape
t_keys R
t_wait "RUNNING" 30 "R resumes from the checkpoint"
t_check "resume event" t_has_re 'resum'
t_keys q
t_wait "Quit?" 5 "q asks first while training"
t_keys n
t_gone "Quit?" 5 "n keeps going"
t_check "still training" t_has_re 'RUNNING|SAVING'
t_keys C-c
t_wait "[hydralora exited 0]" 60 "Ctrl-C: the run is stopped and the workbench exits 0"
n_ck=$(ls -d "$T_DIR"/runs/tui-test/checkpoints/step-* 2>/dev/null | wc -l)
t_check "a second checkpoint was written on the way out ($n_ck in all)" test "$n_ck" -ge 2
t_check "metrics.jsonl records the stop" grep -q '"event":[[:space:]]*"stop"' "$T_DIR/runs/tui-test/metrics.jsonl"
t_finish
