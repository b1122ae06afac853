#!/usr/bin/env bash
# Installs the Debian 12 packages hydralora needs. Usage: scripts/deps.sh [build|test]
#   build: compiler, CMake and the libraries (OpenBLAS, cJSON, libcurl, ncursesw; oneDNN for bf16
#          matrix products on CPUs with AMX / AVX512-BF16 — optional in CMake, installed here so
#          CI builds and tests that path's code)
#   test:  build + the test oracles (PyTorch, NumPy, SentencePiece, scikit-learn), tmux, clang (libFuzzer),
#          Open MPI (data-parallel training across processes: mpirun tests on loopback)
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libopenblas-dev libcjson-dev libcurl4-openssl-dev libncurses-dev zlib1g-dev ca-certificates
      libdnnl-dev)
if [ "$what" = test ]; then
  pkgs+=(python3 python3-torch python3-numpy python3-sentencepiece python3-sklearn tmux clang libclang-rt-14-dev libopenmpi-dev openmpi-bin)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages already installed"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
