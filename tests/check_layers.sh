#!/usr/bin/env bash
# The layering stays enforced (a ctest): dependencies point one way, nothing reaches into a
# backend, no circles.
#
#  1. Include directions (#include "..." in core/ cli/ tui/ datasets/):
#     - core/ never includes datasets/, tui/ or cli/; datasets/ never tui/ or cli/; tui/ never cli/;
#     - inside core/, a layer folder includes only itself and the layers below it:
#         base < formats < model < text < adapter < backend < train < eval, engine, analysis
#       (the three top layers do not include each other);
#     - a backend's private parts (core/backend/backend_impl.h, core/backend/<impl>/) are included
#       only from core/backend/ (tests may include them to test that implementation);
#     - the product reads no HL_TEST_* switch (fault injection is tests/hooks/, a test-only program).
#  2. No include circle between files (a header including itself through others).
#  3. No call circle between source files: from the object files of the build, every file that
#     uses a function or variable defined in another file depends on it, and that graph must be
#     acyclic (file A calling B while B calls A is a circle, even across headers).
# Needs the build directory for 3 ($HL_BUILD_DIR, as ctest sets; else ./build); runs from
# anywhere. Prints every violation, exits 1 if there is one.
set -u
root=${HL_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${HL_BUILD_DIR:-$root/build}
cd "$root" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

files=$(find core cli tui datasets -name '*.[ch]' -o -name '*.cu' | sort)

# layer rank of a path under core/ (empty: not a layer folder, e.g. the flat core/ of old trees)
rank() {
    case $1 in
    core/base/*) echo 0 ;; core/formats/*) echo 1 ;; core/model/*) echo 2 ;; core/text/*) echo 3 ;;
    core/adapter/*) echo 4 ;; core/backend/*) echo 5 ;; core/train/*) echo 6 ;;
    core/eval/*) echo 7 ;; core/engine/*) echo 7 ;; core/analysis/*) echo 7 ;;
    esac
}
top() { echo "$1" | cut -d/ -f1-2; }

# ---- 1. include directions ----------------------------------------------------------------
: > "$tmp/includes"
for f in $files; do
    grep -o '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$f" | sed 's/.*"\(.*\)"/\1/' |
        while read -r inc; do echo "$f $inc"; done >> "$tmp/includes"
done
while read -r f inc; do
    case $f in
    core/*) case $inc in datasets/* | tui/* | cli/*) fail "$f includes $inc: core/ never depends on $(top "$inc")" ;; esac ;;
    datasets/*) case $inc in tui/* | cli/*) fail "$f includes $inc: datasets/ never depends on $(top "$inc")" ;; esac ;;
    tui/*) case $inc in cli/*) fail "$f includes $inc: tui/ never depends on cli/" ;; esac ;;
    esac
    rf=$(rank "$f") ri=$(rank "$inc")
    case $inc in
    core/backend/backend_impl.h | core/backend/*/*)
        # (files directly in core/ predate the layer folders: only the layout tells what they are)
        case $f in core/backend/*) ;; core/*/*) fail "$f includes $inc: a backend's insides are private to core/backend/" ;;
        core/*) ;; *) fail "$f includes $inc: a backend's insides are private to core/backend/" ;; esac ;;
    esac
    if [ -n "$rf" ] && [ -n "$ri" ]; then
        if [ "$ri" -gt "$rf" ]; then
            fail "$f includes $inc: layer $(top "$f") may not depend on the higher layer $(top "$inc")"
        elif [ "$ri" -eq "$rf" ] && [ "$rf" -eq 7 ] && [ "$(top "$f")" != "$(top "$inc")" ]; then
            fail "$f includes $inc: $(top "$f") and $(top "$inc") are independent layers"
        fi
    fi
done < "$tmp/includes"
grep -ln 'HL_TEST_' $files > "$tmp/testswitch" 2>/dev/null
while read -r f; do fail "$f mentions an HL_TEST_* switch: the product reads none (see tests/hooks/)"; done < "$tmp/testswitch"

# ---- 2. include circles between files ------------------------------------------------------
awk '{ print $1, $2 }' "$tmp/includes" | while read -r f inc; do [ -f "$inc" ] && [ "$f" != "$inc" ] && echo "$f $inc"; done \
    > "$tmp/inc_edges"
if ! tsort "$tmp/inc_edges" > /dev/null 2> "$tmp/inc_loops"; then
    fail "include circle: $(grep -v 'input contains a loop' "$tmp/inc_loops" | sed 's/^tsort: //' | tr '\n' ' ')"
fi

# ---- 3. call circles between source files (from the objects of the product libraries) ------
objs=$(find "$build/CMakeFiles" -name '*.o' -path '*/CMakeFiles/hl*.dir/*' 2>/dev/null | sort)
if [ -z "$objs" ]; then
    fail "no object files under $build/CMakeFiles: build first (or set HL_BUILD_DIR)"
else
    : > "$tmp/defs"
    : > "$tmp/uses"
    for o in $objs; do
        src=$(echo "$o" | sed 's|.*/CMakeFiles/[^/]*\.dir/||; s|\.o$||')
        case $src in core/* | cli/* | tui/* | datasets/*) ;; *) continue ;; esac
        [ -f "$src" ] || continue # an object left behind by a file that moved
        # weak definitions (V, W: C++ runtime references such as DW.ref.__gxx_personality_v0 that
        # every CUDA object carries, template instances) may repeat; they make no call edges
        nm --defined-only -g "$o" | awk -v s="$src" 'NF >= 3 && $2 ~ /^[TDRBC]$/ { print $3, s }' >> "$tmp/defs"
        nm -u "$o" | awk -v s="$src" '{ print $NF, s }' >> "$tmp/uses"
    done
    sort -u "$tmp/defs" -o "$tmp/defs"
    sort -u "$tmp/uses" -o "$tmp/uses"
    # a symbol defined in two product files is an error of its own (and would hide edges)
    awk '{ print $1 }' "$tmp/defs" | uniq -d > "$tmp/dups"
    while read -r sym; do fail "$sym is defined in more than one file: $(awk -v s="$sym" '$1 == s { print $2 }' "$tmp/defs" | tr '\n' ' ')"; done < "$tmp/dups"
    join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 { print $2, $3 }' | sort -u > "$tmp/call_edges"
    if ! tsort "$tmp/call_edges" > /dev/null 2> "$tmp/call_loops"; then
        # tsort names one circle per report; print each
        awk '/input contains a loop/ { if (c) print c; c = ""; next } { sub(/^tsort: /, ""); c = c (c ? " -> " : "") $0 }
             END { if (c) print c }' "$tmp/call_loops" | while read -r loop; do
            echo "FAIL: call circle: $loop"
        done
        fails=$((fails + 1))
    fi
fi

echo "check_layers: $(wc -l < "$tmp/includes") includes, $(wc -l < "$tmp/call_edges" 2>/dev/null || echo 0) call edges between files"
if [ "$fails" -ne 0 ]; then
    echo "$fails layering problem(s)"
    exit 1
fi
echo "layers ok"
