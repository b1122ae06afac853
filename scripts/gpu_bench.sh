#!/usr/bin/env bash
# HydraLoRA training speed on one GPU: bench_train_gpu (the CUDA backend) and its PyTorch peer
# (bench/pytorch_train_gpu.py) on a full LLaMA-2-7B-shaped model, then one side-by-side table.
# PyTorch runs first: its (b) batch is the largest within 24 GiB, and ours then gets torch's peak
# at that batch as its memory limit (HL_BENCH_MEM_GIB), so (b) compares at no more memory
# (24 GiB when torch is missing or fails).
# Logs to $OUT when set (else ./gpu-logs). Run from the repository root on the GPU machine;
# builds with HL_CUDA=ON unless $HL_GPU_BUILD already holds a build.
#   bash scripts/gpu_bench.sh            HL_BENCH_STEPS=5 HL_BENCH_CONFIGS=abc by default
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh
build=${HL_GPU_BUILD:-/tmp/hl-gpu-build}
steps=${HL_BENCH_STEPS:-5}
configs=${HL_BENCH_CONFIGS:-abc}
if [ ! -x "$build/bench_train_gpu" ]; then
  { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release ${HL_DEVICE_CMAKE_ARGS:-} -DHL_CUDA=ON \
      -DHL_SHARED_DIR="${HL_SHARED:-$PWD/../shared}" && cmake --build "$build" -j"$(nproc)" --target bench_train_gpu; } \
    > "$out/bench-build.log" 2>&1 || { tail -30 "$out/bench-build.log"; echo "gpu_bench: build failed"; exit 1; }
fi
echo "== PyTorch (transformers sdpa + HydraLoRA layer)"
python3 bench/pytorch_train_gpu.py --steps "$steps" --configs "$configs" 2>&1 | grep -v "Warning\|warn(" | tee "$out/bench-torch.log"
limit=$(sed -n 's/^RESULT torch b .*peak_gib=\([0-9.]*\).*/\1/p' "$out/bench-torch.log" | tail -1)
echo "== hydralora (CUDA backend), (b) within ${limit:-24 (no PyTorch figure)} GiB"
HL_BENCH_STEPS=$steps HL_BENCH_CONFIGS=$configs HL_BENCH_MEM_GIB=${limit:-24} "$build/bench_train_gpu" 2>&1 |
  tee "$out/bench-ours.log"
echo "== side by side"
python3 - "$out/bench-ours.log" "$out/bench-torch.log" <<'PY' | tee "$out/bench-table.txt"
import sys
rows, mm = {}, {}
for path in sys.argv[1:]:
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        f = line.split()
        kv = dict(x.split("=") for x in f[2:] if "=" in x)
        if f[1] == "matmul":
            mm[path] = float(kv["tflops"])
            continue
        rows[(f[1], f[2])] = kv
ref = next(iter(mm.values()), 0.0)
print("matrix rate (bf16 8192^3): cuBLASLt %s TFLOP/s, torch %s TFLOP/s; shares below use the cuBLASLt figure" %
      tuple("%.0f" % v for v in (list(mm.values()) + [0, 0])[:2]))
print("     %-6s %6s %5s %5s | %10s %9s %8s | %s" % ("who", "batch", "seq", "ckpt", "tokens/s", "peak GiB",
      "% matmul", "ours/torch tokens/s"))
for c in "abc":
    o, t = rows.get(("ours", c)), rows.get(("torch", c))
    def cell(r):
        if not r or "error" in r:
            return "%10s %9s %8s" % ("-", "-", "-")
        share = float(r["tflops"]) / ref if ref else 0
        return "%10.0f %9.2f %7.1f%%" % (float(r["tokens_per_s"]), float(r["peak_gib"]), 100 * share)
    ratio = ("%5.2fx" % (float(o["tokens_per_s"]) / float(t["tokens_per_s"]))) if o and t and "error" not in o \
        and "error" not in t else "-"
    print("(%s)  ours   %6s %5s %5s | %s" % (c, o["batch"] if o else "-", o["seq"] if o else "-",
          o["ckpt"] if o else "-", cell(o)))
    print("     torch  %6s %5s %5s | %s | %s" % (t["batch"] if t else "-", t["seq"] if t else "-",
          t["ckpt"] if t else "-", cell(t), ratio))
o, t = rows.get(("ours", "b")), rows.get(("torch", "b"))
if o and t and "error" not in o and "error" not in t:
    ours_gib = max(float(o["peak_gib"]), float(o.get("plan_gib", 0)))
    print("(b) memory: ours %.2f GiB (plan or held, the larger) %s torch %.2f GiB allocated (%s GiB reserved)" %
          (ours_gib, "<=" if ours_gib <= float(t["peak_gib"]) else "> (MORE than)", float(t["peak_gib"]),
           t.get("reserved_gib", "?")))
PY
