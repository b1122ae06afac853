/* The decoder's small-batch kernels (core/backend/cuda/k_gemv.cu) against references on the same
 * inputs, one line per case (the test-backend-ops pattern):
 *   hlk_gemv     vs a double-precision CPU product of the 16-bit-rounded inputs: RMSNorm prologue
 *                (x̂ rounded to 16 bits like the separate kernel), adapter terms per output segment,
 *                residual, SwiGLU pairs, f32 output; M = 1 and 2, odd N, K not a multiple of 256,
 *                K = 11008 (LLaMA-2-7B's hidden size) and 16384 (the most a thread keeps). Element-wise tolerance: the output's own
 *                rounding (2^-8 bf16, 2^-11 f16, relative) plus 1e-3 of the row's largest |value|
 *                for f32 accumulation; f32 outputs 1e-4 of the largest |value|.
 *   hlk_addown   Zw = s·softmax(R x̂) ⊗ (A x̂) and ω vs the CPU in double (HydraLoRA with a shared A,
 *                one A per head, plain LoRA without router; with and without RMSNorm; several
 *                chunks): 1e-4 relative; a second launch gives the same bits (block counters reset).
 *   routed gemv  the same adapters routed inside a product (hlk_gemv.n_route): Zw and ω as above,
 *                the outputs with their adapter terms vs double precision, repeat bits.
 *   hlk_rope_kv  vs hlk_rope (q, k) + hlk_kv_write: the same bits in qkv and in the cache rows.
 * Adapter terms are made as large as the products so a missing or misplaced term cannot hide
 * in the tolerance. Exit 77 ("skipped: no CUDA device") without a usable GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend_impl.h"
#include "core/backend/cuda/cuda_decode.h"
#include "core/backend/cuda/cuda_kernels.h"
#include "tests/gpu/gpu_util.h"

static cudaStream_t st;

static float r16(float x, int dt) {
    gpu_round(&x, 1, dt);
    return x;
}

/* x̂ of one row, as the kernels make it (see k_gemv.cu load_row). */
static void ref_norm_row(float *out, const float *x, const float *w, int K, float eps, int dt) {
    double ss = 0.0;
    for (int j = 0; j < K; j++)
        ss += (double)x[j] * x[j];
    float r = (float)(1.0 / sqrt(ss / K + (double)eps));
    for (int j = 0; j < K; j++)
        out[j] = r16(w[j] * (x[j] * r), dt);
}

typedef struct {
    int on, N, r, d_out;
    float *zw, *B; /* host: [M, N·r], [N, d_out, r] */
    float *dzw, *dB;
} tad;

static void tad_make(tad *a, hl_rng *rg, int M, int N, int r, int d_out) {
    memset(a, 0, sizeof *a);
    a->on = 1, a->N = N, a->r = r, a->d_out = d_out;
    size_t nz = (size_t)M * N * r, nb = (size_t)N * d_out * r;
    a->zw = malloc(nz * 4), a->B = malloc(nb * 4);
    gpu_fill(a->zw, nz, rg, 0.0f, 1.0f);
    gpu_fill(a->B, nb, rg, 0.0f, 0.5f);
    a->dzw = gpu_put(a->zw, nz, HL_DTYPE_F32);
    a->dB = gpu_put(a->B, nb, HL_DTYPE_F32);
}
static void tad_free(tad *a) {
    if (!a->on)
        return;
    free(a->zw), free(a->B);
    cudaFree(a->dzw), cudaFree(a->dB);
}
static double tad_term(const tad *a, int m, int64_t o) {
    if (!a || !a->on)
        return 0.0;
    double s = 0.0;
    for (int c = 0; c < a->N * a->r; c++)
        s += (double)a->zw[(size_t)m * a->N * a->r + c] * a->B[((size_t)(c / a->r) * a->d_out + o) * a->r + c % a->r];
    return s;
}
static hlk_gemv_ad tad_dev(const tad *a) {
    hlk_gemv_ad g;
    memset(&g, 0, sizeof g);
    if (a && a->on) {
        g.zw = a->dzw, g.B = a->dB, g.nr = a->N * a->r, g.r = a->r, g.d_out = a->d_out, g.ldz = a->N * a->r;
    }
    return g;
}

