/* HydraLoRA training speed of the CUDA backend on a full LLaMA-2-7B-shaped model (random bf16
 * weights built in memory on all cores, no file needed), side by side with PyTorch doing the same
 * work (bench/pytorch_train_gpu.py; scripts/gpu_bench.sh runs both and prints one table).
 *
 * Adapter: HydraLoRA on gate/up/down, r = 8, N = 4, alpha 32, dropout 0.05, AdamW on the adapter
 * parameters. Each configuration: 2 warm-up steps, then STEPS timed optimizer steps (one
 * micro-batch each) of full rows of random tokens (every position a target).
 *   (a) batch 4 x 1024, no checkpointing
 *   (b) checkpointing, the largest batch x 1024 whose plan (+ 64 MiB for allocation rounding) fits
 *       in HL_BENCH_MEM_GIB (scripts/gpu_bench.sh sets it to the PyTorch peer's peak at its own
 *       largest batch within 24 GiB, so ours runs at no more memory) or else 24 GiB
 *   (c) batch 1 x 4096, checkpointing
 * Printed per configuration: tokens/s, device memory (the session's plan, and what the process
 * holds on the device as cudaMemGetInfo sees it), model FLOP/s and its share of the cuBLASLt bf16
 * 8192^3 rate measured in the same run. Model FLOPs per token = 4 x (matrix parameters: layers'
 * projections + lm_head) for forward + input gradients (frozen weights get no weight gradient) +
 * causal attention 6 x layers x (heads x head_dim) x (T + 1) (forward QK^T and PV, backward four
 * products); checkpointing's recomputation is not counted. A phase breakdown of one extra step
 * follows each configuration.
 * Environment: HL_BENCH_STEPS (default 5), HL_BENCH_LAYERS (default 32: the full model),
 * HL_BENCH_CONFIGS (default "abc"), HL_BENCH_MEM_GIB (default 24: the memory limit of (b)).
 * Output lines starting with RESULT are for the driver. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench_common.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/cuda_profile.h"
#include "core/backend/cuda/gemm_lt.h"
#include "core/backend/cpu/gemm.h"
#include "core/model/synth.h"
#include "core/base/rng.h"

#define GIB 1073741824.0

/* cuBLASLt bf16 8192^3 (TN, f32 accumulate) on random data: TFLOP/s, mean of 10 after 3 warm-ups. */
static double matmul_rate(void) {
    const int64_t n = 8192;
    size_t bytes = (size_t)(n * n) * 2;
    uint16_t *h = malloc(bytes);
    void *A = NULL, *B = NULL, *C = NULL, *ws = NULL;
    if (!h)
        return 0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n * n; i++)
        h[i] = hl_f32_to_bf16(2.0f * hl_rng_hash_uniform(7, (uint64_t)i) - 1.0f);
    double rate = 0;
    if (cudaMalloc(&A, bytes) || cudaMalloc(&B, bytes) || cudaMalloc(&C, bytes) || cudaMalloc(&ws, HL_CU_GEMM_WORKSPACE))
        goto done;
    cudaMemcpy(A, h, bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(B, h, bytes, cudaMemcpyHostToDevice);
    hl_cu_gemm *g = NULL;
    if (hl_cu_gemm_create(&g, ws, HL_CU_GEMM_WORKSPACE))
        goto done;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    for (int i = 0; i < 3; i++)
        hl_cu_linear(g, 0, n, n, n, A, n, B, HL_DTYPE_BF16, 0.0f, NULL, C, n);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < 10; i++)
        hl_cu_linear(g, 0, n, n, n, A, n, B, HL_DTYPE_BF16, 0.0f, NULL, C, n);
    cudaEventRecord(e1, 0);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    rate = 10.0 * 2.0 * (double)n * n * n / (ms * 1e-3) / 1e12;
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    hl_cu_gemm_free(g);
done:
    cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(ws);
    free(h);
    return rate;
}

typedef struct {
    const char *id, *label;
    int B, T, ckpt;
    double limit_gib; /* (b): the memory the run must stay within (0: none) */
} bconfig;

static double model_flops_per_token(const hl_llama_config *c, int T) {
    double D = c->dim, F = c->hidden_dim, Dq = (double)c->n_heads * c->head_dim;
    double Dkv = (double)c->n_kv_heads * c->head_dim, L = c->n_layers, V = c->vocab_size;
    double mat = L * (2 * D * Dq + 2 * D * Dkv + 3 * D * F) + V * D;
    return 4.0 * mat + 6.0 * L * Dq * (T + 1);
}

