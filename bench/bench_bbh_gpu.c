/* BIG-Bench Hard on one GPU: the whole `eval bbh` generation workload through the CUDA decoder
 * (core/backend/cuda/cuda_decoder.c via the generator of core/eval/generate.h), on a 32-layer
 * LLaMA-2-7B-shaped model with random bf16 weights (core/model/synth.c) and HydraLoRA r=8 N=4 on
 * gate/up/down applied unmerged.
 *
 *   bench_bbh_gpu [--examples N] [--prefill-examples N] [--slots S] [--max-new T] [--layers L] [--chunk C]
 *                 [--no-adapter] [--no-batch1 | --batch1-only] [--kernels] [--dump-prompts FILE] [--shared DIR]
 *                 [--trace FILE]
 *
 * Prompts: the 3-shot CoT prompts of all 27 subtasks (6,511 examples), built and tokenized
 * exactly as `eval bbh` does (hl_bbh_build_prompt, LLaMA-2 tokenizer, BOS first); --examples N
 * takes the first ceil(N/27) examples of every subtask (all prompt lengths represented).
 * Generation is forced to T new tokens (no EOS, no stop strings: random weights never stop
 * anyway), greedy, continuous batching with S slots, few-shot prefix reuse on.
 *
 * Printed (RESULT lines for scripts):
 *   prefill   a pass with 1 new token per prompt (prefill only; --prefill-examples N: every k-th
 *             example only): prompt tokens run / s, and the prefix-reuse hit rate (prompt tokens
 *             whose keys/values were shared);
 *   decode    the full pass: generated tokens / (its wall time − its prompt tokens run at the
 *             prefill rate);
 *   wall      the full pass; with --examples < 6,511 also an extrapolation to the whole set
 *             (prefill scaled by the whole set's prompt tokens to run, decode by examples);
 *   memory    the decoder's allocation (its KV pool takes the free memory), the KV cache in use at the
 *             peak, and weights + adapters + scratch + that peak (what the run needed);
 *   batch 1   ms per token of one sequence at ~1,000 cached positions vs the HBM bound: weights +
 *             adapter + KV bytes per token read at the device-to-device copy's traffic rate (read +
 *             write bytes per second) measured here.
 * --kernels first times the one-row products alone at the 7B shapes (and cuBLASLt's plain product;
 * gate/up and down also with HydraLoRA r=8 N=4 attached: Zw given, then routed inside).
 * --trace writes every block of the one-row products, k_swiglu_ad and the decode attention in one
 * batch-1 step (start, past pdl_wait, end, multiprocessor) as CSV: needs a build with
 * CUDAFLAGS=-DHL_GPU_TRACE; bench/trace_decode.py summarises it per launch.
 * --dump-prompts writes the prompt ids (one line per example, space-separated) for the
 * transformers peer (bench/hf_generate_bbh.py). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_common.h"
#include "core/backend/backend.h"
#include "core/backend/cuda/cuda_decode.h"
#include "core/backend/cuda/gemm_lt.h"
#include "core/backend/cuda/cuda_profile.h"
#include "core/base/rng.h"
#include "core/eval/bbh/bbh.h"
#include "core/eval/generate.h"
#include "core/model/synth.h"
#include "core/model/tokenizer/tokenizer.h"

/* With HL_CUDA_PROFILE=1: the decoder's GPU time per phase (eager launches, an event per phase change). */
static void print_profile(const hl_decoder *d, const char *what, double per) {
    const char *const *names = NULL;
    double ms[16];
    int n = d ? hl_cuda_decoder_profile(d, &names, ms, 1) : 0;
    if (n <= 0)
        return;
    double tot = 0;
    for (int i = 0; i < n; i++)
        tot += ms[i];
    printf("  profile of %s (GPU ms%s):", what, per > 1 ? " per step" : "");
    for (int i = 0; i < n; i++)
        if (ms[i] > 0)
            printf(" %s %.3f (%.0f%%);", names[i], ms[i] / per, 100 * ms[i] / tot);
    printf(" total %.3f\n", tot / per);
}

typedef struct {
    int32_t **ids;
    int *n;
    int *task;
    long count, next;
    long done, gen_tokens;
    double t0, last_print;
    int quiet;
} work;

static hl_status w_next(void *ctx, int32_t **ids, int *n, long *tag, int *more) {
    work *w = ctx;
    if (w->next >= w->count) {
        *more = 0;
        return HL_OK;
    }
    long k = w->next++;
    *n = w->n[k];
    *ids = malloc((size_t)*n * sizeof(int32_t));
    if (!*ids)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    memcpy(*ids, w->ids[k], (size_t)*n * sizeof(int32_t));
    *tag = k;
    *more = 1;
    return HL_OK;
}