/* Compare got against ref element-wise; report the worst ratio |d| / allowed. */
static void cmp_elem(const char *op, int dt, const char *shape, const float *got, const double *ref, int M, int64_t N,
                     int f32_out) {
    const double rel = f32_out ? 0.0 : dt == HL_DTYPE_BF16 ? 1.0 / 256 : 1.0 / 2048;
    const double row_frac = f32_out ? 1e-4 : 1e-3;
    double worst = 0.0, worst_d = 0.0;
    for (int m = 0; m < M; m++) {
        double mx = 0.0;
        for (int64_t o = 0; o < N; o++)
            mx = fabs(ref[m * N + o]) > mx ? fabs(ref[m * N + o]) : mx;
        for (int64_t o = 0; o < N; o++) {
            double d = fabs((double)got[m * N + o] - ref[m * N + o]);
            double allowed = rel * fabs(ref[m * N + o]) + row_frac * mx + 1e-30;
            double q = isfinite(d) ? d / allowed : INFINITY;
            if (!(q <= worst)) {
                worst = q;
                worst_d = d;
            }
        }
    }
    int ok = worst <= 1.0;
    printf("%-26s %-5s %-40s max_abs %9.3e  worst/allowed %6.3f  %s\n", op, gpu_dt_name(dt), shape, worst_d, worst,
           ok ? "PASS" : "FAIL");
    if (ok)
        gpu_passed++;
    else
        gpu_failed++;
}

/* mode 0 plain (+ residual), 1 three segments with adapters 0 and 2 and RMSNorm, 2 SwiGLU with
 * both adapters and RMSNorm, 3 f32 output with RMSNorm (lm_head). */
static void test_gemv(int dt, int mode, int M, int64_t N, int K) {
    hl_rng rg;
    hl_rng_seed(&rg, 100 + mode * 17 + M, 3);
    char shape[96];
    snprintf(shape, sizeof shape, "mode %d M=%d N=%lld K=%d", mode, M, (long long)N, K);
    const int64_t rowsW = mode == 2 ? 2 * N : N;
    float *x = malloc((size_t)M * K * 4), *W = malloc((size_t)rowsW * K * 4), *nw = malloc((size_t)K * 4);
    float *res = malloc((size_t)M * N * 4), *xh = malloc((size_t)M * K * 4), *got = malloc((size_t)M * N * 4);
    double *ref = malloc((size_t)M * N * sizeof(double));
    gpu_fill(x, (size_t)M * K, &rg, 0.1f, 2.0f);
    gpu_fill(W, (size_t)rowsW * K, &rg, 0.0f, 0.05f);
    gpu_fill(nw, (size_t)K, &rg, 1.0f, 0.3f);
    gpu_fill(res, (size_t)M * N, &rg, 0.0f, 1.0f);
    gpu_round(x, (size_t)M * K, dt);
    gpu_round(W, (size_t)rowsW * K, dt);
    gpu_round(res, (size_t)M * N, dt);
    const int norm = mode != 0;
    for (int m = 0; m < M; m++) {
        if (norm)
            ref_norm_row(xh + (size_t)m * K, x + (size_t)m * K, nw, K, 1e-5f, dt);
        else
            memcpy(xh + (size_t)m * K, x + (size_t)m * K, (size_t)K * 4);
    }
    tad ad[3];
    memset(ad, 0, sizeof ad);
    int64_t seg0 = N, seg1 = N;
    if (mode == 1) { /* segments like q | k | v: adapters on the first (N·r = 320: two passes of
                      * the block's 256 threads; B read from global memory), the middle (r = 6: B
                      * read from global memory) and the last (B staged in shared memory) */
        seg0 = N / 2, seg1 = N / 2 + N / 4;
        tad_make(&ad[0], &rg, M, 5, 64, (int)seg0);
        tad_make(&ad[1], &rg, M, 2, 6, (int)(seg1 - seg0));
        tad_make(&ad[2], &rg, M, 3, 4, (int)(N - seg1));
    } else if (mode == 2) {
        tad_make(&ad[0], &rg, M, 4, 8, (int)N);
        tad_make(&ad[1], &rg, M, 2, 16, (int)N);
    }
    for (int m = 0; m < M; m++)
        for (int64_t o = 0; o < N; o++) {
            double s = 0.0;
            for (int j = 0; j < K; j++)
                s += (double)W[o * K + j] * xh[(size_t)m * K + j];
            if (mode == 2) {
                double u = 0.0;
                for (int j = 0; j < K; j++)
                    u += (double)W[(N + o) * K + j] * xh[(size_t)m * K + j];
                float g = r16((float)(s + tad_term(&ad[0], m, o)), dt), uu = r16((float)(u + tad_term(&ad[1], m, o)), dt);
                ref[m * N + o] = (double)(g / (1.0f + expf(-g))) * uu;
            } else if (mode == 1) {
                int t = o < seg0 ? 0 : o < seg1 ? 1 : 2;
                int64_t ol = t == 0 ? o : t == 1 ? o - seg0 : o - seg1;
                ref[m * N + o] = s + tad_term(&ad[t], m, ol);
            } else {
                ref[m * N + o] = s + (mode == 0 ? res[m * N + o] : 0.0);
            }
        }
    void *dx = gpu_put(x, (size_t)M * K, dt), *dW = gpu_put(W, (size_t)rowsW * K, dt), *dres = gpu_put(res, (size_t)M * N, dt);
    float *dn = gpu_put(nw, (size_t)K, HL_DTYPE_F32);
    const int yf32 = mode == 3;
    void *dy = NULL;
    cudaMalloc(&dy, (size_t)M * N * (yf32 ? 4 : 2) + 16);
    hlk_gemv g;
    memset(&g, 0, sizeof g);
    g.M = M, g.K = K, g.dt = dt, g.N = N, g.x = dx, g.ldx = K, g.norm = norm ? dn : NULL, g.eps = 1e-5f, g.W = dW;
    g.swiglu = mode == 2, g.seg[0] = seg0, g.seg[1] = seg1;
    for (int t = 0; t < 3; t++)
        g.ad[t] = tad_dev(&ad[t]);
    g.res = mode == 0 ? dres : NULL, g.ldres = N;
    g.y = dy, g.ldy = N, g.y_f32 = yf32;
    if (!hlk_gemv_supported(dt, M, K, dx, K, dW)) {
        gpu_check(0, "gemv supported", shape);
    } else {
        GPU_CALL("gemv", hlk_gemv_run(st, &g));
        cudaStreamSynchronize(st);
        gpu_get(got, dy, (size_t)M * N, yf32 ? HL_DTYPE_F32 : dt);
        cmp_elem("gemv", dt, shape, got, ref, M, N, yf32);
    }
    for (int t = 0; t < 3; t++)
        tad_free(&ad[t]);
    cudaFree(dx), cudaFree(dW), cudaFree(dres), cudaFree(dn), cudaFree(dy);
    free(x), free(W), free(nw), free(res), free(xh), free(got), free(ref);
}

