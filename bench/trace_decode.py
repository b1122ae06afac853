#!/usr/bin/env python3
"""Summarise a batch-1 decode step's block trace (bench_bbh_gpu --trace FILE, a build with
CUDAFLAGS=-DHL_GPU_TRACE): per launch, when its first block started and its last block ended,
the gap to the launch before, and the bytes it streamed over the time it added to the step.

  python3 bench/trace_decode.py TRACE.csv [--rate GBPS] [--launches]

--rate: the device-to-device copy rate bench_bbh_gpu printed (GB/s), to put each launch's time
beside its bytes at that rate. --launches: also one line per launch (the first 40).
Columns: added = from the end of the launch before to this one's end; span = its first start to
its last end; gap = its first start minus the end of the one before (negative: started early);
blk / wait = a block's mean life and time before pdl_wait returned; rel / rel.l = how long after
the launch before ended its first / last early block got past pdl_wait; early = such blocks."""
import csv
import sys
from collections import defaultdict

GR_RB = 8  # output rows (SwiGLU: output pairs) per block of k_gemv_r (core/backend/cuda/k_gemv.cu)
GR_RB_WIDE = 16  # ... of its one-row products of K > 8192 without SwiGLU or routing (gr_rb; batch 1: one row)


def name_of(kind, n, k, flags):
    if kind == 1:
        sw, rt, pre, ad = flags & 1, flags >> 1 & 1, flags >> 2 & 1, flags >> 3 & 1
        if sw:
            base = "gate/up"
        else:
            base = {12288: "qkv", 32000: "lm_head"}.get(n) or ("down" if k > n else "o" if n == k else
                                                                 "gemv %dx%d" % (n, k))
        return base + (" routed" if rt else "") + (" pre" if pre else "") + (" +terms" if ad else "")
    return {2: "swiglu_ad", 3: "attention"}.get(kind, "kind %d" % kind)


def block_bytes(r, head_dim=128):
    """Weight (or key and value) bytes one block streamed."""
    if r["kind"] == 1:
        rb = GR_RB_WIDE if r["k"] > 8192 and not r["flags"] & 3 else GR_RB
        rows = max(0, min(rb, r["n"] - r["block"] * rb))
        return rows * r["k"] * 2 * (2 if r["flags"] & 1 else 1)
    if r["kind"] == 3:
        return r["n"] * head_dim * 2 * 2  # positions x (key + value) x head size x 16 bits
    return 0


def read(path):
    with open(path) as f:
        return [{key: int(v) for key, v in r.items()} for r in csv.DictReader(f)]


def launches(rows):
    """The blocks grouped into launches, in order. A new launch where the kind of block changes: a
    launch's blocks all start before the next launch's first block (programmatic dependent launch
    lets it start once every block of the one before has started), and no two launches in a row
    run the same product. The attention's blocks differ in positions (n): not part of the key."""
    out = []
    for r in sorted(rows, key=lambda r: r["t_start"]):
        key = (r["kind"], 0 if r["kind"] == 3 else r["n"], r["k"], r["flags"])
        if not out or out[-1]["key"] != key:
            out.append({"key": key, "name": name_of(*key), "blocks": []})
        out[-1]["blocks"].append(r)
    prev_end = 0
    for i, L in enumerate(out):
        b = L["blocks"]
        L["start"], L["end"] = min(x["t_start"] for x in b), max(x["t_end"] for x in b)
        L["added"] = L["end"] - prev_end
        L["gap"] = L["start"] - prev_end
        L["bytes"] = sum(block_bytes(x) for x in b)
        L["blk"] = sum(x["t_end"] - x["t_start"] for x in b) / len(b)
        L["wait"] = sum(x["t_waited"] - x["t_start"] for x in b) / len(b)
        # blocks that started before the launch before had ended waited for it: how long after
        # its last block ended they got past pdl_wait (the hand-over's own latency)
        early = [x["t_waited"] for x in b if x["t_start"] < prev_end] if i else []
        L["early"] = len(early)
        L["rel"] = min(early) - prev_end if early else None
        L["rel_last"] = max(early) - prev_end if early else None
        prev_end = L["end"]
    return out


