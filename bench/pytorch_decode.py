"""PyTorch reference for bench_decode: tokens/s of greedy KV-cache decoding with random frozen
weights, batch B prompts of 16 tokens, `tokens` new tokens each (timed from the first sampled
token, prefill excluded, as bench_decode does).

  /usr/bin/python3 bench/pytorch_decode.py [--shape 7b|stories260K] [--layers L] [--threads N]
                                           [--tokens N] [--batch 1,16] [--dtype auto|bf16|f32]

Weights (--dtype auto): for 7b bf16 where the CPU multiplies bf16 natively (the C bench decodes
the same bf16 weights; torch computes in bf16), else f32 (PyTorch's bf16 matmul is a scalar
fallback on AVX2); f32 for stories260K. Final machine-readable line per batch size:
  PYTORCH_DECODE <shape> <batch> <tokens/s>
"""
import argparse
import time

import torch

from pytorch_llama import SHAPES, Llama, frozen_dtype


@torch.no_grad()
def decode(m, batch, prompt_len, tokens, dtype):
    cache = [(torch.zeros(batch, m.KV, prompt_len + tokens, m.hd, dtype=dtype),
              torch.zeros(batch, m.KV, prompt_len + tokens, m.hd, dtype=dtype)) for _ in range(m.L)]
    prompt = torch.tensor([[1] + [3 + (b * 131 + t * 17) % (m.V - 3) for t in range(1, prompt_len)]
                           for b in range(batch)])
    h = m(prompt, cache, 0)
    nxt = m.logits(h[:, -1]).argmax(-1)
    t0 = time.perf_counter()  # first sample done: time the remaining tokens - 1 steps
    for i in range(tokens - 1):
        h = m(nxt[:, None], cache, prompt_len + i)
        nxt = m.logits(h[:, -1]).argmax(-1)
    return batch * (tokens - 1) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="7b", choices=["7b", "stories260K"])
    ap.add_argument("--layers", type=int, default=0, help="layers (default: the shape's)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--dtype", default="auto", choices=["auto", "bf16", "f32"])
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.layers > 0:
        s = list(SHAPES[a.shape])
        s[2] = a.layers
        SHAPES[a.shape] = tuple(s)
    dtype, dts, why = frozen_dtype(a.shape, a.dtype)
    print("pytorch %s: frozen weights %s (%s)" % (torch.__version__, dts, why), flush=True)
    m = Llama(a.shape, dtype)
    m.eval()
    for b in [int(x) for x in a.batch.split(",")]:
        decode(m, b, 16, min(a.tokens, 4), dtype)  # warm-up
        tps = decode(m, b, 16, a.tokens, dtype)
        print("pytorch %s (%s, %d layers, %d threads) batch %2d: %.1f tok/s" % (a.shape, dts, m.L,
                                                                              torch.get_num_threads(), b, tps))
        print("PYTORCH_DECODE %s %d %.3f" % (a.shape, b, tps), flush=True)


if __name__ == "__main__":
    main()
