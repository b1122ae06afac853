#!/usr/bin/env bash
# What a new user hit in the first hour with the command line (issue 11), one section per
# item: the regression test for each. Every section fails on the tree the issue was filed
# against (a964fa9).
. "$(dirname "$0")/train_common.sh"
HF=$SHARED/models/stories260K-hf
L2C=$SHARED/models/stories260K
GGUF=$SHARED/models/stories260K-gguf
export HYDRALORA_DATA=$WORK/datahome
mkdir -p "$HYDRALORA_DATA"
ln -s "$SHARED/datasets/bbh" "$HYDRALORA_DATA/bbh"
SHORT="--set max_steps=3 --set max_len=64 --set grad_accum=1 --set eval_every=0 --set save_every=0 --set threads=2"
has() { grep -qF -- "$2" "$1"; }

# ---- 1. --overwrite loses nothing before the new run has started ---------------------------
"$BIN" train --model "$HF" --data "$DATA" --out "$WORK/r1" $SHORT --quiet > "$WORK/1a.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && [ -d $WORK/r1/checkpoints/step-3 ] && [ -d $WORK/r1/adapter ]' "1: first run: $(tail -2 $WORK/1a.out)"
mkdir -p "$WORK/r1/export" "$WORK/r1/eval/base"
echo old > "$WORK/r1/export/adapter_config.json"
echo old > "$WORK/r1/eval/base/summary.json"
echo mine > "$WORK/r1/notes.txt"
(cd "$WORK/r1" && find . -type f | sort | xargs sha256sum) > "$WORK/1.before"
"$BIN" train --model "$HF" --data "$WORK/typo.jsonl" --out "$WORK/r1" $SHORT --overwrite > "$WORK/1b.out" 2>&1
rc=$?
(cd "$WORK/r1" && find . -type f | sort | xargs sha256sum) > "$WORK/1.after"
check '[ $rc -ne 0 ] && has $WORK/1b.out typo.jsonl' "1: a typo in --data must fail naming the file (rc $rc)"
check 'cmp -s $WORK/1.before $WORK/1.after' "1: --overwrite with a bad --data changed the old run: $(diff $WORK/1.before $WORK/1.after | head -5)"
"$BIN" train --model "$WORK/junk-model" --data "$DATA" --out "$WORK/r1" $SHORT --overwrite > "$WORK/1c.out" 2>&1
rc=$?
(cd "$WORK/r1" && find . -type f | sort | xargs sha256sum) > "$WORK/1.after"
check '[ $rc -ne 0 ] && cmp -s $WORK/1.before $WORK/1.after' "1: --overwrite with a junk model changed the old run (rc $rc)"
"$BIN" train --model "$HF" --data "$DATA" --out "$WORK/r1" $SHORT --set max_steps=2 --overwrite --quiet > "$WORK/1d.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && [ -d $WORK/r1/checkpoints/step-2 ] && [ ! -e $WORK/r1/checkpoints/step-3 ]' "1: a good --overwrite replaces the checkpoints: $(ls $WORK/r1/checkpoints)"
check '[ ! -e $WORK/r1/export ] && [ ! -e $WORK/r1/eval ]' "1: the old run's export/ and eval/ must go with it"
check '[ -f $WORK/r1/notes.txt ] && ! ls -a $WORK/r1 | grep -q replaced' "1: files the user put there stay, nothing set aside is left"
check '[ $(grep -c "\"event\":\"start\"" $WORK/r1/metrics.jsonl) -eq 1 ] && grep -q "\"max_steps\":[[:space:]]*2" $WORK/r1/config.json' "1: metrics.jsonl and config.json are the new run's only"

