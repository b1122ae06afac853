#!/usr/bin/env bash
# Decode on the GPU machine's 16-core Xeon, this tree against an older tree in one run (at most 3
# minutes): scripts/cpu_bench_decode_device.sh (build with phase timers, bench_decode with the
# PyTorch peer), then the older tree's bench_decode (no PyTorch), then this tree's again (no
# PyTorch), so that machine drift between the two trees shows.
#   AB_TGZ=old.tgz bash scripts/cpu_decode_ab_device.sh
# AB_TGZ (default ab_old.tgz at the repository root): `git archive <commit> | gzip` of the older
# tree; without it only this tree runs. Files in $OUT (default /tmp/hl_cpu_ab): machine.txt,
# build.txt, bench_decode.txt (this tree), old_build.txt, old_decode.txt, again_decode.txt.
set -uo pipefail
if [ -z "${HL_AB_INNER:-}" ]; then
    export HL_AB_INNER=1
    exec timeout -k 5 175 stdbuf -oL -eL bash "$0" "$@"
fi
start=$(date +%s)
export OUT=${OUT:-/tmp/hl_cpu_ab}
mkdir -p "$OUT"
AB_TGZ=${AB_TGZ:-ab_old.tgz}
BUDGET=100 bash scripts/cpu_bench_decode_device.sh
[ -f .device/env.sh ] && source .device/env.sh
unset OMP_WAIT_POLICY
export OMP_NUM_THREADS=16
if [ -f "$AB_TGZ" ]; then
    echo; echo "=== older tree from $AB_TGZ (t=$(($(date +%s) - start)) s)"
    O=/tmp/hl_ab_old
    rm -rf "$O" && mkdir -p "$O" && tar xzf "$AB_TGZ" -C "$O"
    cmake -S "$O" -B "$O/b" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_DNNL=AUTO -DHL_CUDA=OFF \
        -DHL_SHARED_DIR=/nonexistent >"$OUT/old_build.txt" 2>&1 &&
        timeout 60 cmake --build "$O/b" -j16 --target bench_decode >>"$OUT/old_build.txt" 2>&1 ||
        { tail -20 "$OUT/old_build.txt"; echo "older tree: build failed"; }
    if [ -x "$O/b/bench_decode" ]; then
        (cd "$O/b" && timeout 30 ./bench_decode --threads 16 --tokens 24 --shared /nonexistent --no-pytorch) 2>&1 |
            tee "$OUT/old_decode.txt" | grep -E 'bandwidth|batch'
    fi
fi
B=${BUILD_DIR:-/tmp/hl_cpu_build}
if [ -x "$B/bench_decode" ]; then
    echo; echo "=== this tree again, no PyTorch (t=$(($(date +%s) - start)) s)"
    (cd "$B" && timeout 30 ./bench_decode --threads 16 --tokens 24 --shared /nonexistent --no-pytorch) 2>&1 |
        tee "$OUT/again_decode.txt" | grep -E 'bandwidth|batch|ms per step|products|attention|outside|lm_head'
fi
echo "=== done (t=$(($(date +%s) - start)) s)"
