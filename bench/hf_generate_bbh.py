#!/usr/bin/env python3
"""The transformers peer of bench_bbh_gpu: the same BBH generation work with
LlamaForCausalLM.generate (sdpa attention, bf16) on the same GPU.

  python3 bench/hf_generate_bbh.py --prompts FILE [--batch 32] [--max-new 256] [--layers 32]
                                   [--budget SECONDS] [--no-adapter]

FILE: prompt ids written by `bench_bbh_gpu --dump-prompts FILE` (one example per line: subtask
index, then the ids exactly as `eval bbh` tokenizes them, BOS first). The model is LLaMA-2-7B
shaped with random bf16 weights; HydraLoRA r=8 N=4 on gate/up/down (shared A, N B heads, a
per-token softmax router, bf16 like the model, as a PEFT-style module in PyTorch would hold
them). Greedy, left-padded batches of consecutive prompts, exactly --max-new new tokens
(min_new_tokens = max_new_tokens). Without prefix sharing: every prompt is prefilled in full.

The whole set (6,511 prompts) takes over an hour this way, so the script times as many batches
as fit in --budget seconds, spread evenly over the set (so every subtask's prompt lengths are
represented), and extrapolates the time per batch to all batches. The extrapolation is printed
as such, with the number of batches it rests on."""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class HydraLinear(nn.Module):
    """y = W x + s * sum_i w_i(x) B_i A x, w = softmax(R x): one A, N heads B_i, a router R."""

    def __init__(self, base, r=8, n=4, alpha=16.0):
        super().__init__()
        self.base = base
        din, dout = base.in_features, base.out_features
        dev, dt = base.weight.device, base.weight.dtype
        self.A = nn.Parameter(torch.empty(r, din, device=dev, dtype=dt).uniform_(-0.01, 0.01))
        self.B = nn.Parameter(torch.empty(n * r, dout, device=dev, dtype=dt).uniform_(-0.01, 0.01))
        self.R = nn.Parameter(torch.empty(n, din, device=dev, dtype=dt).uniform_(-0.01, 0.01))
        self.r, self.n, self.s = r, n, alpha / r

    def forward(self, x):
        y = self.base(x)
        z = F.linear(x, self.A)                                   # [..., r]
        w = torch.softmax(F.linear(x, self.R).float(), dim=-1).to(x.dtype)  # [..., N]
        zw = (w.unsqueeze(-1) * z.unsqueeze(-2)).flatten(-2)      # [..., N*r]
        return y + self.s * (zw @ self.B)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new", type=int, default=256)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--no-adapter", action="store_true")
    a = ap.parse_args()

    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers

    prompts = []
    with open(a.prompts) as f:
        for line in f:
            v = line.split()
            if v:
                prompts.append([int(t) for t in v[1:]])
    n_all = len(prompts)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    print(f"{n_all} prompts, {sum(map(len, prompts))} prompt tokens")

    cfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=a.layers,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0)
    t0 = time.time()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        try:
            model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa")
        except TypeError:
            cfg._attn_implementation = "sdpa"
            model = LlamaForCausalLM(cfg)
    model = model.to(torch.bfloat16)
    torch.set_default_dtype(torch.float32)
    model.eval()
    if not a.no_adapter:
        for layer in model.model.layers:
            mlp = layer.mlp
            mlp.gate_proj = HydraLinear(mlp.gate_proj)
            mlp.up_proj = HydraLinear(mlp.up_proj)
            mlp.down_proj = HydraLinear(mlp.down_proj)
    attn = getattr(model.config, "_attn_implementation", "?")
    print(f"model: {a.layers} layers, {next(model.parameters()).dtype}, attention {attn}, {'HydraLoRA r=8 N=4 gate/up/down' if not a.no_adapter else 'no adapter'}; "
          f"built in {time.time() - t0:.1f} s")

    n_batches = math.ceil(n_all / a.batch)
    times, new_tokens, done = [], 0, 0
    torch.cuda.reset_peak_memory_stats()
    t_start = time.time()
    k = 0
    # batches spread over the set: 0, n/2, n/4, 3n/4, ... (a van der Corput order)
    order = []
    for i in range(n_batches):
        x, den, j = 0.0, 1.0, i
        while j:
            den *= 2
            x += (j & 1) / den
            j >>= 1
        order.append(int(x * n_batches))
    seen = set()
    order = [b for b in order if not (b in seen or seen.add(b))]
    for b in order:
        if time.time() - t_start > a.budget and k > 0:
            break
        chunk = prompts[b * a.batch:(b + 1) * a.batch]
        L = max(map(len, chunk))
        ids = torch.zeros(len(chunk), L, dtype=torch.long)
        mask = torch.zeros(len(chunk), L, dtype=torch.long)
        for i, p in enumerate(chunk):
            ids[i, L - len(p):] = torch.tensor(p)
            mask[i, L - len(p):] = 1
        ids, mask = ids.cuda(), mask.cuda()
        torch.cuda.synchronize()
        t1 = time.time()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.max_new,
                                 min_new_tokens=a.max_new, do_sample=False, pad_token_id=0)
        torch.cuda.synchronize()
        dt = time.time() - t1
        times.append(dt)
        got = out.shape[1] - L
        new_tokens += got * len(chunk)
        done += len(chunk)
        k += 1
        print(f"  batch {b} ({len(chunk)} prompts, longest {L}): {dt:.1f} s, {got * len(chunk) / dt:.0f} new tokens/s",
              flush=True)
    el = sum(times)
    est = el / k * n_batches
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"transformers generate batch {a.batch}: {done} examples, {new_tokens} new tokens in {el:.1f} s = "
          f"{new_tokens / el:.0f} new tokens/s, {done / el:.2f} examples/s; peak {peak:.1f} GiB")
    print(f"whole set extrapolated from {k} of {n_batches} batches: {est:.0f} s = {est / 60:.1f} min "
          f"(an estimate, not a measurement)")
    print(f"RESULT hf_batch={a.batch} hf_tok_s={new_tokens / el:.0f} hf_est_all_s={est:.0f} hf_batches={k} "
          f"hf_peak_gib={peak:.1f}")


if __name__ == "__main__":
    sys.exit(main())