# ---- 2. one n_heads range: --help-config, --set, config files and training agree -----------
"$BIN" train --help-config > "$WORK/2.help"
check 'grep -A0 "^  n_heads" $WORK/2.help | grep -qF "[1, 64]"' "2: --help-config shows n_heads [1, 64]: $(grep '^  n_heads' $WORK/2.help)"
"$BIN" train --model "$HF" --data "$DATA" --set n_heads=65 --print-config > "$WORK/2a.out" 2>&1
rc=$?
check '[ $rc -eq 2 ] && has $WORK/2a.out "n_heads: 65 is out of range [1, 64]"' "2: --print-config must refuse n_heads=65: $(cat $WORK/2a.out | head -2)"
echo '{"model": "'"$HF"'", "data": "'"$DATA"'", "n_heads": 200}' > "$WORK/2.json"
"$BIN" train --config "$WORK/2.json" --print-config > "$WORK/2b.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && has $WORK/2b.out "[1, 64]"' "2: a config file with n_heads 200 must be refused: $(head -2 $WORK/2b.out)"
"$BIN" train --model "$HF" --data "$DATA" --set n_heads=64 --print-config > "$WORK/2c.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "\"n_heads\":[[:space:]]*64" $WORK/2c.out' "2: n_heads=64 is the largest accepted"

# ---- 3. max_len above the model's context is clamped, and it is said ------------------------
"$BIN" train --model "$HF" --data "$DATA" --out "$WORK/r3" --set max_steps=1 --set grad_accum=1 --set eval_every=0 \
    --set threads=2 --quiet > "$WORK/3.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && has $WORK/3.out "max_len 1024 exceeds the model'"'"'s context of 512 positions: training with max_len 512"' \
    "3: the default max_len 1024 on stories260K must be clamped with a message: $(head -3 $WORK/3.out)"
check 'grep -q "\"max_len\":[[:space:]]*512" $WORK/r3/config.json' "3: the run's config.json records the max_len used"
"$BIN" model info "$HF" > "$WORK/3m.out" 2>&1
check 'has $WORK/3m.out "micro-batch 1 x 512 tokens"' "3: model info estimates training at the clamped length"

# ---- 4. eval bbh as the README writes it runs on stories260K and says what it cut -----------
"$BIN" eval bbh --model "$L2C/stories260K.bin" --tasks navigate,snarks --limit 2 --out "$WORK/ev4" > "$WORK/4.out" 2> "$WORK/4.err"
rc=$?
check '[ $rc -eq 0 ]' "4: eval bbh with the defaults on a 512-token model must run (rc $rc): $(tail -2 $WORK/4.err)"
check 'has $WORK/4.err "generating at most 256 new tokens"' "4: the lowered cap on new tokens is said: $(head -2 $WORK/4.err)"
n_cut=$(grep -o '"prompts_truncated":[[:space:]]*[0-9]*' "$WORK/ev4/summary.json" | grep -o '[0-9]*$')
check '[ -n "$n_cut" ] && [ "$n_cut" -gt 0 ] && has $WORK/4.err "warning: $n_cut of 4 prompts were cut on the left"' \
    "4: truncated prompts ($n_cut in summary.json) must be a warning line: $(grep -i cut $WORK/4.err)"
"$BIN" eval bbh --model "$L2C" --tasks navigate --limit 1 --out "$WORK/ev4q" --quiet > /dev/null 2> "$WORK/4q.err"
check 'has $WORK/4q.err "prompts were cut on the left"' "4: the truncation warning shows with --quiet too"

# ---- 5. one tokenizer rule: model info finds tok512.bin beside stories260K.bin --------------
"$BIN" model info "$L2C/stories260K.bin" > "$WORK/5a.out" 2>&1
check 'grep -q "^tokenizer .*tok512.bin" $WORK/5a.out' "5: model info on stories260K.bin: $(grep tokenizer $WORK/5a.out)"
"$BIN" model info "$L2C" > "$WORK/5b.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "^format *llama2c" $WORK/5b.out && grep -q "^tokenizer .*tok512.bin" $WORK/5b.out' \
    "5: model info on the stories260K folder (a llama2.c download): $(head -2 $WORK/5b.out)"
"$BIN" model info "$GGUF" > "$WORK/5c.out" 2>&1
check 'grep -q "^tokenizer *embedded" $WORK/5c.out' "5: a GGUF folder: the embedded vocabulary"
mkdir -p "$WORK/lonely"
cp "$L2C/stories260K.bin" "$WORK/lonely/"
"$BIN" tokenize --model "$WORK/lonely/stories260K.bin" --text hi > "$WORK/5d.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && has $WORK/5d.out "--tokenizer"' "5: no tokenizer: the CLI says to pass --tokenizer: $(cat $WORK/5d.out)"

