#!/usr/bin/env bash
# GPU request wgen-1 (<= 4 minutes): build, decoder tests, memcheck of the decoder test, a short
# bench (512 examples) and the transformers peer at batch 32 (one or two batches).
cd "$(dirname "$0")/.."
HL_DEC_LIMIT=225 HL_DEC_EXAMPLES=512 HL_DEC_HF="32" HL_DEC_HF_BUDGET=25 HL_DEC_MEMCHECK=1 HL_DEC_MEMCHECK_S=50 \
  timeout 235 bash scripts/gpu_decode.sh
