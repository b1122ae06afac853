# hydralora score --routing: router statistics per data file and per source value of one file,
# as tables and as JSON; the per-source statistics of a labelled mixture equal the per-file
# statistics of its parts scored separately; bad input (a missing source field, a malformed line,
# an adapter without a router, options that do not go together) fails with a clear message.
. "$(dirname "$0")/train_common.sh"

py() { /usr/bin/python3 -c "$@"; }

# a short HydraLoRA run (N=3, attention + FFN targets) gives an adapter with a trained router
"$BIN" train $COMMON --set max_steps=2 --set save_every=0 --set eval_every=0 --set variant=hydra --set n_heads=3 \
    --set targets=q,v,gate,down --out "$WORK/hydra" > "$WORK/train.out" 2>&1
check '[ -f $WORK/hydra/adapter/adapter_config.json ]' "training the hydra adapter failed: $(tail -3 $WORK/train.out)"
AD=$WORK/hydra/adapter

# two sources: arithmetic records and story records; and the same records as one labelled mixture
A=$WORK/sums.jsonl B=$WORK/story.jsonl MIX=$WORK/mix.jsonl
head -10 "$DATA" > "$A"
for i in $(seq 1 7); do
    printf '{"instruction":"Tell a story about a cat number %d.","output":"Once upon a time a cat sat on the mat and was happy %d times."}\n' $i $i
done > "$B"
py "
import json
out = open('$MIX', 'w')
for path, task in (('$A', 'sums'), ('$B', 'story')):
    for ln in open(path):
        r = json.loads(ln); r['task'] = task; out.write(json.dumps(r) + '\n')
"

# ---- plain tables per file
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --data "$A" --data "$B" --threads 2 -q > "$WORK/t.out" 2> "$WORK/t.err"
rc=$?
check '[ $rc -eq 0 ]' "score --routing on two files: exit $rc: $(cat $WORK/t.err)"
check 'grep -q "^== $A\$" $WORK/t.out && grep -q "^== $B\$" $WORK/t.out' "a section per file: $(head -3 $WORK/t.out)"
check '[ $(grep -c "^records 10 " $WORK/t.out) -eq 1 ] && [ $(grep -c "^records 7 " $WORK/t.out) -eq 1 ]' \
    "record counts 10 and 7 with the loss: $(grep ^records $WORK/t.out)"
check '[ $(grep -c "^q_proj *mean weight.*top-1 share.*entropy *load CV" $WORK/t.out) -eq 2 ]' "a q_proj table per file"
check '[ $(grep -c "^down_proj" $WORK/t.out) -eq 2 ] && ! grep -q "^up_proj" $WORK/t.out' "tables for the adapted modules only"
check 'grep -q "^mean load by source" $WORK/t.out && grep -q "^all " $WORK/t.out' "the source x head summary table"
check '[ $(grep -E "^\S*(sums|story)\.jsonl +[0-9.]+\*? +[0-9.]+\*? +[0-9.]+\*? " $WORK/t.out | grep -c "\*") -eq 2 ]' \
    "each source row marks its dominant head: $(tail -4 $WORK/t.out)"
# each layer row: 3 weights summing to 1, 3 top-1 shares summing to 1
check 'awk "/^  L[0-9]/ { w = \$2 + \$3 + \$4; t = \$6 + \$7 + \$8; if (w < 0.999 || w > 1.001 || t < 0.999 || t > 1.001) bad++ } END { exit bad > 0 }" $WORK/t.out' \
    "weights and top-1 shares of a layer sum to 1"

# ---- JSON per file, and the same numbers per source from the labelled mixture
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --json --data "$A" --data "$B" --threads 2 -q > "$WORK/files.json" 2> "$WORK/j.err"
rc=$?
check '[ $rc -eq 0 ] && [ $(wc -l < $WORK/files.json) -eq 2 ]' "--json: one line per file: $(cat $WORK/j.err)"
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --json --source-field task --data "$MIX" --threads 2 -q > "$WORK/mix.json" 2> "$WORK/m.err"
rc=$?
check '[ $rc -eq 0 ] && [ $(wc -l < $WORK/mix.json) -eq 2 ]' "--source-field task: one line per source: $(cat $WORK/m.err)"
py "
import json, sys
files = [json.loads(l) for l in open('$WORK/files.json')]
mix = [json.loads(l) for l in open('$WORK/mix.json')]
bad = []
for f in files:
    L, M, N = f['n_layers'], len(f['modules']), f['n_experts']
    if f['modules'] != ['q_proj', 'v_proj', 'gate_proj', 'down_proj'] or N != 3: bad.append('modules/N %s %d' % (f['modules'], N))
    for k in ('weight_mean', 'top1_share'):
        if len(f[k]) != L or any(len(m) != M or any(len(e) != N for e in m) for m in f[k]): bad.append('shape ' + k)
    for k in ('entropy', 'load_cv'):
        if len(f[k]) != L or any(len(m) != M for m in f[k]): bad.append('shape ' + k)
    if not (f['loss'] > 0 and f['positions'] > f['targets'] > 0): bad.append('loss/positions')
