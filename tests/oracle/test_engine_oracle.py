#!/usr/bin/python3
"""Engine oracle: an independent PyTorch (float64) implementation of LLaMA-2 + HydraLoRA
checks the C engine's logits, loss, per-example eval loss sums, every adapter gradient, and the
losses of 10 AdamW steps (linear warmup + cosine, global-norm clipping, gradient accumulation 2).
Batches are right padded (one example per row) or, in the packed case, several examples per row
(segments): the reference then builds its own block-diagonal causal mask, positions restarting
at 0 in every example and targets that never cross an example boundary.

For each case this script builds a tiny random model, writes it as a Hugging Face
directory (config.json + model.safetensors written by hand below) in F32/F16/BF16, writes
initial adapter weights (random, with NON-zero B so that router and A gradients are not
trivially zero; dropout 0), runs tests/oracle/oracle_engine.c (found through HL_BUILD_DIR),
which opens the backend BY NAME through the seam (core/backend/backend.h: --device, from
HL_ORACLE_DEVICE, default cpu), and compares. Nothing here calls the C code for its numbers.

Tolerances (C computes in f32, this reference in f64 from the same stored weights):
  logits   max|c - t| / max|t|          <= 1e-4   (over non-padding rows)
  loss     |c - t| / |t|                <= 1e-5   (also each example's eval loss sum; counts exact)
  grads    max|c - t| / max|t| per tensor <= 1e-3
  training step losses, relative       <= 1e-4   (also grad norms 1e-3, learning rates 1e-6)
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DEVICE = os.environ.get("HL_ORACLE_DEVICE", "cpu")  # the backend the oracle cases run on, by name
from hl_testlib import check, finish  # noqa: E402

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------- safetensors by hand

def to_bf16_bytes(a):
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    return r.tobytes()


def st_write(path, tensors, dtype):
    """tensors: dict name -> np.ndarray (float); every tensor stored as `dtype`."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float64)
        if dtype == "F32":
            b = a.astype("<f4").tobytes()
        elif dtype == "F16":
            b = a.astype("<f2").tobytes()
        else:
            b = to_bf16_bytes(a.astype("<f4"))
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(b"".join(blobs))


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[base + a:base + b]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(info["dtype"])
        out[name] = arr.reshape(info["shape"]).astype(np.float64)
    return out


# ---------------------------------------------------------------- the reference model

def rmsnorm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def segments_of(B, T, starts, lens):
    """Example index of every position (-1 on padding) and the position inside its example."""
    seg = torch.full((B * T,), -1, dtype=torch.long)
    pos = torch.zeros(B * T, dtype=torch.long)
    for e, (a, n) in enumerate(zip(starts, lens)):
        seg[a:a + n] = e
        pos[a:a + n] = torch.arange(n)
    return seg.view(B, T), pos.view(B, T)