static hl_status w_done(void *ctx, long tag, const hl_gen_result *r) {
    work *w = ctx;
    (void)tag;
    w->done++;
    w->gen_tokens += r->n_generated;
    double now = bench_now_s();
    if (!w->quiet && now - w->last_print > 10.0) {
        double el = now - w->t0;
        printf("  %ld/%ld examples, %.1f s, %.2f examples/s, %.0f new tokens/s\n", w->done, w->count, el,
               w->done / el, w->gen_tokens / el);
        fflush(stdout);
        w->last_print = now;
    }
    return HL_OK;
}

/* One pass over the work list; returns wall seconds (< 0 on failure). */
static size_t kv_peak, kv_pool; /* of the last pass */
static double mem_used_gib;    /* device memory in use at the end of the last pass (decoder alive) */

static double run_pass(hl_backend *be, const hl_model *m, const hl_adapters *ad, work *w, int slots, int max_seq,
                       int max_new, int chunk, long *prefilled, long *reused, size_t *bytes, int quiet) {
    hl_generator *g = NULL;
    if (hl_generator_create(&g, be, m, ad, NULL) != HL_OK) {
        printf("generator: %s\n", hl_last_error());
        return -1;
    }
    hl_gen_params p;
    hl_gen_params_default(&p);
    p.max_new_tokens = max_new;
    p.stop_on_eos = 0;
    p.stop_on_bos = 0;
    p.add_bos = 0;
    p.share_prefix = 1;
    p.prefill_chunk = chunk;
    hl_gen_stream_opts o = {.slots = slots, .max_seq = max_seq, .continuous = 1};
    /* warm-up: one prompt, one token, with the same shapes, so the decoder (weights upload, KV
     * pool) exists before the clock starts and the timed pass reuses it */
    hl_gen_params pw = p;
    pw.max_new_tokens = 1;
    work one = *w;
    one.count = 1;
    one.next = 0;
    one.quiet = 1;
    one.t0 = one.last_print = bench_now_s();
    if (hl_generate_stream(g, &o, &pw, w_next, w_done, &one) != HL_OK) {
        printf("warm-up failed: %s\n", hl_last_error());
        hl_generator_free(g);
        return -1;
    }
    long pre0 = 0, reu0 = 0;
    hl_generator_counts(g, &pre0, &reu0);
    {
        const char *const *nm;
        double ms[16];
        if (hl_generator_decoder(g))
            hl_cuda_decoder_profile(hl_generator_decoder(g), &nm, ms, 1); /* the warm-up is not counted */
    }
    w->next = 0, w->done = 0, w->gen_tokens = 0;
    w->quiet = quiet;
    w->t0 = w->last_print = bench_now_s();
    hl_status st = hl_generate_stream(g, &o, &p, w_next, w_done, w);
    double el = bench_now_s() - w->t0;
    hl_generator_counts(g, prefilled, reused);
    *prefilled -= pre0;
    *reused -= reu0;
    *bytes = hl_generator_bytes(g);
    hl_generator_cache_use(g, &kv_peak, &kv_pool);
    print_profile(hl_generator_decoder(g), max_new == 1 ? "the prefill pass" : "the generation pass", 1);
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    mem_used_gib = (double)(tot - fr) / 1073741824.0;
    hl_generator_free(g);
    if (st != HL_OK) {
        printf("generation failed: %s\n", hl_last_error());
        return -1;
    }
    return el;
}

/* Device-to-device copy rate (GB/s, read + write bytes), 2 GiB buffers, best of 5. */
static double d2d_rate(void) {
    size_t bytes = (size_t)2 << 30;
    void *a = NULL, *b = NULL;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
        cudaFree(a);
        return 0;
    }
    cudaMemset(a, 1, bytes);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    float best = 1e30f;
    for (int i = 0; i < 5; i++) {
        cudaEventRecord(e0, 0);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        best = ms < best ? ms : best;
    }
    cudaFree(a), cudaFree(b);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return 2.0 * (double)bytes / (best * 1e-3) / 1e9;
}


/* --kernels: the small-batch product alone at the 7B shapes, M rows, weights streamed from HBM
 * (a fresh weight buffer per call, larger than L2 together), as GB/s of weight bytes and % of the
 * copy's traffic rate. */
