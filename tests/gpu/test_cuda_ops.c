/* Every CUDA kernel (and its backward) against the CPU engine's function on the same inputs, in
 * the pattern of llama.cpp's test-backend-ops: random inputs, the GPU result and the CPU result
 * (core/backend/cpu/ops.h, core/adapter/adapter.h, core/adapter/optim.h, core/backend/cpu/gemm.h) compared, one line per case. 16-bit
 * cases give the CPU the 16-bit-rounded inputs, so the difference is the GPU's own rounding
 * (outputs stored in 16 bits, probabilities rounded for the tensor cores). Tolerances are
 * max|gpu − cpu| / max|cpu|: f32 1e-5, bf16 2e-2, f16 5e-3 (gpu_util.h); adapter gradients and
 * router weights are f32 on both sides and held to 1e-5 in every dtype.
 * Exit 77 ("skipped: no CUDA device") without a usable GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/adapter/adapter.h"
#include "core/backend/backend_impl.h"
#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/gemm_lt.h"
#include "core/backend/cpu/cpu_adamw.h"
#include "core/backend/cpu/cpu_adapter.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/ops.h"
#include "core/adapter/optim.h"
#include "tests/gpu/gpu_util.h"

static cudaStream_t st;
static hl_cu_gemm *gm;

/* ---- RMSNorm ------------------------------------------------------------------------------- */

static void test_rmsnorm(int dt, int64_t M, int D) {
    hl_rng r;
    hl_rng_seed(&r, 11 + D, 1);
    char shape[64];
    snprintf(shape, sizeof shape, "M=%lld D=%d", (long long)M, D);
    size_t n = (size_t)(M * D);
    float *x = malloc(n * 4), *w = malloc((size_t)D * 4), *out = malloc(n * 4), *got = malloc(n * 4);
    float *rstd = malloc((size_t)M * 4), *grstd = malloc((size_t)M * 4), *dy = malloc(n * 4), *dx = malloc(n * 4);
    gpu_fill(x, n, &r, 0.1f, 2.0f);
    gpu_fill(w, (size_t)D, &r, 1.0f, 0.2f);
    gpu_fill(dy, n, &r, 0.0f, 1.0f);
    gpu_fill(dx, n, &r, 0.0f, 1.0f);
    gpu_round(x, n, dt);
    gpu_round(dy, n, dt);
    gpu_round(dx, n, dt);
    void *dX = gpu_put(x, n, dt), *dOut = gpu_put(x, n, dt), *dDy = gpu_put(dy, n, dt), *dDx = gpu_put(dx, n, dt);
    float *dW = gpu_put(w, (size_t)D, HL_DTYPE_F32), *dR = gpu_put(w, (size_t)M, HL_DTYPE_F32);
    GPU_CALL("rmsnorm_fwd", hlk_rmsnorm_fwd(st, dOut, dR, dX, dW, M, D, 1e-5f, dt));
    hl_rmsnorm_forward(out, rstd, x, w, M, D, 1e-5f);
    gpu_get(got, dOut, n, dt);
    gpu_get(grstd, dR, (size_t)M, HL_DTYPE_F32);
    gpu_cmp_report("rmsnorm_fwd", dt, shape, got, out, n, gpu_tol(dt));
    gpu_cmp_report("rmsnorm_fwd rstd", dt, shape, grstd, rstd, (size_t)M, 1e-6);
    /* backward, accumulating into dx, from the CPU's rstd */
    cudaMemcpy(dR, rstd, (size_t)M * 4, cudaMemcpyHostToDevice);
    GPU_CALL("rmsnorm_bwd", hlk_rmsnorm_bwd(st, dDx, 1, dDy, dX, dW, dR, M, D, dt));
    hl_rmsnorm_backward(dx, NULL, dy, x, w, rstd, M, D);
    gpu_get(got, dDx, n, dt);
    gpu_cmp_report("rmsnorm_bwd (+=)", dt, shape, got, dx, n, gpu_tol(dt));
    cudaFree(dX), cudaFree(dOut), cudaFree(dDy), cudaFree(dDx), cudaFree(dW), cudaFree(dR);
    free(x), free(w), free(out), free(got), free(rstd), free(grstd), free(dy), free(dx);
}

/* ---- rows: embedding, gather/scatter, conversions (exact copies) ------------------------------ */

static void test_rows(int dt) {
    const int V = 50, D = 37;
    const int64_t M = 20;
    hl_rng r;
    hl_rng_seed(&r, 5, 1);
    float *tab = malloc((size_t)V * D * 4), *got = malloc((size_t)M * D * 4), *ref = calloc((size_t)M * D, 4);
    gpu_fill(tab, (size_t)V * D, &r, 0.0f, 3.0f);
    gpu_round(tab, (size_t)V * D, dt);
    int32_t tok[20], rows[20];
    for (int m = 0; m < M; m++)
        tok[m] = (int32_t)hl_rng_below(&r, V), rows[m] = (int32_t)((m * 7) % M);
    void *dtab = gpu_put(tab, (size_t)V * D, dt), *dx = gpu_put(ref, (size_t)M * D, dt), *dy = gpu_put(ref, (size_t)M * D, dt);
    int32_t *dtok = gpu_put_bytes(tok, sizeof tok), *drows = gpu_put_bytes(rows, sizeof rows);
    GPU_CALL("embed", hlk_embed(st, dx, dtab, dt, dtok, M, D));
    for (int m = 0; m < M; m++)
        memcpy(ref + m * D, tab + (size_t)tok[m] * D, (size_t)D * 4);
    gpu_get(got, dx, (size_t)M * D, dt);
    gpu_check(!memcmp(got, ref, (size_t)M * D * 4), "embed", "rows copied exactly");
    GPU_CALL("gather_rows", hlk_gather_rows(st, dy, dx, drows, M, D, dt));
    gpu_get(got, dy, (size_t)M * D, dt);
    int ok = 1;
    for (int m = 0; m < M; m++)
        ok &= !memcmp(got + m * D, ref + (size_t)rows[m] * D, (size_t)D * 4);
    gpu_check(ok, "gather_rows", "dst[i] = src[rows[i]]");
    GPU_CALL("scatter_rows", hlk_scatter_rows(st, dx, dy, drows, M, D, dt));
    gpu_get(got, dx, (size_t)M * D, dt);
    gpu_check(!memcmp(got, ref, (size_t)M * D * 4), "scatter_rows", "scatter undoes gather (rows a permutation)");
    float *df = NULL;
    cudaMalloc((void **)&df, (size_t)M * D * 4);
    GPU_CALL("to_f32", hlk_to_f32(st, df, dx, dt, M * D));
    GPU_CALL("f32_to", hlk_f32_to(st, dy, dt, df, M * D));
    gpu_get(got, dy, (size_t)M * D, dt);
    gpu_check(!memcmp(got, ref, (size_t)M * D * 4), "to_f32 / f32_to", "round trip exact");
    cudaFree(dtab), cudaFree(dx), cudaFree(dy), cudaFree(dtok), cudaFree(drows), cudaFree(df);
    free(tab), free(got), free(ref);
}