class Reference:
    def __init__(self, cfg, weights, case, adapters):
        self.c, self.W, self.case, self.A = cfg, weights, case, adapters
        self.s = case["alpha"] / case["r"]

    def lin(self, x, l, module, proj):
        W0 = self.W[f"model.layers.{l}.{module}.{proj}.weight"]
        y = x @ W0.T
        if proj not in self.case["targets"]:
            return y
        k = f"base_model.model.model.layers.{l}.{module}.{proj}."
        v, N = self.case["variant"], self.case["n_heads"]
        if v == "lora":
            return y + self.s * (x @ self.A[k + "lora_A.weight"].T) @ self.A[k + "lora_B.weight"].T
        if v == "uniform":
            om = torch.full(x.shape[:-1] + (N,), 1.0 / N)
        else:  # the router reads the input itself (dropout 0 here)
            om = torch.softmax(x @ self.A[k + "lora_route.weight"].T, dim=-1)
        for i in range(N):
            Akey = k + (f"lora_A{i}.weight" if v == "lora-split" else "lora_A.weight")
            z = x @ self.A[Akey].T
            y = y + self.s * om[..., i:i + 1] * (z @ self.A[k + f"lora_B{i}.weight"].T)
        return y

    def forward(self, tokens, lengths):
        c = self.c
        B, T = tokens.shape
        D, H, KV = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        hd = D // H if "head_dim" not in c else c["head_dim"]
        eps = c["rms_norm_eps"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
        i = torch.arange(T)
        lens = torch.tensor(lengths)
        allowed = (i[None, None, :] <= i[None, :, None]) & (i[None, None, :] < lens[:, None, None])  # [B,Tq,Tk]
        return self.blocks(tokens, cos, sin, allowed)

    def forward_packed(self, tokens, starts, lens):
        """Several examples per row: each attends causally within itself only (block-diagonal
        mask) and its positions start at 0. Padding rows attend to padding (never read)."""
        c = self.c
        B, T = tokens.shape
        hd = c["hidden_size"] // c["num_attention_heads"] if "head_dim" not in c else c["head_dim"]
        seg, pos = segments_of(B, T, starts, lens)
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = pos.to(torch.float64)[..., None] * inv  # [B, T, hd/2]
        cos = torch.cat([ang, ang], -1).cos()[:, None]  # [B, 1, T, hd]: broadcast over heads
        sin = torch.cat([ang, ang], -1).sin()[:, None]
        i = torch.arange(T)
        allowed = (seg[:, :, None] == seg[:, None, :]) & (i[None, None, :] <= i[None, :, None])  # [B,Tq,Tk]
        return self.blocks(tokens, cos, sin, allowed)

    def blocks(self, tokens, cos, sin, allowed):
        c = self.c
        B, T = tokens.shape
        D, H, KV = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        hd = D // H if "head_dim" not in c else c["head_dim"]
        eps = c["rms_norm_eps"]
        x = self.W["model.embed_tokens.weight"][tokens]
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = rmsnorm(x, self.W[p + "input_layernorm.weight"], eps)
            q = self.lin(h, l, "self_attn", "q_proj").view(B, T, H, hd).transpose(1, 2)
            k = self.lin(h, l, "self_attn", "k_proj").view(B, T, KV, hd).transpose(1, 2)
            v = self.lin(h, l, "self_attn", "v_proj").view(B, T, KV, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
            sc = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            sc = sc.masked_fill(~allowed[:, None], float("-inf"))
            o = (torch.softmax(sc, dim=-1) @ v).transpose(1, 2).reshape(B, T, H * hd)
            x = x + self.lin(o, l, "self_attn", "o_proj")
            h = rmsnorm(x, self.W[p + "post_attention_layernorm.weight"], eps)
            g = self.lin(h, l, "mlp", "gate_proj")
            u = self.lin(h, l, "mlp", "up_proj")
            x = x + self.lin(torch.nn.functional.silu(g) * u, l, "mlp", "down_proj")
        x = rmsnorm(x, self.W["model.norm.weight"], eps)
        head = self.W["model.embed_tokens.weight"] if c["tie_word_embeddings"] else self.W["lm_head.weight"]
        return x @ head.T

    def loss(self, tokens, labels, lengths):
        logits = self.forward(tokens, lengths)
        V = logits.shape[-1]
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)

    def loss_packed(self, tokens, labels, starts, lens):
        """Mean target CE of a packed batch, and per example (sums, counts): position t predicts
        the label of t + 1 only when both are in the same example."""
        logits = self.forward_packed(tokens, starts, lens)
        B, T, V = logits.shape
        seg, _ = segments_of(B, T, starts, lens)
        tgt = torch.full((B, T), -100, dtype=torch.long)
        same = (seg[:, 1:] == seg[:, :-1]) & (seg[:, :-1] >= 0)
        tgt[:, :-1] = torch.where(same, labels[:, 1:], torch.full_like(labels[:, 1:], -100))
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=-100,
                                               reduction="none")
        mask = tgt.reshape(-1) != -100
        sums = [float(ce[mask & (seg.reshape(-1) == e)].sum()) for e in range(len(starts))]
        counts = [int((mask & (seg.reshape(-1) == e)).sum()) for e in range(len(starts))]
        return ce[mask].sum() / mask.sum(), sums, counts


