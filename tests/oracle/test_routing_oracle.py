#!/usr/bin/python3
"""Routing-statistics oracle: `hydralora score --routing --json` against an independent PyTorch
computation of the router weights.

A tiny random LLaMA (grouped-query attention, untied head, F32) is written as a Hugging Face
directory, and two random exported adapters with attention AND FFN targets (HydraLoRA N=4 on
q/v/o/gate/down with sharp routers and non-zero B, so the adapter changes the hidden states that
later routers read; LoRA-Split N=3 on k/up/down) as adapter directories. Two token-id files of
sequences of different lengths (so that batches carry padding) are scored with --routing --json.
This file's reference is the oracle's LLaMA + HydraLoRA forward (tests/oracle/test_engine_oracle.py,
float64) with the router softmax taken in float32 (as the engine computes it); from the router
weights of every non-padding position it computes per layer x module x head the mean weight and
the top-1 share (lowest index on ties), per layer x module the mean entropy (nats) and the
coefficient of variation of the heads' mean load (population std / mean), and per file the loss.
Every statistic must agree within 1e-5 (absolute); positions and record counts exactly. Then the
per-file values must differ between the two files (the statistics are per file, not pooled)."""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import BIN, check, finish  # noqa: E402
import test_engine_oracle as eo  # noqa: E402  (Reference, make_model, make_adapters, safetensors by hand)

TOL = 1e-5
MODEL = dict(name="routing_oracle", dim=48, hidden=100, layers=2, heads=4, kv_heads=2, head_dim=12, vocab=97,
             tie=False, dtype="F32", eps=1e-5, theta=10000.0)
