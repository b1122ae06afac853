"""bench/trace_decode.py (the batch-1 block trace's summary) on a made-up trace of two layers of
q/k/v, decode attention and o whose every figure is known by construction: launches are split
where the kind of block changes (not where the attention's chunk lengths differ), the time each
launch added, its bytes at the copy rate, and how long after the launch before ended its early
blocks got past pdl_wait. The bytes of one block for each rows-per-block rule of k_gemv.cu. Then the
command line on the same file, and on an empty trace."""
import csv
import importlib.util
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import check, finish  # noqa: E402

SRC = os.environ.get("HL_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOL = os.path.join(SRC, "bench", "trace_decode.py")
spec = importlib.util.spec_from_file_location("trace_decode", TOOL)
td = importlib.util.module_from_spec(spec)
spec.loader.exec_module(td)

FIELDS = ["kind", "n", "k", "flags", "block", "smid", "t_start", "t_waited", "t_end"]
rows = []
expect = []  # per launch: (name, added ns, bytes, rel ns)
t = 0        # the end of the launch before
for layer in range(2):
    # q/k/v: 1536 blocks of 8 rows of K = 4096 in three waves of 528, 8 us each; the first wave
    # started 3 us before the launch before ended and got past pdl_wait 600 ns after it
    start0 = t - 3000
    end = 0
    for b in range(1536):
        s = start0 + (b // 528) * 8000 + b % 528
        w = t + 600 if s < t else s
        e = s + 8000 + (b % 7) * 10
        rows.append([1, 12288, 4096, 0, b, b % 132, s, w, e])
        end = max(end, e)
    expect.append(("qkv", end - t, 1536 * 8 * 4096 * 2, 600 if layer else None))
    t = end
    # attention: 16 chunks x 32 heads, the last chunk of each head 44 positions (another n: the
    # same launch), all started before q/k/v ended; the last block of each head ends 5 us later
    end = 0
    nbytes = 0
    for b in range(512):
        n = 44 if b % 16 == 15 else 64
        s = t - 2000 + b
        e = t + 6000 + (5000 if b % 16 == 15 else 0)
        rows.append([3, n, 32, 1, b, b % 132, s, t + 900, e])
        nbytes += n * 128 * 2 * 2
        end = max(end, e)
    expect.append(("attention", end - t, nbytes, 900))
    t = end
    # o: one wave, every block started during the attention; 7 us after it ended
    end = 0
    for b in range(512):
        s = t - 9000 + b
        e = t + 7000 - b
        rows.append([1, 4096, 4096, 0, b, b % 132, s, t + 400, e])
        end = max(end, e)
    expect.append(("o", end - t, 512 * 8 * 4096 * 2, 400))
    t = end

ls = td.launches([dict(zip(FIELDS, r)) for r in rows])
check(len(ls) == 6, "6 launches, got %d" % len(ls))
for L, (name, added, nbytes, rel) in zip(ls, expect):
    check(L["name"] == name, "launch %s named %s" % (name, L["name"]))
    check(L["added"] == added, "%s added %d, expected %d" % (name, L["added"], added))
    check(L["bytes"] == nbytes, "%s bytes %d, expected %d" % (name, L["bytes"], nbytes))
    check(L["rel"] == rel, "%s released %s after the launch before, expected %s" % (name, L["rel"], rel))
rate = 4000.0
sums = {s["name"]: s for s in td.summarise(ls, rate)}
for name in ("qkv", "attention", "o"):
    mine = [e for e in expect if e[0] == name]
    added = sum(e[1] for e in mine) / len(mine)
    pct = 100.0 * sum(e[2] for e in mine) / rate / sum(e[1] for e in mine)
    s = sums.get(name)
    check(s is not None and s["n"] == 2 and abs(s["added"] - added) < 1e-6,
          "%s: mean added %s, expected %.1f" % (name, s and s["added"], added))
    check(s is not None and abs(s["rate_pct"] - pct) < 1e-9, "%s: rate %s%%, expected %.3f" % (name, s and s["rate_pct"], pct))

# rows per block (k_gemv.cu gr_rb): 16 for a one-row product of K > 8192 without SwiGLU or
# routing (a plain down), 8 for everything else; a last block takes what is left
def rec(n, k, flags, block):
    return {"kind": 1, "n": n, "k": k, "flags": flags, "block": block}
for r, rows_in, what in ((rec(4096, 11008, 0, 255), 16, "plain down"),
                         (rec(4100, 11008, 0, 256), 4, "plain down, last block"),
                         (rec(4096, 11008, 2 | 8, 511), 8, "routed down with terms"),
                         (rec(4096, 4096, 0, 511), 8, "o"),
                         (rec(11008, 4096, 1, 0), 16, "gate/up (two weight rows per output)")):
    got = td.block_bytes(r)
    check(got == rows_in * r["k"] * 2, "%s: %d bytes a block, expected %d" % (what, got, rows_in * r["k"] * 2))

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "trace.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        w.writerows(rows)
    r = subprocess.run([sys.executable, TOOL, path, "--rate", "4000", "--launches"], capture_output=True, text=True)
    check(r.returncode == 0 and "6 launches" in r.stdout and "attention" in r.stdout,
          "the command line: rc %d, %s" % (r.returncode, r.stdout[-300:] + r.stderr[-300:]))
    empty = os.path.join(d, "empty.csv")
    with open(empty, "w") as f:
        f.write(",".join(FIELDS) + "\n")
    r = subprocess.run([sys.executable, TOOL, empty], capture_output=True, text=True)
    check(r.returncode == 1 and "no records" in r.stdout, "an empty trace: rc %d, %s" % (r.returncode, r.stdout))
sys.exit(finish())
