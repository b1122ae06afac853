#!/usr/bin/env bash
# The Experts screen's "by source" view on two BBH task files: a short run gives an adapter with
# probe sets (run config probe_data), the view lists the picked files, computes in the background
# (progress, then results), shows the source x head table with the dominant head marked and the
# loss, the layer x head heat map of the selected source, the difference from the overall mean,
# the probe history of the run, and writes the CSV export (checked here against the table).
. "$(dirname "$0")/lib.sh"
t_link_data
BOOL="$HYDRALORA_DATA/bbh/data/boolean_expressions.json"
SPORTS="$HYDRALORA_DATA/bbh/data/sports_understanding.json"
# probe sets: small slices of the two tasks as JSON lines
/usr/bin/python3 -c "
import json
for src, dst in (('$BOOL', '$T_DIR/probe_bool.jsonl'), ('$SPORTS', '$T_DIR/probe_sports.jsonl')):
    ex = json.load(open(src))['examples'][:6]
    open(dst, 'w').write(''.join(json.dumps(e) + '\n' for e in ex))
"
t_config "$T_DIR/run.json" 6 ", \"variant\": \"hydra\", \"n_heads\": 3, \"targets\": [\"q_proj\", \"gate_proj\", \"down_proj\"], \"eval_every\": 3, \"probe_data\": \"$T_DIR/probe_bool.jsonl,$T_DIR/probe_sports.jsonl\""

t_start 110 34 C.UTF-8 workbench --config "$T_DIR/run.json"
t_keys 2
t_wait "parameters      260,032" 15 "model open"
t_keys 4 r
t_wait "FINISHED" 90 "a short run finishes (gives an adapter)"
t_check "metrics.jsonl has the probe statistics of each eval" \
    test "$(grep -c '"event":"probe"' "$T_DIR/runs/tui-test/metrics.jsonl")" -ge 2

t_keys 5 s
t_wait "By source: data files" 5 "s opens the by-source view"
t_check "the run's adapter is preselected" t_has_re "adapter +.*tui-test/adapter"
t_check "the probe sets of the run, eval after eval" t_has_re "probe_bool.jsonl +E[0-9] [01]\.[0-9]{2}"
t_keys r
t_wait "add two or more data files" 5 "r with no files says what is missing"

# two BBH task files by path
t_keys o
t_wait "Add a data file" 5 "o asks for a path"
t_keys C-u
t_type "$BOOL"
t_keys Enter
t_wait " 1 " 5 "first file listed"
t_keys o
t_wait "Add a data file" 5 "second path"
t_keys C-u
t_type "$SPORTS"
t_keys Enter
t_wait "sports_understanding.json" 5 "second file listed"
t_check "both files listed" t_has "boolean_expressions.json"
t_keys o
t_keys C-u
t_type "$T_DIR/nope.json"
t_keys Enter
t_wait "no such data file" 5 "a missing file is refused"

t_keys r
t_wait_re "Computing|scoring" 10 "the computation starts with a progress bar"
t_wait "Mean load, q_proj by source" 120 "the source x head table appears"
t_check "a row per source with its dominant head and loss" \
    t_has_re "boolean_expressions\.json +([0-9.]+\*? +){3}[0-9]+\.[0-9]{3}"
t_check "the sports row" t_has_re "sports_understanding\.json +([0-9.]+\*? +){3}[0-9]+\.[0-9]{3}"
t_check "the pooled row" t_has_re "all +([0-9.]+\*? +){2}[0-9.]+\*?"
t_check "each row marks one dominant head" test "$(t_screen | grep -E '(boolean_expressions|sports_understanding)\.json +[0-9]' | grep -o '[0-9]\*' | wc -l)" -eq 2
t_check "the heat map of the first source" t_has_re "boolean_expressions.json: q_proj"
t_check "its size" t_has_re "250 records, [0-9]+ positions"
t_check "heat map rows per layer" t_has_re "L4 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+"

# next module, the second source's heat map, the difference view
t_keys m
t_wait "Mean load, gate_proj by source" 5 "m: next module"
t_keys j
t_wait "sports_understanding.json: gate_proj" 5 "j selects the second source's heat map"
t_keys v
t_wait "Load - overall mean, gate_proj" 5 "v: difference from the overall mean"
t_check "signed differences" t_has_re "sports_understanding\.json +[-+]0\.[0-9]{3}"

# CSV export, compared with the table on screen
t_keys v e
t_wait "Export CSV" 5 "e asks where to write"
t_keys C-u
t_type "$T_DIR/by_source.csv"
t_keys Enter
t_wait "wrote $T_DIR/by_source.csv" 5 "CSV written"
csv="$T_DIR/by_source.csv"
t_check "CSV header" test "$(head -1 "$csv")" = "source,file,records,loss,module,layer,expert,mean_weight,top1_share,entropy,load_cv,mean_weight_minus_all"
# 2 sources + all, 3 modules x 5 layers x 3 heads
t_check "CSV rows" test "$(wc -l <"$csv")" -eq $((1 + 3 * 3 * 5 * 3))
row=$(t_screen | grep -E "boolean_expressions\.json +[0-9]" | head -1)
bool_e0=$(/usr/bin/python3 -c "
import csv
rows = [r for r in csv.DictReader(open('$csv')) if r['source'] == 'boolean_expressions.json' and r['module'] == 'gate_proj' and r['expert'] == '0']
print('%.3f' % (sum(float(r['mean_weight']) for r in rows) / len(rows)))
")
t_check "CSV agrees with the table (gate_proj E0 of boolean_expressions: $bool_e0 in '$row')" \
    t_has_re "boolean_expressions\.json +$bool_e0"
t_keys Escape
t_wait "Router weight" 5 "Esc returns to the run's heat map"
t_finish
