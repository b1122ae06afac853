#!/usr/bin/env bash
# The decode check on the GPU machine's 16-core Xeon in at most 90 s: the unit tests that need
# native bf16 (oneDNN on AMX: test_gemm_paths, test_compute_bf16, test_stories_greedy) and the
# decode half of scripts/cpu_bench_device.sh (bench_decode with phase timers and the PyTorch peer).
exec env PARTS=tests,decode BUDGET=${BUDGET:-88} bash "$(dirname "$0")/cpu_bench_device.sh" "$@"
