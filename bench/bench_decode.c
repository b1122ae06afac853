/* Decode benchmark: tokens/s of KV-cache generation (core/eval/generate.h) for batch 1 and
 * batch 16, next to the memory bandwidth of this machine measured in the same run, and which
 * matrix path ran.
 *
 *   bench_decode [--threads N] [--layers L] [--tokens N] [--quick] [--shared DIR] [--no-pytorch]
 *
 * PyTorch reference: bench/pytorch_decode.py on the same shapes, threads and token counts
 * (random weights; for the 7B shape bf16 where the CPU has native bf16, else f32, PyTorch's fast
 * path there; f32 for stories260K) runs as a subprocess when the Python ($HL_BENCH_PYTHON,
 * default /usr/bin/python3) has torch (skip with --no-pytorch or HL_BENCH_PYTORCH=0), and a line
 * "C tok/s, PyTorch tok/s, ratio" follows each model.
 *
 * Models: stories260K (from ../shared/models or --shared, if present) and a LLaMA-2-7B-shaped
 * model (dim 4096, hidden 11008, 32 heads, vocab 32000, untied) with L layers (default 2) of
 * random BF16 weights, written to a temporary safetensors file and loaded through the normal
 * loader (mmapped views, as a user's model would be).
 *
 * Bound: one decode step of a batch reads every weight once plus the keys/values of every
 * sequence, so tokens/s ≤ batch × bandwidth / (weight bytes + KV bytes per step). The ratio
 * achieved / bound is printed; decode is memory bound at batch 1 and moves toward compute at
 * batch 16. Bandwidth: a parallel read (sum) over a buffer far larger than the caches. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backend/backend.h"
#include "core/backend/cpu/gemm.h" /* the weight-product table and thread count only; decoding runs through the seam */
#include "core/backend/cpu/gemm_internal.h" /* which kernels this build has, for the weight-product table */
#include "core/eval/generate.h"
#include "core/model/model.h"
#include "core/formats/safetensors.h"
#include "bench_common.h"
#include "pytorch_ref.h"

static hl_backend *bench_be; /* the cpu backend every generator here runs on */

#ifdef HL_ENGINE_PROFILE
/* core/backend/cpu/llama_infer.c, profiling builds only: seconds and weight bytes per phase */
int hl_infer_profile(const char *const **names, double **seconds, double **bytes);

static void profile_reset(void) {
    const char *const *pn;
    double *ps, *pb;
    int n = hl_infer_profile(&pn, &ps, &pb);
    for (int i = 0; i < n; i++)
        ps[i] = pb[i] = 0;
}

/* Where the decode steps' time went (after the first sample: the timed part), per step. */
static void profile_print(double wall, int steps, double bw) {
    const char *const *pn;
    double *ps, *pb, in = 0;
    int n = hl_infer_profile(&pn, &ps, &pb);
    for (int i = 0; i < n; i++)
        in += ps[i];
    printf("  where a step's time goes (%d steps, %.2f ms per step):\n", steps, 1e3 * wall / steps);
    for (int i = 0; i < n; i++) {
        if (ps[i] <= 0)
            continue;
        printf("    %-22s %8.3f ms  %5.1f%%", pn[i], 1e3 * ps[i] / steps, 100.0 * ps[i] / wall);
        if (pb[i] > 0)
            printf("  %6.1f GB/s of weights (%5.1f%% of bandwidth)", pb[i] / ps[i] * 1e-9, 100.0 * pb[i] / ps[i] * 1e-9 / bw);
        printf("\n");
    }
    printf("    %-22s %8.3f ms  %5.1f%%\n", "outside the forward", 1e3 * (wall - in) / steps, 100.0 * (wall - in) / wall);
    printf("      (argmax of the logits, the generator's bookkeeping, the bench's callback)\n");
}

/* What one fork/join of the thread team costs (an empty parallel region, mean of many). */
static double fork_join_us(void) {
    int nt = hl_get_threads();
    volatile int sink = 0;
    for (int r = 0; r < 100; r++) {
#pragma omp parallel num_threads(nt)
        sink += omp_get_thread_num() == 0;
    }
    const int reps = 2000;
    double t0 = bench_now_s();
    for (int r = 0; r < reps; r++) {
#pragma omp parallel num_threads(nt)
        sink += omp_get_thread_num() == 0;
    }
    return (bench_now_s() - t0) / reps * 1e6;
}
#endif

typedef struct {
    double t_first; /* time of the first sampling after prefill */
    int steps;      /* sampling calls for sequence 0 */
} timing;

