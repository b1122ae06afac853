#!/usr/bin/env bash
# The GPU machine's decoder run, in one go and within a time limit: build (HL_CUDA=ON, the
# targets it needs), the decoder's GPU tests (CUDA decoder vs the CPU engine; eval bbh and
# generate on cuda vs cpu), the BBH bench (bench_bbh_gpu) and its transformers peer
# (bench/hf_generate_bbh.py). Every step keeps going after a failure and prints its own
# diagnostics; logs go to $OUT (else ./gpu-logs).
#   bash scripts/gpu_decode.sh                        (from the repository root, on the GPU machine)
# Knobs (environment):
#   HL_DEC_EXAMPLES   examples for the bench (default 512; 0 = all 6,511); HL_DEC_BENCH_ARGS: more bench options
#   HL_DEC_HF         transformers batches to run, e.g. "32" or "32 64" (default "32 64"; "" = none)
#   HL_DEC_HF_BUDGET  seconds of generation per transformers batch size (default 30)
#   HL_DEC_LIMIT      seconds for the whole script (default 230)
#   HL_DEC_TESTS      0 skips the tests (default 1); HL_DEC_BBH_TEST=0 skips only the eval bbh one
#   HL_DEC_MEMCHECK   1 runs test_cuda_decode under compute-sanitizer memcheck too (HL_DEC_MEMCHECK_S seconds)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
build=${HL_GPU_BUILD:-/tmp/hl-gpu-build}
limit=${HL_DEC_LIMIT:-230}
examples=${HL_DEC_EXAMPLES:-512}
hf=${HL_DEC_HF-32 64}
hf_budget=${HL_DEC_HF_BUDGET:-30}
t0=$(date +%s)
src=$PWD
left() { echo $((limit - ($(date +%s) - t0))); }

{
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1 | head -3
  nvcc --version | tail -1
} 2>&1 | tee "$out/machine.txt"

echo "== build"
gpu_build "$build" "$out/build.log" hydralora test_cuda_decode bench_bbh_gpu || exit 1
grep -iE "warning" "$out/build.log" | grep -v "^ninja" | head -10
echo "build: $(( $(date +%s) - t0 )) s"

rc=0
if [ "${HL_DEC_TESTS:-1}" = 1 ]; then
  echo "== test_cuda_decode (decoder vs the CPU engine)"
  (cd "$build" && timeout 150 stdbuf -oL ./test_cuda_decode) 2>&1 | tee "$out/test_decode.log" | tail -30
  r=${PIPESTATUS[0]}; echo "test_cuda_decode exit $r"; [ "$r" = 0 ] || rc=1
  if [ "${HL_DEC_BBH_TEST:-1}" = 1 ] && [ "${HL_DEC_BBH_AFTER:-0}" = 0 ]; then
  echo "== test_cuda_bbh.sh (eval bbh / generate on cuda vs cpu)"
  (cd "$build" && HL_BIN="$build/hydralora" timeout 150 bash "$src/tests/gpu/test_cuda_bbh.sh") 2>&1 |
    tee "$out/test_bbh.log" | tail -12
  r=${PIPESTATUS[0]}; echo "test_cuda_bbh exit $r"; [ "$r" = 0 ] || rc=1
  fi
  echo "tests done at $(( $(date +%s) - t0 )) s"
fi
if [ "${HL_DEC_MEMCHECK:-0}" = 1 ] && command -v compute-sanitizer > /dev/null; then
  echo "== compute-sanitizer memcheck of test_cuda_decode ($(left) s left)"
  (cd "$build" && timeout "${HL_DEC_MEMCHECK_S:-70}" compute-sanitizer --tool memcheck --print-limit 10 \
      ./test_cuda_decode) > "$out/memcheck.log" 2>&1
  echo "memcheck exit $? (124 = stopped by its time limit)"
  grep -E "ERROR SUMMARY|Invalid|out of bounds|passed,|FAIL" "$out/memcheck.log" | head -20
fi

echo "== bench_bbh_gpu --examples $examples ($(left) s left)"
b=$(left)
if [ "$b" -gt 40 ]; then
  timeout $((b - 10)) stdbuf -oL "$build/bench_bbh_gpu" --examples "$examples" ${HL_DEC_BENCH_ARGS:-} \
    --dump-prompts /tmp/hl_bbh_prompts.txt \
    2>&1 | tee "$out/bench.log"
  echo "bench exit ${PIPESTATUS[0]} at $(( $(date +%s) - t0 )) s"
else
  echo "no time left for the bench"
fi

if [ "${HL_DEC_BBH_AFTER:-0}" = 1 ] && [ "$(left)" -gt 45 ]; then
  echo "== test_cuda_bbh.sh (eval bbh / generate on cuda vs cpu; $(left) s left)"
  (cd "$build" && HL_BIN="$build/hydralora" timeout 40 bash "$src/tests/gpu/test_cuda_bbh.sh") 2>&1 |
    tee "$out/test_bbh.log" | tail -8
fi
for bs in $hf; do
  b=$(left)
  if [ "$b" -lt $((hf_budget + 30)) ] || [ ! -s /tmp/hl_bbh_prompts.txt ]; then
    echo "== transformers batch $bs: skipped ($b s left)"
    continue
  fi
  echo "== transformers generate, batch $bs ($b s left)"
  timeout $((b - 5)) python3 -u bench/hf_generate_bbh.py --prompts /tmp/hl_bbh_prompts.txt --batch "$bs" \
    --budget "$hf_budget" 2>&1 | grep -v Warning | tee "$out/hf_$bs.log" | tail -8
done
echo "== RESULT lines"
cat "$out"/bench.log "$out"/hf_*.log 2> /dev/null | grep RESULT
echo "total: $(( $(date +%s) - t0 )) s, tests rc $rc"
exit $rc
