#!/usr/bin/env bash
# GPU request wgen-2 (final, <= 3 minutes): build, the decoder test, the BBH bench on 756
# examples (28 per subtask; prefill pass on every 3rd) with the extrapolation to all 6,511, the
# eval bbh / generate test, and transformers at batch 64 (batch 32 was measured in wgen-1).
cd "$(dirname "$0")/.."
HL_DEC_LIMIT=172 HL_DEC_EXAMPLES=768 HL_DEC_BENCH_ARGS="--prefill-examples 256" HL_DEC_HF="64" HL_DEC_HF_BUDGET=5 \
  HL_DEC_TESTS=1 HL_DEC_BBH_AFTER=1 timeout 178 bash scripts/gpu_decode.sh
