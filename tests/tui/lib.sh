# Shared helpers for the workbench screen tests (sourced by tests/tui/test_*.sh).
#
# Each test runs the real binary ($HL_BIN) inside a private tmux server (socket
# hltest<pid>) at a fixed size, with HOME and the XDG directories in a fresh temporary
# directory, sends keys, and reads the screen with capture-pane. Waiting is always
# "poll until the text appears or a timeout passes": nothing asserts on time.

set -u

HL_BIN=${HL_BIN:-}
HL_SOURCE_DIR=${HL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HL_SHARED=${HL_SHARED:-$(cd "$HL_SOURCE_DIR/.." && pwd)/shared}
if [ -z "$HL_BIN" ] || [ ! -x "$HL_BIN" ]; then
    echo "HL_BIN is not set to the hydralora binary" >&2
    exit 1
fi
if ! command -v tmux >/dev/null 2>&1; then
    echo "tmux not installed: skipping" >&2
    exit 0
fi

T_PASS=0
T_FAIL=0
T_SOCK="hltest$$"
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/hltui.XXXXXX")
T_SESSION="wb"
export HOME="$T_DIR/home"
export XDG_CONFIG_HOME="$T_DIR/config"
export XDG_DATA_HOME="$T_DIR/xdgdata"
export HYDRALORA_DATA="$T_DIR/data"
export HYDRALORA_THEMES="$HL_SOURCE_DIR/themes"
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$HYDRALORA_DATA"
unset TMUX

t_cleanup() {
    tmux -L "$T_SOCK" kill-server >/dev/null 2>&1
    # the workbench may still be saving its settings as it exits
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        rm -rf "$T_DIR" 2>/dev/null && break
        sleep 0.2
    done
}
trap t_cleanup EXIT

# tmux's own config: a known terminal type, nothing from the user. exit-empty off keeps
# the server alive when a test kills its only session to start the workbench again:
# otherwise the next new-session can reach the server while it is shutting down
# ("server exited unexpectedly", seen in CI).
cat >"$T_DIR/tmux.conf" <<'EOF'
set -g exit-empty off
set -g default-terminal "tmux-256color"
set -g remain-on-exit on
set -g status off
set -g history-limit 100
set -g escape-time 0
EOF

t_tmux() { tmux -L "$T_SOCK" -f "$T_DIR/tmux.conf" "$@"; }

# Data dir populated from shared/ (links only: shared/ is never modified).
# The catalog layout (<data>/<id>/<file>) for gsm8k, bbh and stories260K, plus the HF
# form of stories260K in <data>/stories260K-hf.
t_link_data() {
    mkdir -p "$HYDRALORA_DATA/gsm8k" "$HYDRALORA_DATA/bbh" "$HYDRALORA_DATA/stories260K" \
        "$HYDRALORA_DATA/stories260K-hf"
    ln -sf "$HL_SHARED/datasets/gsm8k/"* "$HYDRALORA_DATA/gsm8k/"
    ln -sf "$HL_SHARED/datasets/bbh/"* "$HYDRALORA_DATA/bbh/"
    ln -sf "$HL_SHARED/models/stories260K/"* "$HYDRALORA_DATA/stories260K/"
    ln -sf "$HL_SHARED/models/stories260K-hf/"* "$HYDRALORA_DATA/stories260K-hf/"
}

# t_start WIDTH HEIGHT [LANG] [args...]: start the workbench in a detached session
# (T_TERM, when set, overrides the terminal type the workbench sees).
t_start() {
    local w=$1 h=$2 lang=${3:-C.UTF-8}
    shift 3 || shift $#
    local args=""
    for a in "$@"; do args="$args '$a'"; done
    # a server that a test has just killed may still be shutting down on the socket: the
    # client then reports "server exited unexpectedly"; try again until a server answers
    local try
    for try in 1 2 3 4 5 6 7 8 9 10; do
        t_tmux new-session -d -s "$T_SESSION" -x "$w" -y "$h" \
            "cd '$T_DIR' && ${T_TERM:+TERM=$T_TERM} LANG=$lang LC_ALL=$lang '$HL_BIN' $args; echo \"[hydralora exited \$?]\"; sleep 60" \
            && return 0
        sleep 0.3
    done
    echo "tmux: could not start a session" >&2
    return 1
}

t_keys() { t_tmux send-keys -t "$T_SESSION" "$@"; }
t_type() { t_tmux send-keys -t "$T_SESSION" -l "$1"; }
t_screen() { t_tmux capture-pane -p -t "$T_SESSION"; }
t_resize() { t_tmux resize-window -t "$T_SESSION" -x "$1" -y "$2"; }

t_ok() {
    T_PASS=$((T_PASS + 1))
    echo "ok   $1"
}
t_bad() {
    T_FAIL=$((T_FAIL + 1))
    echo "FAIL $1"
    echo "----- screen -----"
    t_screen
    echo "------------------"
}

# t_wait TEXT [SECONDS] [what]: poll the screen until it contains TEXT (fixed string).
t_wait() {
    local text=$1 secs=${2:-10} what=${3:-"screen shows '$1'"}
    local tries=$((secs * 10))
    while [ $tries -gt 0 ]; do
        if t_screen | grep -qF -- "$text"; then
            t_ok "$what"
            return 0
        fi
        sleep 0.1
        tries=$((tries - 1))
    done
    t_bad "$what (timed out waiting for '$text')"
    return 1
}

# t_wait_re REGEX [SECONDS] [what]
t_wait_re() {
    local re=$1 secs=${2:-10} what=${3:-"screen matches /$1/"}
    local tries=$((secs * 10))
    while [ $tries -gt 0 ]; do
        if t_screen | grep -qE -- "$re"; then
            t_ok "$what"
            return 0
        fi
        sleep 0.1
        tries=$((tries - 1))
    done
    t_bad "$what (timed out waiting for /$re/)"
    return 1
}

# t_gone TEXT [SECONDS] [what]: poll until TEXT is no longer on the screen.
t_gone() {
    local text=$1 secs=${2:-10} what=${3:-"screen no longer shows '$1'"}
    local tries=$((secs * 10))
    while [ $tries -gt 0 ]; do
        if ! t_screen | grep -qF -- "$text"; then
            t_ok "$what"
            return 0
        fi
        sleep 0.1
        tries=$((tries - 1))
    done
    t_bad "$what"
    return 1
}

# t_check CONDITION-DESCRIPTION COMMAND...: a plain assertion.
t_check() {
    local what=$1
    shift
    if "$@"; then t_ok "$what"; else t_bad "$what"; fi
}

t_has() { t_screen | grep -qF -- "$1"; }
t_lacks() { ! t_screen | grep -qF -- "$1"; }
t_has_re() { t_screen | grep -qE -- "$1"; }
# braille cells U+2800..U+28FF are the bytes E2 A0..A3 xx in UTF-8
t_has_braille() { t_screen | LC_ALL=C grep -q $'\xe2[\xa0-\xa3]'; }
t_has_nonascii() { t_screen | LC_ALL=C grep -q '[^ -~]'; }

t_finish() {
    t_keys q 2>/dev/null
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ]
}