static void on_logits(void *user, int seq, int pos, const float *logits, int vocab) {
    timing *t = user;
    (void)pos, (void)logits, (void)vocab;
    if (seq != 0)
        return;
    if (t->steps++ == 0) {
#ifdef HL_ENGINE_PROFILE
        profile_reset(); /* from here on: decode steps only */
#endif
        t->t_first = bench_now_s();
    }
}

/* Decode `tokens` new tokens for `batch` prompts of `prompt_len` tokens; returns tokens/s of the
 * decode phase (prefill excluded: timed from the first sample to the end). */
static double run_decode(const hl_model *m, int batch, int prompt_len, int tokens, double *kv_bytes_step,
                         double *wall) {
    hl_generator *g = NULL;
    if (hl_generator_create(&g, bench_be, m, NULL, NULL) != HL_OK) {
        fprintf(stderr, "bench_decode: %s\n", hl_last_error());
        exit(1);
    }
    int32_t **prompts = malloc((size_t)batch * sizeof *prompts);
    int *lens = malloc((size_t)batch * sizeof *lens);
    for (int b = 0; b < batch; b++) {
        prompts[b] = malloc((size_t)prompt_len * sizeof(int32_t));
        for (int t = 0; t < prompt_len; t++)
            prompts[b][t] = t == 0 ? m->cfg.bos_id : 3 + (b * 131 + t * 17) % (m->cfg.vocab_size - 3);
        lens[b] = prompt_len;
    }
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = tokens;
    p.stop_on_eos = 0;
    p.stop_on_bos = 0;
    timing tm = {0};
    p.on_logits = on_logits;
    p.user = &tm;
    hl_gen_result *res = calloc((size_t)batch, sizeof *res);
    hl_status st = hl_generate_ids(g, (const int32_t *const *)prompts, lens, batch, &p, res);
    double t_end = bench_now_s();
    if (st != HL_OK) {
        fprintf(stderr, "bench_decode: %s\n", hl_last_error());
        exit(1);
    }
    /* After the first sample there are (tokens - 1) forward+sample steps per sequence. */
    double dt = t_end - tm.t_first;
    if (wall)
        *wall = dt;
    double tps = dt > 0 ? (double)batch * (tokens - 1) / dt : 0;
    /* Average K+V bytes read per step: all layers, every sequence, mean context length. */
    const hl_llama_config *c = &m->cfg;
    double mean_ctx = prompt_len + tokens / 2.0;
    *kv_bytes_step = 2.0 * c->n_layers * (double)c->n_kv_heads * c->head_dim * 4.0 * mean_ctx * batch;
    for (int b = 0; b < batch; b++) {
        hl_gen_result_free(&res[b]);
        free(prompts[b]);
    }
    free(res);
    free(prompts);
    free(lens);
    hl_generator_free(g);
    return tps;
}

static double report(const char *name, const hl_model *m, int batch, int tokens, double bw, double *pct) {
    double kvb = 0;
    int prompt_len = 16;
    double wall = 0;
    run_decode(m, batch, prompt_len, tokens < 8 ? tokens : 8, &kvb, NULL); /* warm-up: page in the mmapped weights */
    double tps = run_decode(m, batch, prompt_len, tokens, &kvb, &wall);
    double wbytes = (double)hl_model_weight_bytes(m);
    /* The embedding is not read per step (one row per token): leave it out of the bound. */
    double emb = m->lm_head.data == m->tok_embed.data ? 0
                                                       : (double)m->tok_embed.rows * m->tok_embed.cols *
                                                             hl_dtype_size(m->tok_embed.dtype);
    double step_bytes = wbytes - emb + kvb;
    double bound = batch * bw * 1e9 / step_bytes;
    printf("%-28s batch %2d: %9.1f tok/s   (%.3g GB read per step, bound %9.1f tok/s, %5.1f%% of bandwidth bound)\n",
           name, batch, tps, step_bytes / 1e9, bound, 100.0 * tps / bound);
    if (pct)
        *pct = 100.0 * tps / bound;
#ifdef HL_ENGINE_PROFILE
    profile_print(wall, tokens - 1, bw);
#endif
    return tps;
}

/* C and PyTorch tokens/s side by side for batch 1 and 16 (one subprocess for both). */
static void compare_pytorch(const char *shape, int layers, int tokens, const double c_tps[2]) {
    char args[256];
    int n = snprintf(args, sizeof args, "--shape %s --threads %d --tokens %d --batch 1,16", shape, hl_get_threads(),
                     tokens);
    if (layers > 0)
        snprintf(args + n, sizeof args - (size_t)n, " --layers %d", layers);
    static const char *const bs[2] = {"1", "16"};
    double pt[2] = {0, 0};
    if (pytorch_run("pytorch_decode.py", args, "PYTORCH_DECODE", shape, bs, 2, 2, pt) == 0)
        return;
    for (int i = 0; i < 2; i++)
        printf("%-12s batch %2s: C %9.1f tok/s, PyTorch %9.1f tok/s, ratio C/PyTorch %.2fx\n", shape, bs[i],
               c_tps[i], pt[i], pt[i] > 0 ? c_tps[i] / pt[i] : 0.0);
}