# ---------------------------------------------------------------- cases

CASES = [
    # grouped-query attention (4 heads over 2 kv heads), untied head, odd sizes, HydraLoRA
    # N=4 on all seven projections, F32 storage
    dict(name="gqa_hydra_all_targets", dim=48, hidden=100, layers=2, heads=4, kv_heads=2, head_dim=12, vocab=97,
         tie=False, dtype="F32", eps=1e-5, theta=10000.0, variant="hydra", n_heads=4, r=4, alpha=8.0,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], checkpoint=0,
         B=3, T=9, lengths=[9, 6, 4]),
    # plain LoRA (N=1) on attention + FFN targets, tied head, F16 storage, checkpointing on
    dict(name="lora_tied_f16_ckpt", dim=32, hidden=64, layers=2, heads=4, kv_heads=4, head_dim=8, vocab=61,
         tie=True, dtype="F16", eps=1e-6, theta=10000.0, variant="lora", n_heads=1, r=4, alpha=16.0,
         targets=["q_proj", "v_proj", "down_proj"], checkpoint=1, B=2, T=8, lengths=[8, 5]),
    # LoRA-Split N=3, multi-query attention (1 kv head), BF16 storage, rope theta from config
    dict(name="split_mqa_bf16", dim=48, hidden=100, layers=2, heads=4, kv_heads=1, head_dim=12, vocab=97,
         tie=False, dtype="BF16", eps=1e-5, theta=500000.0, variant="lora-split", n_heads=3, r=2, alpha=4.0,
         targets=["o_proj", "gate_proj", "up_proj", "down_proj"], checkpoint=1, B=2, T=10, lengths=[10, 7]),
    # uniform gate N=4 (no router), 5 heads of 8, F32
    dict(name="uniform_gate", dim=40, hidden=72, layers=3, heads=5, kv_heads=5, head_dim=8, vocab=50,
         tie=False, dtype="F32", eps=1e-5, theta=10000.0, variant="uniform", n_heads=4, r=3, alpha=6.0,
         targets=["k_proj", "gate_proj", "up_proj"], checkpoint=0, B=2, T=7, lengths=[7, 7]),
    # packed rows: examples of 5, 7 and 4 tokens fill row 0; row 1 holds one of a single token and
    # one of 9, then padding; half the examples are all target (a shift across a boundary would
    # add targets). GQA, HydraLoRA N=3 on all seven projections, BF16 storage, checkpointing on;
    # the 20 training micro-batches are packed at random too.
    dict(name="packed_gqa_hydra", dim=48, hidden=100, layers=2, heads=4, kv_heads=2, head_dim=12, vocab=97,
         tie=False, dtype="BF16", eps=1e-5, theta=10000.0, variant="hydra", n_heads=3, r=4, alpha=8.0,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], checkpoint=1,
         B=2, T=16, packed=[[5, 7, 4], [1, 9]]),
    # the trainer's packed layout: one row holding whole examples (6, 1, 11, 3, 9 tokens) with
    # nothing after the last; GQA, HydraLoRA N=2 on all seven projections, F32, no checkpointing
    dict(name="packed_one_row", dim=32, hidden=64, layers=2, heads=4, kv_heads=2, head_dim=8, vocab=61,
         tie=False, dtype="F32", eps=1e-5, theta=10000.0, variant="hydra", n_heads=2, r=3, alpha=6.0,
         targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], checkpoint=0,
         B=1, T=30, packed=[[6, 1, 11, 3, 9]]),
]

TRAIN = dict(lr=5e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, clip=0.5, warmup=2, steps=10, accum=2)