mkdir -p "$WORK/twotok"
cp "$L2C/stories260K.bin" "$L2C/tok512.bin" "$WORK/twotok/"
cp "$L2C/tok512.bin" "$WORK/twotok/tok512-copy.bin"
"$BIN" tokenize --model "$WORK/twotok/stories260K.bin" --text hi > "$WORK/5e.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && has $WORK/5e.out "several tokenizers" && has $WORK/5e.out "tok512-copy.bin"' \
    "5: two tokenizers beside the model: the CLI names both and asks for one: $(cat $WORK/5e.out)"
"$BIN" tokenize --model "$WORK/twotok/stories260K.bin" --tokenizer "$WORK/twotok/tok512.bin" --text hi > "$WORK/5f.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "5: naming one of the two tokenizers works: $(cat $WORK/5f.out)"

# ---- 6. every --tokenizer / --model flag takes a folder, a model file or a tokenizer file ----
want=$("$BIN" tokenize --tokenizer "$L2C/tok512.bin" --text "Lily had a cat." 2>&1)
for form in "$L2C" "$L2C/stories260K.bin" "$L2C/tok512.bin" "$GGUF/stories260K.gguf" "$GGUF" "$HF" "$HF/model.safetensors"; do
    got=$("$BIN" tokenize --tokenizer "$form" --text "Lily had a cat." 2>&1)
    check '[ "$got" = "$want" ]' "6: tokenize --tokenizer $form: '$got' (want '$want')"
    got=$("$BIN" tokenize --model "$form" --text "Lily had a cat." 2>&1)
    check '[ "$got" = "$want" ]' "6: tokenize --model $form: '$got'"
done
"$BIN" data inspect "$DATA" --tokenizer "$L2C/tok512.bin" > "$WORK/6.want" 2>&1
for form in "$L2C" "$L2C/stories260K.bin" "$GGUF/stories260K.gguf"; do
    "$BIN" data inspect "$DATA" --tokenizer "$form" > "$WORK/6.got" 2>&1
    rc=$?
    check '[ $rc -eq 0 ] && diff -q <(grep -v "^tokenizer" $WORK/6.want) <(grep -v "^tokenizer" $WORK/6.got) >/dev/null' \
        "6: data inspect --tokenizer $form: $(head -3 $WORK/6.got)"
    "$BIN" data show "$DATA" 0 --tokenizer "$form" > "$WORK/6s.got" 2>&1
    rc=$?
    check '[ $rc -eq 0 ] && has $WORK/6s.got "tokens"' "6: data show --tokenizer $form: $(head -2 $WORK/6s.got)"
done
"$BIN" generate --model "$L2C" --prompt "Once upon" --max-tokens 4 --seed 1 > "$WORK/6g.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "6: generate --model on the stories260K folder: $(tail -2 $WORK/6g.out)"

