#!/usr/bin/env python3
"""adapter_diff.py A B: compare two exported adapters (adapter/adapter_model.safetensors, f32)
tensor by tensor. Prints the largest relative difference ||a-b|| / ||b|| over the tensors (the
criterion: exit 0 when it is within --tol, default 1e-6; 1 otherwise; 2 when the tensor sets
differ) and, for information, the largest element difference relative to that tensor's largest
magnitude (AdamW divides by sqrt(v), so an element whose gradient is tiny moves by the sign of
rounding noise: single elements differ more than the tensors do)."""
import json
import struct
import sys

import numpy as np


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in head.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--tol=")]
    tol = float(next((a[6:] for a in sys.argv[1:] if a.startswith("--tol=")), "1e-6"))
    A, B = load(args[0]), load(args[1])
    if set(A) != set(B):
        print("tensor sets differ:", sorted(set(A) ^ set(B)))
        return 2
    worst_norm = worst_elem = 0.0
    identical = 0
    for k in sorted(A):
        a, b = A[k], B[k]
        nb = np.linalg.norm(b)
        d = np.linalg.norm(a - b)
        rel = d / nb if nb > 0 else d
        mb = np.max(np.abs(b)) if b.size else 0
        el = np.max(np.abs(a - b)) / mb if mb > 0 else float(np.max(np.abs(a - b), initial=0))
        worst_norm, worst_elem = max(worst_norm, rel), max(worst_elem, el)
        identical += int(np.array_equal(a, b))
    print(f"{len(A)} tensors ({identical} bit-identical): max ||a-b||/||b|| = {worst_norm:.3e}, "
          f"max |a-b|/max|b| = {worst_elem:.3e} (tolerance {tol:g})")
    return 0 if worst_norm <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
