#!/usr/bin/python3
"""Oracle test for `hydralora cluster` and `hydralora tsne` against scikit-learn / scipy.

1. TF-IDF: our exported matrix (--save-features) equals sklearn's TfidfVectorizer with the
   same settings to 1e-6 (several settings, plus a Unicode corpus), same vocabulary.
2. k-means: on that same matrix, our SSE for several K is within 1% of the best of
   sklearn's 10 restarts (or lower).
3. Ward: our labels equal sklearn AgglomerativeClustering(linkage='ward') up to renaming for
   several cuts, and our merge heights equal scipy's linkage(method='ward').
4. Choosing N: on a mixture of 4 distinct sources (GSM8K + 3 BBH tasks, 150 records each)
   the proposed N is 4 and purity >= 0.9, for k-means with several seeds and for Ward.
5. Silhouette: our mean silhouette for each K (k-means and Ward labels) equals sklearn's
   silhouette_score(X, labels) on the same matrix to 1e-6.
6. The default criterion recovers distinct sources: on held-out mixtures of four sources, two
   of them word problems (GSM8K + BBH object_counting + HumanEval + one more BBH task) the
   default proposal is 4 with purity >= 0.9, where the SSE elbow says 3; and over a seeded
   batch of random mixtures of 2-6 separable sources the default (first silhouette peak)
   finds the number of sources more often than the elbow.
7. t-SNE: trustworthiness of our embedding within 0.02 of sklearn's
   TSNE(init='pca', method='exact') on the same flattened adapter matrices.
Run with Debian's /usr/bin/python3 (numpy, scipy, sklearn 1.2)."""
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import warnings
from collections import Counter

import numpy as np
import scipy.sparse as sp
from scipy.cluster.hierarchy import linkage
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.manifold import TSNE, trustworthiness
from sklearn.metrics import adjusted_rand_score, silhouette_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import BIN, SHARED, check, finish  # noqa: E402

warnings.filterwarnings("ignore")


def run(args):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    if p.returncode != 0:
        print("command failed:", " ".join(args), "\n", p.stderr, flush=True)
    return p


def read_mtx(path):
    """MatrixMarket coordinate file with '%term <col> <term>' comment lines."""
    terms = {}
    with open(path) as f:
        lines = iter(f)
        for line in lines:
            if line.startswith("%"):
                if line.startswith("%term "):
                    _, col, term = line.rstrip("\n").split(" ", 2)
                    terms[int(col) - 1] = term
                continue
            n, d, nnz = map(int, line.split())
            break
        rows, cols, vals = [], [], []
        for line in lines:
            i, j, v = line.split()
            rows.append(int(i) - 1)
            cols.append(int(j) - 1)
            vals.append(float(v))
    assert len(vals) == nnz
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, d), dtype=np.float64)
    return X, [terms[j] for j in range(d)]


def make_mixture(path, seed=0, per=150):
    rng = random.Random(seed)
    recs = []
    gsm = [json.loads(l) for l in open(os.path.join(SHARED, "datasets/gsm8k/test.jsonl"))]
    for r in rng.sample(gsm, per):
        recs.append({"instruction": r["question"], "input": "", "src": "gsm8k"})
    for task in ["date_understanding", "word_sorting", "sports_understanding"]:
        ex = json.load(open(os.path.join(SHARED, "datasets/bbh/data", task + ".json")))["examples"]
        for r in rng.sample(ex, per):
            recs.append({"instruction": r["input"], "input": "", "src": task})
    rng.shuffle(recs)
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def purity(labels, src):
    total = 0
    for c in set(labels):
        total += Counter(s for s, l in zip(src, labels) if l == c).most_common(1)[0][1]
    return total / len(src)


def same_partition(a, b):
    """Labels equal up to renaming: the pairing of labels is a bijection."""
    pairs = set(zip(a, b))
    return len(pairs) == len(set(a)) == len(set(b))


