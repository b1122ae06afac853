/* Training-step benchmark: tokens/s and achieved GFLOP/s of a training micro-batch + AdamW
 * through the backend seam (hl_session_train_microbatch + hl_session_optim_step on the cpu
 * backend) on random-weight models, next to OpenBLAS sgemm GFLOP/s measured in the same run, and
 * which matrix path ran (OpenBLAS f32 or oneDNN bf16 with the CPU's ISA).
 *
 *   bench_train [--threads N] [--steps N] [--quick] [--no-pytorch] [--compute auto|f32|bf16]
 *
 * PyTorch reference: bench/pytorch_train_step.py times the same step (same shapes, HydraLoRA
 * r=8 N=4 on gate/up/down, f32 trainable adapters, AdamW; frozen weights for the 7B shape bf16
 * where the CPU has native bf16, else f32 (PyTorch's fast path there), f32 for stories260K) as a
 * subprocess when the Python ($HL_BENCH_PYTHON, default /usr/bin/python3) has torch (skip with
 * --no-pytorch or HL_BENCH_PYTORCH=0); "C tok/s, PyTorch tok/s, ratio" follows each model.
 *
 * Shapes: stories260K (dim 64, 5 layers, F32) and LLaMA-2-7B blocks (dim 4096, hidden
 * 11008, 32 heads, vocab 32000, BF16 weights, 2 layers), seq 512, batch 1, HydraLoRA r=8
 * N=4 on gate/up/down. FLOPs counted are the useful ones of the math (forward matmuls,
 * backward input-gradient matmuls through frozen weights, causal attention as T/2 keys per
 * query forward and 2x that backward, adapter forward + backward, lm_head over targets);
 * recomputation (attention scores, checkpointing) is not counted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend.h"
#include "core/backend/cpu/gemm.h" /* the machine's sgemm reference and the product table; the steps run through the seam */
#include "core/backend/cpu/gemm_internal.h" /* oneDNN implementations used */
#include "core/model/model.h"
#include "core/adapter/optim.h"
#include "bench_common.h"
#include "pytorch_ref.h"
#include "bench_model.h"

#ifdef HL_ENGINE_PROFILE
int hl_llama_profile(const char *const **names, double **seconds); /* core/backend/cpu/llama.c, profiling builds only */
#endif

/* Useful FLOPs of one forward+backward over B*T tokens with `targets` loss rows (adapters on
 * every layer): the forward, the adapters' work, and the input gradients that reach a trainable
 * parameter. The base weights are frozen, so below the lowest adapter no input gradient is
 * needed: neither the engine (core/backend/cpu/llama.c) nor PyTorch's autograd computes it, and
 * it is not counted here. */
static double step_flops(const hl_llama_config *c, const hl_adapter_config *a, int B, int T, int64_t targets) {
    double D = c->dim, F = c->hidden_dim, Dq = (double)c->n_heads * c->head_dim;
    double Dkv = (double)c->n_kv_heads * c->head_dim, tok = (double)B * T;
    double mm = 2.0 * (D * Dq + 2 * D * Dkv + Dq * D + 3 * D * F); /* per token per layer, forward */
    double att = 2.0 * 2.0 * (T / 2.0) * Dq;                      /* QKᵀ and PV over T/2 keys on average */
    double ad = 0;
    int N = a->variant == HL_VARIANT_LORA ? 1 : a->n_heads;
    for (int t = 0; t < HL_TARGET_COUNT; t++) {
        if (!(a->targets & (1u << t)))
            continue;
        double di = t == 3 ? Dq : t == 6 ? F : D, dout = t <= 2 ? (t == 0 ? Dq : Dkv) : t == 3 || t == 6 ? D : F;
        double fw = 2.0 * (di * a->r + di * N + N * a->r * dout);
        ad += fw * 3.0; /* forward, parameter gradients, input gradient */
    }
    double total = 0;
    for (int l = 0; l < c->n_layers; l++) {
        int below = l > 0;
        unsigned here = a->targets;
        double bwd = 0;
        if (below || (here & 0x3Fu))
            bwd += 2.0 * F * D; /* down: dh */
        if (below || (here & 0x0Fu))
            bwd += 2.0 * 2.0 * D * F; /* gate, up: dxn */
        if (below || (here & 0x07u))
            bwd += 2.0 * Dq * D + 2.0 * att; /* o: datt; attention backward */
        if (below)
            bwd += 2.0 * D * (Dq + 2 * Dkv); /* q, k, v: dxn */
        total += tok * (mm + att + bwd + ad);
    }
    return total + (double)targets * 2.0 * D * c->vocab_size * 2.0;
}

