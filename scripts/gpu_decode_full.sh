#!/usr/bin/env bash
# The whole BIG-Bench Hard workload on the GPU machine, measured (not extrapolated): all 6,511
# 3-shot CoT prompts through bench_bbh_gpu (256 new tokens each, HydraLoRA r=8 N=4 unmerged, a
# 32-layer LLaMA-2-7B-shaped model), then transformers generate at batch 64 and 32 on the same
# prompt ids, the decoder tests, and the batch-1 figures with their variants. At most ~9.5 minutes;
# logs to $OUT (else ./gpu-logs).
#   bash scripts/gpu_decode_full.sh       (from the repository root, on the GPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
build=${HL_GPU_BUILD:-/tmp/hl-full-build}
limit=${HL_FULL_LIMIT:-560}
t0=$(date +%s)
left() { echo $((limit - ($(date +%s) - t0))); }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tail -1; nvcc --version | tail -1;
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; } \
  2>&1 | tee "$out/machine.txt"
gpu_build "$build" "$out/build.log" hydralora test_cuda_gemv test_cuda_decode bench_bbh_gpu || exit 1
echo "build: $(( $(date +%s) - t0 )) s"
echo "== bench_bbh_gpu, all 6,511 examples"
timeout $(( $(left) - 150 )) stdbuf -oL "$build/bench_bbh_gpu" --examples 0 --prefill-examples 1024 --no-batch1 \
  --dump-prompts /tmp/hl_bbh_prompts.txt 2>&1 | tee "$out/bench_full.log" | grep -v "^  [0-9]*/"
echo "bench exit ${PIPESTATUS[0]} at $(( $(date +%s) - t0 )) s"
for bs in 64 32; do
  b=$(left)
  [ "$b" -lt 75 ] && { echo "== transformers batch $bs skipped ($b s left)"; continue; }
  echo "== transformers generate, batch $bs ($b s left)"
  timeout $((b - 40)) python3 -u bench/hf_generate_bbh.py --prompts /tmp/hl_bbh_prompts.txt --batch "$bs" \
    --budget "${HL_FULL_HF_BUDGET:-40}" 2>&1 | grep -v Warning | tee "$out/hf_$bs.log" | tail -6
  if [ "$bs" = 64 ]; then
    echo "== decoder tests ($(left) s left)"
    (cd "$build" && timeout 60 ./test_cuda_gemv > "$out/test_gemv.log" 2>&1; echo "test_cuda_gemv exit $?"; tail -1 "$out/test_gemv.log")
    (cd "$build" && timeout 90 ./test_cuda_decode > "$out/test_decode.log" 2>&1; echo "test_cuda_decode exit $?"; grep -E "FAIL|passed" "$out/test_decode.log")
    echo "== batch 1 ($(left) s left)"
    [ "$(left)" -gt 100 ] && timeout 70 stdbuf -oL "$build/bench_bbh_gpu" --batch1-only 2>&1 | tee "$out/b1.log" | grep -E "batch 1|RESULT"
  fi
done
echo "== RESULT lines"; cat "$out"/bench_full.log "$out"/hf_*.log "$out"/b1.log 2>/dev/null | grep RESULT
echo "total $(( $(date +%s) - t0 )) s"
