# `hydralora cluster` chooses N two ways, side by side (issue 11 item 8): on a mixture of four
# distinct sources, two of them word problems (GSM8K questions, BBH date_understanding,
# HumanEval prompts, BBH word_sorting; 100 records each), the text table has a silhouette
# column next to SSE and the elbow score, the summary names the elbow (3) and the silhouette
# (4) proposals, the default proposes 4 (as does Ward), --criterion elbow proposes 3,
# --criterion is checked, and --help says how N is chosen.
set -u
BIN=${HL_BIN:-./hydralora}
SHARED=${HL_SHARED:-../shared}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/hl_cluster_cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; cat "$WORK/out" "$WORK/err" >&2; fi; }
run() { "$BIN" "$@" > "$WORK/out" 2> "$WORK/err"; echo $? > "$WORK/rc"; }
rc() { cat "$WORK/rc"; }
jget() { $PY -c "import json,sys; d=json.load(open('$WORK/out')); print($1)"; }

$PY - "$SHARED" "$WORK/mix.jsonl" <<'PYEOF'
import gzip, json, os, random, sys
shared, out = sys.argv[1], sys.argv[2]
rng = random.Random(0)
gsm = [json.loads(l)["question"] for l in open(os.path.join(shared, "datasets/gsm8k/test.jsonl"))]
he = [json.loads(l)["prompt"] for l in gzip.open(os.path.join(shared, "datasets/humaneval/HumanEval.jsonl.gz"))]
def bbh(t):
    return [e["input"] for e in json.load(open(os.path.join(shared, "datasets/bbh/data", t + ".json")))["examples"]]
recs = []
for pool in [gsm, bbh("date_understanding"), he, bbh("word_sorting")]:
    recs += [{"instruction": t, "input": ""} for t in rng.sample(pool, min(100, len(pool)))]
rng.shuffle(recs)
with open(out, "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in recs))
PYEOF

run cluster --help
check '[ $(rc) -eq 0 ] && grep -q -- "--criterion" $WORK/out && grep -q "silhouette" $WORK/out' "--help explains the criteria"

run cluster --data "$WORK/mix.jsonl" --quiet
check '[ $(rc) -eq 0 ]' "cluster runs"
check 'grep -qE "^ +K +SSE +elbow +silhouette" $WORK/out' "a silhouette column next to SSE and the elbow score"
check 'grep -qE "^ +1 +[0-9.]+ +[0-9.]+ +- " $WORK/out' "K = 1 has no silhouette"
check 'grep -qE "^ +3 .*<- elbow" $WORK/out' "the elbow row is marked (K = 3)"
check 'grep -qE "^ +4 +[0-9.]+ +[0-9.]+ +0\.[0-9]{4} .*<- silhouette" $WORK/out' "the silhouette row is marked (K = 4)"
check 'grep -q "choosing N: elbow of SSE 3, silhouette (first peak) 4" $WORK/out' "both proposals in one line"
check 'grep -q "proposed N = 4  (--criterion silhouette" $WORK/out' "the default proposal is the silhouette's"

run cluster --data "$WORK/mix.jsonl" --quiet --json
check '[ $(rc) -eq 0 ] && [ "$(jget "d[\"proposed_n\"], d[\"criterion\"], d[\"criteria\"][\"elbow\"], d[\"criteria\"][\"silhouette\"]")" = "4 silhouette 3 4" ]' \
    "--json: proposed_n 4 by the silhouette, criteria elbow 3 / silhouette 4"
check '[ "$(jget "sum(1 for e in d[\"sse\"] if e[\"k\"] >= 2 and 0 < e[\"silhouette\"] < 1)")" = "11" ]' \
    "--json: a silhouette for every K >= 2"
run cluster --data "$WORK/mix.jsonl" --quiet --json --method ward
check '[ $(rc) -eq 0 ] && [ "$(jget "d[\"proposed_n\"], d[\"criteria\"][\"elbow\"]")" = "4 3" ]' "Ward: the silhouette proposes 4 where its elbow says 3"
run cluster --data "$WORK/mix.jsonl" --quiet --json --criterion elbow
check '[ $(rc) -eq 0 ] && [ "$(jget "d[\"proposed_n\"], d[\"criterion\"]")" = "3 elbow" ]' "--criterion elbow proposes the elbow"
run cluster --data "$WORK/mix.jsonl" --quiet --json --criterion silhouette-max
check '[ $(rc) -eq 0 ] && [ "$(jget "d[\"proposed_n\"] == d[\"criteria\"][\"silhouette_max\"]")" = "True" ]' "--criterion silhouette-max"
run cluster --data "$WORK/mix.jsonl" --quiet --criterion gap
check '[ $(rc) -eq 2 ] && grep -q "hydralora cluster: --criterion must be silhouette, silhouette-max or elbow" $WORK/err' \
    "an unknown criterion is a usage error"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