def untied_limit(docs, want, **kw):
    """A max_features value with no tie in total count at the cut: sklearn 1.2 breaks such
    ties with an unstable argsort (we keep the alphabetically first, as newer sklearn does)."""
    from sklearn.feature_extraction.text import CountVectorizer
    tfs = np.sort(np.asarray(CountVectorizer(**kw).fit_transform(docs).sum(axis=0)).ravel())[::-1]
    for limit in range(want, len(tfs)):
        if tfs[limit - 1] > tfs[limit]:
            return limit
    return want


def test_tfidf(tmp, docs, data_path):
    limit = untied_limit(docs, 300, min_df=3, max_df=0.5)
    settings = [
        ([], dict(min_df=2, sublinear_tf=True)),                          # our defaults
        (["--min-df", "1", "--tf", "raw"], dict()),                        # sklearn defaults
        (["--min-df", "3", "--max-df", "0.5", "--idf", "plain", "--max-features", str(limit)],
         dict(min_df=3, max_df=0.5, smooth_idf=False, max_features=limit, sublinear_tf=True)),
        (["--min-df", "0.01", "--idf", "none", "--no-lowercase"],
         dict(min_df=0.01, use_idf=False, lowercase=False, sublinear_tf=True)),
    ]
    for args, kw in settings:
        mtx = os.path.join(tmp, "f.mtx")
        p = run(["cluster", "--data", data_path, "--quiet", "--k-max", "3", "--save-features", mtx] + args)
        check(p.returncode == 0, f"cluster {args} exit {p.returncode}")
        if p.returncode:
            continue
        X, terms = read_mtx(mtx)
        vec = TfidfVectorizer(**kw)
        Y = vec.fit_transform(docs)
        ref_terms = list(vec.get_feature_names_out())
        check(terms == ref_terms, f"{args}: vocabulary differs ({len(terms)} vs {len(ref_terms)} terms; "
              f"only ours: {sorted(set(terms) - set(ref_terms))[:5]}, only sklearn: {sorted(set(ref_terms) - set(terms))[:5]})")
        if terms == ref_terms:
            diff = abs(X - Y).max()
            check(diff <= 1e-6, f"{args}: TF-IDF differs by {diff}")
            print(f"tfidf {args or ['(defaults)']}: {X.shape[1]} terms, nnz {X.nnz}, max |diff| {diff:.2e}")
    return None


def test_unicode(tmp):
    docs = ["Café CAFÉ naïve façade — ÜBER straße", "Ελληνικά ΚΕΙΜΕΝΟ και λέξεις", "Русский ТЕКСТ и слова",
            "日本語のテキスト 中文 字符", "snake_case x_y a1 2b __ _ 42 7", "e-mail: foo@bar.com, http://x.org/a?b=c",
            "tab\tsep\nnew line", "ÀÉÎÕÜ àéîõü ÆØÅ æøå Œ œ", "don't won't it's", "naïve café über",
            "½ ² ³ ¹ µ ª º", "emoji 😀 smile ☺ ok"]
    path = os.path.join(tmp, "uni.jsonl")
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    mtx = os.path.join(tmp, "uni.mtx")
    p = run(["cluster", "--data", path, "--fields", "text", "--min-df", "1", "--tf", "raw", "--quiet",
             "--k-max", "2", "--save-features", mtx])
    check(p.returncode == 0, "unicode run")
    if p.returncode:
        return
    X, terms = read_mtx(mtx)
    vec = TfidfVectorizer()
    Y = vec.fit_transform(docs)
    ref = list(vec.get_feature_names_out())
    check(terms == ref, f"unicode vocabulary: only ours {sorted(set(terms) - set(ref))}, only sklearn {sorted(set(ref) - set(terms))}")
    if terms == ref:
        check(abs(X - Y).max() <= 1e-6, "unicode tf-idf values")
    print(f"unicode tokens: {len(terms)} terms, same as sklearn: {terms == ref}")