static double run(hl_backend *be, const char *name, const hl_llama_config *c, hl_dtype dt, int steps,
                  double sgemm_gf, hl_compute compute, double *flops_per_token) {
    const int B = 1, T = 512;
    char path[96];
    printf("\n== %s: dim %d, hidden %d, %d layers, %d/%d heads, vocab %d, %s weights, batch %d x seq %d\n", name,
           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, hl_dtype_name(dt), B, T);
    printf("compute %s: frozen products run %s\n", hl_compute_name(compute),
           (hl_backend_compute_path(be, compute, c, dt, path, sizeof path), path));
    double t0 = bench_now_s();
    bench_model bm;
    bench_model_build(&bm, c, dt);
    hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT, .r = 8, .n_heads = 4,
                            .alpha = 32.0f, .dropout = 0.05f};
    hl_session *sess;
    if (hl_session_create(&sess, be, &bm.m, &ac, 41, B, T, HL_SESSION_TRAIN | HL_SESSION_STATS) != HL_OK) {
        fprintf(stderr, "bench_train: %s\n", hl_last_error());
        exit(1);
    }
    if (hl_session_set_compute(sess, compute) != HL_OK) {
        fprintf(stderr, "bench_train: %s\n", hl_last_error());
        exit(1);
    }
    size_t np = hl_session_layout(sess)->n_params;
    float *init = malloc(np * sizeof *init);
    hl_session_read_slab(sess, HL_SLAB_PARAMS, 0, np, init);
    for (size_t i = 0; i < np; i++) /* non-zero B so every product is real work */
        if (init[i] == 0.0f)
            init[i] = 1e-3f;
    hl_session_write_slab(sess, HL_SLAB_PARAMS, 0, np, init);
    free(init);
    const hl_mem_plan *p = hl_session_mem_plan(sess);
    printf("setup %.1f s; memory plan: weights %.1f MiB (not counted), params %.2f MiB, grads %.2f MiB, "
           "moments %.2f MiB, activations %.1f MiB, scratch %.1f MiB, total %.1f MiB\n",
           bench_now_s() - t0, p->weights / 1048576.0, p->params / 1048576.0, p->grads / 1048576.0,
           p->moments / 1048576.0, p->activations / 1048576.0, p->scratch / 1048576.0, p->total / 1048576.0);
    int32_t *tokens = malloc(sizeof(int32_t) * B * T), *labels = malloc(sizeof(int32_t) * B * T), len = T, st0, sl0;
    for (int i = 0; i < B * T; i++)
        tokens[i] = labels[i] = (int32_t)((i * 7919u + 13u) % (unsigned)c->vocab_size);
    hl_batch batch;
    hl_batch_padded(&batch, tokens, labels, &len, B, T, &st0, &sl0);
    hl_optim_config oc = hl_optim_defaults();
    oc.total_steps = steps + 1;
    double best = 1e30, total = 0;
    int64_t ntg = 0;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up caches and threads */
        double a = bench_now_s();
        float loss;
        hl_session_zero_grad(sess);
        hl_session_train_microbatch(sess, &batch, 1.0f, &loss, &ntg);
        double gn;
        hl_session_optim_step(sess, s + 1, hl_lr_at(&oc, s), &oc, &gn);
        double dt_s = bench_now_s() - a;
        if (s > 0) {
            best = dt_s < best ? dt_s : best;
            total += dt_s;
        }
        printf("  step %d: %.3f s, loss %.4f\n", s, dt_s, (double)loss);
    }
    double fl = step_flops(c, &ac, B, T, ntg), mean = total / steps;
    if (flops_per_token)
        *flops_per_token = fl / (B * T);
    printf("%s: %.1f tokens/s (mean of %d steps, best %.1f), %.1f GFLOP/s achieved = %.0f%% of OpenBLAS sgemm "
           "(%.1f GFLOP/s); %.1f GFLOP per step\n",
           name, B * T / mean, steps, B * T / best, fl / mean * 1e-9, 100.0 * fl / mean * 1e-9 / sgemm_gf, sgemm_gf,
           fl * 1e-9);
#ifdef HL_ENGINE_PROFILE
    const char *const *pn;
    double *ps;
    int npf = hl_llama_profile(&pn, &ps);
    double all = 0;
    for (int i = 0; i < npf; i++)
        all += ps[i];
    for (int i = 0; i < npf; i++)
        printf("  %-28s %8.3f s  %5.1f%%\n", pn[i], ps[i], 100.0 * ps[i] / all), ps[i] = 0;