static void run_config(hl_backend *be, const hl_model *m, const hl_adapter_config *ac, const bconfig *bc, int steps,
                       double peak) {
    unsigned flags = HL_SESSION_TRAIN | HL_SESSION_STATS | (bc->ckpt ? HL_SESSION_CHECKPOINT : 0);
    size_t f0 = 0, f1 = 0, tot = 0;
    cudaMemGetInfo(&f0, &tot);
    hl_session *s = NULL;
    double t0 = bench_now_s();
    hl_status st = hl_session_create(&s, be, m, ac, 42, bc->B, bc->T, flags);
    if (st) {
        printf("(%s) %s: cannot create the session: %s\n", bc->id, bc->label, hl_last_error());
        printf("RESULT ours %s batch=%d seq=%d ckpt=%d error=1\n", bc->id, bc->B, bc->T, bc->ckpt);
        return;
    }
    double t_create = bench_now_s() - t0;
    const int B = bc->B, T = bc->T;
    int32_t *tok = malloc((size_t)B * T * 4), *starts = malloc((size_t)B * 4), *lens = malloc((size_t)B * 4);
    hl_rng r;
    hl_rng_seed(&r, 1, 1);
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)hl_rng_below(&r, (uint64_t)m->cfg.vocab_size);
    for (int b = 0; b < B; b++)
        starts[b] = b * T, lens[b] = T;
    hl_batch batch = {.B = B, .T = T, .tokens = tok, .labels = tok, .n_seq = B, .seq_start = starts, .seq_len = lens};
    hl_optim_config oc = hl_optim_defaults();
    float loss = 0;
    double gn = 0;
    int64_t t = 0;
    for (int i = 0; i < 2 && !st; i++) {
        st = hl_session_zero_grad(s);
        if (!st)
            st = hl_session_train_microbatch(s, &batch, 1.0f, &loss, NULL);
        if (!st)
            st = hl_session_optim_step(s, ++t, oc.lr, &oc, &gn);
    }
    double t1 = bench_now_s();
    for (int i = 0; i < steps && !st; i++) {
        st = hl_session_zero_grad(s);
        if (!st)
            st = hl_session_train_microbatch(s, &batch, 1.0f, &loss, NULL);
        if (!st)
            st = hl_session_optim_step(s, ++t, oc.lr, &oc, &gn);
    }
    double dt = bench_now_s() - t1;
    cudaMemGetInfo(&f1, &tot);
    if (st) {
        printf("(%s) %s: step failed: %s\n", bc->id, bc->label, hl_last_error());
        printf("RESULT ours %s batch=%d seq=%d ckpt=%d error=1\n", bc->id, B, T, bc->ckpt);
    } else {
        double tps = (double)B * T * steps / dt;
        double tflops = tps * model_flops_per_token(&m->cfg, T) / 1e12;
        const hl_mem_plan *p = hl_session_mem_plan(s);
        printf("(%s) %s: %.0f tokens/s, %.3f s/step, loss %.4f, grad norm %.3g, session created in %.1f s\n", bc->id,
               bc->label, tps, dt / steps, loss, gn, t_create);
        printf("    device memory: plan %.2f GiB (weights %.2f, activations %.2f, scratch %.2f, adapters+Adam %.2f); "
               "held by the process %.2f GiB\n",
               p->total / GIB, p->weights / GIB, p->activations / GIB, p->scratch / GIB,
               (p->params + p->grads + p->moments) / GIB, (double)(f0 - f1) / GIB);
        printf("    model %.1f TFLOP/s = %.1f%% of the measured bf16 matrix rate (%.0f TFLOP/s)\n", tflops,
               100.0 * tflops / peak, peak);
        if (bc->limit_gib > 0) {
            double most = fmax(p->total / GIB, (double)(f0 - f1) / GIB);
            printf("    memory limit %.2f GiB: %s (%.2f GiB)\n", bc->limit_gib,
                   most <= bc->limit_gib ? "kept" : "EXCEEDED", most);
        }
        printf("RESULT ours %s batch=%d seq=%d ckpt=%d tokens_per_s=%.1f peak_gib=%.2f plan_gib=%.2f tflops=%.1f "
               "share=%.3f\n",
               bc->id, B, T, bc->ckpt, tps, (double)(f0 - f1) / GIB, p->total / GIB, tflops, tflops / peak);
        /* where one more step goes */
        if (hl_cuda_profile_enable(s, 1)) {
            double ms[16];
            const char *const *names;
            st = hl_session_zero_grad(s);
            if (!st)
                st = hl_session_train_microbatch(s, &batch, 1.0f, &loss, NULL);
            if (!st)
                st = hl_session_optim_step(s, ++t, oc.lr, &oc, &gn);
            int n = hl_cuda_profile(s, &names, ms, 1);
            double sum = 0;
            for (int i = 0; i < n; i++)
                sum += ms[i];
            printf("    one profiled step, %.1f ms on the GPU:", sum);
            for (int i = 0; i < n; i++)
                printf("%s %s %.1f", i ? "," : "", names[i], ms[i]);
            printf("\n");
        }
    }
    fflush(stdout);
    hl_session_free(s);
    free(tok), free(starts), free(lens);
}