/* ---- hlk_addown ------------------------------------------------------------------------------ */

typedef struct {
    int nA, N, r, router;
    float s;
} adshape;

/* B [q->N, d_out, q->r] of routed adapter q, random (host copy *hB, device copy *dB), and the
 * descriptor of its term. */
static hlk_gemv_ad routed_term(const hlk_addown_ad *q, int64_t d_out, hl_rng *rg, float **hB, float **dB) {
    const size_t nb = (size_t)q->N * d_out * q->r;
    *hB = malloc(nb * 4);
    gpu_fill(*hB, nb, rg, 0.0f, 0.5f);
    *dB = gpu_put(*hB, nb, HL_DTYPE_F32);
    hlk_gemv_ad g = {.zw = q->zw, .B = *dB, .nr = q->N * q->r, .r = q->r, .d_out = (int)d_out, .ldz = q->N * q->r};
    return g;
}

/* The same adapters routed inside a product (hlk_gemv.n_route): a plain product of N outputs in
 * n_ad segments, adapter t's term on segment t. Zw and ω vs the references of test_addown, the
 * outputs vs a double-precision product plus the reference terms; N = 96·n_ad + 5 (a block per
 * routing job at least) and 21 (3 blocks: several jobs each). Zw starts as NaN, so a block that
 * added its terms before the routing was done fails. Each launch runs twice: the counters are
 * reset, the second gives the same bits. */
