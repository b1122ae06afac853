#!/usr/bin/env bash
# GPU request wgen-2 (final, <= 5 minutes): build, the decoder test, the whole BBH workload on the
# CUDA decoder (all 6,511 examples) and the transformers peer at batch 32 and 64.
cd "$(dirname "$0")/.."
HL_DEC_LIMIT=285 HL_DEC_EXAMPLES=${HL_DEC_EXAMPLES:-0} HL_DEC_HF="32 64" HL_DEC_HF_BUDGET=25 HL_DEC_TESTS=1 \
  HL_DEC_BBH_TEST=0 timeout 295 bash scripts/gpu_decode.sh
