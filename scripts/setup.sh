#!/usr/bin/env bash
# Sets hydralora up on a fresh Debian 12 machine: packages, then an optimised build in ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHL_BENCH=OFF > /dev/null
cmake --build build -j"$(nproc)" --target hydralora
echo "built: $(pwd)/build/hydralora"