static void test_routed(int dt, int M, int K, const float *xh, const void *dx, const float *dn, const hlk_addown *a,
                        float *const *refzw, float *const *refom, hl_rng *rg, const char *shape, int64_t N,
                        int mode) {
    const int n_ad = a->n_ad;
    int64_t seg[3] = {N, N, N};
    for (int t = 0; t + 1 < n_ad; t++)
        seg[t] = N * (t + 1) / n_ad;
    float *W = malloc((size_t)N * K * 4), *got = malloc((size_t)M * N * 4), *got2 = malloc((size_t)M * N * 4);
    double *ref = malloc((size_t)M * N * sizeof(double));
    gpu_fill(W, (size_t)N * K, rg, 0.0f, 0.05f);
    gpu_round(W, (size_t)N * K, dt);
    float *hB[3] = {NULL, NULL, NULL}, *dB[3] = {NULL, NULL, NULL};
    hlk_gemv g;
    memset(&g, 0, sizeof g);
    for (int t = 0; t < n_ad; t++)
        g.ad[t] = routed_term(&a->ad[t], (t < n_ad - 1 ? seg[t] : N) - (t > 0 ? seg[t - 1] : 0), rg, &hB[t], &dB[t]);
    for (int m = 0; m < M; m++)
        for (int64_t o = 0; o < N; o++) {
            double v = 0.0;
            for (int j = 0; j < K; j++)
                v += (double)W[o * K + j] * xh[(size_t)m * K + j];
            int t = 0;
            while (t < 2 && o >= seg[t])
                t++;
            const int64_t ol = o - (t > 0 ? seg[t - 1] : 0);
            const hlk_addown_ad *q = &a->ad[t];
            for (int c = 0; c < q->N * q->r; c++)
                v += (double)refzw[t][(size_t)m * q->N * q->r + c] *
                     hB[t][((size_t)(c / q->r) * g.ad[t].d_out + ol) * q->r + c % q->r];
            ref[m * N + o] = v;
        }
    void *dW = gpu_put(W, (size_t)N * K, dt), *dy = NULL;
    cudaMalloc(&dy, (size_t)M * N * 2);
    g.M = M, g.K = K, g.dt = dt, g.N = N, g.x = dx, g.ldx = K, g.norm = dn, g.eps = 1e-5f, g.W = dW;
    g.seg[0] = seg[0], g.seg[1] = seg[1];
    g.y = dy, g.ldy = N;
    g.n_route = n_ad;
    memcpy(g.route, a->ad, sizeof g.route);
    g.route_part = a->part, g.route_sync = a->count;
    g.route_split = mode > 0;
    float *shifted[3][2] = {{NULL, NULL}, {NULL, NULL}, {NULL, NULL}};
    if (mode == 2) /* A and R one float past a 16-byte boundary: the routing jobs' scalar loads */
        for (int t = 0; t < n_ad; t++) {
            const hlk_addown_ad *q = &a->ad[t];
            const float *src[2] = {q->A, q->R};
            const size_t n[2] = {(size_t)q->nA * q->r * K, (size_t)q->N * K};
            for (int i = 0; i < 2; i++)
                if (src[i]) {
                    cudaMalloc((void **)&shifted[t][i], (n[i] + 1) * 4);
                    cudaMemcpy(shifted[t][i] + 1, src[i], n[i] * 4, cudaMemcpyDeviceToDevice);
                }
            g.route[t].A = shifted[t][0] + 1;
            g.route[t].R = src[1] ? shifted[t][1] + 1 : NULL;
        }
    {
        char s2[160];
        snprintf(s2, sizeof s2, "%s N=%lld %s", shape, (long long)N,
                 mode == 0 ? "job per row" : mode == 1 ? "job per slice" : "job per slice, unaligned rows");
        for (int t = 0; t < n_ad; t++) {
            cudaMemset(a->ad[t].zw, 0xff, (size_t)M * a->ad[t].N * a->ad[t].r * 4); /* NaN */
            cudaMemset(a->ad[t].omega, 0xff, (size_t)M * a->ad[t].N * 4);
        }
        GPU_CALL("gemv routed", hlk_gemv_run(st, &g));
        cudaStreamSynchronize(st);
        gpu_get(got, dy, (size_t)M * N, dt);
        cmp_elem("gemv routed", dt, s2, got, ref, M, N, 0);
        for (int t = 0; t < n_ad; t++) {
            const hlk_addown_ad *q = &a->ad[t];
            size_t nz = (size_t)M * q->N * q->r, no = (size_t)M * q->N;
            float *gz = malloc(nz * 4), *go = malloc(no * 4);
            gpu_get(gz, q->zw, nz, HL_DTYPE_F32);
            gpu_get(go, q->omega, no, HL_DTYPE_F32);
            gpu_cmp_report("gemv routed zw", dt, s2, gz, refzw[t], nz, 1e-4);
            gpu_cmp_report("gemv routed omega", dt, s2, go, refom[t], no, 1e-5);
            free(gz), free(go);
        }
        GPU_CALL("gemv routed again", hlk_gemv_run(st, &g));
        cudaStreamSynchronize(st);
        gpu_get(got2, dy, (size_t)M * N, dt);
        gpu_check(memcmp(got, got2, (size_t)M * N * 4) == 0, "gemv routed repeat", s2);
    }
    for (int t = 0; t < n_ad; t++)
        cudaFree(shifted[t][0]), cudaFree(shifted[t][1]);
    for (int t = 0; t < n_ad; t++)
        free(hB[t]), cudaFree(dB[t]);
    cudaFree(dW), cudaFree(dy);
    free(W), free(got), free(got2), free(ref);
}

/* The first two adapters routed inside a SwiGLU product in pre mode (f32 gate and up, no terms,
 * no block waiting for the routing), then hlk_swiglu_ad adds their terms (gate's and up's) and
 * applies SwiGLU: vs the reference of test_gemv's SwiGLU mode with the reference Zw. Zw starts
 * as NaN; the pair runs twice (the counters were reset: the same bits). */
