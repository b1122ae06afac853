# `hydralora bbh` / `hydralora eval bbh` as a user meets them: help, usage errors (exit 2),
# missing data with a hint (exit 1), malformed prediction lines reported with their line
# numbers, --strict, --json keys, the default data folder from $HYDRALORA_DATA, compare.
set -u
BIN=${HL_BIN:-./hydralora}
SHARED=${HL_SHARED:-../shared}
BBH=$SHARED/datasets/bbh
WORK=$(mktemp -d /tmp/hl_bbh_cli.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; fi; }

run() { "$BIN" "$@" > "$WORK/out" 2> "$WORK/err"; echo $? > "$WORK/rc"; }
rc() { cat "$WORK/rc"; }

run bbh --help
check '[ $(rc) -eq 0 ] && grep -q "score" $WORK/out && grep -q "compare" $WORK/out' "bbh --help"
run bbh
check '[ $(rc) -eq 2 ]' "bbh without subcommand is a usage error"
run bbh frobnicate
check '[ $(rc) -eq 2 ] && grep -q "unknown subcommand" $WORK/err' "unknown subcommand"
run bbh score --help
check '[ $(rc) -eq 0 ] && grep -q -- "--predictions" $WORK/out && grep -q -- "--rule" $WORK/out' "score --help"
run bbh score
check '[ $(rc) -eq 2 ] && grep -q "predictions" $WORK/err' "score without --predictions"
run bbh score -p /dev/null --rule nonsense
check '[ $(rc) -eq 2 ] && grep -q "paper, lm-eval or opencompass" $WORK/err' "bad --rule names the choices"
run eval bbh --model x
check '[ $(rc) -eq 2 ] && grep -q -- "--out" $WORK/err' "eval bbh needs --out"
run eval bbh --help
check '[ $(rc) -eq 0 ] && grep -q "resume" $WORK/out' "eval bbh --help mentions resume"
run eval
check '[ $(rc) -eq 2 ]' "eval without benchmark"

# missing data folder: exit 1 with a hint; default folder from $HYDRALORA_DATA
printf '{"task":"navigate","idx":0,"prediction":"So the answer is Yes."}\n' > "$WORK/one.jsonl"
HYDRALORA_DATA=$WORK/nodata run bbh score -p "$WORK/one.jsonl"
check '[ $(rc) -eq 1 ] && grep -q "$WORK/nodata/bbh" $WORK/err && grep -q -- "--data" $WORK/err' \
  "missing default data dir: hint names the folder and --data ($(cat $WORK/err))"
mkdir -p "$WORK/dd"
ln -s "$(cd "$BBH" && pwd)" "$WORK/dd/bbh"
HYDRALORA_DATA=$WORK/dd run bbh score -p "$WORK/one.jsonl" --json
check '[ $(rc) -eq 0 ] && grep -q "\"navigate\"" $WORK/out' "default data dir from HYDRALORA_DATA"

# malformed lines: reported with line numbers, skipped; --strict turns them into exit 1
{
  printf '{"task":"navigate","idx":0,"prediction":"So the answer is Yes."}\n'
  printf 'this is not json\n'
  printf '\n'
  printf '{"task":"navigate","idx":99999,"prediction":"x"}\n'
  printf '{"task":"nope","idx":1,"prediction":"x"}\n'
  printf '{"task":"navigate","idx":0,"prediction":"again"}\n'
  printf '{"task":"navigate","idx":1}\n'
  printf '{"task":"navigate","idx":2,"prediction":"So the answer is No."}'
} > "$WORK/bad.jsonl"
run bbh score -p "$WORK/bad.jsonl" --data "$BBH"
check '[ $(rc) -eq 0 ]' "malformed lines are skipped, exit 0 ($(cat $WORK/err))"
for n in 2 4 5 6 7; do
  check "grep -q 'bad.jsonl:$n:' $WORK/err" "line $n reported: $(cat $WORK/err)"
done
check '! grep -q "bad.jsonl:1:\|bad.jsonl:3:\|bad.jsonl:8:" $WORK/err' "good and blank lines not reported"
check 'grep -q "navigate  *2 " $WORK/out' "2 navigate examples scored: $(cat $WORK/out)"
run bbh score -p "$WORK/bad.jsonl" --data "$BBH" --strict
check '[ $(rc) -eq 1 ]' "--strict fails on malformed lines"

# --json keys; --out writes the same; the Codex reference through the CLI
run bbh score -p "$BBH/reference/codex_cot_predictions.jsonl" --data "$BBH" --json --out "$WORK/s.json"
check '[ $(rc) -eq 0 ]' "score codex"
for k in '"rule":"paper"' '"mode":"cot"' '"per_task"' '"macro_23_tasks"' '"mean_27_subtasks"' '"micro_examples"'; do
  check "tr -d '\t' < $WORK/out | grep -q '$k'" "json has $k"
done
check 'cmp -s <(tr -d "\t\n " < $WORK/out) <(tr -d "\t\n " < $WORK/s.json)' "--out equals --json"
run bbh score -p "$BBH/reference/codex_cot_predictions.jsonl" --data "$BBH"
check 'grep -q "macro over 23 tasks (paper.s average)  *73.93" $WORK/out' "paper macro 73.93 labelled"
check 'grep -q "mean over 27 subtasks.*73.71" $WORK/out' "27-subtask mean 73.71 labelled"
check 'grep -q "micro over 6511 examples (lm-eval)  *73.97" $WORK/out' "micro 73.97 labelled"
run bbh score -p "$BBH/reference/codex_cot_predictions.jsonl" --data "$BBH" --rule lm-eval --out "$WORK/l.json"
run bbh compare "$WORK/s.json" "$WORK/l.json" --names paper,lmeval
check '[ $(rc) -eq 0 ] && grep -q "dyck_languages .*56.80 *55.60 *-1.20" $WORK/out' "compare shows the difference"
check 'grep -q "different\|differ in convention" $WORK/err' "compare warns about different rules"
run bbh compare "$WORK/s.json" "$WORK/one.jsonl"
check '[ $(rc) -eq 1 ]' "compare rejects a non-summary"

# tasks and prompt
run bbh tasks --data "$BBH"
check '[ $(rc) -eq 0 ] && [ $(wc -l < $WORK/out) -eq 27 ] && grep -q "snarks .* 178" $WORK/out' "bbh tasks"
run bbh prompt snarks 88 --data "$BBH"
check '[ $(rc) -eq 0 ] && tail -c 60 $WORK/out | grep -q "(A) The NB"' "bbh prompt snarks 88"
run bbh prompt snarks 178 --data "$BBH"
check '[ $(rc) -eq 1 ] && grep -q "out of range" $WORK/err' "prompt index out of range"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
