#!/usr/bin/env bash
# One GPU-machine run: the GPU tests (scripts/gpu_test.sh, without memcheck) and the training
# bench against PyTorch (scripts/gpu_bench.sh), logs under $OUT.
cd "$(dirname "$0")/.."
HL_GPU_MEMCHECK=0 HL_GPU_BENCH=1 exec bash scripts/gpu_test.sh
