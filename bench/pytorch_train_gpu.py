"""PyTorch peer of bench_train_gpu: HydraLoRA training of a full LLaMA-2-7B-shaped model on one GPU.

transformers' LlamaForCausalLM (attn_implementation="sdpa", bf16, random init on the GPU), every
gate/up/down projection wrapped in a HydraLoRA layer (one shared A, N = 4 heads B_i, a per-token
router softmax in f32, r = 8, alpha 32, dropout 0.05; adapter math in f32 as PEFT does), AdamW
(fused) on the adapter parameters only. Each configuration: 2 warm-up steps, then --steps timed
steps of random full rows (labels = input ids). Prints tokens/s, peak memory
(torch.cuda.max_memory_allocated) and model FLOP/s with the same count as bench_train_gpu
(4 x matrix parameters + causal attention 6 x layers x heads x head_dim x (T + 1) per token),
against torch's own bf16 8192^3 matmul rate measured in the same run.

  python3 bench/pytorch_train_gpu.py [--steps 5] [--layers 32] [--configs abc]

(b) searches the largest batch whose peak memory stays within 24 GiB with gradient checkpointing, to
the single row: two probe batches give memory per row, the predicted batch is then checked one step
at a time (a probe = two steps). Peak memory is torch.cuda.max_memory_allocated (the smaller of
torch's figures: what its caching allocator reserves from the device, also printed, is larger).
scripts/gpu_bench.sh runs this first and gives bench_train_gpu torch's (b) peak as its memory limit.
Lines starting with RESULT are for scripts/gpu_bench.sh.
"""
import argparse
import math
import time

import torch
import torch.nn as nn

GIB = 1024 ** 3


class HydraLoRA(nn.Module):
    """y = W0 x + s * sum_i w_i(x) B_i A dropout(x), router w = softmax(R x) in f32."""

    def __init__(self, base: nn.Linear, r=8, n=4, alpha=32.0, dropout=0.05):
        super().__init__()
        self.base = base
        din, dout = base.in_features, base.out_features
        dev = base.weight.device
        self.A = nn.Parameter(torch.empty(r, din, device=dev, dtype=torch.float32))
        self.B = nn.Parameter(torch.zeros(n, dout, r, device=dev, dtype=torch.float32))
        self.R = nn.Parameter(torch.empty(n, din, device=dev, dtype=torch.float32))
        bound = 1.0 / math.sqrt(din)
        nn.init.uniform_(self.A, -bound, bound)
        nn.init.uniform_(self.R, -bound, bound)
        with torch.no_grad():  # non-zero B so the whole adapter path does real work
            self.B.normal_(0.0, 0.01)
        self.scale = alpha / r
        self.drop = nn.Dropout(dropout)
        self.n, self.r, self.dout = n, r, dout

    def forward(self, x):
        y = self.base(x)
        xf = x.float()
        w = torch.softmax(xf @ self.R.t(), dim=-1)                   # [..., N]
        z = self.drop(xf) @ self.A.t()                                # [..., r]
        zw = (w.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)         # [..., N*r]
        bcat = self.B.permute(1, 0, 2).reshape(self.dout, self.n * self.r)
        return (y.float() + self.scale * (zw @ bcat.t())).to(y.dtype)  # one product of width N*r


def build(layers):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                      rope_theta=10000.0, tie_word_embeddings=False)
    cfg.use_cache = False
    torch.manual_seed(0)
    with torch.device("cuda"):
        try:  # transformers 5 names it dtype, 4.x torch_dtype
            model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", dtype=torch.bfloat16)
        except TypeError:
            model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16 and model.config._attn_implementation == "sdpa"
    model.requires_grad_(False)
    for layer in model.model.layers:
        mlp = layer.mlp
        mlp.gate_proj = HydraLoRA(mlp.gate_proj)
        mlp.up_proj = HydraLoRA(mlp.up_proj)
        mlp.down_proj = HydraLoRA(mlp.down_proj)
    model.train()
    return model, cfg


def flops_per_token(cfg, T):
    D, F, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    Dq = D
    Dkv = cfg.num_key_value_heads * (D // cfg.num_attention_heads)
    mat = L * (2 * D * Dq + 2 * D * Dkv + 3 * D * F) + V * D
    return 4.0 * mat + 6.0 * L * Dq * (T + 1)


def matmul_rate():
    n = 8192
    a = torch.rand(n, n, device="cuda", dtype=torch.bfloat16) * 2 - 1
    b = torch.rand(n, n, device="cuda", dtype=torch.bfloat16) * 2 - 1
    for _ in range(3):
        a @ b.t()
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10):
        a @ b.t()
    e1.record()
    torch.cuda.synchronize()
    return 10 * 2 * n ** 3 / (e0.elapsed_time(e1) * 1e-3) / 1e12


