#!/usr/bin/env bash
# A new user's first runs in the workbench (issue 11):
#  - the Model screen says what Enter and r do, and both work as said;
#  - the status line follows the job: "paused ..." once PAUSED (not "pausing ..."), "stopped"
#    after x, nothing about "resuming: loading" once a resumed run has FINISHED; an error
#    about a value goes once the value is fixed (and " 3e-4 " is a number, as for --set);
#  - w while PAUSED writes the checkpoint at once;
#  - an adapter written by the Export screen (runs/<name>/export) is found by the Model,
#    Eval and Experts screens when the run has no adapter/ (it was stopped);
#  - the Eval table says macro(2) for two tasks, and the sample browser lists the samples
#    of an earlier session from the result folder (everything resumed).
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/long.json" 20000
t_config "$T_DIR/short.json" 6
sed -i 's|tui-test|short|g' "$T_DIR/short.json"
status_line() { t_screen | tail -2 | head -1; }
status_has() { status_line | grep -qF -- "$1"; }
status_lacks() { ! status_has "$1"; }
end_server() { # the next session gets a fresh tmux server
    t_tmux kill-server 2>/dev/null
    for _ in $(seq 50); do
        t_tmux has-session 2>/dev/null || break
        sleep 0.1
    done
}

t_start 120 32 C.UTF-8 workbench --config "$T_DIR/long.json"
t_keys 2
t_wait "parameters      260,032" 15 "model open"

# Model screen: Enter edits the prompt, Enter again (or r outside the editor) generates
t_check "the hint says what r and Enter do" t_has "r generates, Enter edits the prompt"
t_keys Enter
t_wait "editing the prompt: Enter generates" 3 "Enter opens the editor, which says how to generate"
t_type " there"
t_keys Enter
t_wait_re 'prompt \+ [0-9]+ new tokens' 20 "Enter in the editor generates"
t_keys a a
t_wait "generation with the base model only" 3 "a a: base model again (and a fresh status line)"
t_keys r
t_wait_re 'generated [0-9]+ tokens' 20 "r generates (outside the editor)"
t_check "r was not typed into the prompt" t_lacks "therer"

# Train: pause, checkpoint while paused, stop; the status line keeps up
t_keys 4 r
t_wait "RUNNING" 30 "training"
t_wait_re 'step [1-9][0-9]*/20000' 30 "steps are made"
t_keys p
t_wait "PAUSED" 20 "p pauses"
t_wait "paused at step" 3 "the status line says it is paused"
t_check "no stale 'pausing ...' on the status line" status_lacks "pausing"
n0=$(ls -d "$T_DIR"/runs/tui-test/checkpoints/step-* 2>/dev/null | wc -l)
t_keys w
t_wait_re 'checkpoint step-[0-9]+ saved' 10 "w while paused writes the checkpoint at once"
n1=$(ls -d "$T_DIR"/runs/tui-test/checkpoints/step-* 2>/dev/null | wc -l)
t_check "a checkpoint directory appeared while paused ($n0 -> $n1)" test "$n1" -gt "$n0"
t_check "still paused" t_has "PAUSED"
t_keys x
t_wait "STOPPED" 30 "x stops"
t_wait "stopped at step" 5 "the status line says it stopped"
t_check "no stale 'stopping ...'" status_lacks "stopping:"
t_check "a stopped run has no adapter/" test ! -e "$T_DIR/runs/tui-test/adapter"

# the only adapter is the Export screen's
t_keys 7 r
t_wait "adapter written to" 30 "export of the newest checkpoint"
t_check "export/ holds it" test -s "$T_DIR/runs/tui-test/export/adapter_model.safetensors"
t_keys 6
t_wait "base + adapter" 5 "Eval finds the exported adapter"
t_check "not 'no adapter yet'" t_lacks "no adapter yet"
t_keys 5 t
t_wait_re 't-SNE of .*/export|t-SNE: [0-9]+ points' 20 "Experts: t-SNE of the exported adapter"
t_check "no 'no adapter' warning" t_lacks "no adapter in"
t_keys 2 a
t_wait "with adapter (a)" 3 "generation with the adapter selected"
t_keys r
t_wait_re 'adapter: [0-9]+ prompt \+ [0-9]+ new tokens' 20 "generation with the exported adapter"
t_check "no 'finish or export' hint" t_lacks "finish or export"

# Config: an error about a value goes when the value is fixed; " 3e-4 " is a number
t_keys 3
t_wait "Run config" 5 "config screen"
for _ in $(seq 40); do
    t_has "┤lr├" && break
    t_keys j
    sleep 0.05
done
t_wait "┤lr├" 5 "on the lr field"
t_keys Enter C-u
t_type "abc"
t_keys Enter
t_wait_re "lr: .?abc" 5 "lr = abc is rejected"
t_check "the status line shows the error" status_has "is not a number"
t_keys C-u
t_type " 3e-4 "
t_keys Enter
t_wait "lr = 0.0003" 5 "' 3e-4 ' is accepted (as --set accepts it)"
t_check "the error is gone from the status line" status_lacks "is not a number"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
end_server

# A short run that finishes; R on it resumes, finds nothing to do and finishes again
t_start 120 32 C.UTF-8 workbench --config "$T_DIR/short.json"
t_keys 2
t_wait "parameters      260,032" 15 "model open"
t_keys 4 r
t_wait "FINISHED" 60 "the short run finishes"
t_keys R
for _ in $(seq 300); do
    [ "$(t_screen | grep -c 'finished: 6 steps')" -ge 2 ] && break
    sleep 0.1
done
t_wait "FINISHED" 30 "the resumed run finishes again"
t_check "the Events list the second finish" test "$(t_screen | grep -c 'finished: 6 steps')" -ge 2
t_check "no stale 'resuming: loading model and data' after FINISHED" status_lacks "resuming: loading"

# Eval: 2 tasks, zero-shot, 3 examples each, 16 tokens, base and adapter
t_keys 6
t_wait "BBH tasks 2/27" 5 "two tasks preselected"
t_keys m m t
t_wait "zeroshot (m)" 3 "zero-shot"
t_wait "16 new tokens" 3 "16 new tokens"
t_keys r
t_wait "BBH: base" 60 "the evaluation finishes"
t_wait_re 'base +mean +[0-9.]+ +macro\(2\)' 3 "macro over the 2 tasks run, not 23"
t_check "adapter line too" t_has_re 'adapter +mean +[0-9.]+ +macro\(2\)'
t_keys v
t_wait "Samples 12" 5 "12 samples in this session"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
end_server

# a new session: the same evaluation is all resumed; the browser lists it from disk
t_start 120 32 C.UTF-8 workbench --config "$T_DIR/short.json"
t_keys 2
t_wait "parameters      260,032" 15 "model open"
t_keys 6 m m t
t_wait "16 new tokens" 3 "same settings"
t_keys r
t_wait "BBH: base" 60 "the evaluation is resumed from its folders"
t_keys v
t_wait "Samples 12" 5 "the sample browser lists the 12 samples written by the earlier session"
t_check "a sample shows its extracted answer and target" t_has_re 'extracted ".*" +target "(True|False|yes|no)"'
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_finish