/* The frozen-weight product alone at decode row counts: y[M, N] = x[M, K] · Wᵀ on a bf16 weight,
 * through every kernel this build and CPU have (columns), best of 3 after a warm-up call each;
 * "default" is what decoding uses (compute auto). Returns the default's GFLOP/s at M = 32 and
 * M = 128 in g32 / g128. */
typedef struct {
    const char *name;
    hl_compute compute;
    hl_gemm_kernel kernel;
} wp_kernel;

static void report_weight_product(const hl_weight *w, double bw, double *g32, double *g128) {
    wp_kernel ks[5];
    int nk = 0;
    ks[nk++] = (wp_kernel){"default", HL_COMPUTE_AUTO, HL_GEMM_KERNEL_AUTO};
    ks[nk++] = (wp_kernel){"f32 fused", HL_COMPUTE_F32, HL_GEMM_KERNEL_FUSED};
    ks[nk++] = (wp_kernel){"f32 OpenBLAS", HL_COMPUTE_F32, HL_GEMM_KERNEL_BLOCKED};
    if (hl_gemm_bf16_native()) {
        if (hl_gemm_fused_bf16_built())
            ks[nk++] = (wp_kernel){"bf16 fused", HL_COMPUTE_BF16, HL_GEMM_KERNEL_FUSED};
        ks[nk++] = (wp_kernel){"oneDNN bf16", HL_COMPUTE_BF16, HL_GEMM_KERNEL_BLOCKED};
    }
    size_t wsf = hl_gemm_ws_floats(w->cols);
    hl_gemm_ws ws = {malloc(wsf * sizeof(float)), (int64_t)wsf, HL_COMPUTE_AUTO};
    const int Mmax = 128;
    float *x = malloc((size_t)Mmax * w->cols * sizeof(float)), *y = malloc((size_t)Mmax * w->rows * sizeof(float));
    for (int64_t i = 0; i < Mmax * w->cols; i++)
        x[i] = (float)(i % 17) * 0.01f;
    double bytes = (double)w->rows * w->cols * hl_dtype_size(w->dtype);
    char path[96];
    printf("weight product x[M, %lld] · W[%lld, %lld]ᵀ (%s); default = compute auto: %s\n", (long long)w->cols,
           (long long)w->rows, (long long)w->cols, hl_dtype_name(w->dtype),
           hl_gemm_describe(HL_COMPUTE_AUTO, w->dtype, path, sizeof path));
    printf("  GFLOP/s (weights streamed as %% of the %.1f GB/s bandwidth)\n  M   ", bw);
    for (int k = 0; k < nk; k++)
        printf(" %20s", ks[k].name);
    printf("\n");
    static const int ms[] = {1, 4, 8, 16, 32, 64, 128};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        int M = ms[i];
        printf("  %3d ", M);
        for (int k = 0; k < nk; k++) {
            ws.compute = ks[k].compute;
            hl_gemm_set_kernel(ks[k].kernel);
            hl_gemm_xwt(y, x, w, M, 0.0f, &ws);
            double best = 1e30;
            for (int r = 0; r < 3; r++) {
                double t0 = bench_now_s();
                hl_gemm_xwt(y, x, w, M, 0.0f, &ws);
                double dt = bench_now_s() - t0;
                best = dt < best ? dt : best;
            }
            double g = 2.0 * M * w->rows * w->cols / best * 1e-9;
            printf(" %10.1f (%5.1f%%)", g, 100.0 * bytes / best * 1e-9 / bw);
            if (k == 0 && M == 32)
                *g32 = g;
            if (k == 0 && M == 128)
                *g128 = g;
        }
        printf("\n");
    }
    hl_gemm_set_kernel(HL_GEMM_KERNEL_AUTO);
    free(x), free(y), free(ws.buf);
    char impl[256];
    if (hl_gemm_dnnl_version())
        printf("  oneDNN implementations used: %s\n", hl_dnnl_impls(impl, sizeof impl));
}