static void test_routed_swiglu(int dt, int M, int K, const float *xh, const void *dx, const float *dn,
                               const hlk_addown *a, float *const *refzw, hl_rng *rg, const char *shape, int64_t N,
                               int split) {
    float *W = malloc((size_t)2 * N * K * 4), *got = malloc((size_t)M * N * 4), *got2 = malloc((size_t)M * N * 4);
    double *ref = malloc((size_t)M * N * sizeof(double));
    gpu_fill(W, (size_t)2 * N * K, rg, 0.0f, 0.05f);
    gpu_round(W, (size_t)2 * N * K, dt);
    float *hB[2], *dB[2];
    hlk_swiglu_ad sa;
    memset(&sa, 0, sizeof sa);
    for (int t = 0; t < 2; t++)
        sa.ad[t] = routed_term(&a->ad[t], N, rg, &hB[t], &dB[t]);
    for (int m = 0; m < M; m++)
        for (int64_t o = 0; o < N; o++) {
            float gu[2];
            for (int t = 0; t < 2; t++) {
                const hlk_addown_ad *q = &a->ad[t];
                double v = 0.0;
                for (int j = 0; j < K; j++)
                    v += (double)W[(t * N + o) * K + j] * xh[(size_t)m * K + j];
                for (int c = 0; c < q->N * q->r; c++)
                    v += (double)refzw[t][(size_t)m * q->N * q->r + c] * hB[t][((size_t)(c / q->r) * N + o) * q->r + c % q->r];
                gu[t] = r16((float)v, dt);
            }
            ref[m * N + o] = (double)(gu[0] / (1.0f + expf(-gu[0]))) * gu[1];
        }
    void *dW = gpu_put(W, (size_t)2 * N * K, dt), *dy = NULL;
    float *dpre = NULL;
    cudaMalloc(&dy, (size_t)M * N * 2);
    cudaMalloc((void **)&dpre, (size_t)M * 2 * N * 4);
    hlk_gemv g;
    memset(&g, 0, sizeof g);
    g.M = M, g.K = K, g.dt = dt, g.N = N, g.x = dx, g.ldx = K, g.norm = dn, g.eps = 1e-5f, g.W = dW;
    g.swiglu = 1, g.pre = 1, g.seg[0] = g.seg[1] = N;
    g.y = dpre, g.ldy = 2 * N;
    g.n_route = 2;
    memcpy(g.route, a->ad, 2 * sizeof g.route[0]);
    g.route_part = a->part, g.route_sync = a->count;
    g.route_split = split;
    sa.M = M, sa.dt = dt, sa.N = N, sa.pre = dpre, sa.ldp = 2 * N, sa.h = dy, sa.ldh = N;
    char s2[160];
    snprintf(s2, sizeof s2, "%s N=%lld %s", shape, (long long)N, split ? "job per slice" : "job per row");
    for (int rep = 0; rep < 2; rep++) {
        for (int t = 0; t < 2; t++)
            cudaMemset(a->ad[t].zw, 0xff, (size_t)M * a->ad[t].N * a->ad[t].r * 4); /* NaN */
        GPU_CALL("gemv pre routed", hlk_gemv_run(st, &g));
        GPU_CALL("swiglu_ad", hlk_swiglu_ad_run(st, &sa));
        cudaStreamSynchronize(st);
        gpu_get(rep ? got2 : got, dy, (size_t)M * N, dt);
    }
    cmp_elem("gemv pre + swiglu_ad", dt, s2, got, ref, M, N, 0);
    for (int t = 0; t < 2; t++) {
        const size_t nz = (size_t)M * a->ad[t].N * a->ad[t].r;
        float *gz = malloc(nz * 4);
        gpu_get(gz, a->ad[t].zw, nz, HL_DTYPE_F32);
        gpu_cmp_report("gemv pre routed zw", dt, s2, gz, refzw[t], nz, 1e-4);
        free(gz);
    }
    gpu_check(memcmp(got, got2, (size_t)M * N * 4) == 0, "gemv pre + swiglu_ad repeat", s2);
    for (int t = 0; t < 2; t++)
        free(hB[t]), cudaFree(dB[t]);
    cudaFree(dW), cudaFree(dy), cudaFree(dpre);
    free(W), free(got), free(got2), free(ref);
}

