#!/usr/bin/env bash
# The communicator under Open MPI's mpirun on this host (loopback, oversubscribed): every
# collective bit for bit against values computed independently, for 1-4 ranks; the agreement
# check naming the rank that is out of line; and a rank killed mid-run: the others end with a
# message naming it, both when mpirun ends them (its default) and when it does not (the
# collective timeout), never a hang. Skips (77) without mpirun or without MPI in the build.
set -u
B=${HL_BUILD_DIR:-build}
P=$B/mpi_collectives
if ! command -v mpirun >/dev/null 2>&1; then echo "skipped: mpirun not found (Debian: openmpi-bin)"; exit 77; fi
if ! "$P" info | grep -q "mpi=1"; then echo "skipped: this build has no MPI (HL_MPI)"; exit 77; fi
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
MPIRUN="mpirun --oversubscribe $ROOT --mca btl self,vader,tcp --mca btl_tcp_if_include lo"
export OMPI_MCA_rmaps_base_oversubscribe=1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# 1. collectives, one process without a launcher and 2..4 ranks
"$P" check >"$T/c1" 2>&1 && grep -q "rank 0: [0-9]* passed, 0 failed" "$T/c1" && ok || { bad "one process"; cat "$T/c1"; }
for k in 2 3 4; do
  timeout 300 $MPIRUN -np $k "$P" check >"$T/c$k" 2>&1
  rc=$?
  n=$(grep -c "passed, 0 failed" "$T/c$k")
  if [ $rc = 0 ] && [ "$n" = "$k" ]; then ok; else bad "$k ranks (rc $rc, $n of $k ranks clean)"; cat "$T/c$k"; fi
done

# 2. divergence names the odd rank on every rank
timeout 120 $MPIRUN -np 3 "$P" diverge >"$T/d" 2>&1
n=$(grep -c "ranks 0,2 have 000000000000600d; rank 1 has 0000000000000bad" "$T/d")
[ "$n" = 3 ] && ok || { bad "divergence message on $n of 3 ranks"; cat "$T/d"; }
grep -q "passed, 0 failed" "$T/d" && ! grep -q "[1-9][0-9]* failed" "$T/d" && ok || { bad "divergence checks"; cat "$T/d"; }

# 3. a rank dies: mpirun ends the others; they name the lost rank
start=$(date +%s)
timeout 120 $MPIRUN -np 3 "$P" die 1 40 >"$T/k" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
[ $rc != 0 ] && [ $rc != 124 ] && ok || bad "killed rank: mpirun exit $rc (124 = hang)"
pid=$(sed -n 's/.*killing myself (pid \([0-9]*\)).*/\1/p' "$T/k")
n=$(grep -c "terminated by the launcher; lost: rank 1 (pid $pid" "$T/k")
[ -n "$pid" ] && [ "$n" -ge 1 ] && ok || { bad "survivors did not name rank 1 (pid '$pid'), $n lines"; cat "$T/k"; }
[ $took -lt 60 ] && ok || bad "ending took $took s"

# 4. a rank dies and the launcher lets the others run on: the collective times out naming it
HL_COMM_TIMEOUT_S=3 timeout 120 $MPIRUN -x HL_COMM_TIMEOUT_S --enable-recovery -np 3 "$P" die 1 40 >"$T/r" 2>&1
rc=$?
[ $rc != 124 ] && ok || bad "timeout path hung"
pid=$(sed -n 's/.*killing myself (pid \([0-9]*\)).*/\1/p' "$T/r")
n=$(grep -c "summing over the ranks: rank 1 (pid $pid on [^)]*) is gone (no answer for [0-9]* s)" "$T/r")
[ -n "$pid" ] && [ "$n" -ge 1 ] && ok || { bad "timeout message naming rank 1 (pid '$pid'): $n lines"; cat "$T/r"; }

echo "$pass passed, $fail failed"
[ $fail = 0 ]
