# The learning rate of every step follows transformers' schedules with warmup
# (get_cosine/linear/constant_schedule_with_warmup; warmup = ceil(ratio * steps)); the k-th
# update (0-based) uses lr(k). Expected values are computed here with awk from those formulas.
. "$(dirname "$0")/train_common.sh"

for sched in cosine linear constant; do
  "$BIN" train $COMMON --set max_steps=10 --set warmup_ratio=0.25 --set lr=1e-3 --set schedule=$sched \
    --set val_split=0 --set save_every=0 --out "$WORK/$sched" > "$WORK/$sched.out" 2>&1
  rc=$?
  check '[ $rc -eq 0 ]' "$sched run failed: $(tail -2 $WORK/$sched.out)"
  grep '"event":"step"' "$WORK/$sched/metrics.jsonl" | sed 's/.*"step":\([0-9]*\),.*"lr":\([^,]*\),.*/\1 \2/' > "$WORK/$sched.lr"
  bad=$(awk -v s=$sched 'BEGIN { total = 10; warm = 3; pi = atan2(0, -1) }
    { k = $1 - 1
      if (k < warm) e = 1e-3 * k / warm
      else if (s == "cosine") e = 1e-3 * 0.5 * (1 + cos(pi * (k - warm) / (total - warm)))
      else if (s == "linear") e = 1e-3 * (total - k) / (total - warm)
      else e = 1e-3
      d = $2 - e; if (d < 0) d = -d
      if (d > 1e-9 + 1e-6 * e) printf "step %d: lr %s, expected %.9g\n", $1, $2, e }' "$WORK/$sched.lr")
  check '[ -z "$bad" ] && [ $(wc -l < $WORK/$sched.lr) -eq 10 ]' "$sched schedule: $bad"
done
finish