/* ---- RoPE ---------------------------------------------------------------------------------- */

static void test_rope(int dt, int H, int hd) {
    const int T = 96;
    const int64_t M = 80, ld = H * hd + 40; /* a strided view, like q inside qkv */
    char shp[64];
    snprintf(shp, sizeof shp, "M=80 H=%d hd=%d ld=%lld", H, hd, (long long)ld);
    hl_rng r;
    hl_rng_seed(&r, 21, 1);
    hl_rope_table rt;
    hl_rope_table_init(&rt, T, hd, 10000.0f);
    int32_t pos[80];
    for (int64_t m = 0; m < M; m++) /* packed examples: 0..29, 0..9, padding (−1 uses position 0), 0.. */
        pos[m] = m < 30 ? (int)m : m < 40 ? (int)(m - 30) : m < 45 ? -1 : (int)(m - 45);
    size_t nb = (size_t)(M * ld), nc = (size_t)(M * H * hd);
    float *buf = malloc(nb * 4), *ref = malloc(nc * 4), *got = malloc(nb * 4);
    gpu_fill(buf, nb, &r, 0.0f, 1.0f);
    gpu_round(buf, nb, dt);
    for (int64_t m = 0; m < M; m++)
        memcpy(ref + m * H * hd, buf + m * ld, (size_t)(H * hd) * 4);
    void *d = gpu_put(buf, nb, dt);
    float *dc = gpu_put(rt.cos, (size_t)(T * hd / 2), HL_DTYPE_F32), *ds = gpu_put(rt.sin, (size_t)(T * hd / 2), HL_DTYPE_F32);
    int32_t *dp = gpu_put_bytes(pos, sizeof pos);
    int cpos[80];
    for (int64_t m = 0; m < M; m++)
        cpos[m] = pos[m] > 0 ? pos[m] : 0;
    GPU_CALL("rope_fwd", hlk_rope(st, d, ld, M, H, hd, dp, dc, ds, 0, dt));
    hl_rope_forward(ref, M, H, hd, cpos, &rt);
    gpu_get(got, d, nb, dt);
    double ma, rm;
    gpu_cmp2(got, ld, ref, H * hd, M, H * hd, &ma, &rm);
    gpu_report("rope_fwd (packed pos)", dt, shp, ma, rm, gpu_tol(dt));
    /* the part of each row outside the view is untouched */
    int untouched = 1;
    float *orig = malloc(nb * 4);
    hl_rng_seed(&r, 21, 1);
    gpu_fill(orig, nb, &r, 0.0f, 1.0f);
    gpu_round(orig, nb, dt);
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = H * hd; j < ld; j++)
            untouched &= got[m * ld + j] == orig[m * ld + j];
    gpu_check(untouched, "rope_fwd", "columns outside the view unchanged");
    /* backward = rotation by −θ: CPU hl_rope_backward_bt (positions 0..M−1) */
    int32_t lin[80];
    for (int m = 0; m < 80; m++)
        lin[m] = m;
    cudaMemcpy(dp, lin, sizeof lin, cudaMemcpyHostToDevice);
    hl_rope_table rt2;
    hl_rope_table_init(&rt2, (int)M, hd, 10000.0f);
    cudaFree(dc), cudaFree(ds);
    dc = gpu_put(rt2.cos, (size_t)(M * hd / 2), HL_DTYPE_F32), ds = gpu_put(rt2.sin, (size_t)(M * hd / 2), HL_DTYPE_F32);
    cudaFree(d);
    d = gpu_put(orig, nb, dt);
    for (int64_t m = 0; m < M; m++)
        memcpy(ref + m * H * hd, orig + m * ld, (size_t)(H * hd) * 4);
    GPU_CALL("rope_bwd", hlk_rope(st, d, ld, M, H, hd, dp, dc, ds, 1, dt));
    hl_rope_backward_bt(ref, 1, (int)M, H, hd, 0, &rt2);
    gpu_get(got, d, nb, dt);
    gpu_cmp2(got, ld, ref, H * hd, M, H * hd, &ma, &rm);
    gpu_report("rope_bwd", dt, shp, ma, rm, gpu_tol(dt));
    cudaFree(d), cudaFree(dc), cudaFree(ds), cudaFree(dp);
    hl_rope_table_free(&rt), hl_rope_table_free(&rt2);
    free(buf), free(ref), free(got), free(orig);
}

/* ---- SwiGLU -------------------------------------------------------------------------------- */

static void test_swiglu(int dt, int64_t M, int64_t F) {
    char shp[64];
    snprintf(shp, sizeof shp, "M=%lld F=%lld", (long long)M, (long long)F);
    hl_rng r;
    hl_rng_seed(&r, 31, 1);
    size_t n = (size_t)(M * F);
    float *gu = malloc(2 * n * 4), *g = malloc(n * 4), *u = malloc(n * 4), *h = malloc(n * 4), *dh = malloc(n * 4);
    float *got = malloc(2 * n * 4);
    gpu_fill(gu, 2 * n, &r, 0.0f, 4.0f);
    gpu_fill(dh, n, &r, 0.0f, 1.0f);
    gpu_round(gu, 2 * n, dt);
    gpu_round(dh, n, dt);
    for (int64_t m = 0; m < M; m++) {
        memcpy(g + m * F, gu + m * 2 * F, (size_t)F * 4);
        memcpy(u + m * F, gu + m * 2 * F + F, (size_t)F * 4);
    }
    void *dgu = gpu_put(gu, 2 * n, dt), *dhh = gpu_put(h, n, dt), *ddh = gpu_put(dh, n, dt);
    GPU_CALL("swiglu_fwd", hlk_swiglu_fwd(st, dhh, dgu, M, (int)F, dt));
    hl_swiglu_forward(h, g, u, (int64_t)n);
    gpu_get(got, dhh, n, dt);
    gpu_cmp_report("swiglu_fwd", dt, shp, got, h, n, gpu_tol(dt));
    GPU_CALL("swiglu_bwd", hlk_swiglu_bwd(st, dgu, ddh, M, (int)F, dt));
    hl_swiglu_backward_inplace(g, u, dh, (int64_t)n);
    gpu_get(got, dgu, 2 * n, dt);
    double ma, rm, ma2, rm2;
    gpu_cmp2(got, 2 * F, g, F, M, F, &ma, &rm);
    gpu_cmp2(got + F, 2 * F, u, F, M, F, &ma2, &rm2);
    gpu_report("swiglu_bwd dg", dt, shp, ma, rm, gpu_tol(dt));
    gpu_report("swiglu_bwd du", dt, shp, ma2, rm2, gpu_tol(dt));
    cudaFree(dgu), cudaFree(dhh), cudaFree(ddh);
    free(gu), free(g), free(u), free(h), free(dh), free(got);
}

