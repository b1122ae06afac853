#!/usr/bin/env bash
# What the workbench remembers and what it is told at startup (issue 11):
#  - --theme nosuch is an error, HYDRALORA_THEME=bad (dialog) and --data /nonexistent
#    (status line and Data screen) are said;
#  - settings.json holds absolute paths: a config saved under a relative name is found again
#    from another folder; a remembered config that is gone is said, and the Data screen shows
#    the data set the run config uses (after a config load too), never a stale one;
# and the screens at the sizes users have:
#  - 80x24: the Config form shows every target ("■gate ■up ■down");
#  - a 5,000,005-token record keeps the token column readable ("5.0Mt");
#  - 140 columns: the whole missing-BBH hint is there, wrapped;
#  - the Data screen shows both ways of choosing N side by side (elbow and silhouette) on a
#    mixture of GSM8K, HumanEval and two BBH tasks, and proposes the 4 sources.
. "$(dirname "$0")/lib.sh"
t_link_data
rm -rf "$HYDRALORA_DATA/bbh" # no BBH: the Eval screen must say how to get it
status_line() { t_screen | tail -2 | head -1; }
status_has() { status_line | grep -qF -- "$1"; }

# start_in DIR W H args...: like t_start, from another working directory (with $START_ENV,
# e.g. "HYDRALORA_THEME=bad", in the program's environment)
start_in() {
    local dir=$1 w=$2 h=$3
    shift 3
    local args=""
    for a in "$@"; do args="$args '$a'"; done
    mkdir -p "$dir"
    t_tmux new-session -d -s "$T_SESSION" -x "$w" -y "$h" \
        "cd '$dir' && ${START_ENV:-} LANG=C.UTF-8 LC_ALL=C.UTF-8 '$HL_BIN' $args; echo \"[hydralora exited \$?]\"; sleep 60"
}
quit() {
    t_keys q
    t_wait "[hydralora exited 0]" 10 "quits"
    end_server
}
# the next session gets a fresh tmux server (and with it the environment of this shell)
end_server() {
    t_tmux kill-server 2>/dev/null
    for _ in $(seq 50); do
        t_tmux has-session 2>/dev/null || break
        sleep 0.1
    done
}

# 1. a theme that is not there; a data file that is not there
t_start 100 30 C.UTF-8 workbench --theme nosuch
t_wait "[hydralora exited 2]" 10 "--theme nosuch: exit status 2"
t_check "the error names the theme and lists the installed ones" t_has_re "theme 'nosuch'.*not installed; themes: default"
end_server
START_ENV="HYDRALORA_THEME=bad" start_in "$T_DIR" 100 30 workbench
t_wait "theme 'bad' (HYDRALORA_THEME) is not installed" 10 "HYDRALORA_THEME=bad is said at startup"
t_keys Enter
quit
t_start 100 30 C.UTF-8 workbench --data /nonexistent/train.jsonl
t_wait "The run config's data set does not exist:" 10 "--data /nonexistent is said on the Data screen"
t_check "and on the status line" status_has "data set /nonexistent/train.jsonl"
t_keys 2 1
t_check "(still there after the status line moved on)" t_has "/nonexistent/train.jsonl"
quit
t_check "the line 'lr= 3e-4 ' of --set is a number too" \
    bash -c "'$HL_BIN' train --model '$HYDRALORA_DATA/stories260K-hf' --data '$HYDRALORA_DATA/gsm8k/train.jsonl' \
             --set 'lr= 3e-4 ' --print-config | grep -q '\"lr\":[[:space:]]*0.0003'"

# 2. settings.json: absolute paths; a config saved under a relative name from folder w1
start_in "$T_DIR/w1" 100 30 workbench --data "$HYDRALORA_DATA/gsm8k/train.jsonl"
t_wait "Records 7,473" 15 "the --data file is open"
t_keys u
t_wait "config: data =" 5 "u uses it for training"
t_keys 3 s
t_wait "Save config" 5 "save dialog"
t_keys C-u
t_type "saved.json"
t_keys Enter
t_wait "config saved" 5 "saved under a relative name"
quit
t_check "the config is in w1" test -s "$T_DIR/w1/saved.json"
t_check "settings.json remembers it by its absolute path" \
    grep -q "\"last_config\":[[:space:]]*\"$T_DIR/w1/saved.json\"" "$XDG_CONFIG_HOME/hydralora/settings.json"

