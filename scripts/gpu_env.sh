# Sourced by the scripts/gpu_*.sh that run on the GPU machine, from the repository root: where logs
# go ($out: $OUT, else ./gpu-logs), the device kit's libraries and CMake arguments (.device/env.sh),
# nvcc on PATH, the shared data, and gpu_build to configure and build CUDA targets.
out=${OUT:-$PWD/gpu-logs}
mkdir -p "$out"
[ -f .device/env.sh ] && source .device/env.sh
export PATH=/usr/local/cuda/bin:$PATH
export CUDACXX=${CUDACXX:-/usr/local/cuda/bin/nvcc}
export HL_SHARED=${HL_SHARED:-$PWD/../shared}

# gpu_build DIR LOG TARGET...: a Release build with the CUDA backend (sm_90) and the benches into
# DIR, its output in LOG; on failure the log's tail and a non-zero status.
gpu_build() {
    local dir=$1 log=$2
    shift 2
    if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_CUDA=ON -DHL_BENCH=ON \
             -DCMAKE_CUDA_ARCHITECTURES=90 -DHL_SHARED_DIR="$HL_SHARED" &&
           cmake --build "$dir" -j"$(nproc)" --target "$@"; } > "$log" 2>&1; then
        tail -30 "$log"
        echo "build failed (log: $log)"
        return 1
    fi
}
