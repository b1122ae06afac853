#!/usr/bin/env bash
# NCCL all-reduce of a device buffer through the communicator, one rank per GPU of this host
# (bit for bit unchanged with one rank; exact a+b with two). Skips (77) without a CUDA device,
# without NCCL in the build, or without mpirun for more than one GPU.
set -u
B=${HL_BUILD_DIR:-build}
P=$B/mpi_nccl
export NCCL_NVLS_ENABLE=0 # NVLink multicast off (the GPU machines here require it)
out=$("$P" 1048576 3 2>&1)
rc=$?
echo "$out"
if [ $rc = 77 ] || [ $rc = 78 ]; then exit 77; fi
[ $rc = 0 ] || { echo "0 passed, 1 failed"; exit 1; }
ngpu=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "${ngpu:-0}" -ge 2 ] && command -v mpirun >/dev/null; then
  ROOT=""; [ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
  timeout 300 mpirun $ROOT -np "$ngpu" -x NCCL_NVLS_ENABLE "$P" 1048576 3 || { echo "0 passed, 1 failed"; exit 1; }
fi
echo "1 passed, 0 failed"