/* ---- cross-entropy with ignored labels -------------------------------------------------------- */

static void test_cross_entropy(int dt) {
    const int R = 29, V = 1000;
    hl_rng r;
    hl_rng_seed(&r, 41, 1);
    float *lg = malloc((size_t)R * V * 4), *dl = malloc((size_t)R * V * 4), *got = malloc((size_t)R * V * 4);
    int tg[29];
    gpu_fill(lg, (size_t)R * V, &r, 0.0f, 6.0f);
    for (int i = 0; i < R; i++)
        tg[i] = i % 5 == 2 ? -100 : (int)hl_rng_below(&r, V);
    const float scale = 0.37f;
    int64_t cnt = 0;
    double ref = hl_cross_entropy(dl, lg, tg, R, V, scale, &cnt);
    /* the GPU kernel takes the counted rows (the session gathers them) */
    float *cl = malloc((size_t)R * V * 4), *cref = malloc((size_t)R * V * 4);
    int32_t ct[29];
    int n = 0;
    for (int i = 0; i < R; i++)
        if (tg[i] >= 0) {
            memcpy(cl + (size_t)n * V, lg + (size_t)i * V, (size_t)V * 4);
            memcpy(cref + (size_t)n * V, dl + (size_t)i * V, (size_t)V * 4);
            ct[n++] = tg[i];
        }
    float *dlog = gpu_put(cl, (size_t)n * V, HL_DTYPE_F32);
    void *dgrad = dt == HL_DTYPE_F32 ? (void *)dlog : gpu_put(cl, (size_t)n * V, dt);
    int32_t *dtg = gpu_put_bytes(ct, sizeof ct);
    double *dloss = NULL, hl[29];
    cudaMalloc((void **)&dloss, sizeof hl);
    GPU_CALL("cross_entropy", hlk_cross_entropy(st, dlog, dgrad, dt, dtg, n, V, scale, dloss));
    cudaDeviceSynchronize();
    cudaMemcpy(hl, dloss, (size_t)n * 8, cudaMemcpyDeviceToHost);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += hl[i];
    gpu_check(n == cnt, "cross_entropy", "counted rows = rows without -100");
    gpu_report("cross_entropy loss sum", dt, "rows=29 (6 ignored) V=1000", fabs(sum - ref), fabs(ref), 1e-6);
    gpu_get(got, dgrad, (size_t)n * V, dt);
    gpu_cmp_report("cross_entropy dlogits", dt, "rows=23 V=1000", got, cref, (size_t)n * V, gpu_tol(dt));
    if (dgrad != dlog)
        cudaFree(dgrad);
    cudaFree(dlog), cudaFree(dtg), cudaFree(dloss);
    free(lg), free(dl), free(got), free(cl), free(cref);
}

/* ---- attention over packed examples ------------------------------------------------------------ */

typedef struct {
    const char *name;
    int dt, H, Hkv, hd, B, T, n_seq;
    int start[8], len[8];
} attn_case;

