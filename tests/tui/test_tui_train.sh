#!/usr/bin/env bash
# Training driven from the workbench: start, live loss plot, pause / resume, save-now, the
# expert heat map and its updates, a resize while training, stop with a checkpoint.
# (The run is long on purpose and is stopped with x, so nothing depends on its speed; the
# short runs that finish are in test_tui_eval_export.sh and test_tui_ascii.sh.)
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/run.json" 20000

t_start 100 30 C.UTF-8 workbench --config "$T_DIR/run.json"
t_keys 4
t_wait "Ready: r starts a new run" 10 "train screen idle"
t_keys r
t_wait_re 'LOADING|RUNNING' 10 "r starts the job"
t_wait "RUNNING" 30 "the job trains"
t_wait_re 'step [1-9][0-9]*/20000' 30 "the step counter moves"
t_wait_re 'eval [0-9.]+@[0-9]+' 30 "eval loss shown"
t_wait_re 'step [2-9][0-9]+/20000' 60 "more steps"
t_check "loss plot drawn with braille cells" t_has_braille
t_check "plot legend" t_has "smoothed"
t_check "learning-rate plot" t_has "Learning rate"
t_check "tokens/s and memory" t_has_re 'tok/s .* mem [0-9.]+ [KMG]iB'

# keys answer while training: help opens and closes
t_keys '?'
t_wait "Help - keys" 3 "help opens during training"
t_keys Escape
t_gone "Help - keys" 3 "and closes"

# pause / resume
t_keys p
t_wait "PAUSED" 20 "p pauses"
s1=$(t_screen | grep -oE 'step [0-9]+/20000' | head -1)
t_keys 3 4
s2=$(t_screen | grep -oE 'step [0-9]+/20000' | head -1)
t_check "no steps while paused ($s1 = $s2)" test "$s1" = "$s2"
t_keys p
t_wait "RUNNING" 10 "p resumes"

# save now
t_keys w
t_wait "a checkpoint will be written" 5 "w asks for a checkpoint"
t_wait_re '[0-9]+ checkpoint step-[0-9]+ saved' 30 "the checkpoint is written (Events)"

# experts: heat map of router weights, updated as the run goes
t_keys 5
t_wait "Router weight gate_proj" 20 "expert heat map for gate_proj"
t_check "layer rows" t_has_re '^│L0 '
t_check "expert columns E0..E3" t_has_re 'E0 +E1 +E2 +E3'
t_check "entropy and top-1 columns" t_has "top-1 max"
first=$(t_screen | grep -oE 'step [0-9]+ (val|train)' | head -1)
t_check "heat map says when it was measured ($first)" test -n "$first"
changed=0
for _ in $(seq 600); do
    now=$(t_screen | grep -oE 'step [0-9]+ (val|train)' | head -1)
    if [ -n "$now" ] && [ "$now" != "$first" ]; then changed=1; break; fi
    sleep 0.1
done
t_check "heat map updates ($first -> ${now:-?})" test $changed -eq 1
t_keys m
t_wait "Router weight up_proj" 5 "m switches to up_proj"
t_keys v
t_wait "Top-1 share up_proj" 5 "v shows the top-1 share"
t_keys Enter
t_wait "L0 up_proj over time" 5 "Enter drills into layer 0's history"
t_check "history plot of the heads" t_has "mean router weight per head"
t_keys Escape

# resize while training
t_resize 80 24
t_wait_re '^╰' 5 "redrawn at 80x24"
t_keys 4
t_wait "Loss" 5 "loss plot at 80x24"
t_check "80x24 while training: 24 rows" test "$(t_screen | wc -l)" -eq 24
t_resize 100 30

# plot keys
t_keys z
t_wait "last 25%" 3 "z zooms the loss plot"
t_keys y
t_wait "Loss (log)" 3 "y switches to a log axis"
t_keys m
t_wait "Gradient norm" 3 "m switches the lower plot"

# stop: finish the step, checkpoint, STOPPED
t_keys x
t_wait "STOPPED" 60 "x stops the run"
t_check "checkpoints in the run directory" test "$(ls -d "$T_DIR"/runs/tui-test/checkpoints/step-* | wc -l)" -ge 2
t_check "metrics.jsonl records the steps" grep -q '"event":[[:space:]]*"step"' "$T_DIR/runs/tui-test/metrics.jsonl"
t_check "plot still shown after the stop" t_has_braille

t_keys q
t_wait "[hydralora exited 0]" 10 "quits without asking (nothing runs)"
t_finish