by = {m['source']: m for m in mix}
if sorted(by) != ['story', 'sums'] or any(m['file'] != '$MIX' for m in mix): bad.append('sources %s' % sorted(by))
for f, name in ((files[0], 'sums'), (files[1], 'story')):
    m = by.get(name)
    if not m: continue
    for k in ('records', 'positions', 'targets'):
        if m[k] != f[k]: bad.append('%s %s %s vs %s' % (name, k, m[k], f[k]))
    d = max(abs(a - b) for k in ('weight_mean', 'top1_share') for la, lb in zip(m[k], f[k]) for ma, mb in zip(la, lb) for a, b in zip(ma, mb))
    d = max([d] + [abs(a - b) for k in ('entropy', 'load_cv') for la, lb in zip(m[k], f[k]) for a, b in zip(la, lb)])
    if d > 1e-6 or abs(m['loss'] - f['loss']) > 1e-6: bad.append('%s differs from its own file by %g' % (name, d))
if files[0]['weight_mean'] == files[1]['weight_mean']: bad.append('both files have the same statistics')
print('; '.join(bad)); sys.exit(1 if bad else 0)
" > "$WORK/py.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "JSON shapes, and per-source == per-file: $(cat $WORK/py.out)"

# ---- without --routing, several files are scored one after the other under their names
"$BIN" score --model "$MODEL" --adapter "$AD" --data "$A" --data "$B" --threads 2 > "$WORK/plain.out" 2> "$WORK/plain.err"
rc=$?
check '[ $rc -eq 0 ] && [ $(grep -c "^== " $WORK/plain.out) -eq 2 ] && [ $(grep -c "^mean_loss=.* records=" $WORK/plain.out) -eq 2 ]' \
    "score without --routing on two files: $(cat $WORK/plain.err)"
loss_a=$(grep "^mean_loss=" "$WORK/plain.out" | head -1 | sed 's/mean_loss=\([0-9.]*\).*/\1/')
check 'grep -q "^records 10 .* loss $loss_a\$" $WORK/t.out' "the routing table's loss is score's mean loss ($loss_a)"

# ---- bad input
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --source-field category --data "$MIX" -q > /dev/null 2> "$WORK/e1"
rc=$?
check '[ $rc -eq 1 ] && grep -q "mix.jsonl line 1: the record has no .category. field" $WORK/e1' "missing source field: $(cat $WORK/e1)"
{ head -3 "$MIX"; echo '{"instruction": "broken", "output": '; tail -3 "$MIX"; } > "$WORK/broken.jsonl"
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --source-field task --data "$WORK/broken.jsonl" -q > /dev/null 2> "$WORK/e2"
rc=$?
check '[ $rc -eq 1 ] && grep -q "broken.jsonl line 4: bad JSON" $WORK/e2 && grep -q "whole file" $WORK/e2' "malformed line: $(cat $WORK/e2)"
{ head -3 "$MIX"; echo '{"instruction": "a list as task", "output": "x", "task": [1]}'; } > "$WORK/badtag.jsonl"
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --source-field task --data "$WORK/badtag.jsonl" -q > /dev/null 2> "$WORK/e3"
rc=$?
check '[ $rc -eq 1 ] && grep -q "line 4: .*not a string or a number" $WORK/e3' "a source field of the wrong type: $(cat $WORK/e3)"
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --data "$WORK/missing.jsonl" -q > /dev/null 2> "$WORK/e4"
rc=$?
check '[ $rc -eq 1 ] && grep -q "missing.jsonl" $WORK/e4' "missing file: $(cat $WORK/e4)"
"$BIN" score --model "$MODEL" --adapter "$AD" --json --data "$A" > /dev/null 2> "$WORK/e5"
rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--json goes with --routing" $WORK/e5' "--json without --routing: $(cat $WORK/e5)"
"$BIN" score --model "$MODEL" --routing --data "$A" > /dev/null 2> "$WORK/e6"
rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--routing needs --adapter" $WORK/e6' "--routing without an adapter: $(cat $WORK/e6)"
printf '1 5 9\n' > "$WORK/ids.txt"
"$BIN" score --model "$MODEL" --adapter "$AD" --routing --source-field task --ids "$WORK/ids.txt" > /dev/null 2> "$WORK/e7"
rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--source-field needs --data" $WORK/e7' "--source-field with --ids: $(cat $WORK/e7)"
"$BIN" train $COMMON --set max_steps=1 --set save_every=0 --set eval_every=0 --set variant=uniform --set n_heads=3 \
    --out "$WORK/uniform" > /dev/null 2>&1
"$BIN" score --model "$MODEL" --adapter "$WORK/uniform/adapter" --routing --data "$A" -q > /dev/null 2> "$WORK/e8"
rc=$?
check '[ $rc -eq 1 ] && grep -q "no router" $WORK/e8' "uniform adapter: $(cat $WORK/e8)"

# ---- --help says what is counted
"$BIN" score --help > "$WORK/help" 2>&1
check 'grep -q "every non-padding" $WORK/help && grep -q -- "--source-field" $WORK/help' "--help explains the positions counted"
finish
