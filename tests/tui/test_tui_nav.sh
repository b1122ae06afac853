#!/usr/bin/env bash
# The workbench frame: every screen by number key, ]/[ and mouse; help generated from the
# key table; a resize to 80x24 and back; quitting cleanly.
. "$(dirname "$0")/lib.sh"
t_link_data

t_start 100 30 C.UTF-8
t_wait "1 Data" 10 "opens with the tab bar"
t_wait "Catalog" 5 "first screen is Data with the catalog"
t_wait "Quick start" 5 "first screen offers the quick start"
t_wait "gsm8k" 5 "catalog lists GSM8K"
t_check "function bar lists Help and Quit" t_has_re '\? Help.*q Quit'

# every screen by its number key
t_keys 2; t_wait "Memory estimate" 5 "2 opens Model"
t_keys 3; t_wait "Run config" 5 "3 opens Config"
t_keys 4; t_wait "Ready: r starts a new run" 5 "4 opens Train"
t_keys 5; t_wait "No routing statistics yet" 5 "5 opens Experts"
t_keys 6; t_wait "BBH tasks" 5 "6 opens Eval"
t_keys 7; t_wait "Export adapter" 5 "7 opens Export"
t_keys ']'; t_wait "Catalog" 5 "] wraps to the first screen"
t_keys '['; t_wait "Export adapter" 5 "[ goes back"

# help comes from the key table: global and screen rows
t_keys 1 '?'
t_wait "Help - keys" 5 "? opens help"
t_check "help lists the data screen's download key" t_has "download the selected catalog entry"
t_check "help lists the number keys as a range" t_has "1-7"
t_keys NPage
t_wait_re '↓/j|j/↓' 3 "help lists vim keys with the arrows (next page)"
t_keys Escape
t_gone "Help - keys" 5 "Esc closes help"

# mouse: a click on a tab and on the function bar
t_click 0 "4 Train"
t_wait "Ready: r starts a new run" 5 "mouse click on the Train tab"
t_click 29 "? Help"
t_wait "Help - keys" 5 "mouse click on ? Help in the function bar"
t_check "help shows the Train section first" t_has_re '4 Train *$|│ 4 Train'
t_keys q
t_gone "Help - keys" 5 "q closes help"

# resize: the layout follows
t_keys 3
t_resize 80 24
t_wait_re '^.{0,2}\+|╰' 5 "redraws after resize"
sleep 0.3
t_check "80x24: the tab bar still shows all 7 screens" t_has_re '1 Data.*7 Export|1 Data.*7'
t_check "80x24: the config form is there" t_has "Run config"
t_check "80x24: no 'too small' message" t_lacks "too small"
t_check "80x24: the screen is 24 rows" test "$(t_screen | wc -l)" -eq 24
t_resize 50 12
t_wait "too small" 5 "below the minimum size it says so instead of crashing"
t_resize 100 30
t_wait "Run config" 5 "back at 100x30"
t_check "100x30: the screen is 30 rows" test "$(t_screen | wc -l)" -eq 30

# the mouse wheel scrolls the form (3 rows a step)
t_wheel 10 20 down
t_wait "┤tokenizer├" 3 "wheel down moves 3 fields (name -> tokenizer)"
t_wheel 10 20 up
t_wait "┤name├" 3 "wheel up moves back"

# vim keys move in the form
t_keys j j j
t_wait_re '│ name|tokenizer' 3 "j moves in the form"
t_keys G
t_wait "keep_last" 3 "G jumps to the last field"
t_keys g
t_wait " name " 3 "g jumps to the first field"

# quit
t_keys q
t_wait "[hydralora exited 0]" 10 "q quits with status 0 when nothing runs"
t_check "settings.json written" test -s "$XDG_CONFIG_HOME/hydralora/settings.json"
t_finish