static void test_addown(int dt, int M, int K, int norm, int n_ad, const adshape *sh) {
    hl_rng rg;
    hl_rng_seed(&rg, 500 + M * 7 + K + norm, 3);
    char shape[96];
    snprintf(shape, sizeof shape, "M=%d K=%d norm=%d adapters=%d", M, K, norm, n_ad);
    float *x = malloc((size_t)M * K * 4), *nw = malloc((size_t)K * 4), *xh = malloc((size_t)M * K * 4);
    gpu_fill(x, (size_t)M * K, &rg, 0.1f, 2.0f);
    gpu_fill(nw, (size_t)K, &rg, 1.0f, 0.3f);
    gpu_round(x, (size_t)M * K, dt);
    for (int m = 0; m < M; m++) {
        if (norm)
            ref_norm_row(xh + (size_t)m * K, x + (size_t)m * K, nw, K, 1e-5f, dt);
        else
            memcpy(xh + (size_t)m * K, x + (size_t)m * K, (size_t)K * 4);
    }
    void *dx = gpu_put(x, (size_t)M * K, dt);
    float *dn = gpu_put(nw, (size_t)K, HL_DTYPE_F32);
    const int chunk = 128, max_chunks = (K + chunk - 1) / chunk;
    int cmax = 1;
    for (int t = 0; t < n_ad; t++)
        cmax = sh[t].nA * sh[t].r + sh[t].N > cmax ? sh[t].nA * sh[t].r + sh[t].N : cmax;
    float *part = NULL;
    unsigned *count = NULL;
    { /* the routed products share it (test_routed) */
        const size_t pa = hlk_addown_part_floats(n_ad, cmax, max_chunks),
                     pr = hlk_gemv_route_part_floats(M, n_ad * cmax, K, 1);
        cudaMalloc((void **)&part, (pa > pr ? pa : pr) * 4);
    }
    cudaMalloc((void **)&count, HLK_GEMV_SYNC * sizeof(unsigned));
    cudaMemset(count, 0, HLK_GEMV_SYNC * sizeof(unsigned));
    hlk_addown a;
    memset(&a, 0, sizeof a);
    a.M = M, a.K = K, a.dt = dt, a.x = dx, a.ldx = K, a.norm = norm ? dn : NULL, a.eps = 1e-5f;
    a.n_ad = n_ad, a.part = part, a.count = count, a.chunk = chunk, a.max_chunks = max_chunks, a.cmax = cmax;
    float *hA[3], *hR[3], *refzw[3], *refom[3];
    for (int t = 0; t < n_ad; t++) {
        const adshape *q = &sh[t];
        size_t na = (size_t)q->nA * q->r * K, nr = (size_t)q->N * K;
        hA[t] = malloc(na * 4), hR[t] = malloc(nr * 4);
        gpu_fill(hA[t], na, &rg, 0.0f, 0.05f);
        gpu_fill(hR[t], nr, &rg, 0.0f, 0.05f);
        a.ad[t].A = gpu_put(hA[t], na, HL_DTYPE_F32);
        a.ad[t].R = q->router ? gpu_put(hR[t], nr, HL_DTYPE_F32) : NULL;
        a.ad[t].nA = q->nA, a.ad[t].N = q->N, a.ad[t].r = q->r, a.ad[t].s = q->s;
        cudaMalloc((void **)&a.ad[t].zw, (size_t)M * q->N * q->r * 4);
        cudaMalloc((void **)&a.ad[t].omega, (size_t)M * q->N * 4);
        refzw[t] = malloc((size_t)M * q->N * q->r * 4);
        refom[t] = malloc((size_t)M * q->N * 4);
        for (int m = 0; m < M; m++) {
            const float *xr = xh + (size_t)m * K;
            double z[4096], lg[64];
            for (int c = 0; c < q->nA * q->r; c++) {
                double s = 0;
                for (int j = 0; j < K; j++)
                    s += (double)hA[t][(size_t)c * K + j] * xr[j];
                z[c] = s;
            }
            double mx = -1e300, sum = 0;
            for (int i = 0; i < q->N; i++) {
                double s = 0;
                for (int j = 0; j < K; j++)
                    s += (double)hR[t][(size_t)i * K + j] * xr[j];
                lg[i] = s;
                mx = s > mx ? s : mx;
            }
            for (int i = 0; i < q->N; i++)
                sum += q->router ? exp(lg[i] - mx) : 1.0;
            for (int i = 0; i < q->N; i++) {
                double om = q->router ? exp(lg[i] - mx) / sum : 1.0 / q->N;
                refom[t][(size_t)m * q->N + i] = (float)om;
                for (int k = 0; k < q->r; k++)
                    refzw[t][((size_t)m * q->N + i) * q->r + k] = (float)(q->s * om * z[(q->nA > 1 ? i : 0) * q->r + k]);
            }
        }
    }
    GPU_CALL("addown", hlk_addown_run(st, &a));
    cudaStreamSynchronize(st);
    for (int t = 0; t < n_ad; t++) {
        const adshape *q = &sh[t];
        size_t nz = (size_t)M * q->N * q->r, no = (size_t)M * q->N;
        float *gz = malloc(nz * 4), *go = malloc(no * 4), *gz2 = malloc(nz * 4);
        gpu_get(gz, a.ad[t].zw, nz, HL_DTYPE_F32);
        gpu_get(go, a.ad[t].omega, no, HL_DTYPE_F32);
        char s2[160];
        snprintf(s2, sizeof s2, "%s #%d nA=%d N=%d r=%d%s", shape, t, q->nA, q->N, q->r, q->router ? "" : " no-router");
        gpu_cmp_report("addown zw", dt, s2, gz, refzw[t], nz, 1e-4);
        gpu_cmp_report("addown omega", dt, s2, go, refom[t], no, 1e-5);
        /* again: the counters were reset, the result is the same bits */
        cudaMemset(a.ad[t].zw, 0, nz * 4);
        GPU_CALL("addown again", hlk_addown_run(st, &a));
        cudaStreamSynchronize(st);
        gpu_get(gz2, a.ad[t].zw, nz, HL_DTYPE_F32);
        gpu_check(memcmp(gz, gz2, nz * 4) == 0, "addown repeat", s2);
        free(gz), free(go), free(gz2);
    }
    for (int mode = 0; mode < 3; mode++) { /* a routing job per row, per slice, per slice of unaligned rows */
        test_routed(dt, M, K, xh, dx, norm ? dn : NULL, &a, refzw, refom, &rg, shape, 96 * n_ad + 5, mode);
        test_routed(dt, M, K, xh, dx, norm ? dn : NULL, &a, refzw, refom, &rg, shape, 21, mode);
    }
    if (n_ad >= 2)
        for (int split = 0; split < 2; split++) {
            test_routed_swiglu(dt, M, K, xh, dx, norm ? dn : NULL, &a, refzw, &rg, shape, 300, split);
            test_routed_swiglu(dt, M, K, xh, dx, norm ? dn : NULL, &a, refzw, &rg, shape, 5, split); /* fewer blocks than jobs */
        }
    for (int t = 0; t < n_ad; t++) {
        cudaFree((void *)a.ad[t].A), cudaFree((void *)a.ad[t].R), cudaFree(a.ad[t].zw), cudaFree(a.ad[t].omega);
        free(hA[t]), free(hR[t]), free(refzw[t]), free(refom[t]);
    }
    cudaFree(dx), cudaFree(dn), cudaFree(part), cudaFree(count);
    free(x), free(nw), free(xh);
}