# ---- 7. a config.json whose layer count disagrees with the tensors is an error naming them --
for src in stories260K-hf stories260K-hf-f16-sharded; do
    for n in 3 7; do
        d="$WORK/m7-$src-$n"
        mkdir -p "$d"
        for f in "$SHARED/models/$src"/*; do ln -s "$f" "$d/"; done
        rm "$d/config.json"
        sed "s/\"num_hidden_layers\": *5/\"num_hidden_layers\": $n/" "$SHARED/models/$src/config.json" > "$d/config.json"
        "$BIN" model info "$d" > "$WORK/7.out" 2>&1
        rc=$?
        if [ $n = 3 ]; then
            check '[ $rc -ne 0 ] && has $WORK/7.out "num_hidden_layers in config.json is 3, but the weights hold 5 layers: model.layers.3.* to model.layers.4.* would be ignored"' \
                "7: $src with num_hidden_layers 3: rc $rc: $(head -2 $WORK/7.out)"
        else
            check '[ $rc -ne 0 ] && has $WORK/7.out "num_hidden_layers in config.json is 7, but the weights hold only 5 layers (no model.layers.5.* tensors)"' \
                "7: $src with num_hidden_layers 7: $(head -2 $WORK/7.out)"
        fi
    done
done

# ---- 11. an interrupted train or eval exits 128 + signal, and --help says so ----------------
check '"$BIN" train --help | grep -q "exits with status 130"' "11: train --help documents exit status 130"
check '"$BIN" eval bbh --help | grep -q "status 130"' "11: eval bbh --help documents exit status 130"
check 'grep -q "130" $HL_SOURCE_DIR/README.md' "11: the README documents exit status 130"
HL_TEST_STEP_DELAY_MS=300 "$TBIN" train --model "$HF" --data "$DATA" --out "$WORK/r11" --set max_steps=50 --set max_len=64 \
    --set grad_accum=1 --set eval_every=0 --set threads=2 --quiet > "$WORK/11.out" 2>&1 &
pid=$!
wait_steps "$WORK/r11" 2 120 || fail "11: the run never reached step 2"
kill -INT $pid
wait $pid
rc=$?
check '[ $rc -eq 130 ]' "11: train stopped by SIGINT must exit 130 (got $rc)"
"$BIN" train --resume "$WORK/r11" > /dev/null 2>&1 &
pid=$!
wait_steps "$WORK/r11" 3 120 || fail "11: the resumed run never reached step 3"
kill -TERM $pid
wait $pid
rc=$?
check '[ $rc -eq 143 ]' "11: train stopped by SIGTERM must exit 143 (got $rc)"

# ---- 12. a fatal train error is printed once -------------------------------------------------
"$BIN" train --model "$HF" --data "$WORK/missing.jsonl" --out "$WORK/r12" > "$WORK/12.out" 2>&1
check '[ $(grep -c "missing.jsonl: No such file" $WORK/12.out) -eq 1 ] && grep -q "^hydralora train: error: .*missing.jsonl" $WORK/12.out' \
    "12: the error must be printed once, as an error: $(cat $WORK/12.out)"
check '[ ! -e $WORK/r12 ]' "12: a run that failed to load leaves no run directory behind"

# ---- 17. no pointer at files users do not have ----------------------------------------------
for c in data model tokenize cluster train score export generate "eval bbh" bbh tsne workbench "data get" \
    "data inspect" "bbh score" "model info"; do
    "$BIN" $c --help > "$WORK/17.help" 2>&1
    check '! grep -qE "[A-Z]+\.md|(core|cli|tui|datasets)/[a-z_]+\.[ch]\b" $WORK/17.help' "17: $c --help points at a file: $(grep -E '\.md|/[a-z_]+\.[ch]' $WORK/17.help)"
done
check '! grep -qE "[A-Z]+\.md|(core|cli|tui)/[a-z_]+\.[ch]" $WORK/ev4/summary.json $WORK/ev4/settings.json' "17: summary.json names a source file: $(grep -E 'core/' $WORK/ev4/summary.json)"
check '! strings -n 8 "$BIN" | grep -E "HYDRALORA\.md|FORMATS\.md|BBH\.md|DESIGN\.md|(core|cli|tui)/[a-z_]+\.[ch]\b" | grep -v "^/" | grep -q .' \
    "17: a user-facing string in the binary points at a doc or source file: $(strings -n 8 $BIN | grep -E 'HYDRALORA\.md|FORMATS\.md|BBH\.md|DESIGN\.md|(core|cli|tui)/[a-z_]+\.[ch]\b' | grep -v '^/' | head -3)"
"$BIN" train --data "$DATA" > "$WORK/17t.out" 2>&1
check 'has $WORK/17t.out "model: no base model given (pass --model PATH"' "17: the CLI's own hint for a missing model: $(cat $WORK/17t.out)"
"$BIN" bbh prompt snarks 0 --data "$WORK/nobbh" > "$WORK/17b.out" 2>&1
check 'has $WORK/17b.out "hydralora data get bbh" && has $WORK/17b.out "--data DIR"' "17: the CLI's own hint for missing BBH data: $(cat $WORK/17b.out)"

# ---- 18. a damaged newest checkpoint: --resume falls back to the newest intact one ----------
"$BIN" train $COMMON --out "$WORK/a18" > /dev/null 2>&1
"$BIN" train $COMMON --set max_steps=12 --out "$WORK/r18" > /dev/null 2>&1
check '[ -d $WORK/r18/checkpoints/step-12 ] && [ -d $WORK/r18/checkpoints/step-8 ]' "18: setup: checkpoints 8 and 12"
# simulate a run interrupted after step 12's checkpoint whose file was then cut short
f=$WORK/r18/checkpoints/step-12/state.safetensors
truncate -s $(( $(stat -c %s "$f") / 3 )) "$f"
rm -rf "$WORK/r18/adapter"
"$BIN" train --resume "$WORK/r18" > "$WORK/18.out" 2>&1
rc=$?
check '[ $rc -eq 0 ]' "18: resume with a truncated newest checkpoint must fall back (rc $rc): $(tail -3 $WORK/18.out)"
check 'has $WORK/18.out "checkpoint step-12 cannot be read" && has $WORK/18.out "resuming from step-8, the newest intact checkpoint"' \
    "18: the fallback is said: $(grep -i checkpoint $WORK/18.out | head -3)"
check 'diff <(steps_hex $WORK/a18) <(steps_hex $WORK/r18) > /dev/null' "18: the resumed run equals an uninterrupted one"
f=$WORK/r18/checkpoints/step-8/state.json
for s in 4 8 12; do echo '{"format": "hydralora-checkpoint", "vers' > "$WORK/r18/checkpoints/step-$s/state.json"; done
"$BIN" train --resume "$WORK/r18" > "$WORK/18b.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && has $WORK/18b.out "no checkpoint of"' "18: with no intact checkpoint resume fails saying so: $(tail -1 $WORK/18b.out)"

# ---- 20. messages -----------------------------------------------------------------------------
d="$WORK/m20"
mkdir -p "$d"
ln -s "$HF/model.safetensors" "$d/"
sed 's/"num_hidden_layers": *5/"num_hidden_layers": 1000000000000/' "$HF/config.json" > "$d/config.json"
"$BIN" model info "$d" > "$WORK/20.out" 2>&1
check 'has $WORK/20.out "\"num_hidden_layers\" = 1000000000000 is out of range" && ! has $WORK/20.out "must be an integer"' "20: 10^12 layers: $(cat $WORK/20.out)"
"$BIN" train --set foo=1 > "$WORK/20.out" 2>&1
check 'has $WORK/20.out "unknown config field '"'"'foo'"'"'" && ! has $WORK/20.out "did you mean"' "20: foo: $(cat $WORK/20.out)"
"$BIN" train --set n_head=2 > "$WORK/20.out" 2>&1
check 'has $WORK/20.out "did you mean '"'"'n_heads'"'"'"' "20: a real typo still gets a suggestion: $(cat $WORK/20.out)"
"$BIN" bbh prompt nosuch 0 > "$WORK/20.out" 2>&1
rc=$?
check '[ $rc -eq 2 ] && has $WORK/20.out "unknown task '"'"'nosuch'"'"'"' "20: bbh prompt nosuch: $(cat $WORK/20.out)"
"$BIN" eval mmlu > "$WORK/20.out" 2>&1
rc=$?
check '[ $rc -eq 2 ] && has $WORK/20.out "unknown benchmark '"'"'mmlu'"'"'"' "20: eval mmlu: $(head -1 $WORK/20.out)"
"$BIN" generate -t abc > "$WORK/20.out" 2>&1
rc=$?
check '[ $rc -eq 2 ] && grep -q "^hydralora generate: --temperature expects a number" $WORK/20.out' "20: generate -t abc: $(head -1 $WORK/20.out)"
"$BIN" data list --bogus > "$WORK/20.out" 2>&1
check 'grep -q "^hydralora data list: unknown option" $WORK/20.out' "20: sub-subcommands name themselves: $(head -1 $WORK/20.out)"
"$BIN" data dir --help > "$WORK/20.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "^usage: hydralora data dir" $WORK/20.out && ! grep -q "^$HYDRALORA_DATA\$" $WORK/20.out' "20: data dir --help: $(cat $WORK/20.out)"
check '[ "$("$BIN" data dir)" = "$HYDRALORA_DATA" ]' "20: data dir still prints the folder"
# (progress lines on a pipe: tests/net/test_progress_pipe.py)
finish
