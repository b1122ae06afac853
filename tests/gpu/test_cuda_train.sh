# `hydralora train --set device=cuda` against the same runs on the CPU (stories260K, HydraLoRA on
# GSM8K): 300 steps reach the CPU run's eval loss within 1%; the same seed gives the same loss bits
# twice on the GPU; a checkpoint written on one device resumes on the other and continues the CPU
# run's loss curve. Exit 77 ("skipped: no CUDA device") where no GPU is usable.
# HL_GPU_TEST_SELFCHECK=1 runs it with device cpu in place of cuda (a check of the script itself).
set -u
BIN=${HL_BIN:-./hydralora}
TBIN=${HL_TESTHOOKS_BIN:-$(dirname "$BIN")/hydralora-testhooks}
SHARED=${HL_SHARED:-../shared}
MODEL=$SHARED/models/stories260K-hf
DATA=$SHARED/datasets/gsm8k/train.jsonl
WORK=$(mktemp -d /tmp/hl_cuda_train.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
pass() { PASSES=$((PASSES + 1)); }
check() { if eval "$1"; then pass; else fail "$2"; fi; }
DEV=cuda
[ -n "${HL_GPU_TEST_SELFCHECK:-}" ] && DEV=cpu

if ! "$BIN" model info --device "$DEV" "$MODEL" > "$WORK/info" 2>&1; then
    echo "skipped: no CUDA device ($(grep -m1 -i 'error' "$WORK/info" | sed 's/^hydralora[^:]*: //'))"
    exit 77
fi

# "step loss_hex" per line (the last record of each step: a resumed run logs its steps again)
steps_hex() {
    grep '"event":"step"' "$1/metrics.jsonl" | sed 's/.*"step":\([0-9]*\),.*"loss_hex":"\([^"]*\)".*/\1 \2/' |
        awk '{ v[$1] = $2 } END { for (s in v) print s, v[s] }' | sort -n
}
steps_loss() {
    grep '"event":"step"' "$1/metrics.jsonl" | sed 's/.*"step":\([0-9]*\),.*"loss":\([-0-9.e+naif]*\).*/\1 \2/' |
        awk '{ v[$1] = $2 } END { for (s in v) print s, v[s] }' | sort -n
}
last_eval() { grep '"event":"eval"' "$1/metrics.jsonl" | tail -1 | sed 's/.*"eval_loss":\([-0-9.e+]*\).*/\1/'; }

# 0. model info --device cuda: the GPU plan against the device's free memory (what a session
#    compares before it allocates); 100000 x 512 tokens plan about 400 GB even with checkpointing
if [ "$DEV" != cpu ]; then
    check 'grep -q "^  free on cuda:0 .*headroom fits$" "$WORK/info"' \
        "model info --device cuda should say that stories260K fits: $(grep -m1 -e 'free on' -e 'no plan' "$WORK/info")"
    "$BIN" model info --device "$DEV" --batch 100000 "$MODEL" > "$WORK/info-big" 2>&1
    check '[ $? -eq 0 ] && grep -q "^  free on cuda:0 .*does NOT fit" "$WORK/info-big"' \
        "model info --device cuda --batch 100000 should say the plan does not fit: $(grep -m1 -e 'free on' -e 'no plan' -e error "$WORK/info-big")"
fi

COMMON="--model $MODEL --data $DATA --set max_len=256 --set micro_batch=8 --set grad_accum=1 --set val_split=256 \
 --set seed=7 --set lr=2e-3 --set keep_last=0 --quiet"

# 1. 300 steps on each device: the final eval losses agree within 1%
t0=$(date +%s)
"$BIN" train $COMMON --set device=cpu --set max_steps=300 --set eval_every=100 --set save_every=0 \
    --out "$WORK/cpu300" > "$WORK/cpu300.out" 2>&1
check '[ $? -eq 0 ]' "cpu 300-step run failed: $(tail -3 "$WORK/cpu300.out")"
t1=$(date +%s)
"$BIN" train $COMMON --set device=$DEV --set max_steps=300 --set eval_every=100 --set save_every=0 \
    --out "$WORK/gpu300" > "$WORK/gpu300.out" 2>&1
check '[ $? -eq 0 ]' "$DEV 300-step run failed: $(tail -3 "$WORK/gpu300.out")"
t2=$(date +%s)
ec=$(last_eval "$WORK/cpu300")
eg=$(last_eval "$WORK/gpu300")
e0=$(grep '"event":"eval"' "$WORK/cpu300/metrics.jsonl" | head -1 | sed 's/.*"eval_loss":\([-0-9.e+]*\).*/\1/')
echo "300 steps: eval loss cpu $ec ($((t1 - t0)) s), $DEV $eg ($((t2 - t1)) s), at the start $e0"
check 'awk -v a="$ec" -v b="$eg" "BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d / a <= 0.01) }"' \
    "eval loss after 300 steps: cpu $ec vs $DEV $eg (more than 1% apart)"
check 'awk -v a="$ec" -v b="$e0" "BEGIN { exit !(a < b) }"' "the run should learn (eval loss $e0 -> $ec)"
# the loss curves stay together step by step (largest relative difference printed)
paste <(steps_loss "$WORK/cpu300") <(steps_loss "$WORK/gpu300") |
    awk '{ d = ($2 - $4) / $2; if (d < 0) d = -d; if (d > m) { m = d; s = $1 } } END { printf "largest step-loss difference %.2e at step %d\n", m, s }'

# 2. the same seed twice on the GPU: the same loss bits
"$BIN" train $COMMON --set device=$DEV --set max_steps=30 --set eval_every=0 --set save_every=0 \
    --out "$WORK/d1" > /dev/null 2>&1
"$BIN" train $COMMON --set device=$DEV --set max_steps=30 --set eval_every=0 --set save_every=0 \
    --out "$WORK/d2" > /dev/null 2>&1
check '[ "$(steps_hex "$WORK/d1" | wc -l)" -eq 30 ] && diff <(steps_hex "$WORK/d1") <(steps_hex "$WORK/d2") > /dev/null' \
    "two $DEV runs with the same seed differ"

# 3. a checkpoint crosses devices: stop at step 7 (NaN injected) with the step-4 checkpoint, resume
#    on the other device; steps 5-12 follow the uninterrupted CPU run
SHORT="$COMMON --set max_steps=12 --set eval_every=0 --set save_every=4"
"$BIN" train $SHORT --set device=cpu --out "$WORK/ref" > /dev/null 2>&1
check '[ "$(steps_hex "$WORK/ref" | wc -l)" -eq 12 ]' "reference cpu run should log 12 steps"
for pair in "cpu $DEV" "$DEV cpu"; do
    set -- $pair
    dir="$WORK/x-$1-$2"
    HL_TEST_NAN_STEP=7 "$TBIN" train $SHORT --set device=$1 --out "$dir" > "$dir.out" 2>&1
    check '[ -f "$dir/checkpoints/step-4/state.json" ]' "$1 run should keep its step-4 checkpoint"
    "$BIN" train --resume "$dir" --set device=$2 > "$dir.resume" 2>&1
    check '[ $? -eq 0 ] && grep -q "resumed from checkpoint step-4" "$dir.resume"' \
        "resume on $2 of a $1 checkpoint failed: $(tail -2 "$dir.resume")"
    worst=$(paste <(steps_loss "$WORK/ref") <(steps_loss "$dir") |
        awk '$1 >= 5 { d = ($2 - $4) / $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.3g", m + 0 }')
    echo "checkpoint $1 -> $2: steps 5-12 within $worst (relative) of the cpu run"
    check '[ "$(steps_hex "$dir" | wc -l)" -eq 12 ] && awk -v w="$worst" "BEGIN { exit !(w <= 1e-3) }"' \
        "$1 -> $2 resume: steps 5-12 differ from the cpu run by $worst"
done

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