#endif
    char impl[256];
    if (hl_gemm_dnnl_version())
        printf("oneDNN implementations used so far: %s (%d primitives)\n", hl_dnnl_impls(impl, sizeof impl),
               hl_dnnl_cached_primitives());
    free(tokens), free(labels);
    hl_session_free(sess);
    bench_model_free(&bm);
    return B * T / mean;
}

/* PyTorch's tokens/s for the same step, next to ours; with the useful FLOPs per token (the same
 * work on both sides), both rates and what 1.5x PyTorch would take against the machine's limits. */
static void compare_pytorch(const char *shape, int steps, double c_tps, double flops_tok, double sgemm_gf,
                            double fma_gf, double bf16_gf) {
    char args[128];
    snprintf(args, sizeof args, "--shape %s --threads %d --steps %d", shape, hl_get_threads(), steps);
    double pt = 0;
    if (pytorch_run("pytorch_train_step.py", args, "PYTORCH_TRAIN", shape, NULL, 0, 1, &pt) == 0)
        return;
    printf("%s training step: C %.1f tok/s, PyTorch %.1f tok/s, ratio C/PyTorch %.2fx\n", shape, c_tps, pt,
           pt > 0 ? c_tps / pt : 0.0);
    if (flops_tok > 0 && pt > 0)
        printf("%s useful GFLOP/s (%.4g GFLOP per token, both sides): C %.1f, PyTorch %.1f; 1.5x PyTorch needs %.1f "
               "= %.0f%% of the sgemm reference (%.1f), %.0f%% of the FMA peak (%.1f)\n",
               shape, flops_tok * 1e-9, c_tps * flops_tok * 1e-9, pt * flops_tok * 1e-9, 1.5 * pt * flops_tok * 1e-9,
               100.0 * 1.5 * pt * flops_tok * 1e-9 / sgemm_gf, sgemm_gf,
               100.0 * 1.5 * pt * flops_tok * 1e-9 / fma_gf, fma_gf);
    if (flops_tok > 0 && pt > 0 && bf16_gf > 0) /* the products ran in bf16: the ceiling is theirs */
        printf("%s: 1.5x PyTorch needs the whole step at %.0f%% of the rate of the bf16 FFN product alone "
               "(%.1f GFLOP/s, the faster of its forward and input gradient above)\n",
               shape, 100.0 * 1.5 * pt * flops_tok * 1e-9 / bf16_gf, bf16_gf);
}

