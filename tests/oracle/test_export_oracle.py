"""Export oracle: train a small HydraLoRA adapter with the C engine, export it, and check the
export with PyTorch as an independent reference.

1. `hydralora train` (stories260K-hf, a few GSM8K records, N=4, r=8, 20 steps) and
   `hydralora export` (f32 and bf16).
2. torch.load reads adapter_model.bin; adapter_model.safetensors is parsed by hand here;
   every key and shape must be exactly those of docs/method.md §8 and adapter_config.json must
   carry the reference fields; both files must hold the same values.
3. An independent LLaMA + HydraLoRA forward written here in PyTorch (float64, reading the base
   model's safetensors by hand, tokenising with sentencepiece) must reproduce the C engine's
   per-record loss on held-out GSM8K test records to 1e-4.
4. --collapse: the exported plain LoRA must equal sum_i mean(omega_i) B_i with the mean
   routing weights measured HERE on the same records, and the printed losses must match.
5. A plain-LoRA run exports standard PEFT keys (lora_A / lora_B, no lora_nums).
Exits non-zero on failure and prints "N passed, N failed".
"""
import collections
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import numpy as np
import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import BIN, SHARED, check, finish  # noqa: E402

MODEL = os.path.join(SHARED, "models", "stories260K-hf")
GSM_TRAIN = os.path.join(SHARED, "datasets", "gsm8k", "train.jsonl")
GSM_TEST = os.path.join(SHARED, "datasets", "gsm8k", "test.jsonl")
MAX_LEN = 320
N_HEADS, RANK, ALPHA = 4, 8, 32.0


def run(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="2")
    p = subprocess.run(args, capture_output=True, text=True, env=env, **kw)
    if p.returncode != 0:
        print("command failed:", " ".join(args), "\n", p.stdout, p.stderr, file=sys.stderr)
    return p


# ---------------- safetensors, by hand ----------------

