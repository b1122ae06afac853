#!/usr/bin/env bash
# Packed micro-batches in the workbench: the Config form shows the packing field (on by default,
# its help line, Space toggles it), and the Train screen shows the padding share of the last step.
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/run.json" 20000 ', "micro_batch": 2'

t_start 100 30 C.UTF-8 workbench --config "$T_DIR/run.json"
t_keys 3
t_wait "Run config" 5 "config form"
t_wait "config is valid" 5 "the loaded config validates"
# packing: 33 fields below 'name' (headers are skipped)
for _ in $(seq 33); do t_keys j; done
t_wait "┤packing├" 5 "the cursor is on packing (help panel titled packing)"
t_check "inline help for packing" t_has "pack whole examples"
t_check "packing is on by default" t_has_re 'packing +\[✔\] on'
t_keys Space
t_wait_re 'packing +\[ \] off' 5 "Space switches packing off"
t_keys Space
t_wait_re 'packing +\[✔\] on' 5 "and on again"

t_keys 4
t_wait "Ready: r starts a new run" 10 "train screen idle"
t_keys r
t_wait "RUNNING" 30 "the job trains"
t_wait_re 'step [2-9][0-9]*/20000' 60 "the step counter moves"
t_wait_re 'tok/s +padding [0-9]+\.[0-9]%' 10 "the padding share of the last step is shown"
t_keys x
t_wait_re 'STOPPED|stopped' 60 "x stops the run"
t_finish
