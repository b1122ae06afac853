"""PyTorch reference for bench_train: one training step (forward + backward + AdamW) of a
LLaMA-2 block stack with HydraLoRA r=8 N=4 on gate/up/down (trainable A, B_i, router in f32;
frozen base), batch 1 x seq 512, loss = cross-entropy over every position.

  /usr/bin/python3 bench/pytorch_train_step.py [--shape 7b|stories260K] [--threads N] [--steps N]
                                               [--dtype auto|bf16|f32]

Frozen weights (--dtype auto): for 7b bf16 where the CPU multiplies bf16 natively (AVX512-BF16 /
AMX: torch's oneDNN path, activations in bf16 too), else f32 (PyTorch's bf16 matmul is a scalar
fallback on AVX2); f32 for stories260K (the C bench uses f32 there).
Prints one line per step and a final machine-readable line:
  PYTORCH_TRAIN <shape> <tokens/s mean> <seconds per step mean>
"""
import argparse
import time

import torch
import torch.nn.functional as F

from pytorch_llama import Llama, frozen_dtype


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="7b", choices=["7b", "stories260K"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--dtype", default="auto", choices=["auto", "bf16", "f32"])
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dtype, dts, why = frozen_dtype(a.shape, a.dtype)
    print("pytorch %s: frozen weights %s (%s)" % (torch.__version__, dts, why), flush=True)
    torch.manual_seed(0)
    m = Llama(a.shape, dtype, adapters=True)
    m.train()
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    T = 512
    tokens = (torch.arange(T) * 7919 + 13) % m.V
    tokens = tokens[None]
    times = []
    for s in range(a.steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        h = m(tokens[:, :-1])
        loss = F.cross_entropy(m.logits(h).view(-1, m.V), tokens[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        print("  pytorch step %d: %.3f s, loss %.4f" % (s, dt, loss.item()), flush=True)
        if s > 0:
            times.append(dt)
    mean = sum(times) / len(times)
    print("pytorch %s (%s frozen weights, %d threads): %.1f tokens/s" % (a.shape, dts, torch.get_num_threads(),
                                                                         T / mean))
    print("PYTORCH_TRAIN %s %.3f %.4f" % (a.shape, T / mean, mean))


if __name__ == "__main__":
    main()
