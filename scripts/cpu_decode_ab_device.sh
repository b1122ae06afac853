#!/usr/bin/env bash
# Decode on the GPU machine's 16-core Xeon, this tree against older trees in one run (at most 3
# minutes): scripts/cpu_bench_decode_device.sh (this tree: build with phase timers, bench_decode
# with the PyTorch peer), then each older tree's bench_decode (built with the phase timers where
# the tree has them; no PyTorch), then this tree's again (no PyTorch), so that machine drift
# between the runs shows.
#   AB_TREES="old.tgz mid.tgz" bash scripts/cpu_decode_ab_device.sh
# AB_TREES (default: ab_*.tgz at the repository root): `git archive <commit> | gzip` of older
# trees; without any only this tree runs. Files in $OUT (default /tmp/hl_cpu_ab): machine.txt,
# build.txt, bench_decode.txt (this tree), <tree>_decode.txt per older tree, again_decode.txt.
set -uo pipefail
if [ -z "${HL_AB_INNER:-}" ]; then
    export HL_AB_INNER=1
    exec timeout -k 5 175 stdbuf -oL -eL bash "$0" "$@"
fi
start=$(date +%s)
export OUT=${OUT:-/tmp/hl_cpu_ab}
mkdir -p "$OUT"
BUDGET=95 bash scripts/cpu_bench_decode_device.sh
[ -f .device/env.sh ] && source .device/env.sh
unset OMP_WAIT_POLICY
export OMP_NUM_THREADS=16
for tgz in ${AB_TREES:-$(ls ab_*.tgz 2>/dev/null)}; do
    name=$(basename "$tgz" .tgz)
    echo; echo "=== older tree $name (t=$(($(date +%s) - start)) s)"
    O=/tmp/hl_ab_$name
    rm -rf "$O" && mkdir -p "$O" && tar xzf "$tgz" -C "$O"
    cmake -S "$O" -B "$O/b" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_DNNL=AUTO -DHL_CUDA=OFF \
        -DCMAKE_C_FLAGS=-DHL_ENGINE_PROFILE -DHL_SHARED_DIR=/nonexistent >"$O/build.txt" 2>&1 &&
        timeout 60 cmake --build "$O/b" -j16 --target bench_decode >>"$O/build.txt" 2>&1 ||
        { tail -20 "$O/build.txt"; echo "$name: build failed"; }
    if [ -x "$O/b/bench_decode" ]; then
        (cd "$O/b" && timeout 30 ./bench_decode --threads 16 --tokens 24 --shared /nonexistent --no-pytorch) 2>&1 |
            tee "$OUT/${name}_decode.txt" | grep -E 'bandwidth|batch|ms per step|products|product |attention|outside|rope'
    fi
done
B=${BUILD_DIR:-/tmp/hl_cpu_build}
if [ -x "$B/bench_decode" ]; then
    echo; echo "=== this tree again, no PyTorch (t=$(($(date +%s) - start)) s)"
    (cd "$B" && timeout 30 ./bench_decode --threads 16 --tokens 24 --shared /nonexistent --no-pytorch) 2>&1 |
        tee "$OUT/again_decode.txt" | grep -E 'bandwidth|batch|ms per step|products|product |attention|outside|rope'
fi
echo "=== done (t=$(($(date +%s) - start)) s)"