/* ---- hlk_rope_kv -------------------------------------------------------------------------------- */

static void test_rope_kv(int dt, int M, int H, int Hkv, int hd) {
    hl_rng rg;
    hl_rng_seed(&rg, 900 + M + H, 3);
    char shape[96];
    snprintf(shape, sizeof shape, "M=%d H=%d Hkv=%d hd=%d", M, H, Hkv, hd);
    const int Dq = H * hd, Dkv = Hkv * hd, Dqkv = Dq + 2 * Dkv, S = 64, half = hd / 2, pool_rows = 40;
    float *qkv = malloc((size_t)M * Dqkv * 4), *ct = malloc((size_t)S * half * 4), *sn = malloc((size_t)S * half * 4);
    gpu_fill(qkv, (size_t)M * Dqkv, &rg, 0.0f, 1.0f);
    for (int p = 0; p < S; p++)
        for (int j = 0; j < half; j++) {
            double th = p * pow(10000.0, -2.0 * j / hd);
            ct[p * half + j] = (float)cos(th), sn[p * half + j] = (float)sin(th);
        }
    int32_t pos[8], rows[8];
    for (int m = 0; m < M; m++)
        pos[m] = 3 + 7 * m, rows[m] = (5 * m + 2) % pool_rows;
    void *a = gpu_put(qkv, (size_t)M * Dqkv, dt), *b = gpu_put(qkv, (size_t)M * Dqkv, dt);
    float *dct = gpu_put(ct, (size_t)S * half, HL_DTYPE_F32), *dsn = gpu_put(sn, (size_t)S * half, HL_DTYPE_F32);
    int32_t *dpos = gpu_put_bytes(pos, sizeof pos), *drows = gpu_put_bytes(rows, sizeof rows);
    size_t pool = (size_t)pool_rows * Dkv * 2;
    void *k1 = NULL, *v1 = NULL, *k2 = NULL, *v2 = NULL;
    cudaMalloc(&k1, pool), cudaMalloc(&v1, pool), cudaMalloc(&k2, pool), cudaMalloc(&v2, pool);
    cudaMemset(k1, 0, pool), cudaMemset(v1, 0, pool), cudaMemset(k2, 0, pool), cudaMemset(v2, 0, pool);
    GPU_CALL("rope q", hlk_rope(st, a, Dqkv, M, H, hd, dpos, dct, dsn, 0, dt));
    GPU_CALL("rope k", hlk_rope(st, (char *)a + (size_t)Dq * 2, Dqkv, M, Hkv, hd, dpos, dct, dsn, 0, dt));
    GPU_CALL("kv_write", hlk_kv_write(st, k1, v1, (char *)a + (size_t)Dq * 2, (char *)a + (size_t)(Dq + Dkv) * 2, Dqkv,
                                      drows, M, Dkv, dt));
    GPU_CALL("rope_kv", hlk_rope_kv(st, b, Dqkv, M, H, Hkv, hd, dpos, dct, dsn, k2, v2, drows, dt, 0));
    cudaStreamSynchronize(st);
    size_t nq = (size_t)M * Dqkv * 2;
    char *ha = malloc(nq), *hb = malloc(nq), *hp1 = malloc(pool), *hp2 = malloc(pool);
    cudaMemcpy(ha, a, nq, cudaMemcpyDeviceToHost), cudaMemcpy(hb, b, nq, cudaMemcpyDeviceToHost);
    gpu_check(memcmp(ha, hb, nq) == 0, "rope_kv qkv", shape);
    cudaMemcpy(hp1, k1, pool, cudaMemcpyDeviceToHost), cudaMemcpy(hp2, k2, pool, cudaMemcpyDeviceToHost);
    int kok = memcmp(hp1, hp2, pool) == 0;
    cudaMemcpy(hp1, v1, pool, cudaMemcpyDeviceToHost), cudaMemcpy(hp2, v2, pool, cudaMemcpyDeviceToHost);
    gpu_check(kok && memcmp(hp1, hp2, pool) == 0, "rope_kv cache rows", shape);
    cudaFree(a), cudaFree(b), cudaFree(dct), cudaFree(dsn), cudaFree(dpos), cudaFree(drows);
    cudaFree(k1), cudaFree(v1), cudaFree(k2), cudaFree(v2);
    free(qkv), free(ct), free(sn), free(ha), free(hb), free(hp1), free(hp2);
}