# t_config FILE STEPS [EXTRA_JSON_FIELDS]: a small run config on stories260K-hf + GSM8K
# (t_link_data first). The run directory goes under $T_DIR/runs.
t_config() {
    local file=$1 steps=$2 extra=${3:-}
    cat >"$file" <<EOT
{"name": "tui-test", "out_dir": "$T_DIR/runs/tui-test",
 "model": "$HYDRALORA_DATA/stories260K-hf", "data": "$HYDRALORA_DATA/gsm8k/train.jsonl",
 "max_steps": $steps, "grad_accum": 1, "max_len": 96, "eval_every": 5, "save_every": 0,
 "val_max": 8, "threads": 1$extra}
EOT
}

# t_click ROW TEXT: a left click (X10 mouse protocol, what ncurses asks tmux-256color for)
# on the first column of TEXT in screen row ROW (0-based).
t_click() {
    local row=$1 text=$2 line pre col
    line=$(t_screen | sed -n "$((row + 1))p")
    case "$line" in *"$text"*) ;; *) t_bad "click: '$text' not on row $row"; return 1 ;; esac
    pre=${line%%"$text"*}
    col=$(printf '%s' "$pre" | LC_ALL=C.UTF-8 wc -m)
    local cx cy
    cx=$(printf "\\$(printf '%03o' $((32 + col + 1)))")
    cy=$(printf "\\$(printf '%03o' $((32 + row + 1)))")
    t_type $'\e[M '"$cx$cy"
    t_type $'\e[M#'"$cx$cy"
}

# t_wheel ROW COL up|down: one mouse-wheel step at (ROW, COL), 0-based.
t_wheel() {
    local cx cy b
    cx=$(printf "\\$(printf '%03o' $((32 + $2 + 1)))")
    cy=$(printf "\\$(printf '%03o' $((32 + $1 + 1)))")
    if [ "$3" = up ]; then b='`'; else b='a'; fi
    t_type $'\e[M'"$b$cx$cy"
}