def make_model(case, rng, out_dir):
    D, F, L, H, KV, hd, V = (case[k] for k in ("dim", "hidden", "layers", "heads", "kv_heads", "head_dim", "vocab"))
    W = {"model.embed_tokens.weight": rng.standard_normal((V, D)) * 0.7,
         "model.norm.weight": 1.0 + 0.2 * rng.uniform(-1, 1, D)}
    if not case["tie"]:
        W["lm_head.weight"] = rng.standard_normal((V, D)) / math.sqrt(D)

    def u(rows, cols):
        return rng.uniform(-1, 1, (rows, cols)) / math.sqrt(cols)

    for l in range(L):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = 1.0 + 0.2 * rng.uniform(-1, 1, D)
        W[p + "post_attention_layernorm.weight"] = 1.0 + 0.2 * rng.uniform(-1, 1, D)
        W[p + "self_attn.q_proj.weight"] = u(H * hd, D)
        W[p + "self_attn.k_proj.weight"] = u(KV * hd, D)
        W[p + "self_attn.v_proj.weight"] = u(KV * hd, D)
        W[p + "self_attn.o_proj.weight"] = u(D, H * hd)
        W[p + "mlp.gate_proj.weight"] = u(F, D)
        W[p + "mlp.up_proj.weight"] = u(F, D)
        W[p + "mlp.down_proj.weight"] = u(D, F)
    os.makedirs(out_dir, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": V,
           "max_position_embeddings": 64, "rms_norm_eps": case["eps"], "rope_theta": case["theta"],
           "tie_word_embeddings": case["tie"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
           "torch_dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[case["dtype"]]}
    if hd != D // H:
        cfg["head_dim"] = hd
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    path = os.path.join(out_dir, "model.safetensors")
    st_write(path, W, case["dtype"])
    stored = st_read(path)  # the reference uses exactly the stored (rounded) values
    return cfg, {k: torch.tensor(v) for k, v in stored.items()}


def make_adapters(case, cfg, rng):
    D, F = case["dim"], case["hidden"]
    Dq, Dkv = case["heads"] * case["head_dim"], case["kv_heads"] * case["head_dim"]
    dims = {"q_proj": (D, Dq), "k_proj": (D, Dkv), "v_proj": (D, Dkv), "o_proj": (Dq, D),
            "gate_proj": (D, F), "up_proj": (D, F), "down_proj": (F, D)}
    r, N, v = case["r"], case["n_heads"], case["variant"]
    A = {}
    for l in range(case["layers"]):
        for proj in case["targets"]:
            mod = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            k = f"base_model.model.model.layers.{l}.{mod}.{proj}."
            din, dout = dims[proj]
            bound = 1.0 / math.sqrt(din)
            if v == "lora":
                A[k + "lora_A.weight"] = rng.uniform(-bound, bound, (r, din))
                A[k + "lora_B.weight"] = rng.standard_normal((dout, r)) * 0.2
                continue
            if v == "lora-split":
                for i in range(N):
                    A[k + f"lora_A{i}.weight"] = rng.uniform(-bound, bound, (r, din))
            else:
                A[k + "lora_A.weight"] = rng.uniform(-bound, bound, (r, din))
            for i in range(N):
                A[k + f"lora_B{i}.weight"] = rng.standard_normal((dout, r)) * 0.2
            if v != "uniform":
                A[k + "lora_route.weight"] = rng.uniform(-bound, bound, (N, din)) * 3.0  # sharper routing
    return A


def make_batch(case, rng):
    B, T, V = case["B"], case["T"], case["vocab"]
    lengths = list(case["lengths"]) if rng is None else [int(x) for x in rng.integers(2, T + 1, B)]
    if rng is None:
        rng = np.random.default_rng(7)
    tokens = rng.integers(0, V, (B, T))
    labels = tokens.copy()
    for b in range(B):
        k = int(rng.integers(0, max(1, lengths[b] // 2)))  # a masked "prompt" prefix
        labels[b, :k + 1] = -100
        tokens[b, lengths[b]:] = 0  # padding id
        labels[b, lengths[b]:] = -100
    if (labels[:, 1:] != -100).sum() == 0:
        labels[0, 1] = tokens[0, 1]
    return tokens, labels, lengths


def make_packed_batch(case, rng):
    """A packed batch: the case's row layout (rng None) or random examples filling each row up
    to a random point. Returns tokens, labels [B, T], seq_start, seq_len."""
    B, T, V = case["B"], case["T"], case["vocab"]
    if rng is None:
        rows = case["packed"]
        rng = np.random.default_rng(7)
    else:
        rows = []
        for _ in range(B):
            room, row = int(rng.integers(T // 2, T + 1)), []
            while room > 0:
                n = int(rng.integers(1, min(room, 8) + 1))
                row.append(n)
                room -= n
            rows.append(row)
    tokens = np.zeros((B, T), dtype=np.int64)
    labels = np.full((B, T), -100, dtype=np.int64)
    starts, lens = [], []
    for b, row in enumerate(rows):
        col = 0
        for n in row:
            ids = rng.integers(0, V, n)
            lab = ids.copy()
            if rng.integers(0, 2):  # a masked "prompt" prefix; else the whole example is target
                lab[:int(rng.integers(1, n // 2 + 2))] = -100
            tokens[b, col:col + n] = ids
            labels[b, col:col + n] = lab
            starts.append(b * T + col)
            lens.append(n)
            col += n
    return tokens, labels, starts, lens


def hf_lr_lambda(step, warmup, total):
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def rel_max(c, t):
    den = float(np.max(np.abs(t)))
    return float(np.max(np.abs(c - t))) / (den if den > 0 else 1.0)


def run_case(case, engine, root):
    rng = np.random.default_rng(zlib.crc32(case["name"].encode()))
    cdir = os.path.join(root, case["name"])
    cfg, W = make_model(case, rng, os.path.join(cdir, "model"))
    A_np = make_adapters(case, cfg, rng)
    st_write(os.path.join(cdir, "adapter_init.safetensors"), A_np, "F32")
    A_init = {k: torch.tensor(v.astype(np.float32).astype(np.float64)) for k, v in A_np.items()}
    packed = "packed" in case
    B, T = case["B"], case["T"]
    if packed:
        tokens, labels, starts, lens = make_packed_batch(case, None)
        lengths = None
    else:
        tokens, labels, lengths = make_batch(case, None)
        starts, lens = [b * T for b in range(B)], list(lengths)  # the same batch as segments
    batches = []
    for _ in range(TRAIN["steps"] * TRAIN["accum"]):
        if packed:
            t, lb, st, ln = make_packed_batch(case, rng)
            batches.append(dict(B=B, T=T, tokens=t.flatten().tolist(), labels=lb.flatten().tolist(), seq_start=st,
                                seq_len=ln))
            continue
        t, lb, ln = make_batch(case, rng)
        batches.append(dict(B=case["B"], T=case["T"], tokens=t.flatten().tolist(), labels=lb.flatten().tolist(),
                            lengths=ln))
    job = dict(variant=case["variant"], n_heads=case["n_heads"], r=case["r"], alpha=case["alpha"],
               targets=case["targets"], checkpoint=case["checkpoint"], B=case["B"], T=case["T"],
               tokens=tokens.flatten().tolist(), labels=labels.flatten().tolist(), lengths=lengths,
               train=dict(TRAIN, batches=batches))
    if packed:
        job["seq_start"], job["seq_len"] = starts, lens
    with open(os.path.join(cdir, "job.json"), "w") as f:
        json.dump(job, f)
    res = subprocess.run([engine, "--device", DEVICE, cdir], capture_output=True, text=True)
    check(res.returncode == 0, f"{case['name']}: oracle_engine failed: {res.stderr.strip()}")
    if res.returncode != 0:
        return
    out = st_read(os.path.join(cdir, "out.safetensors"))

    # --- forward, loss, gradients
    params = {k: v.clone().requires_grad_(True) for k, v in A_init.items()}
    ref = Reference(cfg, W, case, params)
    tk, lb = torch.tensor(tokens), torch.tensor(labels)
    with torch.no_grad():
        if packed:
            logits = ref.forward_packed(tk, starts, lens).numpy().reshape(B * T, -1)
        else:
            logits = ref.forward(tk, lengths).numpy().reshape(case["B"] * case["T"], -1)
        _, ref_sums, ref_counts = ref.loss_packed(tk, lb, starts, lens)  # per example (padded: per row)
    if packed:
        valid = segments_of(B, T, starts, lens)[0].reshape(-1).numpy() >= 0
    else:
        valid = np.array([t < lengths[b] for b in range(case["B"]) for t in range(case["T"])])
    e = rel_max(out["logits"][valid], logits[valid])
    check(e <= 1e-4, f"{case['name']}: logits relative error {e:.3g} > 1e-4")
    pad_zero = np.all(out["logits"][~valid] == 0) if (~valid).any() else True
    check(pad_zero, f"{case['name']}: padding rows of the logits are not zero")
    loss = ref.loss_packed(tk, lb, starts, lens)[0] if packed else ref.loss(tk, lb, lengths)
    loss.backward()
    e = abs(float(out["loss"][0]) - loss.item()) / abs(loss.item())
    check(e <= 1e-5, f"{case['name']}: loss {float(out['loss'][0]):.8f} vs {loss.item():.8f} (rel {e:.3g})")
    check(list(out["seq_count"].astype(int)) == ref_counts,
          f"{case['name']}: per-example target counts {list(out['seq_count'].astype(int))} vs {ref_counts}")
    check(sum(1 for c in ref_counts if c) >= 2, f"{case['name']}: fewer than 2 examples with targets")
    for ex, (cs, rs) in enumerate(zip(out["seq_loss_sum"], ref_sums)):
        check(abs(cs - rs) <= 1e-5 * max(abs(rs), 1e-3),
              f"{case['name']}: example {ex} eval loss sum {cs:.7f} vs {rs:.7f}")
    worst, worst_k = 0.0, ""
    for k, p in params.items():
        g = p.grad.numpy()
        check(np.max(np.abs(g)) > 0, f"{case['name']}: reference gradient of {k} is zero (test not meaningful)")
        e = rel_max(out["grad." + k], g)
        if e > worst:
            worst, worst_k = e, k
        check(e <= 1e-3, f"{case['name']}: gradient of {k}: relative error {e:.3g} > 1e-3")
    check(len(params) == sum(1 for k in out if k.startswith("grad.")),
          f"{case['name']}: the engine has a different set of adapter tensors")

    # --- 10 AdamW steps: warmup + cosine, clipping, accumulation
    params = {k: v.clone().requires_grad_(True) for k, v in A_init.items()}
    ref = Reference(cfg, W, case, params)
    plist = list(params.values())
    opt = torch.optim.AdamW(plist, lr=TRAIN["lr"], betas=(TRAIN["beta1"], TRAIN["beta2"]), eps=TRAIN["eps"],
                            weight_decay=TRAIN["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: hf_lr_lambda(s, TRAIN["warmup"], TRAIN["steps"]))
    step_losses, norms, lrs = [], [], []
    clipped = 0
    for s in range(TRAIN["steps"]):
        opt.zero_grad()
        acc = 0.0
        for a in range(TRAIN["accum"]):
            mb = batches[s * TRAIN["accum"] + a]
            t = torch.tensor(mb["tokens"]).view(mb["B"], mb["T"])
            y = torch.tensor(mb["labels"]).view(mb["B"], mb["T"])
            if "seq_start" in mb:
                l = ref.loss_packed(t, y, mb["seq_start"], mb["seq_len"])[0]
            else:
                l = ref.loss(t, y, mb["lengths"])
            (l / TRAIN["accum"]).backward()
            acc += l.item()
        step_losses.append(acc / TRAIN["accum"])
        lrs.append(opt.param_groups[0]["lr"])
        n = float(torch.nn.utils.clip_grad_norm_(plist, TRAIN["clip"]))
        clipped += n > TRAIN["clip"]
        norms.append(n)
        opt.step()
        sched.step()
    check(clipped > 0, f"{case['name']}: clipping never triggered (test not meaningful)")
    for s in range(TRAIN["steps"]):
        e = abs(out["step_losses"][s] - step_losses[s]) / abs(step_losses[s])
        check(e <= 1e-4, f"{case['name']}: step {s} loss {out['step_losses'][s]:.7f} vs {step_losses[s]:.7f} "
                         f"(rel {e:.3g})")
        e = abs(out["grad_norms"][s] - norms[s]) / norms[s]
        check(e <= 1e-3, f"{case['name']}: step {s} grad norm {out['grad_norms'][s]:.6g} vs {norms[s]:.6g}")
        check(abs(out["lrs"][s] - lrs[s]) <= 1e-6 * TRAIN["lr"] + 1e-12,
              f"{case['name']}: step {s} lr {out['lrs'][s]:.6g} vs {lrs[s]:.6g}")
    print(f"{case['name']}: loss {loss.item():.6f}, worst grad rel err {worst:.2g} ({worst_k.split('layers.')[-1]}), "
          f"final step loss {out['step_losses'][-1]:.6f} vs {step_losses[-1]:.6f}")


def score_test(root):
    """`hydralora score` on the real stories260K model (F32 HF dir), without and with an exported
    HydraLoRA adapter directory written here by hand (docs/method.md §8 keys, BF16 like the reference),
    against this file's reference forward; then its error messages."""
    hl_bin = os.environ.get("HL_BIN") or os.path.join(os.environ.get("HL_BUILD_DIR", "build"), "hydralora")
    shared = os.environ.get("HL_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
    mdir = os.path.join(shared, "models", "stories260K-hf")
    if not os.path.exists(hl_bin) or not os.path.exists(mdir):
        check(False, f"score: need {hl_bin} and {mdir}")
        return
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    W = {k: torch.tensor(v) for k, v in st_read(os.path.join(mdir, "model.safetensors")).items()}
    rng = np.random.default_rng(11)
    lines = [[1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401],
             [int(x) for x in rng.integers(0, 512, 25)], [1, 2], [5, 9, 13, 400, 3]]
    ids_path = os.path.join(root, "ids.txt")
    with open(ids_path, "w") as f:
        f.write("\n".join(" ".join(str(i) for i in ln) for ln in lines) + "\n")

    def reference(case, adapters):
        ref = Reference(cfg, W, case, adapters)
        out, tot, n = [], 0.0, 0
        with torch.no_grad():
            for ln in lines:
                t = torch.tensor([ln])
                l = ref.loss(t, t.clone(), [len(ln)]).item()
                out.append(l)
                tot += l * (len(ln) - 1)
                n += len(ln) - 1
        return out, tot / n, n

    def run_score(extra):
        r = subprocess.run([hl_bin, "score", "--model", mdir, "--ids", ids_path, "--quiet"] + extra,
                           capture_output=True, text=True)
        return r

    def compare(label, r, exp):
        check(r.returncode == 0, f"score {label}: exit {r.returncode}: {r.stderr.strip()}")
        if r.returncode:
            return
        got = r.stdout.strip().split("\n")
        per, mean, n = exp
        check(len(got) == len(per) + 1, f"score {label}: {len(got)} output lines for {len(per)} sequences")
        for i, (g, e) in enumerate(zip(got, per)):
            check(abs(float(g) - e) <= 2e-6 + 1e-5 * abs(e), f"score {label} line {i + 1}: {g} vs {e:.6f}")
        last = got[-1].split()
        ok = len(last) == 2 and last[0].startswith("mean_loss=") and last[1] == f"tokens={n}"
        check(ok and abs(float(last[0][10:]) - mean) <= 2e-6 + 1e-5 * mean,
              f"score {label}: summary '{got[-1]}' vs mean_loss={mean:.6f} tokens={n}")
        print(f"score {label}: mean_loss {mean:.6f} over {n} tokens")

    base_case = dict(targets=[], variant="lora", n_heads=1, r=1, alpha=1.0)
    compare("base", run_score([]), reference(base_case, {}))

    # an exported HydraLoRA adapter: N=3, r=4 on gate/up/down, stored as BF16
    case = dict(variant="hydra", n_heads=3, r=4, alpha=8.0, targets=["gate_proj", "up_proj", "down_proj"],
                layers=cfg["num_hidden_layers"], dim=cfg["hidden_size"], hidden=cfg["intermediate_size"],
                heads=cfg["num_attention_heads"], kv_heads=cfg["num_key_value_heads"],
                head_dim=cfg["hidden_size"] // cfg["num_attention_heads"])
    A = make_adapters(case, cfg, rng)
    adir = os.path.join(root, "adapter")
    os.makedirs(adir)
    st_write(os.path.join(adir, "adapter_model.safetensors"), A, "BF16")
    with open(os.path.join(adir, "adapter_config.json"), "w") as f:
        json.dump({"base_model_name_or_path": mdir, "bias": "none", "enable_lora": None, "fan_in_fan_out": False,
                   "inference_mode": True, "lora_alpha": case["alpha"], "lora_dropout": 0.05,
                   "lora_nums": case["n_heads"], "merge_weights": False, "modules_to_save": None,
                   "peft_type": "LORA", "r": case["r"], "target_modules": case["targets"],
                   "task_type": "CAUSAL_LM"}, f)
    A_stored = {k: torch.tensor(v) for k, v in st_read(os.path.join(adir, "adapter_model.safetensors")).items()}
    exp = reference(case, A_stored)
    check(abs(exp[1] - reference(base_case, {})[1]) > 1e-3, "score: the adapter does not change the loss")
    compare("with adapter", run_score(["--adapter", adir]), exp)

    # errors name the line and exit with 1
    def bad(label, text, want):
        path = os.path.join(root, "bad.txt")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([hl_bin, "score", "--model", mdir, "--ids", path], capture_output=True, text=True)
        check(r.returncode == 1 and want in r.stderr, f"score error {label}: exit {r.returncode}, '{r.stderr.strip()}'")

    bad("malformed", "1 2 3\n1 two 3\n", "line 2")
    bad("out of vocabulary", "1 2 3\n4 5\n7 512\n", "line 3")
    bad("too long", " ".join(["1"] * 513) + "\n", "context")
    bad("single id", "1 2\n7\n", "line 2")
    r = subprocess.run([hl_bin, "score", "--model", mdir, "--ids", os.path.join(root, "missing.txt")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "missing.txt" in r.stderr, f"score: missing file: {r.stderr.strip()}")


def main():
    build = os.environ.get("HL_BUILD_DIR", "build")
    engine = os.path.join(build, "oracle_engine")
    if not os.path.exists(engine):
        print(f"FAIL: {engine} not found (set HL_BUILD_DIR)")
        print("0 passed, 1 failed")
        return 1
    # the backend is chosen by name: an unknown one is refused, naming what is available
    r = subprocess.run([engine, "--device", "tpu", "/nonexistent"], capture_output=True, text=True)
    check(r.returncode != 0 and "tpu" in r.stderr and "available" in r.stderr,
          f"unknown device refused with the available ones: {r.stderr.strip()}")
    with tempfile.TemporaryDirectory(prefix="hl_engine_oracle_") as root:
        for case in CASES:
            run_case(case, engine, root)
        score_test(root)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