def test_kmeans_ward(tmp, data_path, src):
    mtx = os.path.join(tmp, "f.mtx")
    p = run(["cluster", "--data", data_path, "--quiet", "--json", "--k-min", "2", "--k-max", "8",
             "--save-features", mtx])
    check(p.returncode == 0, "kmeans run")
    if p.returncode:
        return
    rep = json.loads(p.stdout)
    X, _ = read_mtx(mtx)
    ours = {e["k"]: e["sse"] for e in rep["sse"]}
    for k in [2, 3, 4, 6, 8]:
        km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(X)
        ratio = ours[k] / km.inertia_
        print(f"kmeans K={k}: ours {ours[k]:.4f}  sklearn best of 10 {km.inertia_:.4f}  ratio {ratio:.4f}")
        check(ratio <= 1.01, f"K={k}: SSE {ours[k]} more than 1% above sklearn's {km.inertia_}")
    # K = 1 is exact: total sum of squares around the mean
    Xd = X.toarray()
    tss = ((Xd - Xd.mean(axis=0)) ** 2).sum()
    check(abs(ours[1] - tss) <= 1e-6 * tss, f"SSE(1) {ours[1]} vs {tss}")

    # Ward: labels identical up to renaming, heights equal to scipy's.
    Z = linkage(Xd, method="ward")
    for k in [2, 4, 7]:
        p = run(["cluster", "--data", data_path, "--quiet", "--json", "--method", "ward", "--k", str(k)])
        check(p.returncode == 0, f"ward k={k}")
        if p.returncode:
            continue
        rep = json.loads(p.stdout)
        ref = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(Xd).labels_
        same = same_partition(rep["labels"], list(ref))
        check(same, f"Ward k={k}: labels differ from sklearn's")
        print(f"ward k={k}: labels identical up to renaming: {same}")
        if k == 4:
            merges = np.array(rep["dendrogram"]["merges"])
            hd = np.abs(merges[:, 2] - Z[:, 2]).max()
            check(hd <= 1e-6 * Z[:, 2].max(), f"Ward heights differ from scipy by {hd}")
            check(np.array_equal(merges[:, 3], Z[:, 3]), "Ward cluster sizes differ from scipy")
            print(f"ward heights vs scipy: max |diff| {hd:.2e}")
    # sampled Ward still labels every record
    p = run(["cluster", "--data", data_path, "--quiet", "--json", "--method", "ward", "--ward-max", "200"])
    check(p.returncode == 0, "sampled ward")
    if p.returncode == 0:
        rep = json.loads(p.stdout)
        check(len(rep["labels"]) == len(src) and rep["dendrogram"]["leaves"] == 200, "sampled ward sizes")
        print(f"ward on a 200-record sample: proposed {rep['proposed_n']}, purity {purity(rep['labels'], src):.3f}")


def test_choose_n(data_path, src):
    for method, seeds in [("kmeans", [41, 1, 2, 3, 7]), ("ward", [41])]:
        for seed in seeds:
            p = run(["cluster", "--data", data_path, "--quiet", "--json", "--method", method, "--seed", str(seed)])
            check(p.returncode == 0, f"{method} seed {seed}")
            if p.returncode:
                continue
            rep = json.loads(p.stdout)
            pur = purity(rep["labels"], src)
            print(f"{method} seed {seed}: proposed_n {rep['proposed_n']} (4 sources), purity {pur:.3f}")
            check(rep["proposed_n"] == 4, f"{method} seed {seed}: proposed N {rep['proposed_n']} != 4")
            check(pur >= 0.9, f"{method} seed {seed}: purity {pur:.3f} < 0.9")
            check(len(rep["clusters"]) == rep["k"] and all(len(c["examples"]) == 3 for c in rep["clusters"]),
                  "cluster summaries")