static void kernel_rates(double bw, int M) {
    struct {
        const char *name;
        int64_t N;
        int K, norm, swiglu, res, f32, n_ad; /* n_ad: HydraLoRA adapters on it in the decode bench */
    } sh[] = {{"qkv 12288x4096 +norm", 12288, 4096, 1, 0, 0, 0, 0}, {"o 4096x4096 +res", 4096, 4096, 0, 0, 1, 0, 0},
              {"gate/up 2x11008x4096 +norm +swiglu", 11008, 4096, 1, 1, 0, 0, 2},
              {"down 4096x11008 +res", 4096, 11008, 0, 0, 1, 0, 1},
              {"lm_head 32000x4096 +norm f32", 32000, 4096, 1, 0, 0, 1, 0}};
    cudaStream_t st;
    cudaStreamCreate(&st);
    hl_cu_gemm *gm = NULL;
    void *ws = NULL;
    if (cudaMalloc(&ws, HL_CU_GEMM_WORKSPACE) != cudaSuccess || hl_cu_gemm_create(&gm, ws, HL_CU_GEMM_WORKSPACE) != HL_OK)
        gm = NULL;
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        const int64_t rows = sh[i].swiglu ? 2 * sh[i].N : sh[i].N;
        const size_t wbytes = (size_t)rows * sh[i].K * 2;
        const int copies = (int)(400000000 / wbytes) + 2; /* > 400 MB in rotation: never served by L2 */
        void **W = calloc((size_t)copies, sizeof *W), *x = NULL, *y = NULL, *res = NULL;
        float *nw = NULL;
        int ok = 1;
        for (int c = 0; c < copies && ok; c++)
            ok = cudaMalloc(&W[c], wbytes) == cudaSuccess && cudaMemset(W[c], 0x3c, wbytes) == cudaSuccess;
        ok = ok && cudaMalloc(&x, (size_t)M * 11008 * 2) == cudaSuccess && cudaMemset(x, 0x3c, (size_t)M * 11008 * 2) == cudaSuccess;
        ok = ok && cudaMalloc(&y, (size_t)M * 32000 * 4) == cudaSuccess && cudaMalloc(&res, (size_t)M * 32000 * 2) == cudaSuccess;
        ok = ok && cudaMalloc((void **)&nw, 11008 * 4) == cudaSuccess && cudaMemset(nw, 0, 11008 * 4) == cudaSuccess;
        ok = ok && cudaMemset(res, 0, (size_t)M * 32000 * 2) == cudaSuccess;
        /* HydraLoRA r=8 N=4 on gate/up (two adapters) and down (one), a copy per weight copy so
         * that A, R and B come from HBM as they do in a decode step */
        const int n_ad = sh[i].n_ad, HR = 8, HN = 4;
        float **adb = calloc((size_t)copies, sizeof *adb), *zw = NULL, *part = NULL;
        unsigned *sync = NULL;
        const size_t ad_floats = (size_t)HR * sh[i].K + (size_t)HN * sh[i].K + (size_t)HN * sh[i].N * HR;
        for (int c = 0; c < copies && ok && n_ad; c++)
            ok = cudaMalloc((void **)&adb[c], (size_t)n_ad * ad_floats * 4) == cudaSuccess &&
                 cudaMemset(adb[c], 0x3c, (size_t)n_ad * ad_floats * 4) == cudaSuccess;
        ok = ok && cudaMalloc((void **)&zw, 3 * (size_t)M * HN * HR * 4) == cudaSuccess &&
             cudaMemset(zw, 0x3c, 3 * (size_t)M * HN * HR * 4) == cudaSuccess;
        ok = ok && cudaMalloc((void **)&part, 3 * (size_t)M * (HR + HN) * 4) == cudaSuccess;
        ok = ok && cudaMalloc((void **)&sync, HLK_GEMV_SYNC * sizeof(unsigned)) == cudaSuccess &&
             cudaMemset(sync, 0, HLK_GEMV_SYNC * sizeof(unsigned)) == cudaSuccess;
        if (ok) {
            hlk_gemv g;
            memset(&g, 0, sizeof g);
            g.M = M, g.K = sh[i].K, g.dt = HL_DTYPE_BF16, g.N = sh[i].N, g.x = x, g.ldx = sh[i].K;
            g.norm = sh[i].norm ? nw : NULL, g.eps = 1e-5f, g.swiglu = sh[i].swiglu, g.seg[0] = g.seg[1] = sh[i].N;
            g.res = sh[i].res ? res : NULL, g.ldres = sh[i].N, g.y = y, g.ldy = sh[i].N, g.y_f32 = sh[i].f32;
            cudaEvent_t e0, e1;
            cudaEventCreate(&e0), cudaEventCreate(&e1);
            const int reps = 60;
            /* variant 0: the decoder's kernel; 1: cuBLASLt, the plain product only (no norm, SwiGLU,
             * residual); with adapters 2: + their terms from a given Zw, 3: + the routing inside */
            const int n_var = n_ad ? 4 : 2, cublas = 1;
            for (int var = 0; var < n_var; var++) {
                hl_status rc = HL_OK;
                for (int r = 0; r < reps + 5 && rc == HL_OK; r++) {
                    if (r == 5)
                        cudaEventRecord(e0, st);
                    g.W = W[r % copies];
                    g.n_route = 0;
                    for (int t = 0; t < 3; t++) {
                        memset(&g.ad[t], 0, sizeof g.ad[t]);
                        memset(&g.route[t], 0, sizeof g.route[t]);
                    }
                    for (int t = 0; var >= 2 && t < n_ad; t++) {
                        const float *A = adb[r % copies] + (size_t)t * ad_floats, *R = A + (size_t)HR * sh[i].K,
                                    *B = R + (size_t)HN * sh[i].K;
                        float *z = zw + (size_t)t * M * HN * HR;
                        g.ad[t] = (hlk_gemv_ad){.zw = z, .B = B, .nr = HN * HR, .r = HR, .d_out = (int)sh[i].N, .ldz = HN * HR};
                        if (var == 3)
                            g.route[g.n_route++] = (hlk_addown_ad){.A = A, .R = R, .nA = 1, .N = HN, .r = HR, .s = 0.5f, .zw = z};
                    }
                    g.route_part = part, g.route_sync = sync;
                    if (var != cublas)
                        rc = hlk_gemv_run(st, &g);
                    else if (gm)
                        rc = hl_cu_linear(gm, st, M, rows, sh[i].K, x, sh[i].K, g.W, HL_DTYPE_BF16, 0.0f, NULL, y, rows);
                }
                cudaEventRecord(e1, st);
                cudaEventSynchronize(e1);
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                const double us = 1e3 * ms / reps, gbs = wbytes / (us * 1e-6) / 1e9;
                const char *vn = var == 0   ? ""
                                 : var == cublas ? " [cuBLASLt, plain]"
                                 : var == 2 ? " [+HydraLoRA, Zw given]"
                                            : " [+HydraLoRA, routed inside]";
                if (rc == HL_OK && (var != cublas || gm))
                    printf("  gemv M=%d %-36s %7.1f us  %6.0f GB/s = %5.1f%% of the copy rate%s\n", M, sh[i].name, us,
                           gbs, 100.0 * gbs / bw, vn);
                else if (rc != HL_OK)
                    printf("  gemv M=%d %s%s: %s\n", M, sh[i].name, vn, hl_last_error());
            }
            cudaEventDestroy(e0), cudaEventDestroy(e1);
        } else {
            printf("  gemv %s: no memory\n", sh[i].name);
        }
        for (int c = 0; c < copies; c++)
            cudaFree(W[c]), cudaFree(adb[c]);
        free(W), free(adb);
        cudaFree(zw), cudaFree(part), cudaFree(sync);
        cudaFree(x), cudaFree(y), cudaFree(res), cudaFree(nw);
    }
    if (gm)
        hl_cu_gemm_free(gm);
    cudaFree(ws);
    cudaStreamDestroy(st);
}

