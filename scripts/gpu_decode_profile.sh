#!/usr/bin/env bash
# Where the decoder's time goes, on the GPU machine: Nsight Systems kernel summaries of (1) batch-1
# decode steps at ~1,000 cached positions and (2) a BBH pass with up to 256 sequences decoding at
# once (plus its prefill). Logs and CSV summaries go to $OUT (else ./gpu-logs).
#   bash scripts/gpu_decode_profile.sh      (from the repository root, on the GPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
[ -f .device/env.sh ] && source .device/env.sh
export PATH=/usr/local/cuda/bin:$PATH
build=${HL_GPU_BUILD:-/tmp/hl-prof-build}
t0=$(date +%s)
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_CUDA=ON -DHL_BENCH=ON \
         -DCMAKE_CUDA_ARCHITECTURES=90 -DHL_SHARED_DIR="${HL_SHARED:-$PWD/../shared}" &&
       cmake --build "$build" -j"$(nproc)" --target bench_bbh_gpu; } > "$out/build.log" 2>&1; then
  tail -30 "$out/build.log"; echo "build failed"; exit 1
fi
echo "build: $(( $(date +%s) - t0 )) s"
nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
echo "nsys: ${nsys:-none}"
bench="$build/bench_bbh_gpu"
stats() { # report file -> csv
  "$nsys" stats --force-export=true --report cuda_gpu_kern_sum --format csv --output "$2" "$1" > /dev/null 2>&1
  ls "$2"* 2>/dev/null | head -3
}
echo "== batch 1 (plain timing)"
timeout 60 stdbuf -oL "$bench" --batch1-only 2>&1 | grep -E "batch 1|RESULT|device" | tee "$out/b1.txt"
if [ -n "$nsys" ]; then
  echo "== batch 1 under nsys"
  HL_CUDA_GRAPHS=0 timeout 90 "$nsys" profile -t cuda --force-overwrite true -o /tmp/p_b1 \
      "$bench" --batch1-only > "$out/nsys_b1.log" 2>&1
  stats /tmp/p_b1.nsys-rep "$out/b1_kern"
  echo "== 270 examples, 64 new tokens, under nsys"
  HL_CUDA_GRAPHS=0 timeout 150 "$nsys" profile -t cuda --force-overwrite true -o /tmp/p_big \
      "$bench" --examples 270 --max-new 64 --prefill-examples 54 --no-batch1 > "$out/nsys_big.log" 2>&1
  grep -E "prefill:|generate:|RESULT" "$out/nsys_big.log"
  stats /tmp/p_big.nsys-rep "$out/big_kern"
  for f in "$out"/*kern*.csv; do echo "--- $f"; head -25 "$f" | cut -c1-220; done
fi
echo "total $(( $(date +%s) - t0 )) s"