int main(int argc, char **argv) {
    int threads = 0, steps = 2, quick = 0, no_pytorch = 0;
    hl_compute compute = HL_COMPUTE_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--compute") && i + 1 < argc && hl_compute_parse(argv[i + 1], &compute) == 0)
            i++;
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--no-pytorch"))
            no_pytorch = 1;
        else {
            int help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
            fprintf(help ? stdout : stderr,
                    "usage: bench_train [--threads N] [--steps N] [--quick] [--no-pytorch] [--compute auto|f32|bf16]\n");
            return help ? 0 : 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    hl_backend *be = NULL;
    if (hl_backend_open(&be, "cpu") != HL_OK || hl_backend_set_threads(be, threads) != HL_OK) {
        fprintf(stderr, "bench_train: %s\n", hl_last_error());
        return 1;
    }
    hl_backend_info bi;
    hl_backend_get_info(be, &bi);
    hl_set_threads(bi.threads); /* the sgemm references below use the same count */
    printf("threads: %d (%s, %s)\n", bi.threads, bi.device, bi.compute);
    const char *dv = hl_gemm_dnnl_version();
    printf("oneDNN: %s%s%s; native bf16 matmul: %s\n", dv ? dv : "not built in", dv ? ", effective ISA " : "",
           dv ? hl_gemm_dnnl_isa() : "", hl_gemm_bf16_native() ? "yes" : "no");
    int with_pt = pytorch_available(no_pytorch);
    double fma = bench_fma_peak_gflops(15);
    printf("f32 FMA peak (registers only, all threads): %.1f GFLOP/s\n", fma);
    double bf16_gf = 0; /* the bf16 products' measured rate (below), where the CPU has native bf16 */
    double gsq = hl_sgemm_gflops(1024, 3);
    printf("OpenBLAS sgemm 1024^3 (split over our threads): %.1f GFLOP/s = %.0f%% of the FMA peak\n", gsq,
           100.0 * gsq / fma);
    /* the reference for the ratios: f32 sgemm of the 7B FFN product shape, X[512,4096]·W[11008,4096]ᵀ */
    double gf;
    {
        const int M = 512, N = 11008, K = 4096;
        float *x = malloc((size_t)M * K * 4), *w = malloc((size_t)N * K * 4), *y = malloc((size_t)M * N * 4);
        for (size_t i = 0; i < (size_t)N * K; i++)
            w[i] = (float)(i % 13) * 1e-3f;
        for (size_t i = 0; i < (size_t)M * K; i++)
            x[i] = (float)(i % 7) * 1e-2f;
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            double a = bench_now_s();
            hl_sgemm(0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, y, N);
            double t = bench_now_s() - a;
            best = t < best ? t : best;
        }
        gf = 2.0 * M * N * K / best * 1e-9;
        printf("OpenBLAS sgemm 512x4096 · (11008x4096)ᵀ f32 (the reference below): %.1f GFLOP/s\n", gf);
        free(x), free(w), free(y);
    }

    /* the frozen-weight products alone at the 7B FFN shape, bf16 weights: forward x·Wᵀ and input
     * gradient dY·W, on the f32 path and (where the CPU has it) the bf16 path */
    {
        const int M = 512, N = 11008, K = 4096;
        bench_model bm = {0};
        hl_weight w = bench_rand_weight(&bm, N, K, HL_DTYPE_BF16, 0.0f, 0.01f);
        float *x = calloc((size_t)M * K, 4), *y = malloc((size_t)M * N * 4), *dy = malloc((size_t)M * N * 4);
        size_t wsf = hl_gemm_ws_floats(N);
        hl_gemm_ws sc = {malloc(wsf * 4), (int64_t)wsf, HL_COMPUTE_F32};
        for (int i = 0; i < M * K; i++)
            x[i] = (float)(i % 17) * 0.01f;
        for (int i = 0; i < M * N; i++)
            dy[i] = (float)(i % 13) * 0.01f;
        for (int mode = 0; mode < 2; mode++) {
            sc.compute = mode ? HL_COMPUTE_BF16 : HL_COMPUTE_F32;
            if (mode && !hl_gemm_bf16_native())
                break;
            char path[96];
            hl_gemm_describe(sc.compute, HL_DTYPE_BF16, path, sizeof path);
            for (int kind = 0; kind < 2; kind++) {
                double best = 1e30;
                for (int r = 0; r < 3; r++) { /* the first call also builds oneDNN's kernels */
                    double a = bench_now_s();
                    if (kind == 0)
                        hl_gemm_xwt(y, x, &w, M, 0.0f, &sc);
                    else
                        hl_gemm_dx_acc(x, dy, &w, M, &sc);
                    double t = bench_now_s() - a;
                    best = r > 0 && t < best ? t : best;
                }
                double g = 2.0 * M * N * K / best * 1e-9;
                if (mode)
                    bf16_gf = g > bf16_gf ? g : bf16_gf;
                printf("bf16 weight, %s %s: %.1f GFLOP/s = %.0f%% of f32 sgemm (%s)\n",
                       kind ? "input gradient dY[512x11008]·W" : "forward x[512x4096]·Wᵀ", "[11008x4096]", g,
                       100.0 * g / gf, path);
            }
        }
        free(x), free(y), free(dy), free(sc.buf);
        bench_model_free(&bm);
        char impl[256];
        if (hl_gemm_dnnl_version())
            printf("oneDNN implementations used so far: %s\n", hl_dnnl_impls(impl, sizeof impl));
    }

    hl_llama_config stories = {.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4,
                               .head_dim = 8, .vocab_size = 512, .max_seq_len = 512, .rms_norm_eps = 1e-5f,
                               .rope_theta = 10000.0f, .tie_word_embeddings = 1};
    int st = quick ? 2 : 5;
    double fl_st = 0, fl7 = 0;
    double c_st = run(be, "stories260K-shaped", &stories, HL_DTYPE_F32, st, gf, compute, &fl_st);
    if (with_pt)
        compare_pytorch("stories260K", st, c_st, fl_st, gf, fma, 0.0);
    if (!quick) {
        hl_llama_config l7 = {.dim = 4096, .hidden_dim = 11008, .n_layers = 2, .n_heads = 32, .n_kv_heads = 32,
                              .head_dim = 128, .vocab_size = 32000, .max_seq_len = 4096, .rms_norm_eps = 1e-5f,
                              .rope_theta = 10000.0f, .tie_word_embeddings = 0};
        double c7 = run(be, "LLaMA-2-7B-shaped (2 of 32 layers)", &l7, HL_DTYPE_BF16, steps, gf, compute, &fl7);
        char p7[96];
        hl_gemm_describe(compute, HL_DTYPE_BF16, p7, sizeof p7);
        if (with_pt)
            compare_pytorch("7b", steps, c7, fl7, gf, fma, strstr(p7, "oneDNN") ? bf16_gf : 0.0);
    }
    hl_backend_close(be);
    return 0;
}
