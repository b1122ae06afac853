#!/usr/bin/env bash
# A fresh machine: the Data screen's quick start downloads stories260K and GSM8K through the
# catalog (from a file:// mirror of the catalog URLs, built from shared/), then the record
# browser (search, the model's view with tokens), statistics with the token-length
# histogram, clustering with a proposed N that the a key puts into the config, and
# generation on the Model screen.
. "$(dirname "$0")/lib.sh"

# HYDRALORA_MIRROR=file://M maps https://host/path to M/host/path (datasets/remote.h)
MIRROR="$T_DIR/mirror"
/usr/bin/python3 - "$HL_SOURCE_DIR/datasets/catalog.json" "$MIRROR" "$HL_SHARED" <<'PY'
import json, os, sys
cat, mirror, shared = sys.argv[1], sys.argv[2], sys.argv[3]
src = {"stories260K": shared + "/models/stories260K", "gsm8k": shared + "/datasets/gsm8k"}
for e in json.load(open(cat))["entries"]:
    if e["id"] not in src:
        continue
    for f in e["files"]:
        url = f["url"].split("://", 1)[1]
        dst = os.path.join(mirror, url)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.symlink(os.path.join(src[e["id"]], os.path.basename(f["name"])), dst)
PY
export HYDRALORA_MIRROR="file://$MIRROR"
export HYDRALORA_RETRIES=0

t_start 100 30 C.UTF-8
t_wait "Quick start: press S" 10 "a fresh data dir offers the quick start"
t_check "both are marked for download" test "$(t_screen | grep -c "fetch [0-9] MB")" -eq 2
t_keys S
t_wait "Records 7,473" 60 "S downloads both, opens GSM8K train (7,473 records)"
t_wait "Quick start: in use" 10 "quick start in use"
t_check "files landed in the data dir" test -s "$HYDRALORA_DATA/gsm8k/train.jsonl"
t_check "model landed in the data dir" test -s "$HYDRALORA_DATA/stories260K/stories260K.bin"
t_check "catalog marks gsm8k as on disk" t_has_re '✔ gsm8k'
t_wait "195t" 20 "token counts per record once the tokenizer is open"

# record browser
t_check "first record" t_has "Natalia sold clips"
t_keys j
t_wait "Record 2 / 7473" 5 "j moves to record 2"
t_keys /
t_wait "Search records" 5 "search dialog"
t_type "babysitting"
t_keys Enter
t_wait_re 'Record [0-9]+ / 7473' 5 "search lands on a record"
t_check "the record contains the match" t_has_re '[Bb]abysitting'
t_keys m
t_wait "as the model sees it" 5 "m renders the record as the model sees it"
t_wait_re '[0-9]+ tokens: [0-9]+ prompt \(masked, -100\) \+ [0-9]+ target' 10 "token counts of prompt and target"
t_check "BOS marker" t_has "<s>"
t_check "EOS marker" t_has "</s>"
t_keys m

# statistics and histogram
t_keys v
t_wait "Token length histogram" 10 "statistics with the token-length histogram"
t_check "length table" t_has_re 'tokens +[0-9]+ +[0-9]+'
t_check "fields with coverage" t_has_re 'question 100%'
t_check "max_len marker" t_has_re 'max_len [0-9]+: [0-9]+ over'

# clustering on the smaller test split
t_keys o
t_wait "Open data file" 5 "open dialog"
t_keys C-u
t_type "$HYDRALORA_DATA/gsm8k/test.jsonl"
t_keys Enter
t_wait "1,319 records" 20 "test split open"
t_keys c
t_wait "proposed N =" 60 "k-means elbow with a proposed N"
t_check "cluster sizes and top terms" t_has_re 'clusters of 1319 records'
n=$(t_screen | grep -oE 'proposed N = [0-9]+' | head -1 | grep -oE '[0-9]+$')
t_keys + a
t_wait "config: n_heads (N) = $((n + 1))" 5 "+ then a sets N = proposed + 1 in the config"
t_keys 3
t_wait_re "n_heads +$((n + 1))" 5 "the Config form shows it"

# generation with the quick-start model
t_keys 2
t_wait "stories260K.bin" 5 "model screen shows the downloaded model"
t_keys r
t_wait_re 'base model: [0-9]+ prompt \+ [0-9]+ new tokens' 30 "generation finishes"
t_check "the story continues the prompt" t_has "Once upon a time"

t_keys q
t_wait "[hydralora exited 0]" 10 "quits"
t_check "settings remember the data" grep -q "gsm8k" "$XDG_CONFIG_HOME/hydralora/settings.json"
t_finish