/* --trace FILE: the blocks of one batch-1 step (a build with -DHL_GPU_TRACE), written once. */
static const char *g_trace_file;
#define TRACE_CAP (1u << 19) /* records per traced unit */

static hl_status trace_arm(hlk_trace_rec **buf) {
    if (cudaMalloc((void **)buf, 2 * (size_t)TRACE_CAP * sizeof **buf) != cudaSuccess)
        return hl_fail(HL_ERR_NOMEM, "trace: no device memory for %u records", 2 * TRACE_CAP);
    if (!hlk_trace_arm_gemv(*buf, TRACE_CAP) || !hlk_trace_arm_decode(*buf + TRACE_CAP, TRACE_CAP)) {
        cudaFree(*buf);
        *buf = NULL;
        return hl_fail(HL_ERR_ARG, "trace: not built in (configure with CUDAFLAGS=-DHL_GPU_TRACE)");
    }
    return HL_OK;
}

/* The records of both units as CSV, times in ns from the step's first block; disarms. */
static hl_status trace_write(hlk_trace_rec *buf, const char *path) {
    const unsigned n0 = hlk_trace_count_gemv(), n1 = hlk_trace_count_decode();
    hlk_trace_arm_gemv(NULL, 0), hlk_trace_arm_decode(NULL, 0);
    const unsigned c0 = n0 < TRACE_CAP ? n0 : TRACE_CAP, c1 = n1 < TRACE_CAP ? n1 : TRACE_CAP;
    hlk_trace_rec *h = malloc(2 * (size_t)TRACE_CAP * sizeof *h);
    FILE *f = h ? fopen(path, "w") : NULL;
    if (!f || cudaMemcpy(h, buf, 2 * (size_t)TRACE_CAP * sizeof *h, cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(h);
        if (f)
            fclose(f);
        return hl_fail(HL_ERR_IO, "trace: cannot write %s", path);
    }
    unsigned long long t0 = ~0ull;
    for (unsigned i = 0; i < c0 + c1; i++) {
        const hlk_trace_rec *r = i < c0 ? &h[i] : &h[TRACE_CAP + i - c0];
        if (r->t_start < t0)
            t0 = r->t_start;
    }
    fprintf(f, "kind,n,k,flags,block,smid,t_start,t_waited,t_end\n");
    for (unsigned i = 0; i < c0 + c1; i++) {
        const hlk_trace_rec *r = i < c0 ? &h[i] : &h[TRACE_CAP + i - c0];
        fprintf(f, "%u,%u,%u,%u,%u,%u,%llu,%llu,%llu\n", r->kind, r->n, r->k, r->flags, r->block, r->smid,
                r->t_start - t0, r->t_waited - t0, r->t_end - t0);
    }
    free(h);
    if (fclose(f) != 0)
        return hl_fail(HL_ERR_IO, "trace: cannot write %s", path);
    printf("trace: %u + %u block records of one batch-1 step -> %s%s\n", n0, n1, path,
           n0 > TRACE_CAP || n1 > TRACE_CAP ? " (some lost: buffer full)" : "");
    return HL_OK;
}

/* ms per token of one sequence decoding at `ctx` cached positions. */
static double batch1_ms(hl_backend *be, const hl_model *m, const hl_adapters *ad, int ctx, int steps) {
    hl_decoder *d = NULL;
    if (hl_decoder_create(&d, be, m, ad, 1, ctx + steps + 8, 512) != HL_OK) { /* + 3 warm-up steps, a traced one */
        printf("batch-1 decoder: %s\n", hl_last_error());
        return -1;
    }
    int32_t *ids = malloc((size_t)ctx * sizeof(int32_t)), am = 0;
    for (int i = 0; i < ctx; i++)
        ids[i] = 100 + (i * 37) % 30000;
    hl_status st = HL_OK;
    for (int off = 0; off < ctx && !st; off += 512) {
        int n = ctx - off < 512 ? ctx - off : 512;
        st = hl_decoder_forward(d, ids + off, 1, n, &off, NULL, NULL, 0, &am);
    }
    double t0 = 0;
    for (int s = 0; s < steps + 3 && !st; s++) {
        if (s == 3) {
            t0 = bench_now_s(); /* 3 warm-up steps */
            const char *const *nm;
            double ms[16];
            hl_cuda_decoder_profile(d, &nm, ms, 1); /* reset */
        }
        int pos = ctx + s;
        st = hl_decoder_forward(d, &am, 1, 1, &pos, NULL, NULL, 0, &am);
    }
    double el = bench_now_s() - t0;
    hlk_trace_rec *tbuf = NULL;
    if (g_trace_file && !st && (st = trace_arm(&tbuf)) == HL_OK) { /* one more step, untimed, traced */
        int pos = ctx + steps + 3;
        st = hl_decoder_forward(d, &am, 1, 1, &pos, NULL, NULL, 0, &am);
        if (!st) /* the step has finished: its token is on the host */
            st = trace_write(tbuf, g_trace_file);
        cudaFree(tbuf);
        g_trace_file = NULL;
    }
    print_profile(d, "batch-1 decode", steps);
    free(ids);
    hl_decoder_free(d);
    if (st) {
        printf("batch-1 decode: %s\n", hl_last_error());
        return -1;
    }
    return 1e3 * el / steps;
}

int main(int argc, char **argv) {
    int examples = 0, slots = 256, max_new = 256, layers = 32, chunk = 512, use_ad = 1, b1 = 1, pre_ex = 0, kern = 0;
    const char *dump = NULL, *shared = bench_shared_dir();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--examples") && i + 1 < argc)
            examples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--slots") && i + 1 < argc)
            slots = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-new") && i + 1 < argc)
            max_new = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc)
            layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill-examples") && i + 1 < argc)
            pre_ex = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-adapter"))
            use_ad = 0;
        else if (!strcmp(argv[i], "--no-batch1"))
            b1 = 0;
        else if (!strcmp(argv[i], "--batch1-only"))
            b1 = 2;
        else if (!strcmp(argv[i], "--kernels"))
            kern = 1;
        else if (!strcmp(argv[i], "--dump-prompts") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc)
            shared = argv[++i];
        else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
            g_trace_file = argv[++i];
        else {
            fprintf(stderr,
                    "usage: bench_bbh_gpu [--examples N] [--slots S] [--max-new T] [--layers L] [--chunk C] "
                    "[--prefill-examples N] [--no-adapter] [--no-batch1 | --batch1-only] [--kernels] [--dump-prompts FILE] [--shared DIR] [--trace FILE]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* prompts, exactly as eval bbh builds them */
    char path[4200];
    snprintf(path, sizeof path, "%s/datasets/bbh", shared);
    hl_bbh_set set;
    if (hl_bbh_load(&set, path, NULL) != HL_OK) {
        printf("BBH: %s\n", hl_last_error());
        return 1;
    }
    snprintf(path, sizeof path, "%s/models/llama2c-tokenizer/tokenizer.model", shared);
    hl_tokenizer *tok = NULL;
    if (hl_tokenizer_load(&tok, path) != HL_OK) {
        printf("tokenizer: %s\n", hl_last_error());
        return 1;
    }
    double t0 = bench_now_s();
    long total = 0;
    for (int t = 0; t < HL_BBH_N_TASKS; t++)
        total += set.tasks[t].n_examples;
    work all = {0}, w = {0};
    all.ids = calloc((size_t)total, sizeof *all.ids);
    all.n = calloc((size_t)total, sizeof *all.n);
    all.task = calloc((size_t)total, sizeof *all.task);
    int per_task = examples > 0 ? (examples + HL_BBH_N_TASKS - 1) / HL_BBH_N_TASKS : 1 << 30;
    w.ids = calloc((size_t)total, sizeof *w.ids);
    w.n = calloc((size_t)total, sizeof *w.n);
    long all_tokens = 0, longest = 0, all_to_run = 0, sel_to_run = 0;
    for (int t = 0; t < HL_BBH_N_TASKS; t++) {
        long first = all.count;
        for (int i = 0; i < set.tasks[t].n_examples; i++) {
            char *pr = NULL;
            size_t pl = 0, nt = 0;
            int32_t *ids = NULL;
            if (hl_bbh_build_prompt(&set, t, i, HL_BBH_MODE_COT, HL_BBH_RULE_PAPER, &pr, &pl) != HL_OK ||
                hl_tokenizer_encode(tok, pr, pl, 1, &ids, &nt) != HL_OK) {
                printf("prompt %s #%d: %s\n", hl_bbh_task_name(t), i, hl_last_error());
                return 1;
            }
            free(pr);
            long k = all.count++;
            all.ids[k] = ids;
            all.n[k] = (int)nt;
            all.task[k] = t;
            all_tokens += (long)nt;
            longest = (long)nt > longest ? (long)nt : longest;
            /* tokens to run with prefix reuse: past the common prefix with the task's first prompt */
            long run = (long)nt;
            if (k > first) {
                long lcp = 0;
                while (lcp < all.n[first] && lcp < (long)nt && all.ids[first][lcp] == ids[lcp])
                    lcp++;
                run = (long)nt - (lcp >= (long)nt ? (long)nt - 1 : lcp);
            }
            all_to_run += run;
            if (i < per_task) {
                w.ids[w.count] = ids;
                w.n[w.count] = (int)nt;
                w.count++;
                sel_to_run += run;
            }
        }
    }
    printf("BBH 3-shot CoT (paper rule): %ld prompts of all 27 subtasks, %ld prompt tokens (mean %.0f, longest %ld), "
           "%ld to run with prefix reuse; tokenized in %.1f s\n",
           all.count, all_tokens, (double)all_tokens / (double)all.count, longest, all_to_run, bench_now_s() - t0);
    if (dump) {
        FILE *f = fopen(dump, "w");
        for (long k = 0; f && k < all.count; k++) {
            fprintf(f, "%d", all.task[k]);
            for (int i = 0; i < all.n[k]; i++)
                fprintf(f, " %d", all.ids[k][i]);
            fputc('\n', f);
        }
        if (f)
            fclose(f);
        printf("prompt ids written to %s (first field: subtask index)\n", dump);
    }
    hl_backend *be = NULL;
    if (hl_backend_open(&be, "cuda:0") != HL_OK) {
        printf("skipped: no CUDA device (%s)\n", hl_last_error());
        return 77;
    }
    hl_backend_info info;
    hl_backend_get_info(be, &info);
    printf("device: %s, %.1f GiB\n", info.device, info.mem_total / 1073741824.0);
    double bw = d2d_rate();
    printf("device-to-device copy: %.0f GB/s (read + write)\n", bw);
    if (kern) {
        kernel_rates(bw, 1);
        kernel_rates(bw, 2);
    }

    hl_llama_config cfg;
    hl_synth_shape("7b", &cfg);
    cfg.n_layers = layers;
    t0 = bench_now_s();
    hl_model m;
    if (hl_synth_model(&m, &cfg, HL_DTYPE_BF16, 0)) {
        printf("cannot build the model: %s\n", hl_last_error());
        return 1;
    }
    printf("LLaMA-2-7B shape, %d layers, random bf16 weights (%.2f GB), built in %.1f s\n", layers,
           (double)hl_model_weight_bytes(&m) / 1e9, bench_now_s() - t0);
    hl_adapters ad;
    hl_adapters *adp = NULL;
    if (use_ad) {
        hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT, .r = 8, .n_heads = 4,
                                .alpha = 16.0f, .dropout = 0.0f};
        if (hl_adapters_create(&ad, &m.cfg, &ac, 1) != HL_OK) {
            printf("adapters: %s\n", hl_last_error());
            return 1;
        }
        hl_rng r;
        hl_rng_seed(&r, 3, HL_RNG_STREAM_USER);
        for (size_t i = 0; i < ad.n_params; i++) /* B heads non-zero: the adapter changes the output */
            ad.params[i] = 0.01f * (2.0f * hl_rng_uniform(&r) - 1.0f);
        adp = &ad;
        printf("HydraLoRA r=8 N=4 on gate/up/down (%zu parameters, f32), unmerged, router per token\n", ad.n_params);
    }
    int max_seq = (int)longest + max_new;
    if (max_seq > m.cfg.max_seq_len)
        max_seq = m.cfg.max_seq_len;
    printf("workload: %ld examples (%d per subtask%s), %d new tokens each, %d slots, prefill chunk %d, context %d\n",
           w.count, per_task > 100000 ? -1 : per_task, examples ? "" : ": all", max_new, slots, chunk, max_seq);

    if (b1 != 2) { /* --batch1-only skips both passes */
        /* pass 1: prefill only (one new token per prompt), on every k-th example of the selection
         * when --prefill-examples is smaller (then scaled by tokens to run) */
        long pre = 0, reu = 0;
        size_t bytes = 0;
        work w1 = w;
        long stride = pre_ex > 0 && pre_ex < w.count ? (w.count + pre_ex - 1) / pre_ex : 1;
        long w1_run = 0;
        if (stride > 1) {
            w1.ids = calloc((size_t)w.count, sizeof *w1.ids);
            w1.n = calloc((size_t)w.count, sizeof *w1.n);
            w1.count = 0;
            for (long k = 0; k < w.count; k += stride) {
                w1.ids[w1.count] = w.ids[k];
                w1.n[w1.count++] = w.n[k];
            }
        }
        double tp = run_pass(be, &m, adp, &w1, slots, max_seq, 1, chunk, &pre, &reu, &bytes, 1);
        if (tp < 0)
            return 1;
        w1_run = pre;
        printf("prefill: %ld prompts, %ld prompt tokens run in %.2f s = %.0f tokens/s; prefix reuse %ld of %ld prompt "
               "tokens (hit rate %.1f%%)\n",
               w1.count, pre, tp, pre / tp, reu, pre + reu, 100.0 * reu / (double)(pre + reu));
        printf("RESULT prefill_tok_s=%.0f hit_rate=%.4f\n", pre / tp, reu / (double)(pre + reu));
        const double prefill_rate = pre / tp;
        if (stride > 1) {
            free(w1.ids), free(w1.n);
            printf("  (prefill pass on every %ld-th example; the full pass's prefill time is taken as its tokens to run "
                   "at this rate)\n",
                   stride);
        }
        (void)w1_run;
        /* pass 2: the whole generation */
        double tw = run_pass(be, &m, adp, &w, slots, max_seq, max_new, chunk, &pre, &reu, &bytes, 0);
        if (tw < 0)
            return 1;
        long gen = w.gen_tokens;
        double tpre = (double)pre / prefill_rate; /* this pass's prompt tokens run, at the prefill pass's rate */
        double tdec = tw - tpre > 1e-3 ? tw - tpre : 1e-3;
        printf("  full pass: %ld prompt tokens run (%ld reused), prefill ~%.1f s of it at the measured rate\n", pre, reu,
               tpre);
        printf("generate: %ld examples, %ld new tokens in %.2f s = %.2f examples/s, %.0f new tokens/s overall; decode "
               "alone ~%.0f tokens/s (wall minus the prefill time)\n",
               w.done, gen, tw, w.done / tw, gen / tw, gen / tdec);
        const double gib = 1073741824.0, need = (double)(bytes - kv_pool + kv_peak) / gib;
        printf("memory: decoder %.1f GiB allocated (the KV pool takes the free memory: %.1f GiB); KV cache in use at "
               "the peak %.1f GiB, so weights + adapters + scratch + peak KV = %.1f GiB; device in use %.1f GiB\n",
               bytes / gib, kv_pool / gib, kv_peak / gib, need, mem_used_gib);
        printf("RESULT decode_tok_s=%.0f wall_s=%.2f examples=%ld peak_need_gib=%.1f kv_peak_gib=%.1f\n", gen / tdec, tw,
               w.done, need, kv_peak / gib);
        if (w.count < all.count) {
            double est = tpre * (double)all_to_run / (double)sel_to_run + tdec * (double)all.count / (double)w.count;
            printf("whole set (%ld examples) extrapolated: %.0f s = %.1f min (prefill scaled by tokens to run "
                   "%ld/%ld, decode by examples; an estimate, not a measurement)\n",
                   all.count, est, est / 60, all_to_run, sel_to_run);
            printf("RESULT wall_est_all_s=%.0f\n", est);
        }
    }
    if (b1) {
        int ctx = 1000, steps = 64;
        double ms = batch1_ms(be, &m, adp, ctx, steps);
        if (ms > 0) {
            /* bytes one token reads: every weight except the embedding table (one row of it), the adapter (f32) */
            const double emb = (double)m.cfg.vocab_size * m.cfg.dim * 2.0;
            double wbytes = (double)hl_model_weight_bytes(&m) - emb + m.cfg.dim * 2.0 + (adp ? adp->n_params * 4.0 : 0);
            double kv = 2.0 * m.cfg.n_layers * m.cfg.n_kv_heads * m.cfg.head_dim * 2.0 * (ctx + steps / 2);
            /* the copy moves its bytes twice (read + write): that traffic rate is what HBM sustains,
             * so reading the bytes of one token takes at least bytes / rate */
            double bound = (wbytes + kv) / (bw * 1e9) * 1e3;
            printf("batch 1 at %d positions: %.2f ms/token = %.0f tokens/s; HBM bound %.2f ms (%.2f GB weights+adapter "
                   "+ %.3f GB KV read at %.0f GB/s, the copy's read + write traffic) -> %.1f%% of the bound\n",
                   ctx, ms, 1e3 / ms, bound, wbytes / 1e9, kv / 1e9, bw, 100.0 * bound / ms);
            printf("RESULT batch1_ms=%.3f batch1_bound_pct=%.1f\n", ms, 100.0 * bound / ms);
            /* the same with one part of the decoder switched off (its switch read when a decoder is created) */
            static const struct {
                const char *env, *what;
            } var[] = {{"HL_CUDA_GRAPHS", "with eager launches"},
                       {"HL_CUDA_PDL", "without programmatic dependent launch"},
                       {"HL_CUDA_ROUTE", "with the adapters' routing as its own launch"},
                       {"HL_CUDA_ROUTE_SPLIT", "with a routing job per row of A and R, not per slice"},
                       {"HL_CUDA_ATTN_MERGE", "with the attention's merge as its own launch"},
                       {"HL_CUDA_ATTN_WAVE", "with attention chunks past one wave of blocks"},
                       {"HL_CUDA_ATTN_ROPE", "with RoPE and the cache write as their own launch"},
                       {"HL_CUDA_GU_SPLIT", "with gate/up's adapter terms and SwiGLU inside the product"},
                       {"HL_CUDA_GEMV", "through the general path (cuBLASLt products, separate kernels)"}};
            for (size_t i = 0; i < sizeof var / sizeof var[0]; i++) {
                setenv(var[i].env, "0", 1);
                double mv = batch1_ms(be, &m, adp, ctx, steps);
                unsetenv(var[i].env);
                if (mv > 0)
                    printf("batch 1 %s (%s=0): %.2f ms/token -> %.1f%% of the bound\n", var[i].what, var[i].env, mv,
                           100.0 * bound / mv);
            }
            if (getenv("HL_BENCH_PROFILE")) { /* where the time goes (eager launches, events per phase) */
                setenv("HL_CUDA_PROFILE", "1", 1);
                batch1_ms(be, &m, adp, ctx, steps);
                setenv("HL_CUDA_GEMV", "0", 1);
                batch1_ms(be, &m, adp, ctx, steps);
                unsetenv("HL_CUDA_GEMV");
                unsetenv("HL_CUDA_PROFILE");
            }
        }
    }
    if (adp)
        hl_adapters_free(adp);
    hl_model_free(&m);
    hl_backend_close(be);
    hl_tokenizer_free(tok);
    for (long k = 0; k < all.count; k++)
        free(all.ids[k]);
    free(all.ids), free(all.n), free(all.task), free(w.ids), free(w.n);
    hl_bbh_free(&set);
    return 0;
}