static void test_attention(const attn_case *c) {
    const int64_t M = (int64_t)c->B * c->T, Dq = (int64_t)c->H * c->hd, Dkv = (int64_t)c->Hkv * c->hd;
    const int64_t Dqkv = Dq + 2 * Dkv;
    const int dt = c->dt;
    hl_rng r;
    hl_rng_seed(&r, 51 + (uint64_t)c->hd * 7 + (uint64_t)c->T, 1);
    float *qkv = malloc((size_t)(M * Dqkv) * 4), *dout = malloc((size_t)(M * Dq) * 4);
    gpu_fill(qkv, (size_t)(M * Dqkv), &r, 0.0f, 2.0f);
    gpu_fill(dout, (size_t)(M * Dq), &r, 0.0f, 1.0f);
    gpu_round(qkv, (size_t)(M * Dqkv), dt);
    gpu_round(dout, (size_t)(M * Dq), dt);
    /* host reference: contiguous q/k/v, one CPU call per example */
    float *q = calloc((size_t)(M * Dq), 4), *k = calloc((size_t)(M * Dkv), 4), *v = calloc((size_t)(M * Dkv), 4);
    for (int64_t m = 0; m < M; m++) {
        memcpy(q + m * Dq, qkv + m * Dqkv, (size_t)Dq * 4);
        memcpy(k + m * Dkv, qkv + m * Dqkv + Dq, (size_t)Dkv * 4);
        memcpy(v + m * Dkv, qkv + m * Dqkv + Dq + Dkv, (size_t)Dkv * 4);
    }
    float *o = calloc((size_t)(M * Dq), 4), *lse = calloc((size_t)(c->H * M), 4), *dq = calloc((size_t)(M * Dq), 4);
    float *dk = calloc((size_t)(M * Dkv), 4), *dv = calloc((size_t)(M * Dkv), 4);
    int32_t *pos = malloc((size_t)M * 4), *send = malloc((size_t)M * 4);
    int32_t bs[256], bl[256], bo[256];
    int nb = 0;
    for (int64_t m = 0; m < M; m++)
        pos[m] = -1, send[m] = (int32_t)(m + 1);
    for (int e = 0; e < c->n_seq; e++) {
        int s0 = c->start[e], L = c->len[e];
        for (int i = 0; i < L; i++)
            pos[s0 + i] = i, send[s0 + i] = s0 + L;
        for (int off = 0; off < L; off += HLK_ATTN_BLOCK)
            bs[nb] = s0, bl[nb] = L, bo[nb] = off, nb++;
        hl_attn_dims ad = {.B = 1, .Tq = L, .Tk = L, .n_heads = c->H, .n_kv_heads = c->Hkv, .head_dim = c->hd, .lanes = 1};
        float *S = malloc((size_t)hl_attention_scratch_floats(&ad) * 4), *L1 = malloc((size_t)(c->H * L) * 4);
        hl_attention_forward(o + s0 * Dq, L1, q + s0 * Dq, k + s0 * Dkv, v + s0 * Dkv, &ad, S);
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < L; i++)
                lse[(int64_t)h * M + s0 + i] = L1[h * L + i];
        /* the CPU's dk/dv accumulate: they start at 0 */
        hl_attention_backward(dq + s0 * Dq, dk + s0 * Dkv, dv + s0 * Dkv, dout + s0 * Dq, o + s0 * Dq, L1, q + s0 * Dq,
                              k + s0 * Dkv, v + s0 * Dkv, &ad, S);
        free(S), free(L1);
    }
    /* the GPU: q/k/v inside one qkv buffer (row stride Dqkv), as the session keeps them */
    void *dQKV = gpu_put(qkv, (size_t)(M * Dqkv), dt), *dO = gpu_put(o, (size_t)(M * Dq), dt);
    void *dDout = gpu_put(dout, (size_t)(M * Dq), dt), *dG = gpu_put(qkv, (size_t)(M * Dqkv), dt);
    float *dL = gpu_put(lse, (size_t)(c->H * M), HL_DTYPE_F32), *dD = gpu_put(lse, (size_t)(c->H * M), HL_DTYPE_F32);
    int32_t *dpos = gpu_put_bytes(pos, (size_t)M * 4), *dsend = gpu_put_bytes(send, (size_t)M * 4);
    int32_t *dbs = gpu_put_bytes(bs, (size_t)nb * 4), *dbl = gpu_put_bytes(bl, (size_t)nb * 4);
    int32_t *dbo = gpu_put_bytes(bo, (size_t)nb * 4);
    size_t es = hl_dtype_size((hl_dtype)dt);
    cudaMemset(dO, 0, (size_t)(M * Dq) * es);
    cudaMemset(dG, 0, (size_t)(M * Dqkv) * es);
    hlk_attn a = {.M = M, .H = c->H, .Hkv = c->Hkv, .hd = c->hd, .dt = dt, .q = dQKV,
                  .k = (char *)dQKV + (size_t)Dq * es, .v = (char *)dQKV + (size_t)(Dq + Dkv) * es,
                  .ldq = Dqkv, .ldk = Dqkv, .ldv = Dqkv, .pos = dpos, .send = dsend, .n_blk = nb,
                  .blk_start = dbs, .blk_len = dbl, .blk_off = dbo};
    char shape[96];
    snprintf(shape, sizeof shape, "%s %s H=%d/%d hd=%d", c->name, hlk_attn_tensor_cores(&a) ? "mma" : "simt", c->H,
             c->Hkv, c->hd);
    GPU_CALL("attn_fwd", hlk_attn_fwd(st, &a, dO, Dq, dL));
    float *got = malloc((size_t)(M * Dqkv) * 4), *gl = malloc((size_t)(c->H * M) * 4);
    gpu_get(got, dO, (size_t)(M * Dq), dt);
    gpu_get(gl, dL, (size_t)(c->H * M), HL_DTYPE_F32);
    gpu_cmp_report("attn_fwd out", dt, shape, got, o, (size_t)(M * Dq), gpu_tol(dt));
    double ma = 0, rm = 0;
    for (int64_t h = 0; h < c->H; h++)
        for (int64_t m = 0; m < M; m++)
            if (pos[m] >= 0) {
                double d = fabs(gl[h * M + m] - lse[h * M + m]);
                ma = d > ma || isnan(d) ? (isnan(d) ? INFINITY : d) : ma;
                rm = fabs(lse[h * M + m]) > rm ? fabs(lse[h * M + m]) : rm;
            }
    gpu_report("attn_fwd lse", dt, shape, ma, rm, dt == HL_DTYPE_F32 ? 1e-5 : 1e-3);
    /* backward from the CPU's O and lse (only the backward is under test here) */
    float *o16 = malloc((size_t)(M * Dq) * 4);
    memcpy(o16, o, (size_t)(M * Dq) * 4);
    gpu_round(o16, (size_t)(M * Dq), dt);
    cudaFree(dO);
    dO = gpu_put(o16, (size_t)(M * Dq), dt);
    cudaMemcpy(dL, lse, (size_t)(c->H * M) * 4, cudaMemcpyHostToDevice);
    GPU_CALL("attn_bwd", hlk_attn_bwd(st, &a, dO, Dq, dDout, Dq, dL, dD, dG, Dqkv, (char *)dG + (size_t)Dq * es, Dqkv,
                                      (char *)dG + (size_t)(Dq + Dkv) * es, Dqkv));
    gpu_get(got, dG, (size_t)(M * Dqkv), dt);
    gpu_cmp2(got, Dqkv, dq, Dq, M, Dq, &ma, &rm);
    gpu_report("attn_bwd dq", dt, shape, ma, rm, gpu_tol(dt));
    gpu_cmp2(got + Dq, Dqkv, dk, Dkv, M, Dkv, &ma, &rm);
    gpu_report("attn_bwd dk", dt, shape, ma, rm, gpu_tol(dt));
    gpu_cmp2(got + Dq + Dkv, Dqkv, dv, Dkv, M, Dkv, &ma, &rm);
    gpu_report("attn_bwd dv", dt, shape, ma, rm, gpu_tol(dt));
    /* padding rows stay untouched (the session zeroes them first), and a second run gives the same bits */
    int pad_ok = 1;
    for (int64_t m = 0; m < M; m++)
        if (pos[m] < 0)
            for (int64_t j = 0; j < Dqkv; j++)
                pad_ok &= got[m * Dqkv + j] == 0.0f;
    gpu_check(pad_ok, "attn_bwd", "padding rows not written");
    float *again = malloc((size_t)(M * Dqkv) * 4);
    cudaMemset(dG, 0, (size_t)(M * Dqkv) * es);
    GPU_CALL("attn_bwd", hlk_attn_bwd(st, &a, dO, Dq, dDout, Dq, dL, dD, dG, Dqkv, (char *)dG + (size_t)Dq * es, Dqkv,
                                      (char *)dG + (size_t)(Dq + Dkv) * es, Dqkv));
    gpu_get(again, dG, (size_t)(M * Dqkv), dt);
    char what[128];
    snprintf(what, sizeof what, "%s: backward twice, same bits", c->name);
    gpu_check(!memcmp(again, got, (size_t)(M * Dqkv) * 4), "attn_bwd determinism", what);
    cudaFree(dQKV), cudaFree(dO), cudaFree(dDout), cudaFree(dG), cudaFree(dL), cudaFree(dD);
    cudaFree(dpos), cudaFree(dsend), cudaFree(dbs), cudaFree(dbl), cudaFree(dbo);
    free(qkv), free(dout), free(q), free(k), free(v), free(o), free(lse), free(dq), free(dk), free(dv);
    free(pos), free(send), free(got), free(gl), free(o16), free(again);
}

/* ---- adapters ---------------------------------------------------------------------------------- */