def test_silhouette(tmp, data_path):
    mtx = os.path.join(tmp, "sil.mtx")
    p = run(["cluster", "--data", data_path, "--quiet", "--json", "--k-max", "8", "--save-features", mtx])
    check(p.returncode == 0, "silhouette run")
    if p.returncode:
        return
    X, _ = read_mtx(mtx)
    rep = json.loads(p.stdout)
    ours = {e["k"]: e["silhouette"] for e in rep["sse"]}
    check(ours[1] is None, "no silhouette for K = 1")
    check(rep["silhouette_records"] == X.shape[0], "silhouette over every record (no sample below 3000)")
    for method in ["kmeans", "ward"]:
        for k in [2, 3, 4, 6, 8]:
            p = run(["cluster", "--data", data_path, "--quiet", "--json", "--k-max", "8", "--method", method,
                     "--k", str(k)])
            check(p.returncode == 0, f"{method} --k {k}")
            if p.returncode:
                continue
            rep = json.loads(p.stdout)
            mine = {e["k"]: e["silhouette"] for e in rep["sse"]}[k]
            ref = silhouette_score(X, np.array(rep["labels"]))
            print(f"silhouette {method} K={k}: ours {mine:.9f}  sklearn {ref:.9f}  |diff| {abs(mine - ref):.1e}")
            check(abs(mine - ref) <= 1e-6, f"{method} K={k}: silhouette {mine} vs sklearn {ref}")
    # a sample of 200 records: still a silhouette, of the sampled records only
    p = run(["cluster", "--data", data_path, "--quiet", "--json", "--k-max", "6", "--silhouette-max", "200"])
    check(p.returncode == 0 and json.loads(p.stdout)["silhouette_records"] == 200, "--silhouette-max 200 samples")


SOURCES = {}


def sources():
    if not SOURCES:
        SOURCES["gsm8k"] = [json.loads(l)["question"] for l in open(os.path.join(SHARED, "datasets/gsm8k/test.jsonl"))]
        SOURCES["humaneval"] = [json.loads(l)["prompt"]
                                for l in gzip.open(os.path.join(SHARED, "datasets/humaneval/HumanEval.jsonl.gz"))]
        bdir = os.path.join(SHARED, "datasets/bbh/data")
        for f in sorted(os.listdir(bdir)):
            SOURCES[f[:-5]] = [e["input"] for e in json.load(open(os.path.join(bdir, f)))["examples"]]
    return SOURCES


def write_sources(path, names, rng, per=100):
    recs = []
    for name in names:
        pool = sources()[name]
        for t in rng.sample(pool, min(per, len(pool))):
            recs.append({"instruction": t, "input": "", "src": name})
    rng.shuffle(recs)
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return [r["src"] for r in recs]