int main(void) {
    if (hl_backend_cuda_ops.probe(0) != HL_OK) {
        printf("skipped: no CUDA device (%s)\n", hl_last_error());
        return 77;
    }
    cudaSetDevice(0);
    cudaStreamCreate(&st);
    const int dts[2] = {HL_DTYPE_BF16, HL_DTYPE_F16};
    for (int i = 0; i < 2; i++) {
        const int dt = dts[i];
        const int Ms[2] = {1, 2};
        for (int k = 0; k < 2; k++) {
            test_gemv(dt, 0, Ms[k], 1003, 4104);
            test_gemv(dt, 1, Ms[k], 1024, 1024);
            test_gemv(dt, 1, Ms[k], 1000, 1024); /* segments that start inside a block's 8 rows */
            test_gemv(dt, 2, Ms[k], 600, 1024);
        }
        test_gemv(dt, 3, 1, 5000, 4096);
        test_gemv(dt, 3, 2, 777, 4096);
        test_gemv(dt, 0, 1, 300, 11008); /* 6 pieces of x̂ per thread (LLaMA-2-7B's hidden size) */
        test_gemv(dt, 2, 2, 136, 11008);
        test_gemv(dt, 2, 1, 136, 11008);
        test_gemv(dt, 1, 2, 520, 16384);  /* the most a thread keeps (8 pieces) */
        test_gemv(dt, 1, 1, 520, 16384);
        const adshape hydra = {1, 4, 8, 1, 2.0f}, split = {4, 4, 8, 1, 0.5f}, lora = {1, 1, 16, 0, 1.0f};
        const adshape three[3] = {hydra, split, lora};
        test_addown(dt, 1, 4096, 1, 2, three);
        test_addown(dt, 2, 11008, 0, 1, three);
        test_addown(dt, 1, 4096, 1, 3, three);
        test_addown(dt, 2, 1000, 0, 3, three); /* K not a multiple of the chunk */
        /* N·r = 64 and r = 6: hlk_swiglu_ad loads their terms one after another */
        const adshape wide = {1, 8, 8, 1, 1.0f}, odd = {1, 3, 6, 1, 0.5f}, wide_odd[2] = {wide, odd};
        test_addown(dt, 2, 4096, 1, 2, wide_odd);
        test_rope_kv(dt, 1, 4, 2, 64);
        test_rope_kv(dt, 8, 32, 32, 128); /* any number of rows */
    }
    return gpu_finish();
}