# from another folder: the same config comes back
start_in "$T_DIR/w2" 100 30 workbench
t_wait "Records 7,473" 15 "the config's data set is open"
t_check "no startup note" t_lacks "Please note"
t_keys 4
t_wait "Ready: r starts a new run" 5 "train screen"
t_check "the config's data is the one shown" t_has_re 'data [^ ]*gsm8k/train\.jsonl +hydra'
# loading another config switches the Data screen to that config's data set
sed 's|gsm8k/train.jsonl|gsm8k/test.jsonl|' "$T_DIR/w1/saved.json" >"$T_DIR/other.json"
t_keys 3 o C-u
t_type "$T_DIR/other.json"
t_keys Enter
t_wait "gsm8k/test.jsonl" 5 "another config"
t_keys 1
t_wait "Records 1,319" 15 "the Data screen follows the loaded config (GSM8K test set)"
t_check "and says it is the run's data" t_has "the run's data"
quit

# the remembered config is gone: said, and the Data screen matches the run config
rm "$T_DIR/other.json"
start_in "$T_DIR/w2" 100 30 workbench
t_wait "Please note" 10 "a remembered config that is gone is said"
t_check "that it is gone" t_has "gone: starting from the defaults"
t_check "it names the file" t_has "other.json"
t_keys Enter
t_wait "Records 7,473" 15 "the data set used last is open"
t_keys 4
t_wait "Ready: r starts a new run" 5 "train screen"
t_check "and it is the run config's data (not a stale one)" t_has_re 'data [^ ]*gsm8k/train\.jsonl +hydra'
quit
rm -f "$XDG_CONFIG_HOME/hydralora/settings.json" # the rest starts afresh

# 3. 80x24: every target of the Config form is visible
t_start 80 24 C.UTF-8 workbench
t_keys 3
t_wait "targets" 5 "config form at 80x24"
t_check "targets row shows gate, up and down" t_has "■gate ■up ■down"
t_check "and q, k, v, o" t_has "□q □k □v □o"
quit

# 4. the token column of a 5,000,005-token record (stories260K: " a" is one token)
python3 - "$T_DIR/big.jsonl" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    f.write(json.dumps({"instruction": "Count.", "input": "", "output": " a" * 4999996}) + "\n")
    f.write(json.dumps({"instruction": "Short one.", "input": "", "output": "ok"}) + "\n")
EOF
t_check "the record has 5,000,005 tokens" \
    bash -c "'$HL_BIN' data inspect '$T_DIR/big.jsonl' --tokenizer '$HYDRALORA_DATA/stories260K' | grep -q 'max 5000005'"
t_start 100 30 C.UTF-8 workbench --model "$HYDRALORA_DATA/stories260K/stories260K.bin" --data "$T_DIR/big.jsonl"
t_wait "5.0Mt" 30 "5,000,005 tokens fit the column as 5.0Mt"
t_check "the short record's count is exact" t_has_re ' 12t'
quit

# 5. 140 columns: the whole missing-BBH hint
t_start 140 30 C.UTF-8 workbench --model "$HYDRALORA_DATA/stories260K/stories260K.bin"
t_keys 2
t_wait "parameters      260,032" 15 "model open"
t_keys 6 r
t_wait "BBH is not downloaded" 10 "the Eval screen says BBH is missing"
t_wait "$HYDRALORA_DATA/bbh" 3 "the hint is there to its end (where it looked)"
quit

# 6. choosing N on the Data screen: a mixture of four distinct sources, two of them word problems
python3 - "$HL_SHARED" "$T_DIR/mix.jsonl" <<'EOF'
import gzip, json, os, random, sys
shared, out = sys.argv[1], sys.argv[2]
rng = random.Random(0)
gsm = [json.loads(l)["question"] for l in open(os.path.join(shared, "datasets/gsm8k/test.jsonl"))]
he = [json.loads(l)["prompt"] for l in gzip.open(os.path.join(shared, "datasets/humaneval/HumanEval.jsonl.gz"))]
def bbh(t):
    return [e["input"] for e in json.load(open(os.path.join(shared, "datasets/bbh/data", t + ".json")))["examples"]]
recs = []
for pool in [gsm, bbh("date_understanding"), he, bbh("word_sorting")]:
    recs += [{"instruction": t, "input": "", "output": "-"} for t in rng.sample(pool, min(100, len(pool)))]
rng.shuffle(recs)
with open(out, "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in recs))
EOF
t_start 140 30 C.UTF-8 workbench --data "$T_DIR/mix.jsonl"
t_wait "Records 400" 15 "the mixture is open"
t_keys c
t_wait "silhouette N = 4 (proposed)" 60 "the silhouette proposes the 4 sources"
t_check "the elbow of SSE(K) is shown beside it" t_has "SSE(K): elbow N = 3"
t_check "4 clusters of the 400 records" t_has "4 clusters of 400 records"
t_check "the status line names both criteria" t_has_re 'N = 4 \(silhouette 4, elbow 3\)'
quit
t_finish
