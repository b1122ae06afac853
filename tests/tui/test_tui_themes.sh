#!/usr/bin/env bash
# Themes: the colour depth follows the terminal (256 / 16 with the tty theme / 8 / none),
# T cycles through the theme files including the user's own (btop format) and skips a
# broken one, and the choice is remembered in settings.json.
. "$(dirname "$0")/lib.sh"

mkdir -p "$XDG_CONFIG_HOME/hydralora/themes"
# a btop theme file: only btop's keys; ours fall back to them
cat >"$XDG_CONFIG_HOME/hydralora/themes/mine.theme" <<'EOT'
# a user theme in btop's format
theme[main_bg]="#101010"
theme[main_fg]="#d0d0d0"
theme[title]="#ffffff"
theme[hi_fg]="#ff8700"
theme[cpu_start]="#005f00"
theme[cpu_mid]="#87af00"
theme[cpu_end]="#ffd700"
EOT
printf 'this is not a theme\n' >"$XDG_CONFIG_HOME/hydralora/themes/broken.theme"

help_title() { t_keys '?'; t_wait "$1" 5 "$2"; t_keys Escape; t_gone "Help - keys" 3 "help closes"; }

t_start 100 30 C.UTF-8
t_wait "1 Data" 10 "starts"
help_title "(theme default, 256 colours)" "tmux-256color: default theme in 256 colours"
for _ in $(seq 8); do
    t_keys T
    sleep 0.2
    t_has "theme: mine" && break
done
t_wait "theme: mine" 3 "T reaches the user's own theme"
t_check "remembered in settings.json" grep -q '"theme":[[:space:]]*"mine"' "$XDG_CONFIG_HOME/hydralora/settings.json"
for _ in $(seq 8); do
    t_keys T
    sleep 0.2
    t_has "broken: not a theme file" && break
done
t_wait "broken: not a theme file" 3 "a broken theme file is reported and skipped"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_tmux kill-session -t "$T_SESSION"

# the remembered theme comes back; an explicit tty theme means the 16 ANSI colours
printf '{"theme": "mine"}\n' >"$XDG_CONFIG_HOME/hydralora/settings.json"
t_start 100 30 C.UTF-8
t_wait "1 Data" 10 "restarts"
help_title "(theme mine, 256 colours)" "the remembered theme is used"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_tmux kill-session -t "$T_SESSION"

t_start 100 30 C.UTF-8 workbench --theme tty
t_wait "1 Data" 10 "starts with --theme tty"
help_title "(theme tty, 16 colours)" "tty theme: 16 ANSI colours"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_tmux kill-session -t "$T_SESSION"

T_TERM=xterm t_start 100 30 C.UTF-8 workbench --theme nord
t_wait "1 Data" 10 "starts on an 8-colour terminal"
help_title "(theme nord, 8 colours)" "xterm: nord mapped to 8 colours"
t_keys 3
t_wait "Run config" 5 "screens draw with 8 colours"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_tmux kill-session -t "$T_SESSION"

T_TERM=vt100 t_start 80 24 C.UTF-8
t_wait "1 Data" 10 "starts on a monochrome terminal"
help_title "monochrome)" "vt100: monochrome"
t_keys 3
t_wait "Run config" 5 "the form draws without colours"
t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_finish