def summarise(ls, rate=0.0):
    """Per kind of launch (most time first): count, and the means of the launches' figures (ns);
    rate_pct = its bytes at the copy rate (GB/s) as % of the time it added."""
    per = defaultdict(lambda: defaultdict(float))
    for L in ls:
        p = per[L["name"]]
        p["n"] += 1
        for f in ("added", "gap", "bytes", "blk", "wait"):
            p[f] += L[f]
        p["span"] += L["end"] - L["start"]
        p["blocks"] += len(L["blocks"])
        if L["rel"] is not None:
            p["rel_n"] += 1
            p["rel"] += L["rel"]
            p["rel_last"] += L["rel_last"]
            p["early"] += L["early"]
    out = []
    for name, p in per.items():
        n, rn = p["n"], p["rel_n"]
        ideal = p["bytes"] / rate if rate else 0.0  # bytes / (GB/s) = ns
        out.append({"name": name, "n": int(n), "blocks": p["blocks"] / n, "added": p["added"] / n,
                    "span": p["span"] / n, "gap": p["gap"] / n, "blk": p["blk"] / n, "wait": p["wait"] / n,
                    "rate_pct": 100 * ideal / p["added"] if rate and p["bytes"] and p["added"] > 0 else None,
                    "rel": p["rel"] / rn if rn else None, "rel_last": p["rel_last"] / rn if rn else None,
                    "early": p["early"] / rn if rn else None, "added_total": p["added"], "ideal_total": ideal})
    return sorted(out, key=lambda s: -s["added_total"])


def _us(v):
    return "-" if v is None else "%.2f" % (v / 1e3)


def main(args):
    if not args or args[0].startswith("-"):
        print(__doc__)
        return 2
    rate = float(args[args.index("--rate") + 1]) if "--rate" in args else 0.0
    ls = launches(read(args[0]))
    if not ls:
        print("no records in %s" % args[0])
        return 1
    if "--launches" in args:
        print("%-28s %6s %9s %9s %8s %8s %8s %8s %8s %8s" % ("launch", "blocks", "start us", "end us", "gap us",
                                                            "added us", "blk us", "wait us", "rel us", "rel.l us"))
        for L in ls[:40]:
            print("%-28s %6d %9.1f %9.1f %8.1f %8.1f %8.2f %8.2f %8s %8s" % (
                L["name"], len(L["blocks"]), L["start"] / 1e3, L["end"] / 1e3, L["gap"] / 1e3, L["added"] / 1e3,
                L["blk"] / 1e3, L["wait"] / 1e3, _us(L["rel"]), _us(L["rel_last"])))
    print("step: %.1f us from the first traced block's start to the last one's end, %d launches" %
          (max(L["end"] for L in ls) / 1e3, len(ls)))
    print("%-28s %5s %7s %9s %9s %8s %8s %8s %9s %8s %8s %6s" % (
        "per launch (mean)", "n", "blocks", "added us", "span us", "gap us", "blk us", "wait us", "rate %", "rel us",
        "rel.l us", "early"))
    sums = summarise(ls, rate)
    for s in sums:
        print("%-28s %5d %7.0f %9.2f %9.2f %8.2f %8.2f %8.2f %9s %8s %8s %6s" % (
            s["name"], s["n"], s["blocks"], s["added"] / 1e3, s["span"] / 1e3, s["gap"] / 1e3, s["blk"] / 1e3,
            s["wait"] / 1e3, "-" if s["rate_pct"] is None else "%.1f" % s["rate_pct"], _us(s["rel"]),
            _us(s["rel_last"]), "-" if s["early"] is None else "%.0f" % s["early"]))
    if rate:
        added, ideal = sum(s["added_total"] for s in sums), sum(s["ideal_total"] for s in sums)
        print("all launches: %.1f us added, their bytes at the copy rate %.1f us (%.1f %%)" %
              (added / 1e3, ideal / 1e3, 100 * ideal / added))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