def run(model, cfg, opt, B, T, ckpt, steps):
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()
    g = torch.Generator(device="cuda").manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (B, T), device="cuda", generator=g)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        return loss

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    if steps == 0:  # only the memory of a step
        return 0.0, torch.cuda.max_memory_allocated() / GIB, float("nan")
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return B * T * steps / dt, torch.cuda.max_memory_allocated() / GIB, loss.item()


def peak_at(model, cfg, opt, B, T):
    """Peak memory (GiB) of two checkpointed steps at batch B, None when out of memory."""
    try:
        return run(model, cfg, opt, B, T, 1, 0)[1]
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def largest_batch(model, cfg, opt, T, limit):
    """The largest checkpointed batch whose peak stays within limit GiB (0 when not even 1 fits)."""
    probes = {}

    def fits(B):
        if B not in probes:
            probes[B] = peak_at(model, cfg, opt, B, T)
        return probes[B] is not None and probes[B] <= limit

    if not fits(4):
        return next((b for b in (3, 2, 1) if fits(b)), 0), probes
    if not fits(8):
        B = 4
    else:  # memory is close to linear in the batch: predict, then settle to the row
        per_row = max((probes[8] - probes[4]) / 4.0, 1e-3)
        B = max(8, int((limit - probes[8]) / per_row) + 8)
    while B > 1 and not fits(B):
        B -= 1
    while fits(B + 1):
        B += 1
    return B, probes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--configs", default="abc")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    print("device: %s, torch %s" % (torch.cuda.get_device_name(0), torch.__version__), flush=True)
    peak = matmul_rate()
    print("torch bf16 8192^3 (random data): %.0f TFLOP/s" % peak, flush=True)
    print("RESULT matmul tflops=%.1f" % peak, flush=True)
    t0 = time.perf_counter()
    model, cfg = build(a.layers)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0, fused=True)
    print("LLaMA-2-7B shape, %d layers, random bf16 weights on the GPU in %.1f s; %d adapter parameters" %
          (a.layers, time.perf_counter() - t0, sum(p.numel() for p in params)), flush=True)

    def report(cid, label, B, T, ckpt):
        try:
            tps, mem, loss = run(model, cfg, opt, B, T, ckpt, a.steps)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            print("(%s) %s: out of memory" % (cid, label), flush=True)
            print("RESULT torch %s batch=%d seq=%d ckpt=%d error=1" % (cid, B, T, ckpt), flush=True)
            return
        tf = tps * flops_per_token(cfg, T) / 1e12
        reserved = torch.cuda.max_memory_reserved() / GIB
        print("(%s) %s: %.0f tokens/s, peak %.2f GiB allocated (%.2f GiB reserved), loss %.4f, model %.1f TFLOP/s = "
              "%.1f%% of the matmul rate" % (cid, label, tps, mem, reserved, loss, tf, 100 * tf / peak), flush=True)
        print("RESULT torch %s batch=%d seq=%d ckpt=%d tokens_per_s=%.1f peak_gib=%.2f reserved_gib=%.2f tflops=%.1f "
              "share=%.3f" % (cid, B, T, ckpt, tps, mem, reserved, tf, tf / peak), flush=True)

    if "a" in a.configs:
        report("a", "batch 4 x 1024, no checkpointing", 4, 1024, 0)
    if "b" in a.configs:
        best, probes = largest_batch(model, cfg, opt, 1024, 24.0)
        print("(b) batch search within 24 GiB, peak GiB per probed batch: %s" %
              ", ".join("%d: %s" % (b, "out of memory" if g is None else "%.2f" % g) for b, g in sorted(probes.items())),
              flush=True)
        if best:
            report("b", "batch %d x 1024, checkpointing (largest batch within 24 GiB)" % best, best, 1024, 1)
        else:
            print("RESULT torch b batch=0 seq=1024 ckpt=1 error=1", flush=True)
    if "c" in a.configs:
        report("c", "batch 1 x 4096, checkpointing", 1, 4096, 1)


if __name__ == "__main__":
    main()
