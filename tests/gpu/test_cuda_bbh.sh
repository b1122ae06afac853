# `hydralora eval bbh --device cuda` against `--device cpu` on stories260K: two tasks, the same
# predictions (generated text and extracted answer of every example) and identical scores; also
# `generate` prints the same greedy text on both. Exit 77 ("skipped: no CUDA device") where no GPU
# is usable. HL_GPU_TEST_SELFCHECK=1 runs it with device cpu in place of cuda (checks the script).
set -u
BIN=${HL_BIN:-./hydralora}
SHARED=${HL_SHARED:-../shared}
MODEL=$SHARED/models/stories260K-hf
BBH=$SHARED/datasets/bbh
WORK=$(mktemp -d /tmp/hl_cuda_bbh.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "PASS: $*"; PASSES=$((PASSES + 1)); }
DEV=cuda
[ -n "${HL_GPU_TEST_SELFCHECK:-}" ] && DEV=cpu

if ! "$BIN" model info --device "$DEV" "$MODEL" > "$WORK/info" 2>&1; then
    echo "skipped: no CUDA device ($(grep -m1 -i 'error' "$WORK/info" | sed 's/^hydralora[^:]*: //'))"
    exit 77
fi

TASKS=boolean_expressions,date_understanding
for which in ref dev; do
    d=cpu
    [ $which = dev ] && d=$DEV
    out=$WORK/$which
    t0=$(date +%s)
    "$BIN" eval bbh --model "$MODEL" --data "$BBH" --out "$out" --tasks $TASKS --limit 12 --max-new-tokens 64 \
        --device "$d" --batch 5 --quiet --json > "$out.json" 2> "$out.err"
    echo "eval bbh --device $d: exit $? in $(( $(date +%s) - t0 )) s"
    tail -3 "$out.err"
done
REF=$WORK/ref
# per example: task, idx, the generated text and the extracted answer, sorted
keyed() {
    python3 - "$1" << 'EOF'
import json, sys
rows = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    keep = {k: r[k] for k in ("task", "idx", "prompt_sha256", "prompt_tokens", "generation", "generated_tokens",
                              "stop", "extracted", "correct")}
    rows.append(json.dumps(keep, sort_keys=True))
for r in sorted(rows):
    print(r)
EOF
}
if [ -s "$REF/samples.jsonl" ] && [ -s "$WORK/dev/samples.jsonl" ]; then
    keyed "$REF/samples.jsonl" > "$WORK/a.txt"
    keyed "$WORK/dev/samples.jsonl" > "$WORK/b.txt"
    n=$(wc -l < "$WORK/a.txt")
    if cmp -s "$WORK/a.txt" "$WORK/b.txt" && [ "$n" -eq 24 ]; then
        pass "eval bbh: $n predictions equal on cpu and $DEV"
    else
        fail "eval bbh: predictions differ ($n on cpu, $(wc -l < "$WORK/b.txt") on $DEV); first differences:"
        diff "$WORK/a.txt" "$WORK/b.txt" | head -6 >&2
    fi
else
    fail "eval bbh: samples.jsonl missing (see the errors above)"
fi
scores() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d.get('scores', d), sort_keys=True))" "$1" 2> /dev/null; }
if [ "$(scores "$REF.json")" = "$(scores "$WORK/dev.json")" ] && [ -n "$(scores "$REF.json")" ]; then
    pass "eval bbh: identical scores"
else
    fail "eval bbh: scores differ: cpu $(scores "$REF.json" | head -c 300) vs $DEV $(scores "$WORK/dev.json" | head -c 300)"
fi

# generate: the same greedy text
"$BIN" generate --model "$MODEL" --device cpu -n 200 -p "Once upon a time" > "$WORK/g_cpu.txt" 2> "$WORK/g_cpu.err"
"$BIN" generate --model "$MODEL" --device "$DEV" -n 200 -p "Once upon a time" > "$WORK/g_dev.txt" 2> "$WORK/g_dev.err"
if [ -s "$WORK/g_cpu.txt" ] && cmp -s "$WORK/g_cpu.txt" "$WORK/g_dev.txt"; then
    pass "generate: same greedy text on cpu and $DEV"
else
    fail "generate: texts differ or are empty: $(head -c 200 "$WORK/g_dev.txt") / $(tail -2 "$WORK/g_dev.err")"
fi
echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