def test_default_criterion(tmp):
    path = os.path.join(tmp, "four.jsonl")
    # four clearly different sources, two of them word problems (GSM8K, object counting)
    for names, seed, method in [(["gsm8k", "date_understanding", "humaneval", "word_sorting"], 0, "kmeans"),
                                (["gsm8k", "date_understanding", "humaneval", "word_sorting"], 1, "ward"),
                                (["gsm8k", "penguins_in_a_table", "humaneval", "dyck_languages"], 2, "kmeans"),
                                (["gsm8k", "penguins_in_a_table", "humaneval", "dyck_languages"], 3, "ward")]:
        src = write_sources(path, names, random.Random(seed))
        p = run(["cluster", "--data", path, "--quiet", "--json", "--method", method])
        check(p.returncode == 0, f"{names}: cluster")
        if p.returncode:
            continue
        rep = json.loads(p.stdout)
        crit = rep["criteria"]
        pur = purity(rep["labels"], src)
        print(f"{'+'.join(names)} ({method}): default ({rep['criterion']}) N = {rep['proposed_n']}, "
              f"elbow {crit['elbow']}, highest silhouette {crit['silhouette_max']}; purity {pur:.3f}")
        check(rep["criterion"] == "silhouette", "the default criterion is the silhouette")
        check(rep["proposed_n"] == 4, f"{names} {method}: default proposal {rep['proposed_n']} != 4 sources")
        check(crit["elbow"] == 3, f"{names} {method}: the SSE elbow ({crit['elbow']}) is the case this default fixes")
        check(pur >= 0.9, f"{names} {method}: purity {pur:.3f} < 0.9")
        p = run(["cluster", "--data", path, "--quiet", "--json", "--method", method, "--criterion", "elbow"])
        check(p.returncode == 0 and json.loads(p.stdout)["proposed_n"] == crit["elbow"],
              "--criterion elbow proposes the elbow")
    # a seeded batch of random mixtures: how often each criterion finds the number of sources
    rng = random.Random(11)
    bbh = [n for n in sorted(sources()) if n not in ("gsm8k", "humaneval")]
    hits = {"silhouette": 0, "silhouette_max": 0, "elbow": 0}
    n_sep = 0
    for trial in range(24):
        m = rng.choice([2, 3, 4, 5, 6])
        names = ["gsm8k"] + (["humaneval"] if rng.random() < 0.5 else [])
        names += rng.sample(bbh, m - len(names))
        src = write_sources(path, names, rng)
        p = run(["cluster", "--data", path, "--quiet", "--json", "--k", str(m)])
        if p.returncode:
            check(False, f"mixture {names}")
            continue
        rep = json.loads(p.stdout)
        # only mixtures whose sources TF-IDF + k-means can separate at all count
        if adjusted_rand_score(src, rep["labels"]) < 0.9:
            continue
        n_sep += 1
        for c in hits:
            hits[c] += rep["criteria"][c] == m
    rates = {c: hits[c] / max(n_sep, 1) for c in hits}
    print(f"random mixtures with separable sources: {n_sep}; found the number of sources: "
          + ", ".join(f"{c} {rates[c]:.2f}" for c in hits))
    check(n_sep >= 6, f"only {n_sep} separable mixtures")
    check(rates["silhouette"] > rates["elbow"], "the default criterion beats the elbow on random mixtures")


# ---------- t-SNE ----------