static void test_adapter(hl_variant variant, int N, int r, int dt) {
    static const char *names[] = {"hydra", "lora", "lora-split", "uniform"};
    const int64_t M = 70;
    const int d_in = 96, d_out = 160, ldy = d_out + 24;
    hl_llama_config mc = {.dim = d_in, .hidden_dim = d_out, .n_layers = 1, .n_heads = 4, .n_kv_heads = 4,
                          .head_dim = d_in / 4, .vocab_size = 10, .max_seq_len = 16};
    hl_adapter_config ac = {.variant = variant, .targets = HL_TARGET_GATE, .r = r, .n_heads = N, .alpha = 2.0f * r,
                            .dropout = 0.1f};
    hl_adapters ad;
    if (hl_adapters_create(&ad, &mc, &ac, 99) != HL_OK) {
        printf("adapter setup failed: %s\n", hl_last_error());
        gpu_failed++;
        return;
    }
    const hl_adapter_proj *p = hl_adapters_proj(&ad, 0, 4);
    hl_rng rg;
    hl_rng_seed(&rg, 61 + (uint64_t)variant, 1);
    gpu_fill(ad.params, ad.n_params, &rg, 0.0f, 0.3f); /* B non-zero so that every gradient is */
    gpu_fill(ad.grads, ad.n_params, &rg, 0.0f, 0.01f);   /* gradients accumulate onto this */
    float *g0 = malloc(ad.n_params * 4);
    memcpy(g0, ad.grads, ad.n_params * 4);
    const int NN = ad.N, nA = ad.nA, zr = nA * r;
    float *X = malloc((size_t)M * d_in * 4), *Y = malloc((size_t)M * ldy * 4), *G = malloc((size_t)M * ldy * 4);
    float *dX = malloc((size_t)M * d_in * 4), *Yc = malloc((size_t)M * d_out * 4), *Gc = malloc((size_t)M * d_out * 4);
    float *Z = malloc((size_t)M * zr * 4), *W = malloc((size_t)M * NN * 4);
    gpu_fill(X, (size_t)M * d_in, &rg, 0.0f, 1.0f);
    gpu_fill(Y, (size_t)M * ldy, &rg, 0.0f, 1.0f);
    gpu_fill(G, (size_t)M * ldy, &rg, 0.0f, 1.0f);
    gpu_fill(dX, (size_t)M * d_in, &rg, 0.0f, 1.0f);
    gpu_round(X, (size_t)M * d_in, dt), gpu_round(Y, (size_t)M * ldy, dt), gpu_round(G, (size_t)M * ldy, dt);
    gpu_round(dX, (size_t)M * d_in, dt);
    for (int64_t m = 0; m < M; m++) {
        memcpy(Yc + m * d_out, Y + m * ldy, (size_t)d_out * 4);
        memcpy(Gc + m * d_out, G + m * ldy, (size_t)d_out * 4);
    }
    /* device copies before the CPU changes anything */
    void *dXd = gpu_put(X, (size_t)M * d_in, dt), *dYd = gpu_put(Y, (size_t)M * ldy, dt);
    void *dGd = gpu_put(G, (size_t)M * ldy, dt), *ddX = gpu_put(dX, (size_t)M * d_in, dt);
    float *dparams = gpu_put(ad.params, ad.n_params, HL_DTYPE_F32), *dgrads = gpu_put(ad.grads, ad.n_params, HL_DTYPE_F32);
    float *dZ = gpu_put(Z, (size_t)M * zr, HL_DTYPE_F32), *dW = gpu_put(W, (size_t)M * NN, HL_DTYPE_F32);
    hlk_adapter a = {.M = M, .d_in = d_in, .d_out = d_out, .N = NN, .r = r, .nA = nA, .has_router = ad.has_router,
                     .dt = dt, .scale = ad.scale};
    a.A = dparams + (p->A - ad.params), a.B = dparams + (p->B - ad.params);
    a.R = p->R ? dparams + (p->R - ad.params) : NULL;
    a.dA = dgrads + (p->dA - ad.grads), a.dB = dgrads + (p->dB - ad.grads);
    a.dR = p->dR ? dgrads + (p->dR - ad.grads) : NULL;
    cudaMalloc((void **)&a.zw, (size_t)M * NN * r * 4);
    cudaMalloc((void **)&a.p, (size_t)M * NN * r * 4);
    cudaMalloc((void **)&a.dz, (size_t)M * zr * 4);
    cudaMalloc((void **)&a.dl, (size_t)M * NN * 4);
    cudaMalloc((void **)&a.partials, hlk_adapter_partial_floats(&a) * 4);
    cudaMalloc((void **)&a.bt, (size_t)NN * r * d_out * 4);
    size_t sz16[5];
    hlk_adapter16_sizes(M, d_in, d_out, NN, r, nA, ad.has_router, sz16);
    const size_t es = hl_dtype_size((hl_dtype)dt);
    a.gemm = gm;
    cudaMalloc(&a.h, sz16[0] * es + 16), cudaMalloc((void **)&a.fp, sz16[1] * 4 + 16);
    cudaMalloc(&a.hp, sz16[2] * es + 16), cudaMalloc(&a.wsp, sz16[3] * es + 16);
    cudaMalloc((void **)&a.gp, sz16[4] * 4 + 16);
    /* routing statistics over the valid rows (every 7th row is padding) */
    unsigned char valid[70];
    int32_t pos[70];
    for (int m = 0; m < M; m++)
        valid[m] = m % 7 != 3, pos[m] = valid[m] ? m : -1;
    hl_routing_stats cst;
    hl_routing_stats_init(&cst, 1, NN);
    hl_dropout drop = {hl_rng_hash(12345, 678), 0.1f};
    hlk_drop gdrop = {drop.key, drop.p};
    float *scratch = malloc((size_t)hl_adapter_scratch_floats(&ad, M, d_in, d_out) * 4);
    hl_adapter_forward(&ad, p, Yc, X, M, Z, W, drop, ad.has_router ? &cst : NULL, valid, scratch);
    GPU_CALL("adapter_fwd", hl_cu_adapter_fwd(st, &a, gdrop, dYd, ldy, dXd, d_in, dZ, dW));
    char shape[96];
    snprintf(shape, sizeof shape, "%s N=%d r=%d M=70 %dx%d drop=0.1", names[variant], NN, r, d_in, d_out);
    float *got = malloc((size_t)M * ldy * 4);
    gpu_get(got, dYd, (size_t)M * ldy, dt);
    double ma, rm;
    gpu_cmp2(got, ldy, Yc, d_out, M, d_out, &ma, &rm);
    gpu_report("adapter_fwd y", dt, shape, ma, rm, gpu_tol(dt));
    gpu_get(got, dZ, (size_t)M * zr, HL_DTYPE_F32);
    gpu_cmp_report("adapter_fwd Z (f32)", dt, shape, got, Z, (size_t)M * zr, 1e-5);
    gpu_get(got, dW, (size_t)M * NN, HL_DTYPE_F32);
    gpu_cmp_report("adapter_fwd router w (f32)", dt, shape, got, W, (size_t)M * NN, 1e-5);
    if (ad.has_router) {
        int64_t *dtok, *dtop;
        double *dws, *dent;
        cudaMalloc((void **)&dtok, 8), cudaMalloc((void **)&dtop, (size_t)NN * 8);
        cudaMalloc((void **)&dws, (size_t)NN * 8), cudaMalloc((void **)&dent, 8);
        cudaMemset(dtok, 0, 8), cudaMemset(dtop, 0, (size_t)NN * 8), cudaMemset(dws, 0, (size_t)NN * 8), cudaMemset(dent, 0, 8);
        int32_t *dpos = gpu_put_bytes(pos, sizeof pos);
        GPU_CALL("route_stats", hlk_route_stats(st, dW, dpos, M, NN, dtok, dws, dtop, dent));
        cudaDeviceSynchronize();
        int64_t tok = 0, top[64];
        double ws[64], ent = 0;
        cudaMemcpy(&tok, dtok, 8, cudaMemcpyDeviceToHost), cudaMemcpy(top, dtop, (size_t)NN * 8, cudaMemcpyDeviceToHost);
        cudaMemcpy(ws, dws, (size_t)NN * 8, cudaMemcpyDeviceToHost), cudaMemcpy(&ent, dent, 8, cudaMemcpyDeviceToHost);
        int same_top = tok == cst.tokens[4];
        double wma = 0, wrm = 0;
        for (int i = 0; i < NN; i++) {
            same_top &= top[i] == cst.top1[4 * NN + i];
            wma = fmax(wma, fabs(ws[i] - cst.weight_sum[4 * NN + i]));
            wrm = fmax(wrm, fabs(cst.weight_sum[4 * NN + i]));
        }
        gpu_check(same_top, "route_stats", "tokens and top-1 counts equal the CPU's");
        gpu_report("route_stats weight sums", dt, shape, wma, wrm, 1e-5);
        gpu_report("route_stats entropy sum", dt, shape, fabs(ent - cst.entropy_sum[4]), fabs(cst.entropy_sum[4]), 1e-5);
        cudaFree(dtok), cudaFree(dtop), cudaFree(dws), cudaFree(dent), cudaFree(dpos);
    }
    /* backward from the CPU's Z, ω (so the backward alone is compared) */
    cudaMemcpy(dZ, Z, (size_t)M * zr * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dW, W, (size_t)M * NN * 4, cudaMemcpyHostToDevice);
    hl_adapter_backward(&ad, p, dX, Gc, X, M, Z, W, drop, scratch);
    GPU_CALL("adapter_bwd", hl_cu_adapter_bwd(st, &a, gdrop, ddX, d_in, dGd, ldy, dXd, d_in, dZ, dW));
    gpu_get(got, ddX, (size_t)M * d_in, dt);
    gpu_cmp_report("adapter_bwd dx (+=)", dt, shape, got, dX, (size_t)M * d_in, gpu_tol(dt));
    float *gg = malloc(ad.n_params * 4);
    gpu_get(gg, dgrads, ad.n_params, HL_DTYPE_F32);
    /* compare the gradient increments per tensor */
    const float *parts[3] = {p->dA, p->dB, p->dR};
    const size_t lens[3] = {(size_t)nA * r * d_in, (size_t)NN * d_out * r, p->dR ? (size_t)NN * d_in : 0};
    const char *pn[3] = {"adapter_bwd dA (f32)", "adapter_bwd dB (f32)", "adapter_bwd dR (f32)"};
    for (int i = 0; i < 3; i++) {
        if (!lens[i])
            continue;
        size_t o = (size_t)(parts[i] - ad.grads);
        float *inc_c = malloc(lens[i] * 4), *inc_g = malloc(lens[i] * 4);
        for (size_t j = 0; j < lens[i]; j++)
            inc_c[j] = ad.grads[o + j] - g0[o + j], inc_g[j] = gg[o + j] - g0[o + j];
        gpu_cmp_report(pn[i], dt, shape, inc_g, inc_c, lens[i], dt == HL_DTYPE_F32 ? 1e-5 : 2e-5);
        free(inc_c), free(inc_g);
    }
    /* deterministic: the same backward again adds the same increment */
    float *gg2 = malloc(ad.n_params * 4);
    cudaMemcpy(dgrads, g0, ad.n_params * 4, cudaMemcpyHostToDevice);
    GPU_CALL("adapter_bwd", hl_cu_adapter_bwd(st, &a, gdrop, ddX, d_in, dGd, ldy, dXd, d_in, dZ, dW));
    gpu_get(gg2, dgrads, ad.n_params, HL_DTYPE_F32);
    gpu_check(!memcmp(gg, gg2, ad.n_params * 4), "adapter_bwd determinism", shape);
    cudaFree(dXd), cudaFree(dYd), cudaFree(dGd), cudaFree(ddX), cudaFree(dparams), cudaFree(dgrads), cudaFree(dZ);
    cudaFree(dW), cudaFree(a.zw), cudaFree(a.p), cudaFree(a.dz), cudaFree(a.dl), cudaFree(a.partials), cudaFree(a.bt);
    cudaFree(a.h), cudaFree(a.fp), cudaFree(a.hp), cudaFree(a.wsp), cudaFree(a.gp);
    free(X), free(Y), free(G), free(dX), free(Yc), free(Gc), free(Z), free(W), free(got), free(gg), free(gg2), free(g0);
    free(scratch);
    hl_routing_stats_free(&cst);
    hl_adapters_free(&ad);
}