int main(void) {
    const char *e = getenv("HL_BENCH_STEPS");
    int steps = e ? atoi(e) : 5;
    e = getenv("HL_BENCH_LAYERS");
    int layers = e ? atoi(e) : 32;
    const char *which = getenv("HL_BENCH_CONFIGS") ? getenv("HL_BENCH_CONFIGS") : "abc";
    hl_backend *be = NULL;
    if (hl_backend_open(&be, "cuda:0") != HL_OK) {
        printf("skipped: no CUDA device (%s)\n", hl_last_error());
        return 77;
    }
    hl_backend_info info;
    hl_backend_get_info(be, &info);
    printf("device: %s, %.1f GiB\n", info.device, info.mem_total / GIB);
    double peak = matmul_rate();
    printf("cuBLASLt bf16 8192^3 (random data): %.0f TFLOP/s\n", peak);
    printf("RESULT matmul tflops=%.1f\n", peak);

    hl_llama_config cfg;
    hl_synth_shape("7b", &cfg);
    cfg.n_layers = layers;
    hl_set_threads(0);
    double t0 = bench_now_s();
    hl_model m;
    if (hl_synth_model(&m, &cfg, HL_DTYPE_BF16, 0)) {
        printf("cannot build the model: %s\n", hl_last_error());
        return 1;
    }
    printf("LLaMA-2-7B shape, %d layers, random bf16 weights (%.2f GB) built in %.1f s\n", layers,
           (double)hl_model_weight_bytes(&m) / 1e9, bench_now_s() - t0);
    hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT, .r = 8, .n_heads = 4,
                            .alpha = 32.0f, .dropout = 0.05f};
    /* (b): the largest batch of 1024 whose plan fits the limit with checkpointing. The session
     * allocates its plan once, so the plan is what it holds, but for cudaMalloc's rounding: the
     * margin keeps what the process holds (measured and printed) within the limit too. */
    e = getenv("HL_BENCH_MEM_GIB");
    double limit_gib = e && atof(e) > 0 ? atof(e) : 24.0;
    const double margin = 64.0 / 1024.0;
    int bmax = 0;
    for (int b = 1; b <= 256; b++) {
        hl_mem_plan p;
        if (hl_backend_plan(be, &cfg, HL_DTYPE_BF16, &ac, b, 1024,
                            HL_SESSION_TRAIN | HL_SESSION_STATS | HL_SESSION_CHECKPOINT, &p) ||
            p.total / GIB + margin > limit_gib)
            break;
        bmax = b;
    }
    char lb[128];
    snprintf(lb, sizeof lb, "batch %d x 1024, checkpointing (largest batch within %.2f GiB%s)", bmax, limit_gib,
             e && atof(e) > 0 ? ", the PyTorch peer's peak" : "");
    if (!bmax && strchr(which, 'b'))
        printf("(b) not even batch 1 plans within %.2f GiB\nRESULT ours b batch=0 seq=1024 ckpt=1 error=1\n", limit_gib);
    const bconfig cfgs[] = {{"a", "batch 4 x 1024, no checkpointing", 4, 1024, 0, 0},
                            {"b", lb, bmax, 1024, 1, limit_gib},
                            {"c", "batch 1 x 4096, checkpointing", 1, 4096, 1, 0}};
    for (int i = 0; i < 3; i++)
        if (strchr(which, cfgs[i].id[0]) && cfgs[i].B > 0)
            run_config(be, &m, &ac, &cfgs[i], steps, peak);
    hl_model_free(&m);
    hl_backend_close(be);
    return 0;
}
