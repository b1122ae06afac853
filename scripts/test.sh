#!/usr/bin/env bash
# Sets up and runs every test: unit (also under ASan/UBSan), oracle (PyTorch, SentencePiece,
# scikit-learn), network (loopback), workbench screen tests (tmux), and each fuzz target for a
# bounded time. Expects ../shared beside the checkout (or HL_SHARED=path).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared=${HL_SHARED:-$root/../shared}
[ -d "$shared/models" ] || { echo "test.sh: shared test data not found at $shared (set HL_SHARED)" >&2; exit 1; }
shared=$(cd "$shared" && pwd)
jobs=$(nproc)
fuzz_seconds=${HL_FUZZ_SECONDS:-20}

bash scripts/deps.sh test

echo "== sanitizer build (ASan + UBSan): unit tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHL_SANITIZE=ON -DHL_BENCH=OFF -DHL_NATIVE=OFF -DHL_CUDA=OFF \
      -DHL_SHARED_DIR="$shared" > /dev/null
cmake --build build-asan -j"$jobs" > build-asan.log 2>&1 || { tail -50 build-asan.log; exit 1; }
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest -R '^unit/' -j"$jobs" --output-on-failure)

if command -v clang > /dev/null; then
  echo "== fuzz targets (libFuzzer, ${fuzz_seconds}s each)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHL_FUZZ=ON -DHL_BENCH=OFF -DHL_NATIVE=OFF -DHL_CUDA=OFF > /dev/null
  cmake --build build-fuzz -j"$jobs" > build-fuzz.log 2>&1 || { tail -50 build-fuzz.log; exit 1; }
  for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    mkdir -p "build-fuzz/corpus/$name"
    seeds=()
    [ -d "tests/fuzz/seeds/$name" ] && seeds=("tests/fuzz/seeds/$name")
    echo "-- $name"
    "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -print_final_stats=0 \
         -artifact_prefix="build-fuzz/$name-" "build-fuzz/corpus/$name" "${seeds[@]}" > "build-fuzz/$name.log" 2>&1 \
      || { tail -40 "build-fuzz/$name.log"; echo "fuzz target $name found a failure"; exit 1; }
    grep -E '^#[0-9]+.*DONE' "build-fuzz/$name.log" | tail -1 || true
  done
fi

# The release build takes the CUDA backend whenever a toolkit is here (nvcc on PATH or in
# /usr/local/cuda/bin; HL_CUDA=OFF in the environment leaves it out, HL_CUDA=ON insists): CI
# compiles and links it and runs every test against that build; GPU tests report "skipped: no CUDA
# device" on machines without a GPU and ctest counts them as skipped.
cuda_args=(-DHL_CUDA=OFF)
if [ "${HL_CUDA:-AUTO}" != OFF ]; then
  nvcc=$(command -v nvcc || true)
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
  if [ -n "$nvcc" ]; then
    cuda_args=(-DHL_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
  elif [ "${HL_CUDA:-AUTO}" = ON ]; then
    echo "test.sh: HL_CUDA=ON but no nvcc found (PATH, /usr/local/cuda/bin)" >&2
    exit 1
  fi
fi
echo "== release build: all tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHL_BENCH=ON "${cuda_args[@]}" -DHL_SHARED_DIR="$shared" \
  > build-config.log 2>&1 || { tail -30 build-config.log; exit 1; }
grep -E "^-- CUDA backend" build-config.log || echo "CUDA backend: off (HL_CUDA=OFF or no CUDA toolkit)"
t_build=$(date +%s)
cmake --build build -j"$jobs" > build.log 2>&1 || { tail -50 build.log; exit 1; }
echo "release build: $(( $(date +%s) - t_build )) s"
cd build && ctest -j"$jobs" --output-on-failure
