#!/usr/bin/env bash
# The decode half of scripts/cpu_bench_device.sh alone, in at most 2 minutes: build bench_decode,
# then batch 1 and 16 of the 7B shape with the PyTorch peer and the weight-product table.
exec env PARTS=decode BUDGET=${BUDGET:-115} bash "$(dirname "$0")/cpu_bench_device.sh" "$@"
