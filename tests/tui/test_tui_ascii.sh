#!/usr/bin/env bash
# LANG=C: every screen is plain ASCII (plots with ASCII marks instead of braille, boxes with
# + - |, shades as characters), and the workbench still works.
. "$(dirname "$0")/lib.sh"
t_link_data
t_config "$T_DIR/run.json" 20

t_start 100 30 C workbench --config "$T_DIR/run.json"
t_wait "1 Data" 10 "starts under LANG=C"
t_check "ASCII box corners" t_has_re '^\+\[Catalog\]-+'
t_keys 4 r
t_wait "FINISHED" 60 "a short run finishes"
t_check "no braille cells in the loss plot" bash -c "! LC_ALL=C grep -q \$'\\xe2' <<<\"\$(tmux -L $T_SOCK capture-pane -p -t $T_SESSION)\""
t_check "loss plot has ASCII marks" t_has_re '\|[0-9.]+\|.*[._'"'"'-]{3}'
t_check "progress bar in ASCII" t_has_re 'step 20/20 #+'
for scr in 1 2 3 4 5 6 7; do
    t_keys "$scr"
    sleep 0.2
    t_check "screen $scr is pure ASCII" bash -c "! tmux -L $T_SOCK capture-pane -p -t $T_SESSION | LC_ALL=C grep -q '[^ -~]'"
done
t_keys 5
t_wait "Router weight gate_proj" 5 "heat map under LANG=C"
t_check "heat map rows" t_has_re '^\|L0 '
t_keys 1
t_wait "Records 7,473" 10 "records under LANG=C"
t_keys v
t_wait "length histogram" 10 "statistics panel"
t_check "histogram bars in ASCII" t_has_re '\|[ #+.]*#'
t_check "statistics are pure ASCII" bash -c "! tmux -L $T_SOCK capture-pane -p -t $T_SESSION | LC_ALL=C grep -q '[^ -~]'"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_finish