/* The dropout mask itself: GPU hash = CPU hash for many (key, index) pairs. */
static void test_dropout_mask(void) {
    /* a pass-through adapter-down with A = identity rows reads back mask ⊙ x·1/(1−p) */
    const int64_t M = 64;
    const int K = 200, n = 1;
    float *x = malloc((size_t)M * K * 4), *w = calloc((size_t)K, 4), *got = malloc((size_t)M * 4);
    for (int64_t i = 0; i < M * K; i++)
        x[i] = (float)((i % K) == 17); /* only column 17 is non-zero */
    w[17] = 1.0f;
    void *dx = gpu_put(x, (size_t)M * K, HL_DTYPE_F32);
    float *dw = gpu_put(w, (size_t)K, HL_DTYPE_F32), *dout = NULL;
    cudaMalloc((void **)&dout, (size_t)M * 4);
    hlk_wview wv = {dw, n, 1, K, 0, 1}, none = {NULL, 0, 1, 0, 0, 0};
    hlk_drop d = {0x0123456789abcdefull, 0.3f};
    GPU_CALL("ad_down mask", hlk_ad_down(st, dx, K, HL_DTYPE_F32, M, K, wv, d, dout, none, NULL));
    gpu_get(got, dout, (size_t)M, HL_DTYPE_F32);
    int same = 1;
    for (int64_t m = 0; m < M; m++) {
        float keep = hl_rng_hash_uniform(d.key, (uint64_t)m * K + 17) >= d.p ? 1.0f / (1.0f - d.p) : 0.0f;
        same &= got[m] == keep;
    }
    gpu_check(same, "dropout mask", "GPU hash mask = CPU hash mask (64 rows)");
    cudaFree(dx), cudaFree(dw), cudaFree(dout);
    free(x), free(w), free(got);
}

/* ---- router softmax ------------------------------------------------------------------------------ */

