"""PyTorch reference model for the benchmarks (bench_train, bench_decode): a LLaMA-2 block
stack with random frozen weights and optional HydraLoRA adapters, the same shapes and math as
hydralora's engine (RMSNorm, rotary embeddings in HF rotate_half order, causal attention with
grouped KV heads, SwiGLU FFN; HydraLoRA: shared A [r, in], N heads B_i [out, r], per-token
softmax router [N, in], output += alpha/r * sum_i g_i * B_i A x).

Not a test and not an oracle: only timing. Run with Debian's /usr/bin/python3 (torch 1.13).
"""
import math

import torch
import torch.nn.functional as F

SHAPES = {
    # name: (dim, hidden, layers, heads, kv_heads, vocab, tied)
    "7b": (4096, 11008, 2, 32, 32, 32000, False),
    "stories260K": (64, 172, 5, 8, 4, 512, True),
}


def cpu_has_native_bf16():
    """True when the CPU multiplies bf16 natively (AVX512-BF16 or AMX): there PyTorch's bf16
    linears go through oneDNN at full speed; elsewhere (AVX2) PyTorch 1.13 runs bf16 matmuls in
    a scalar fallback (measured 0.45 GFLOP/s on a Zen 3 core pair), so f32 is its fast path."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split()
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return False


def frozen_dtype(shape, requested):
    """(torch dtype, name, reason) of the frozen weights for `shape` and --dtype auto|bf16|f32."""
    if requested in ("bf16", "f32"):
        name, why = requested, "as asked"
    elif shape != "7b":
        name, why = "f32", "the C bench uses f32 weights for this shape"
    elif cpu_has_native_bf16():
        name, why = "bf16", "native bf16 on this CPU (PyTorch runs bf16 linears on it through oneDNN)"
    else:
        name, why = "f32", "no native bf16 on this CPU: PyTorch's bf16 matmul is a scalar fallback here, f32 is its fast path"
    return (torch.bfloat16 if name == "bf16" else torch.float32), name, why


def rms_norm(x, w, eps=1e-5):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rope(x, pos, theta=10000.0):
    """x: [B, H, T, hd]; pos: [T] absolute positions. rotate_half (HF) order."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos.float()[:, None] * inv[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(x.dtype)
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(x.dtype)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Hydra(torch.nn.Module):
    """HydraLoRA on one frozen linear: f32 trainable A, B_i, router; the base stays in its dtype."""

    def __init__(self, d_in, d_out, r, n, alpha, dropout):
        super().__init__()
        self.A = torch.nn.Parameter(torch.randn(r, d_in) / math.sqrt(d_in))
        self.B = torch.nn.Parameter(torch.full((n, d_out, r), 1e-3))
        self.router = torch.nn.Parameter(torch.randn(n, d_in) * 0.01)
        self.scale = alpha / r
        self.dropout = dropout

    def forward(self, x):
        xf = F.dropout(x.float(), self.dropout, self.training)
        g = torch.softmax(xf @ self.router.t(), -1)  # [.., N]
        h = xf @ self.A.t()  # [.., r]
        y = torch.einsum("...n,...r,nor->...o", g, h, self.B)
        return (self.scale * y).to(x.dtype)


class Llama(torch.nn.Module):
    def __init__(self, shape, dtype, adapters=False, r=8, n_heads=4, alpha=32.0, dropout=0.05):
        super().__init__()
        D, Fh, L, H, KV, V, tied = SHAPES[shape]
        self.D, self.H, self.KV, self.hd, self.L, self.V = D, H, KV, D // H, L, V
        g = torch.Generator().manual_seed(1)

        def w(rows, cols, scale):
            return torch.nn.Parameter((torch.rand(rows, cols, generator=g) * 2 - 1).mul_(scale).to(dtype),
                                      requires_grad=False)

        s = 1.0 / math.sqrt(D)
        self.embed = w(V, D, 1.0)
        self.lm_head = self.embed if tied else w(V, D, s)
        self.norm = torch.nn.Parameter(torch.ones(D, dtype=dtype), requires_grad=False)
        self.layers = []
        for i in range(L):
            lw = {
                "an": torch.ones(D, dtype=dtype), "fn": torch.ones(D, dtype=dtype),
                "wq": w(D, D, s), "wk": w(KV * self.hd, D, s), "wv": w(KV * self.hd, D, s), "wo": w(D, D, s),
                "wg": w(Fh, D, s), "wu": w(Fh, D, s), "wd": w(D, Fh, 1.0 / math.sqrt(Fh)),
            }
            if adapters:
                lw["ag"] = Hydra(D, Fh, r, n_heads, alpha, dropout)
                lw["au"] = Hydra(D, Fh, r, n_heads, alpha, dropout)
                lw["ad"] = Hydra(Fh, D, r, n_heads, alpha, dropout)
                for k in ("ag", "au", "ad"):
                    self.add_module("l%d_%s" % (i, k), lw[k])
            self.layers.append(lw)

    def lin(self, lw, key, x):
        y = F.linear(x, lw["w" + key[1]])
        ak = "a" + key[1]
        return y + lw[ak](x) if ak in lw else y

    def forward(self, tokens, cache=None, pos0=0):
        """tokens [B, T] -> final hidden [B, T, D]. cache: list of (K, V) per layer [B, KV, Tmax, hd]
        filled at pos0.. (decoding); None for a full causal pass (training)."""
        B, T = tokens.shape
        x = self.embed[tokens]
        pos = torch.arange(pos0, pos0 + T)
        for i, lw in enumerate(self.layers):
            h = rms_norm(x, lw["an"])
            q = F.linear(h, lw["wq"]).view(B, T, self.H, self.hd).transpose(1, 2)
            k = F.linear(h, lw["wk"]).view(B, T, self.KV, self.hd).transpose(1, 2)
            v = F.linear(h, lw["wv"]).view(B, T, self.KV, self.hd).transpose(1, 2)
            q, k = rope(q, pos), rope(k, pos)
            if cache is not None:
                cache[i][0][:, :, pos0:pos0 + T] = k
                cache[i][1][:, :, pos0:pos0 + T] = v
                k, v = cache[i][0][:, :, :pos0 + T], cache[i][1][:, :, :pos0 + T]
            rep = self.H // self.KV
            if rep > 1:
                k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
            Tk = k.shape[2]
            mask = torch.ones(T, Tk, dtype=torch.bool).tril(Tk - T)
            att = att.float().masked_fill(~mask, float("-inf")).softmax(-1).to(q.dtype)
            o = (att @ v).transpose(1, 2).reshape(B, T, self.D)
            x = x + F.linear(o, lw["wo"])
            h = rms_norm(x, lw["fn"])
            x = x + self.lin(lw, "wd", F.silu(self.lin(lw, "wg", h)) * self.lin(lw, "wu", h))
        return rms_norm(x, self.norm)

    def logits(self, hidden):
        return F.linear(hidden, self.lm_head).float()
