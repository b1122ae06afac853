#!/usr/bin/env bash
# hydralora watch RUN_DIR: the workbench follows a run that another process writes. A real
# short run makes the metrics lines; they are then appended one by one (and one of them in two
# halves, as a writer mid-line leaves it) to another run directory while the workbench follows
# it: progress, loss, eval, routing on the Experts screen, the read-only keys, the end state,
# and quitting without touching the followed run.
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/run.json" 8 ', "eval_every": 4, "n_heads": 3'
"$HL_BIN" train --config "$T_DIR/run.json" --quiet >"$T_DIR/train.log" 2>&1 || { cat "$T_DIR/train.log"; exit 1; }
SRC="$T_DIR/runs/tui-test/metrics.jsonl"
t_check "the source run finished" grep -q '"event":"finish"' "$SRC"

W="$T_DIR/runs/followed"
mkdir -p "$W"
cp "$T_DIR/runs/tui-test/config.json" "$W/"
: >"$W/metrics.jsonl"
# the source lines by kind (the run has: start, eval@0, steps 1-8, eval@4/8, checkpoint, finish)
line() { grep -m1 "$1" "$SRC"; }
add() { printf '%s\n' "$1" >>"$W/metrics.jsonl"; }

t_start 110 32 C.UTF-8 watch "$W"
t_wait "following" 10 "the workbench opens following the run"
t_check "Train screen title says read-only" t_has "Training (following, read-only)"
t_check "the run directory is named" t_has "runs/followed"

add "$(line '"event":"start"')"
add "$(line '"event":"eval","step":0')"
add "$(line '"event":"step","step":1,')"
add "$(line '"event":"step","step":2,')"
t_wait "RUNNING" 10 "a start line makes it running"
t_wait_re 'step 2/8' 10 "two steps shown"
t_wait_re 'eval [0-9.]+@0' 10 "the baseline eval loss"
loss2=$(line '"event":"step","step":2,' | sed 's/.*"loss":\([0-9.e+-]*\),.*/\1/' | cut -c1-4)
t_check "loss of step 2 ($loss2) on screen" t_has "loss $loss2"

# a line written in two halves: nothing until its newline
l3=$(line '"event":"step","step":3,')
printf '%s' "${l3:0:40}" >>"$W/metrics.jsonl"
sleep 1.5
t_check "a half-written line is not read yet" t_has_re 'step 2/8'
printf '%s\n' "${l3:40}" >>"$W/metrics.jsonl"
t_wait_re 'step 3/8' 10 "the completed line is read"
add "$(line '"event":"step","step":4,')"
add "$(line '"event":"eval","step":4')"
t_wait_re 'eval [0-9.]+@4' 10 "eval at step 4"
t_check "loss plot drawn" t_has_braille

# read-only: the run's own keys are refused with a reason
t_keys p
t_wait "read-only: a followed run is controlled where it was launched" 5 "p is refused while following"
t_check "still running after p" t_has "RUNNING"

t_keys 5
t_wait "Router weight" 10 "Experts screen shows the followed run's routing"
t_wait_re 'following, step 4 val' 10 "the heat map says it follows, measured at step 4"
t_keys 4
for k in 5 6 7 8; do add "$(line "\"event\":\"step\",\"step\":$k,")"; done
add "$(line '"event":"eval","step":8')"
t_wait_re 'step 8/8' 10 "steps up to 8"
add "$(line '"event":"checkpoint"')"
t_wait_re 'checkpoint step-8 saved' 10 "the checkpoint event"
add "$(line '"event":"finish"')"
t_wait "FINISHED" 10 "the finish line ends it"

# o stops following; the engine's idle screen returns
t_keys o
t_wait "stopped following" 5 "o stops following"
t_wait "Ready: r starts a new run" 5 "back to the workbench's own (idle) engine"
t_keys o
t_wait "Follow a run directory" 5 "o opens the directory chooser"
t_keys Escape

# quitting while a followed run is running never asks to stop it
t_tmux kill-session -t "$T_SESSION" >/dev/null 2>&1
: >"$W/metrics.jsonl"
add "$(line '"event":"start"')"
add "$(line '"event":"step","step":1,')"
t_start 110 32 C.UTF-8 watch "$W"
t_wait "RUNNING" 10 "following a running run"
t_keys q
t_wait "[hydralora exited 0]" 10 "q quits at once, leaving the run alone"
t_check "the followed files are untouched" test "$(wc -l <"$W/metrics.jsonl")" -eq 2

# errors before the screen opens
out=$("$HL_BIN" watch "$T_DIR" 2>&1); rc=$?
t_check "a folder that is no run: exit 1 with a hint ($out)" test $rc -eq 1 -a -n "$(echo "$out" | grep 'not a run directory')"
out=$("$HL_BIN" watch --plain --once "$W" 2>&1); rc=$?
t_check "--plain --once prints the state ($rc)" test $rc -eq 0 -a -n "$(echo "$out" | grep 'step 1/8')"
echo "$T_PASS passed, $T_FAIL failed"
[ "$T_FAIL" -eq 0 ]