static void test_router_softmax(void) {
    const int64_t M = 50;
    const int N = 6, r = 2;
    hl_rng rg;
    hl_rng_seed(&rg, 71, 1);
    float *L = malloc((size_t)M * N * 4), *ref = malloc((size_t)M * N * 4), *got = malloc((size_t)M * N * 4);
    gpu_fill(L, (size_t)M * N, &rg, 0.0f, 8.0f);
    hl_softmax_forward(ref, L, M, N);
    float *dL = gpu_put(L, (size_t)M * N, HL_DTYPE_F32), *dZ = NULL, *dZw = NULL;
    cudaMalloc((void **)&dZ, (size_t)M * r * 4), cudaMalloc((void **)&dZw, (size_t)M * N * r * 4);
    cudaMemset(dZ, 0, (size_t)M * r * 4);
    GPU_CALL("route_fwd", hlk_ad_route_fwd(st, dL, dZ, dZw, M, N, r, 1, 1.0f, 1));
    gpu_get(got, dL, (size_t)M * N, HL_DTYPE_F32);
    gpu_cmp_report("router softmax (f32)", HL_DTYPE_F32, "M=50 N=6", got, ref, (size_t)M * N, 1e-6);
    cudaFree(dL), cudaFree(dZ), cudaFree(dZw);
    free(L), free(ref), free(got);
}

/* ---- AdamW with clipping ------------------------------------------------------------------------- */

static void test_adamw(void) {
    const size_t n = 100003;
    hl_rng rg;
    hl_rng_seed(&rg, 81, 1);
    float *p = malloc(n * 4), *g = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4);
    gpu_fill(p, n, &rg, 0.0f, 1.0f);
    gpu_fill(g, n, &rg, 0.0f, 0.05f); /* norm ≈ 9: clipping to 1 is active */
    gpu_fill(m, n, &rg, 0.0f, 0.01f);
    gpu_fill(v, n, &rg, 0.001f, 0.001f);
    float *dp = gpu_put(p, n, HL_DTYPE_F32), *dg = gpu_put(g, n, HL_DTYPE_F32), *dm = gpu_put(m, n, HL_DTYPE_F32);
    float *dv = gpu_put(v, n, HL_DTYPE_F32);
    double *part = NULL;
    cudaMalloc((void **)&part, (HLK_NORM_PARTS + 1) * 8);
    hl_optim_config oc = hl_optim_defaults();
    oc.weight_decay = 0.01f;
    oc.clip_norm = 1.0f;
    const int64_t t = 3;
    const float lr = 1e-3f;
    double cnorm = 0;
    hl_adamw_step(p, g, m, v, n, t, lr, &oc, &cnorm);
    GPU_CALL("sumsq", hlk_sumsq(st, dg, n, part, part + HLK_NORM_PARTS));
    double ss = 0;
    cudaDeviceSynchronize();
    cudaMemcpy(&ss, part + HLK_NORM_PARTS, 8, cudaMemcpyDeviceToHost);
    double norm = sqrt(ss);
    gpu_report("grad norm (double)", HL_DTYPE_F32, "n=100003", fabs(norm - cnorm), cnorm, 1e-12);
    /* the host part of the step, as the session computes it (core/adapter/optim.c) */
    float gscale = 1.0f;
    double coef = (double)oc.clip_norm / (norm + 1e-6);
    if (coef < 1.0)
        gscale = (float)coef;
    const double bc1 = 1.0 - pow((double)oc.beta1, (double)t), bc2 = 1.0 - pow((double)oc.beta2, (double)t);
    GPU_CALL("adamw", hlk_adamw(st, dp, dg, dm, dv, n, gscale, 1.0f - lr * oc.weight_decay, oc.beta1, oc.beta2,
                                (float)((double)lr / bc1), (float)sqrt(bc2), oc.eps));
    float *got = malloc(n * 4);
    gpu_get(got, dp, n, HL_DTYPE_F32);
    gpu_cmp_report("adamw params (clip on)", HL_DTYPE_F32, "n=100003 t=3 wd=0.01", got, p, n, 1e-6);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += got[i] == p[i];
    char what[96];
    snprintf(what, sizeof what, "params bit-identical to the CPU: %zu of %zu", same, n);
    gpu_check(same * 1000 >= n * 999, "adamw", what);
    gpu_get(got, dm, n, HL_DTYPE_F32);
    gpu_cmp_report("adamw m", HL_DTYPE_F32, "n=100003", got, m, n, 1e-6);
    gpu_get(got, dv, n, HL_DTYPE_F32);
    gpu_cmp_report("adamw v", HL_DTYPE_F32, "n=100003", got, v, n, 1e-6);
    gpu_get(got, dg, n, HL_DTYPE_F32);
    gpu_cmp_report("adamw clipped grads", HL_DTYPE_F32, "n=100003", got, g, n, 1e-6);
    cudaFree(dp), cudaFree(dg), cudaFree(dm), cudaFree(dv), cudaFree(part);
    free(p), free(g), free(m), free(v), free(got);
}

/* ---- cuBLASLt products --------------------------------------------------------------------------- */