int main(int argc, char **argv) {
    int threads = 0, layers = 2, tokens = 32, quick = 0, no_pytorch = 0;
    const char *shared = bench_shared_dir();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-pytorch"))
            no_pytorch = 1;
        else {
            int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: bench_decode [--threads N] [--layers L] [--tokens N] [--quick] [--shared DIR] "
                    "[--no-pytorch]\n");
            return help ? 0 : 2;
        }
    }
    if (layers < 1 || tokens < 2) {
        fprintf(stderr, "bench_decode: --layers must be >= 1 and --tokens >= 2\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when piped to a file */
    if (hl_backend_open(&bench_be, "cpu") != HL_OK || hl_backend_set_threads(bench_be, threads) != HL_OK) {
        fprintf(stderr, "bench_decode: %s\n", hl_last_error());
        return 1;
    }
    hl_backend_info bi;
    hl_backend_get_info(bench_be, &bi);
    hl_set_threads(bi.threads); /* the weight-product table uses the same count */
    printf("bench_decode: %d threads\n", hl_get_threads());
    const char *dv = hl_gemm_dnnl_version();
    char path[96];
    printf("oneDNN: %s%s%s; decoding bf16 weights runs %s\n", dv ? dv : "not built in", dv ? ", effective ISA " : "",
           dv ? hl_gemm_dnnl_isa() : "", hl_gemm_describe(HL_COMPUTE_AUTO, HL_DTYPE_BF16, path, sizeof path));
    double bw = bench_read_bandwidth(quick ? ((size_t)256 << 20) : ((size_t)1 << 30), 5);
    printf("memory read bandwidth: %.1f GB/s (parallel sum over %d MiB, best of 5)\n", bw, quick ? 256 : 1024);
    int with_pt = pytorch_available(no_pytorch);
    printf("\n");

    /* stories260K, if the shared folder is around. */
    char p[4096];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.bin", shared);
    hl_model m;
    if (access(p, R_OK) == 0 && hl_model_load(&m, p) == HL_OK) {
        int st = quick ? 64 : 256;
        double c[2] = {report("stories260K (F32)", &m, 1, st, bw, NULL), report("stories260K (F32)", &m, 16, st, bw, NULL)};
        if (with_pt)
            compare_pytorch("stories260K", 0, st, c);
        hl_model_free(&m);
    } else {
        printf("stories260K: not found under %s (skipped)\n", shared);
    }

    /* LLaMA-2-7B-shaped, random BF16, `layers` layers, through a real safetensors file. */
    const int D = 4096, F = 11008, V = 32000;
    char dir[] = "/tmp/hl_bench_decode_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":%d,"
               "\"intermediate_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":32,"
               "\"num_key_value_heads\":32,\"vocab_size\":%d,\"max_position_embeddings\":4096,"
               "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,"
               "\"torch_dtype\":\"bfloat16\",\"bos_token_id\":1,\"eos_token_id\":2}\n",
            D, F, layers, V);
    fclose(f);
    /* One random bf16 buffer as large as the biggest tensor; every tensor is a prefix of it
     * (decode speed does not depend on the values), norms are ones. */
    size_t big = (size_t)V * D;
    uint16_t *rnd = malloc(big * sizeof *rnd), *ones = malloc((size_t)D * sizeof *ones);
    if (!rnd || !ones) {
        fprintf(stderr, "bench_decode: out of memory\n");
        return 1;
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < big / 65536 + 1; c++) {
        uint64_t s = 0x9E3779B97F4A7C15ull * (c + 1);
        for (size_t i = c * 65536; i < big && i < (c + 1) * 65536; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            rnd[i] = hl_f32_to_bf16(0.02f * ((float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f));
        }
    }
    for (int i = 0; i < D; i++)
        ones[i] = hl_f32_to_bf16(1.0f);
    int nt = 3 + 9 * layers, k = 0;
    hl_st_entry *e = calloc((size_t)nt, sizeof *e);
    char (*names)[96] = calloc((size_t)nt, sizeof *names);
#define ENTRY(r, c, src, ...)                                                  \
    do {                                                                       \
        snprintf(names[k], sizeof names[k], __VA_ARGS__);                      \
        e[k] = (hl_st_entry){.name = names[k], .src_dtype = HL_DTYPE_BF16,     \
                             .data = (src), .ndim = (r) ? 2 : 1};              \
        if (r) {                                                               \
            e[k].shape[0] = (r);                                               \
            e[k].shape[1] = (c);                                               \
        } else {                                                               \
            e[k].shape[0] = (c);                                               \
        }                                                                      \
        k++;                                                                   \
    } while (0)
    ENTRY(V, D, rnd, "model.embed_tokens.weight");
    ENTRY(V, D, rnd, "lm_head.weight");
    ENTRY(0, D, ones, "model.norm.weight");
    for (int l = 0; l < layers; l++) {
        ENTRY(0, D, ones, "model.layers.%d.input_layernorm.weight", l);
        ENTRY(0, D, ones, "model.layers.%d.post_attention_layernorm.weight", l);
        ENTRY(D, D, rnd, "model.layers.%d.self_attn.q_proj.weight", l);
        ENTRY(D, D, rnd + 1, "model.layers.%d.self_attn.k_proj.weight", l);
        ENTRY(D, D, rnd + 2, "model.layers.%d.self_attn.v_proj.weight", l);
        ENTRY(D, D, rnd + 3, "model.layers.%d.self_attn.o_proj.weight", l);
        ENTRY(F, D, rnd, "model.layers.%d.mlp.gate_proj.weight", l);
        ENTRY(F, D, rnd + 5, "model.layers.%d.mlp.up_proj.weight", l);
        ENTRY(D, F, rnd + 7, "model.layers.%d.mlp.down_proj.weight", l);
    }
#undef ENTRY
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    hl_st_write_opts o = {HL_DTYPE_BF16, 1, NULL, 0};
    double t0 = bench_now_s();
    if (hl_st_write(p, e, nt, &o) != HL_OK) {
        fprintf(stderr, "bench_decode: writing %s: %s\n", p, hl_last_error());
        return 1;
    }
    double t_write = bench_now_s() - t0;
    free(rnd);
    free(ones);
    free(e);
    free(names);
    t0 = bench_now_s();
    if (hl_model_load(&m, dir) != HL_OK) {
        fprintf(stderr, "bench_decode: %s\n", hl_last_error());
        return 1;
    }
    printf("\nLLaMA-2-7B-shaped, %d layers, BF16: %.2f GB weights (written in %.1f s, loaded in %.3f s, mmapped)\n",
           layers, (double)hl_model_weight_bytes(&m) / 1e9, t_write, bench_now_s() - t0);
    char name[64];
    snprintf(name, sizeof name, "7B-shaped %dL (BF16)", layers);
    int nt7 = quick ? 8 : tokens;
    double p1 = 0, p16 = 0, g32 = 0, g128 = 0;
    double c7[2] = {report(name, &m, 1, nt7, bw, &p1), report(name, &m, 16, nt7, bw, &p16)};
#ifdef HL_ENGINE_PROFILE
    /* The same batch-16 decode with one kernel for every frozen product (profiling builds). */
    printf("  one parallel region (fork + join of %d threads): %.1f us\n", hl_get_threads(), fork_join_us());
    static const struct {
        const char *label;
        hl_gemm_kernel k;
        int slices; /* hl_gemm_set_dnnl_slices */
    } variants[] = {{"fused dot for every product", HL_GEMM_KERNEL_FUSED, -1},
                    {"blocked (oneDNN / OpenBLAS) for every product", HL_GEMM_KERNEL_BLOCKED, -1},
                    {"oneDNN products in column slices, one per thread", HL_GEMM_KERNEL_AUTO, 1}};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        if (variants[i].slices > 0 && !hl_gemm_bf16_native())
            continue; /* no oneDNN path to slice */
        hl_gemm_set_kernel(variants[i].k);
        hl_gemm_set_dnnl_slices(variants[i].slices);
        char vname[192];
        snprintf(vname, sizeof vname, "%s, %s", name, variants[i].label);
        printf("%s\n", vname);
        report("  (variant)", &m, 16, nt7, bw, NULL);
    }
    hl_gemm_set_kernel(HL_GEMM_KERNEL_AUTO);
    hl_gemm_set_dnnl_slices(-1);
#endif
    if (with_pt)
        compare_pytorch("7b", layers, nt7, c7);
    report_weight_product(&m.layers[0].w_gate, bw, &g32, &g128);
    printf("\n7B-shaped decode against its goals: batch 1 at %.0f%% of the bandwidth bound (goal >= 80%%), batch 16 "
           "at %.0f%% (goal >= 60%%); weight product M=128 / M=32 = %.2f (goal >= 1)\n",
           p1, p16, g32 > 0 ? g128 / g32 : 0.0);
    double per_layer = (double)(hl_model_weight_bytes(&m) - 2.0 * V * D * 2) / layers;
    double full_step = per_layer * 32 + (double)V * D * 2;
    printf("\nfull LLaMA-2-7B (32 layers, BF16) at this bandwidth: bound %.1f tok/s at batch 1 (%.2f GB read per "
           "token)\n",
           bw * 1e9 / full_step, full_step / 1e9);
    hl_model_free(&m);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
    return 0;
}