def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = collections.OrderedDict()
    meta = header.pop("__metadata__", None)
    for name, info in header.items():
        a, b = info["data_offsets"]
        raw = data[a:b]
        shape = info["shape"]
        if info["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy()).to(torch.bfloat16)
        else:
            raise ValueError("unexpected dtype %s" % info["dtype"])
        out[name] = t.reshape(shape)
    return out, meta


# ---------------- the reference model ----------------

class Llama:
    def __init__(self, model_dir):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.cfg = cfg
        w, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.w = {k: v.double() for k, v in w.items()}
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.KV = cfg["num_key_value_heads"]
        self.D = cfg["hidden_size"]
        self.hd = self.D // self.H
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg.get("rope_theta", 10000.0)
        self.head = self.w.get("lm_head.weight", self.w["model.embed_tokens.weight"])

    def rms(self, x, w):
        return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps))

    def rope(self, x):  # x [T, heads, hd], HF rotate_half
        T, hd = x.shape[0], self.hd
        inv = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
        sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
        rot = torch.cat([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rot * sin

    def forward(self, ids, adapter=None, route_acc=None):
        """Logits [T, vocab] of one sequence. adapter(l, proj, x, y) adds the adapter output."""
        x = self.w["model.embed_tokens.weight"][torch.tensor(ids)]
        T = len(ids)
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        for l in range(self.L):
            p = "model.layers.%d." % l
            h = self.rms(x, self.w[p + "input_layernorm.weight"])
            q = (h @ self.w[p + "self_attn.q_proj.weight"].T).view(T, self.H, self.hd)
            k = (h @ self.w[p + "self_attn.k_proj.weight"].T).view(T, self.KV, self.hd)
            v = (h @ self.w[p + "self_attn.v_proj.weight"].T).view(T, self.KV, self.hd)
            q, k = self.rope(q), self.rope(k)
            rep = self.H // self.KV
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            att = torch.einsum("thd,shd->hts", q, k) / (self.hd ** 0.5) + mask
            o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(T, self.D)
            x = x + o @ self.w[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, self.w[p + "post_attention_layernorm.weight"])

            def proj(name, inp):
                y = inp @ self.w[p + "mlp.%s.weight" % name].T
                return adapter(l, name, inp, y) if adapter else y

            g = proj("gate_proj", h)
            u = proj("up_proj", h)
            a = torch.nn.functional.silu(g) * u
            x = x + proj("down_proj", a)
        x = self.rms(x, self.w["model.norm.weight"])
        return x @ self.head.T


def hydra_adapter(tensors, n_heads, r, alpha, route_acc=None):
    s = alpha / r
    t = {k: v.double() for k, v in tensors.items()}

    def f(l, name, x, y):
        base = "base_model.model.model.layers.%d.mlp.%s." % (l, name)
        A = t[base + "lora_A.weight"]
        R = t[base + "lora_route.weight"]
        w = (x @ R.T).softmax(-1)  # [T, N]
        if route_acc is not None:
            acc = route_acc.setdefault((l, name), [torch.zeros(n_heads, dtype=torch.float64), 0])
            acc[0] += w.sum(0)
            acc[1] += w.shape[0]
        z = x @ A.T
        for i in range(n_heads):
            y = y + s * w[:, i:i + 1] * (z @ t[base + "lora_B%d.weight" % i].T)
        return y
    return f


def lora_adapter(tensors, r, alpha):
    s = alpha / r
    t = {k: v.double() for k, v in tensors.items()}

    def f(l, name, x, y):
        base = "base_model.model.model.layers.%d.mlp.%s." % (l, name)
        return y + s * (x @ t[base + "lora_A.weight"].T) @ t[base + "lora_B.weight"].T
    return f


def example(sp, rec):
    """docs/method.md §5: [BOS] + tok(prompt) + [EOS] masked, then tok(output) + [EOS]."""
    prompt = rec["question"]
    src = [sp.bos_id()] + sp.encode(prompt) + [sp.eos_id()]
    tgt = sp.encode(rec["answer"]) + [sp.eos_id()]
    ids = (src + tgt)[:MAX_LEN]
    labels = ([-100] * len(src) + tgt)[:MAX_LEN]
    return ids, labels


def record_loss(model, ids, labels, adapter):
    logits = model.forward(ids, adapter)
    lp = logits.log_softmax(-1)
    tot, n = 0.0, 0
    for t in range(len(ids) - 1):
        if labels[t + 1] != -100:
            tot -= lp[t, labels[t + 1]].item()
            n += 1
    return tot / n, n, tot


def c_scores(data, adapter_dir):
    """Per-record (line, targets, loss) from `hydralora score --data` (the C engine)."""
    args = [BIN, "score", "--model", MODEL, "--data", data, "--max-len", str(MAX_LEN), "--threads", "2"]
    if adapter_dir:
        args += ["--adapter", adapter_dir]
    p = run(args)
    check(p.returncode == 0, "hydralora score --data failed")
    rows = []
    for line in p.stdout.splitlines():
        m = re.match(r"line=(\d+) targets=(\d+) loss=([-0-9.eE+]+)$", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
    return rows


def expected_keys(n_layers, d, hidden, n_heads, variant="hydra"):
    keys = {}
    for l in range(n_layers):
        for proj, din, dout in (("gate_proj", d, hidden), ("up_proj", d, hidden), ("down_proj", hidden, d)):
            b = "base_model.model.model.layers.%d.mlp.%s." % (l, proj)
            keys[b + "lora_A.weight"] = (RANK, din)
            if variant == "lora":
                keys[b + "lora_B.weight"] = (dout, RANK)
            else:
                for i in range(n_heads):
                    keys[b + "lora_B%d.weight" % i] = (dout, RANK)
                keys[b + "lora_route.weight"] = (n_heads, din)
    return keys


def main():
    torch.set_num_threads(2)
    work = tempfile.mkdtemp(prefix="hl_export_oracle.")
    train = os.path.join(work, "train.jsonl")
    held = os.path.join(work, "heldout.jsonl")
    with open(GSM_TRAIN) as f, open(train, "w") as o:
        for i, line in enumerate(f):
            if i >= 40:
                break
            o.write(line)
    with open(GSM_TEST) as f, open(held, "w") as o:
        for i, line in enumerate(f):
            if i >= 5:
                break
            o.write(line)
    recs = [json.loads(l) for l in open(held)]

    rundir = os.path.join(work, "run")
    p = run([BIN, "train", "--model", MODEL, "--data", train, "--out", rundir, "--quiet",
             "--set", "max_steps=20", "--set", "micro_batch=1", "--set", "grad_accum=1",
             "--set", "max_len=%d" % MAX_LEN, "--set", "lr=2e-3", "--set", "val_split=4",
             "--set", "eval_every=0", "--set", "threads=2", "--set", "n_heads=%d" % N_HEADS,
             "--set", "r=%d" % RANK, "--set", "alpha=%g" % ALPHA])
    check(p.returncode == 0, "training run failed")
    if p.returncode:
        return
    e32, e16 = os.path.join(work, "exp32"), os.path.join(work, "exp16")
    check(run([BIN, "export", rundir, "--out", e32]).returncode == 0, "export f32 failed")
    check(run([BIN, "export", rundir, "--out", e16, "--dtype", "bf16"]).returncode == 0, "export bf16 failed")

    # ---- keys, shapes, config ----
    mcfg = json.load(open(os.path.join(MODEL, "config.json")))
    want = expected_keys(mcfg["num_hidden_layers"], mcfg["hidden_size"], mcfg["intermediate_size"], N_HEADS)
    sd = torch.load(os.path.join(e32, "adapter_model.bin"))
    st, meta = read_safetensors(os.path.join(e32, "adapter_model.safetensors"))
    check(isinstance(sd, collections.OrderedDict), "adapter_model.bin should hold an OrderedDict")
    check(set(sd.keys()) == set(want), "bin keys differ from docs/method.md §8: missing %s, extra %s" % (
        sorted(set(want) - set(sd))[:3], sorted(set(sd) - set(want))[:3]))
    check(set(st.keys()) == set(want), "safetensors keys differ from docs/method.md §8")
    check(meta == {"format": "pt"}, "safetensors metadata should be {'format': 'pt'}: %s" % meta)
    for k, shape in want.items():
        if k in sd:
            check(tuple(sd[k].shape) == shape and sd[k].dtype == torch.float32, "bin %s: %s %s" % (k, sd[k].shape, sd[k].dtype))
        if k in st:
            check(tuple(st[k].shape) == shape, "safetensors %s shape %s" % (k, st[k].shape))
        if k in sd and k in st:
            check(torch.equal(sd[k], st[k]), "bin and safetensors differ for %s" % k)
    nb = [sd[k].norm().item() for k in sd if ".lora_B" in k]
    check(min(nb) > 0, "every B head should have moved away from zero after 20 steps")
    cfgj = json.load(open(os.path.join(e32, "adapter_config.json")))
    ref = {"bias": "none", "enable_lora": None, "fan_in_fan_out": False, "inference_mode": True,
           "lora_alpha": ALPHA, "lora_dropout": 0.05, "lora_nums": N_HEADS, "merge_weights": False,
           "modules_to_save": None, "peft_type": "LORA", "r": RANK,
           "target_modules": ["gate_proj", "up_proj", "down_proj"], "task_type": "CAUSAL_LM"}
    for k, v in ref.items():
        check(k in cfgj and cfgj[k] == v, "adapter_config.json %s = %r, expected %r" % (k, cfgj.get(k, "<missing>"), v))
    check(cfgj.get("base_model_name_or_path") == MODEL, "base_model_name_or_path")
    check(cfgj.get("hydralora_variant") == "hydra", "hydralora_variant")

    sd16 = torch.load(os.path.join(e16, "adapter_model.bin"))
    st16, _ = read_safetensors(os.path.join(e16, "adapter_model.safetensors"))
    check(set(sd16) == set(want) and set(st16) == set(want), "bf16 export keys")
    for k in want:
        if k in sd16 and k in st16:
            check(sd16[k].dtype == torch.bfloat16 and torch.equal(sd16[k], sd[k].to(torch.bfloat16)),
                  "bf16 bin %s is not the rounded f32 value" % k)
            check(torch.equal(st16[k], sd16[k]), "bf16 safetensors %s differs from the bin" % k)

    # ---- per-record loss: C engine vs this reference ----
    sp = spm.SentencePieceProcessor(model_file=os.path.join(MODEL, "tokenizer.model"))
    model = Llama(MODEL)
    rows = c_scores(held, e32)
    check(len(rows) == len(recs), "C scored %d of %d records" % (len(rows), len(recs)))
    ad = hydra_adapter(sd, N_HEADS, RANK, ALPHA)
    worst = 0.0
    for (line, n_c, loss_c), rec in zip(rows, recs):
        ids, labels = example(sp, rec)
        loss_t, n_t, _ = record_loss(model, ids, labels, ad)
        check(n_c == n_t, "record %d: target count C %d vs reference %d (tokenisation differs)" % (line, n_c, n_t))
        check(abs(loss_c - loss_t) <= 1e-4, "record %d: loss C %.7f vs PyTorch %.7f" % (line, loss_c, loss_t))
        worst = max(worst, abs(loss_c - loss_t))
    base_rows = c_scores(held, None)
    for (line, _, loss_c), rec in zip(base_rows[:2], recs[:2]):
        ids, labels = example(sp, rec)
        loss_t, _, _ = record_loss(model, ids, labels, None)
        check(abs(loss_c - loss_t) <= 1e-4, "base model record %d: C %.7f vs PyTorch %.7f" % (line, loss_c, loss_t))
    diff_ad = max(abs(a[2] - b[2]) for a, b in zip(rows, base_rows))
    check(diff_ad > 1e-3, "the adapter should change the losses (max change %.2g)" % diff_ad)
    print("per-record loss, C vs PyTorch: max |diff| %.3g over %d records (adapter changes losses by up to %.3f)"
          % (worst, len(rows), diff_ad))

    # ---- collapse ----
    ec = os.path.join(work, "collapsed")
    p = run([BIN, "export", rundir, "--collapse", "--data", held, "--out", ec])
    check(p.returncode == 0, "export --collapse failed")
    if p.returncode == 0:
        m = re.search(r"adapter ([0-9.]+), collapsed ([0-9.]+)", p.stdout)
        check(m is not None, "collapse should print both losses: %s" % p.stdout)
        acc = {}
        tot_h = cnt = 0
        for rec in recs:
            ids, labels = example(sp, rec)
            _, n, s = record_loss(model, ids, labels, hydra_adapter(sd, N_HEADS, RANK, ALPHA, acc))
            tot_h += s
            cnt += n
        sc = torch.load(os.path.join(ec, "adapter_model.bin"))
        wl = expected_keys(mcfg["num_hidden_layers"], mcfg["hidden_size"], mcfg["intermediate_size"], 1, "lora")
        check(set(sc) == set(wl), "collapsed keys should be plain PEFT lora_A/lora_B")
        cc = json.load(open(os.path.join(ec, "adapter_config.json")))
        check("lora_nums" not in cc and cc["r"] == RANK and cc["lora_alpha"] == ALPHA, "collapsed adapter_config")
        worst_b = 0.0
        for (l, name), (wsum, n) in acc.items():
            wbar = wsum / n
            base = "base_model.model.model.layers.%d.mlp.%s." % (l, name)
            beff = sum(wbar[i] * sd[base + "lora_B%d.weight" % i].double() for i in range(N_HEADS))
            got = sc[base + "lora_B.weight"].double()
            err = (got - beff).abs().max().item() / max(beff.abs().max().item(), 1e-12)
            worst_b = max(worst_b, err)
            check(torch.equal(sc[base + "lora_A.weight"], sd[base + "lora_A.weight"]), "collapsed A must be A")
        check(worst_b < 1e-4, "collapsed B differs from sum of mean weight x B_i (rel. %.3g)" % worst_b)
        if m:
            tot_c = 0
            for rec in recs:
                ids, labels = example(sp, rec)
                _, n, s = record_loss(model, ids, labels, lora_adapter(sc, RANK, ALPHA))
                tot_c += s
            check(abs(float(m.group(1)) - tot_h / cnt) <= 1e-4, "collapse: adapter loss C %s vs PyTorch %.6f" % (m.group(1), tot_h / cnt))
            check(abs(float(m.group(2)) - tot_c / cnt) <= 1e-4, "collapse: collapsed loss C %s vs PyTorch %.6f" % (m.group(2), tot_c / cnt))
            print("collapse: B_eff rel. error %.2g; loss %.5f -> %.5f" % (worst_b, tot_h / cnt, tot_c / cnt))

    # ---- plain LoRA exports standard PEFT keys ----
    rl = os.path.join(work, "run_lora")
    p = run([BIN, "train", "--model", MODEL, "--data", train, "--out", rl, "--quiet", "--set", "variant=lora",
             "--set", "max_steps=2", "--set", "grad_accum=1", "--set", "max_len=%d" % MAX_LEN, "--set", "val_split=0",
             "--set", "threads=2", "--set", "r=%d" % RANK])
    check(p.returncode == 0, "lora run failed")
    if p.returncode == 0:
        sl = torch.load(os.path.join(rl, "adapter", "adapter_model.bin"))
        wl = expected_keys(mcfg["num_hidden_layers"], mcfg["hidden_size"], mcfg["intermediate_size"], 1, "lora")
        check({k: tuple(v.shape) for k, v in sl.items()} == wl, "lora export keys/shapes")
        cl = json.load(open(os.path.join(rl, "adapter", "adapter_config.json")))
        check("lora_nums" not in cl and "hydralora_variant" not in cl, "plain LoRA config carries only PEFT keys")

    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
    sys.exit(finish())