static void test_gemm(hl_cu_gemm *gm, int dt, int64_t M, int64_t N, int64_t K) {
    char shp[64];
    snprintf(shp, sizeof shp, "%lldx%lldx%lld", (long long)M, (long long)N, (long long)K);
    hl_rng rg;
    hl_rng_seed(&rg, 91, 1);
    float *X = malloc((size_t)(M * K) * 4), *W = malloc((size_t)(N * K) * 4), *C = malloc((size_t)(M * N) * 4);
    const size_t big = (size_t)(M * (N > K ? N : K)); /* `got` holds either product */
    float *Y = malloc((size_t)(M * N) * 4), *got = malloc(big * 4), *dX = malloc((size_t)(M * K) * 4);
    gpu_fill(X, (size_t)(M * K), &rg, 0.0f, 1.0f);
    gpu_fill(W, (size_t)(N * K), &rg, 0.0f, 1.0f);
    gpu_fill(C, (size_t)(M * N), &rg, 0.0f, 1.0f);
    gpu_round(X, (size_t)(M * K), dt), gpu_round(W, (size_t)(N * K), dt), gpu_round(C, (size_t)(M * N), dt);
    void *dXp = gpu_put(X, (size_t)(M * K), dt), *dW = gpu_put(W, (size_t)(N * K), dt), *dC = gpu_put(C, (size_t)(M * N), dt);
    void *dY = gpu_put(C, (size_t)(M * N), dt);
    /* Y = C + X·Wᵀ (C and Y different buffers) */
    memcpy(Y, C, (size_t)(M * N) * 4);
    hl_sgemm(0, 1, M, N, K, 1.0f, X, K, W, K, 1.0f, Y, N);
    GPU_CALL("linear", hl_cu_linear(gm, st, M, N, K, dXp, K, dW, dt, 1.0f, dC, dY, N));
    gpu_get(got, dY, (size_t)(M * N), dt);
    gpu_cmp_report("linear y=c+x*Wt", dt, shp, got, Y, (size_t)(M * N), gpu_tol(dt));
    /* dX = dY·W */
    hl_sgemm(0, 0, M, K, N, 1.0f, C, N, W, K, 0.0f, dX, K);
    void *ddX = gpu_put(X, (size_t)(M * K), dt);
    GPU_CALL("linear_dx", hl_cu_linear_dx(gm, st, M, N, K, dC, N, dW, dt, 0.0f, ddX, K));
    gpu_get(got, ddX, (size_t)(M * K), dt);
    gpu_cmp_report("linear_dx dx=dy*W", dt, shp, got, dX, (size_t)(M * K), gpu_tol(dt));
    /* transposed A, f32 output from 16-bit inputs (the logits path) */
    float *ref = malloc((size_t)(K * N) * 4), *Cf = NULL;
    hl_sgemm(1, 0, K, N, M, 1.0f, X, K, C, N, 0.0f, ref, N);
    cudaMalloc((void **)&Cf, (size_t)(K * N) * 4);
    hl_cu_mat A = {dXp, dt, K, 1}, B = {dC, dt, N, 0};
    GPU_CALL("gemm ta", hl_cu_gemm_run(gm, st, K, N, M, 1.0f, A, B, 0.0f, NULL, Cf, HL_DTYPE_F32, N));
    float *g2 = malloc((size_t)(K * N) * 4);
    gpu_get(g2, Cf, (size_t)(K * N), HL_DTYPE_F32);
    gpu_cmp_report("gemm xT*c -> f32", dt, shp, g2, ref, (size_t)(K * N), 1e-5);
    /* the logits product: x·Wᵀ with f32 output from any dtype */
    float *lref = malloc((size_t)(M * N) * 4), *lgot = malloc((size_t)(M * N) * 4), *Lf = NULL;
    hl_sgemm(0, 1, M, N, K, 1.0f, X, K, W, K, 0.0f, lref, N);
    cudaMalloc((void **)&Lf, (size_t)(M * N) * 4);
    hl_cu_mat A2 = {dXp, dt, K, 0}, B2 = {dW, dt, K, 1};
    GPU_CALL("gemm logits", hl_cu_gemm_run(gm, st, M, N, K, 1.0f, A2, B2, 0.0f, NULL, Lf, HL_DTYPE_F32, N));
    gpu_get(lgot, Lf, (size_t)(M * N), HL_DTYPE_F32);
    gpu_cmp_report("gemm x*Wt -> f32", dt, shp, lgot, lref, (size_t)(M * N), 1e-5);
    cudaFree(Lf);
    free(lref), free(lgot);
    cudaFree(dXp), cudaFree(dW), cudaFree(dC), cudaFree(dY), cudaFree(ddX), cudaFree(Cf);
    free(X), free(W), free(C), free(Y), free(got), free(dX), free(ref), free(g2);
}

int main(void) {
    if (hl_backend_cuda_ops.probe(0) != HL_OK) {
        printf("skipped: no CUDA device (%s)\n", hl_last_error());
        return 77;
    }
    cudaSetDevice(0);
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("device: %s (compute %d.%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    cudaStreamCreate(&st);
    hl_set_threads(1); /* CPU references single-threaded: fixed summation order */
    void *ws = NULL;
    cudaMalloc(&ws, HL_CU_GEMM_WORKSPACE);
    GPU_CALL("gemm create", hl_cu_gemm_create(&gm, ws, HL_CU_GEMM_WORKSPACE));
    const int dts[3] = {HL_DTYPE_F32, HL_DTYPE_BF16, HL_DTYPE_F16};

    for (int i = 0; i < 3; i++) {
        test_rows(dts[i]);
        test_rmsnorm(dts[i], 37, 300);
        test_rmsnorm(dts[i], 64, 4096); /* 16-byte path for 16-bit dtypes */
        test_rmsnorm(dts[i], 9, 5120);
        test_rope(dts[i], 5, 24);
        test_rope(dts[i], 4, 64);   /* 16-byte path for 16-bit dtypes */
        test_swiglu(dts[i], 33, 301);
        test_swiglu(dts[i], 20, 512); /* 16-byte path */
        test_cross_entropy(dts[i]);
        if (gm) { /* the model tests' shapes too (M = 320 / 600 rows) */
            test_gemm(gm, dts[i], 67, 129, 300);
            test_gemm(gm, dts[i], 320, 256, 256);
            test_gemm(gm, dts[i], 320, 1024, 256);
            test_gemm(gm, dts[i], 320, 300, 256);
            test_gemm(gm, dts[i], 600, 1536, 512);
        }
    }
    test_router_softmax();
    test_dropout_mask();
    const attn_case cases[] = {
        /* general kernels: f32 (the parity path), odd head size, GQA, packed rows with padding */
        {"f32 packed+pad", HL_DTYPE_F32, 4, 2, 12, 3, 40, 5, {0, 17, 40, 45, 80}, {17, 23, 5, 1, 40}},
        {"bf16 hd12 packed", HL_DTYPE_BF16, 4, 1, 12, 2, 70, 3, {0, 33, 70}, {33, 37, 50}},
        {"f32 hd64 GQA", HL_DTYPE_F32, 8, 2, 64, 2, 150, 3, {0, 129, 150}, {129, 21, 150}},
        /* tensor cores: blocks across example boundaries, lengths around 64 */
        {"bf16 packed+pad", HL_DTYPE_BF16, 4, 2, 64, 2, 200, 4, {0, 130, 131, 200}, {130, 1, 69, 65}},
        {"f16 MQA", HL_DTYPE_F16, 4, 1, 64, 2, 100, 3, {0, 64, 100}, {64, 36, 100}},
        {"bf16 hd128", HL_DTYPE_BF16, 8, 8, 128, 2, 300, 3, {0, 300, 364}, {300, 64, 86}},
        {"f16 hd128 GQA", HL_DTYPE_F16, 8, 2, 128, 1, 257, 2, {0, 200}, {200, 57}},
        {"bf16 hd128 seq1024", HL_DTYPE_BF16, 4, 4, 128, 1, 1024, 1, {0}, {1024}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_attention(&cases[i]);
    for (int i = 0; i < 2; i++) {
        int dt = i ? HL_DTYPE_BF16 : HL_DTYPE_F32;
        test_adapter(HL_VARIANT_HYDRA, 4, 8, dt);
        test_adapter(HL_VARIANT_LORA, 1, 4, dt);
        test_adapter(HL_VARIANT_LORA_SPLIT, 3, 4, dt);
        test_adapter(HL_VARIANT_UNIFORM, 4, 3, dt);
    }
    test_adapter(HL_VARIANT_HYDRA, 20, 4, HL_DTYPE_F16); /* N·r = 80: several chunks in every kernel */
    test_adamw();
    hl_cu_gemm_free(gm);
    cudaFree(ws);
    return gpu_finish();
}