ADAPTERS = [
    dict(variant="hydra", n_heads=4, r=4, alpha=8.0, targets=["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]),
    dict(variant="lora-split", n_heads=3, r=2, alpha=4.0, targets=["k_proj", "up_proj", "down_proj"]),
]
ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class RoutingReference(eo.Reference):
    """The oracle forward, recording each router's softmax (f32) per (layer, module)."""

    def __init__(self, cfg, weights, case, adapters):
        super().__init__(cfg, weights, case, adapters)
        self.routes = {}
        self.valid = None  # [B, T] bool: non-padding positions

    def lin(self, x, l, module, proj):
        W0 = self.W[f"model.layers.{l}.{module}.{proj}.weight"]
        y = x @ W0.T
        if proj not in self.case["targets"]:
            return y
        k = f"base_model.model.model.layers.{l}.{module}.{proj}."
        N = self.case["n_heads"]
        logits = x @ self.A[k + "lora_route.weight"].T
        om32 = torch.softmax(logits.to(torch.float32), dim=-1)  # the router softmax in f32
        self.routes.setdefault((l, proj), []).append(om32[self.valid])
        om = om32.to(torch.float64)
        for i in range(N):
            Akey = k + (f"lora_A{i}.weight" if self.case["variant"] == "lora-split" else "lora_A.weight")
            z = x @ self.A[Akey].T
            y = y + self.s * om[..., i:i + 1] * (z @ self.A[k + f"lora_B{i}.weight"].T)
        return y


def reference_stats(cfg, W, case, A, seqs, layers):
    ref = RoutingReference(cfg, W, case, A)
    T = max(len(s) for s in seqs)
    tokens = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, s in enumerate(seqs):
        tokens[b, :len(s)] = torch.tensor(s)
    lengths = [len(s) for s in seqs]
    ref.valid = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    labels = tokens.clone()
    labels[~ref.valid] = -100
    with torch.no_grad():
        logits = ref.forward(tokens, lengths)
        V = logits.shape[-1]
        ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                               ignore_index=-100, reduction="sum")
    n_targets = sum(n - 1 for n in lengths)
    mods = [p for p in ORDER if p in case["targets"]]
    out = {"positions": sum(lengths), "records": len(seqs), "loss": ce.item() / n_targets, "modules": mods,
           "weight_mean": [], "top1_share": [], "entropy": [], "load_cv": []}
    for l in range(layers):
        wm, ts, en, cv = [], [], [], []
        for p in mods:
            w = torch.cat(ref.routes[(l, p)]).to(torch.float64)  # [n, N]
            n, N = w.shape
            mean = w.mean(0)
            top = torch.zeros(N, dtype=torch.float64)
            for i in torch.argmax(w, dim=1).tolist():  # the first maximal index on ties
                top[i] += 1
            ent = -(torch.where(w > 0, w * torch.log(w), torch.zeros_like(w))).sum(1).mean()
            wm.append(mean.tolist())
            ts.append((top / n).tolist())
            en.append(ent.item())
            cv.append((mean.std(unbiased=False) / mean.mean()).item())
        out["weight_mean"].append(wm)
        out["top1_share"].append(ts)
        out["entropy"].append(en)
        out["load_cv"].append(cv)
    return out


def write_adapter(adir, case, A_np):
    os.makedirs(adir)
    eo.st_write(os.path.join(adir, "adapter_model.safetensors"), A_np, "F32")
    conf = {"base_model_name_or_path": "random", "bias": "none", "lora_alpha": case["alpha"], "lora_dropout": 0.0,
            "lora_nums": case["n_heads"], "peft_type": "LORA", "r": case["r"], "target_modules": case["targets"],
            "task_type": "CAUSAL_LM", "hydralora_variant": case["variant"]}
    if case["variant"] == "lora-split":
        conf["hydralora_n_a"] = case["n_heads"]
    with open(os.path.join(adir, "adapter_config.json"), "w") as f:
        json.dump(conf, f)
    stored = eo.st_read(os.path.join(adir, "adapter_model.safetensors"))
    return {k: torch.tensor(v) for k, v in stored.items()}


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def main():
    if not os.path.exists(BIN):
        check(False, f"{BIN} not found (set HL_BIN or HL_BUILD_DIR)")
        return finish()
    rng = np.random.default_rng(20261202)
    with tempfile.TemporaryDirectory(prefix="hl_routing_oracle_") as root:
        cfg, W = eo.make_model(MODEL, rng, os.path.join(root, "model"))
        # two files, different token distributions, lengths 2..24 (padding in every batch)
        files = []
        for fi in range(2):
            lo, hi = (0, 40) if fi == 0 else (50, 97)
            seqs = [[int(x) for x in rng.integers(lo, hi, int(rng.integers(2, 25)))] for _ in range(7 + 2 * fi)]
            path = os.path.join(root, f"ids{fi}.txt")
            with open(path, "w") as f:
                f.write("\n".join(" ".join(map(str, s)) for s in seqs) + "\n")
            files.append((path, seqs))
        for case_in in ADAPTERS:
            case = dict(MODEL, **case_in)
            A_np = eo.make_adapters(case, cfg, rng)
            adir = os.path.join(root, "adapter_" + case["variant"])
            A = write_adapter(adir, case, A_np)
            cmd = [BIN, "score", "--model", os.path.join(root, "model"), "--adapter", adir, "--routing", "--json",
                   "--quiet", "--batch", "3", "--threads", "2"]
            for path, _ in files:
                cmd += ["--ids", path]
            r = subprocess.run(cmd, capture_output=True, text=True)
            check(r.returncode == 0, f"{case['variant']}: exit {r.returncode}: {r.stderr.strip()}")
            if r.returncode:
                continue
            lines = [ln for ln in r.stdout.split("\n") if ln.strip()]
            check(len(lines) == len(files), f"{case['variant']}: {len(lines)} JSON lines for {len(files)} files")
            got_all = []
            for (path, seqs), line in zip(files, lines):
                got = json.loads(line)
                got_all.append(got)
                exp = reference_stats(cfg, W, case, A, seqs, MODEL["layers"])
                tag = f"{case['variant']} {os.path.basename(path)}"
                check(got["file"] == path and got["source"] is None, f"{tag}: file/source {got['file']} {got['source']}")
                check(got["modules"] == exp["modules"], f"{tag}: modules {got['modules']} vs {exp['modules']}")
                check(got["n_layers"] == MODEL["layers"] and got["n_experts"] == case["n_heads"],
                      f"{tag}: sizes {got['n_layers']} x {got['n_experts']}")
                check(got["positions"] == exp["positions"] and got["records"] == exp["records"],
                      f"{tag}: positions/records {got['positions']}/{got['records']} vs "
                      f"{exp['positions']}/{exp['records']}")
                check(abs(got["loss"] - exp["loss"]) <= TOL * max(1.0, abs(exp["loss"])),
                      f"{tag}: loss {got['loss']} vs {exp['loss']}")
                for key in ("weight_mean", "top1_share", "entropy", "load_cv"):
                    d = max_diff(got[key], exp[key])
                    check(d <= TOL, f"{tag}: {key} differs by {d:.3g} (> {TOL})")
                    print(f"{tag}: {key} max |C - torch| = {d:.2e}")
                # the statistics are informative: routing is not uniform
                check(max(max(max(m) for m in l) for l in exp["weight_mean"]) > 1.0 / case["n_heads"] + 0.05,
                      f"{tag}: the reference routing is nearly uniform: the test would not see much")
            if len(got_all) == 2:
                check(max_diff(got_all[0]["weight_mean"], got_all[1]["weight_mean"]) > 1e-3,
                      f"{case['variant']}: both files report the same weights (pooled instead of per file?)")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