def write_safetensors(path, tensors, dtype="F32"):
    """tensors: {name: float32 array}. BF16 stores the top 16 bits (values must be bf16-exact)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        raw = (a.view(np.uint32) >> 16).astype(np.uint16).tobytes() if dtype == "BF16" else a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bf16_exact(a):
    return (a.astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)


def make_adapters(tmp, n_adapters=3, layers=12, r=4, d=32, ff=64, heads=3):
    """HydraLoRA-like adapters with structure t-SNE should keep (as in the paper's figure):
    A depends smoothly on the layer and hardly on the adapter (A's of different adapters
    overlap); B heads cluster by adapter, with the heads a little apart."""
    rng = np.random.default_rng(0)
    shapes = {"gate_proj": (d, ff), "up_proj": (d, ff), "down_proj": (ff, d)}  # (d_in, d_out)
    basis = {m: rng.normal(size=(3, r, din)) for m, (din, dout) in shapes.items()}
    store, dirs = {}, []
    for a in range(n_adapters):
        style = {m: rng.normal(size=(dout, r)) * 2 for m, (din, dout) in shapes.items()}
        offset = {m: rng.normal(size=(heads, dout, r)) * 0.7 for m, (din, dout) in shapes.items()}
        t = {}
        for l in range(layers):
            u = l / layers
            for m, (din, dout) in shapes.items():
                pre = f"base_model.model.model.layers.{l}.mlp.{m}."
                curve = basis[m][0] * np.cos(3 * u) + basis[m][1] * np.sin(3 * u) + basis[m][2] * u
                t[pre + "lora_A.weight"] = curve + 0.05 * rng.normal(size=(r, din))
                for h in range(heads):
                    t[pre + f"lora_B{h}.weight"] = style[m] + offset[m][h] + 0.2 * rng.normal(size=(dout, r))
                t[pre + "lora_route.weight"] = rng.normal(size=(heads, din))
        t = {k: bf16_exact(v) for k, v in t.items()}
        dtype = "BF16" if a == 1 else "F32"
        ad = os.path.join(tmp, f"adapter{a}")
        os.makedirs(ad, exist_ok=True)
        write_safetensors(os.path.join(ad, "adapter_model.safetensors"), t, dtype)
        store[ad] = t
        dirs.append(ad)
    return dirs, store


def make_digits_adapter(tmp):
    """300 8x8 digit images as the A matrices of 300 layers: real cluster structure for t-SNE."""
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = bf16_exact(X[:300] / 16.0)
    t = {f"base_model.model.model.layers.{i}.mlp.gate_proj.lora_A.weight": X[i].reshape(8, 8) for i in range(300)}
    ad = os.path.join(tmp, "digits")
    os.makedirs(ad, exist_ok=True)
    write_safetensors(os.path.join(ad, "adapter_model.safetensors"), t)
    return [ad], {ad: t}


def key_of(row):
    proj = row["module"]
    part = "self_attn" if proj in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    leaf = "lora_A" if row["kind"] == "A" else f"lora_B{row['head']}"
    return f"base_model.model.model.layers.{row['layer']}.{part}.{proj}.{leaf}.weight"


def compare_tsne(tmp, dirs, store, perplexity, what="all"):
    out = os.path.join(tmp, "tsne.csv")
    args = ["tsne", "--quiet", "--what", what, "--perplexity", str(perplexity), "--out", out]
    for d in dirs:
        args += ["--adapter", d]
    p = run(args)
    check(p.returncode == 0, "tsne run")
    if p.returncode:
        return
    print(p.stdout.rstrip())
    import csv
    rows = list(csv.DictReader(open(out)))
    groups = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for g, rs in groups.items():
        X = np.stack([store[r["adapter"]][key_of(r)].ravel() for r in rs]).astype(np.float64)
        Y = np.array([[float(r["x"]), float(r["y"])] for r in rs])
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", method="exact", learning_rate="auto",
                    random_state=0, n_iter=1000)
        ref = tsne.fit_transform(X)
        t_ours = trustworthiness(X, Y, n_neighbors=5)
        t_ref = trustworthiness(X, ref, n_neighbors=5)
        print(f"tsne group '{g}' ({len(rs)} points): trustworthiness ours {t_ours:.4f}  sklearn {t_ref:.4f} "
              f"(sklearn KL {tsne.kl_divergence_:.4f})")
        check(t_ours >= t_ref - 0.02, f"group {g}: trustworthiness {t_ours:.4f} < sklearn {t_ref:.4f} - 0.02")
    return groups


def test_tsne(tmp):
    dirs, store = make_adapters(tmp)
    groups = compare_tsne(tmp, dirs, store, perplexity=5)
    if groups:
        names = sorted(groups)
        check(names == ["A 4x32", "A 4x64", "B 32x4", "B 64x4"], f"groups {names}")
        check(len(groups.get("B 64x4", [])) == 3 * 12 * 2 * 3, "B 64x4 holds every head of gate/up of every layer")
    dirs, store = make_digits_adapter(tmp)
    compare_tsne(tmp, dirs, store, perplexity=30, what="A")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data_path = os.path.join(tmp, "mix.jsonl")
        recs = make_mixture(data_path)
        docs = [r["instruction"] + "\n" + r["input"] for r in recs]
        src = [r["src"] for r in recs]
        test_tfidf(tmp, docs, data_path)
        test_unicode(tmp)
        test_kmeans_ward(tmp, data_path, src)
        test_choose_n(data_path, src)
        test_silhouette(tmp, data_path)
        test_default_criterion(tmp)
        test_tsne(tmp)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
