/* Embedding, RMSNorm, RoPE, SwiGLU, row gather/scatter, cross-entropy, dtype conversion.
 * Formulas follow core/backend/cpu/ops.c line by line (see each CPU function); the sums of squares and dot
 * products of the norms are in double like the CPU, softmax sums of the loss in double. */
#include "core/backend/cuda/cuda_dev.cuh"

/* ---- embedding ---------------------------------------------------------------------------- */

static __global__ void k_embed(void *x, const void *table, int esize, const int32_t *tok, int64_t M, int D) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * D)
        return;
    int64_t m = i / D, j = i % D;
    int64_t src = (int64_t)tok[m] * D + j;
    if (esize == 4)
        ((float *)x)[i] = ((const float *)table)[src];
    else
        ((uint16_t *)x)[i] = ((const uint16_t *)table)[src];
}

hl_status hlk_embed(cudaStream_t st, void *x, const void *table, int dt, const int32_t *tok, int64_t M, int D) {
    k_embed<<<hl_cu_blocks(M * D, 256), 256, 0, st>>>(x, table, dt == DT_F32 ? 4 : 2, tok, M, D);
    CU_LAUNCHED("embed");
    return HL_OK;
}

/* ---- RMSNorm (one block per row) ---------------------------------------------------------- */

static __global__ void k_rmsnorm_fwd(void *out, float *rstd, const void *x, const float *w, int D, float eps,
                                     int dt) {
    __shared__ double sh[32];
    int64_t row = blockIdx.x;
    const int64_t base = row * D;
    double ss = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = ld_act(x, base + i, dt);
        ss += (double)v * v;
    }
    ss = block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(ss / D + (double)eps));
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        st_act(out, base + i, dt, __fmul_rn(w[i], __fmul_rn(ld_act(x, base + i, dt), r)));
    if (rstd && threadIdx.x == 0)
        rstd[row] = r;
}

/* 16-bit rows with D % 8 == 0: 16-byte accesses, the row kept in registers between the passes. */
#define RN_THREADS 256
#define RN_MAXV 4 /* up to 4 x 8 x 256 = 8192 columns */
static __global__ void __launch_bounds__(RN_THREADS)
    k_rmsnorm_fwd8(void *out, float *rstd, const void *x, const float *w, int D, float eps, int dt) {
    __shared__ double sh[32];
    const int64_t base = (int64_t)blockIdx.x * D;
    const int nv = D / 8;
    float v[RN_MAXV][8];
    double ss = 0.0;
#pragma unroll
    for (int c = 0; c < RN_MAXV; c++) {
        int i = threadIdx.x + c * RN_THREADS;
        if (i < nv) {
            ld8((const char *)x + (base + 8 * i) * 2, dt, v[c]);
#pragma unroll
            for (int k = 0; k < 8; k++)
                ss += (double)v[c][k] * v[c][k];
        }
    }
    ss = block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(ss / D + (double)eps));
#pragma unroll
    for (int c = 0; c < RN_MAXV; c++) {
        int i = threadIdx.x + c * RN_THREADS;
        if (i < nv) {
            float o[8];
#pragma unroll
            for (int k = 0; k < 8; k++)
                o[k] = __fmul_rn(w[8 * i + k], __fmul_rn(v[c][k], r));
            st8((char *)out + (base + 8 * i) * 2, dt, o);
        }
    }
    if (rstd && threadIdx.x == 0)
        rstd[blockIdx.x] = r;
}

hl_status hlk_rmsnorm_fwd(cudaStream_t st, void *out, float *rstd, const void *x, const float *w, int64_t M, int D,
                          float eps, int dt) {
    if (M <= 0)
        return HL_OK;
    if (hl_cu_vec8(dt, D, out, x, NULL) && D <= RN_MAXV * 8 * RN_THREADS) {
        k_rmsnorm_fwd8<<<(unsigned)M, RN_THREADS, 0, st>>>(out, rstd, x, w, D, eps, dt);
        CU_LAUNCHED("rmsnorm_fwd8");
        return HL_OK;
    }
    k_rmsnorm_fwd<<<(unsigned)M, 256, 0, st>>>(out, rstd, x, w, D, eps, dt);
    CU_LAUNCHED("rmsnorm_fwd");
    return HL_OK;
}

/* dx_j = r w_j dy_j − (r³/D) x_j Σ_i w_i dy_i x_i  (core/backend/cpu/ops.c hl_rmsnorm_backward) */
static __global__ void k_rmsnorm_bwd(void *dx, int acc, const void *dy, const void *x, const float *w,
                                     const float *rstd, int D, int dt) {
    __shared__ double sh[32];
    int64_t row = blockIdx.x;
    const int64_t base = row * D;
    float r = rstd[row];
    double dot = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        dot += (double)w[i] * ld_act(dy, base + i, dt) * ld_act(x, base + i, dt);
    dot = block_sum_d(dot, sh);
    float c = (float)((double)r * r * r * dot / D);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float g = __fsub_rn(__fmul_rn(__fmul_rn(r, w[i]), ld_act(dy, base + i, dt)),
                            __fmul_rn(c, ld_act(x, base + i, dt)));
        if (acc)
            g = __fadd_rn(ld_act(dx, base + i, dt), g);
        st_act(dx, base + i, dt, g);
    }
}

static __global__ void __launch_bounds__(RN_THREADS)
    k_rmsnorm_bwd8(void *dx, int acc, const void *dy, const void *x, const float *w, const float *rstd, int D, int dt) {
    __shared__ double sh[32];
    const int64_t base = (int64_t)blockIdx.x * D;
    const int nv = D / 8;
    const float r = rstd[blockIdx.x];
    float xv[RN_MAXV][8], gv[RN_MAXV][8];
    double dot = 0.0;
#pragma unroll
    for (int c = 0; c < RN_MAXV; c++) {
        int i = threadIdx.x + c * RN_THREADS;
        if (i < nv) {
            ld8((const char *)x + (base + 8 * i) * 2, dt, xv[c]);
            ld8((const char *)dy + (base + 8 * i) * 2, dt, gv[c]);
#pragma unroll
            for (int k = 0; k < 8; k++)
                dot += (double)w[8 * i + k] * gv[c][k] * xv[c][k];
        }
    }
    dot = block_sum_d(dot, sh);
    const float cc = (float)((double)r * r * r * dot / D);
#pragma unroll
    for (int c = 0; c < RN_MAXV; c++) {
        int i = threadIdx.x + c * RN_THREADS;
        if (i < nv) {
            float o[8], old[8];
            if (acc)
                ld8((const char *)dx + (base + 8 * i) * 2, dt, old);
#pragma unroll
            for (int k = 0; k < 8; k++) {
                float g = __fsub_rn(__fmul_rn(__fmul_rn(r, w[8 * i + k]), gv[c][k]), __fmul_rn(cc, xv[c][k]));
                o[k] = acc ? __fadd_rn(old[k], g) : g;
            }
            st8((char *)dx + (base + 8 * i) * 2, dt, o);
        }
    }
}

hl_status hlk_rmsnorm_bwd(cudaStream_t st, void *dx, int accumulate, const void *dy, const void *x, const float *w,
                          const float *rstd, int64_t M, int D, int dt) {
    if (M <= 0)
        return HL_OK;
    if (hl_cu_vec8(dt, D, dx, dy, x) && D <= RN_MAXV * 8 * RN_THREADS) {
        k_rmsnorm_bwd8<<<(unsigned)M, RN_THREADS, 0, st>>>(dx, accumulate, dy, x, w, rstd, D, dt);
        CU_LAUNCHED("rmsnorm_bwd8");
        return HL_OK;
    }
    k_rmsnorm_bwd<<<(unsigned)M, 256, 0, st>>>(dx, accumulate, dy, x, w, rstd, D, dt);
    CU_LAUNCHED("rmsnorm_bwd");
    return HL_OK;
}

/* ---- RoPE (rotate_half) ------------------------------------------------------------------- */

static __global__ void k_rope(void *x, int64_t ld, int64_t M, int H, int hd, const int32_t *pos, const float *ct,
                              const float *stab, float sign, int dt) {
    const int half = hd / 2;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * H * half)
        return;
    int j = (int)(i % half);
    int h = (int)((i / half) % H);
    int64_t m = i / ((int64_t)half * H);
    int p = pos[m] > 0 ? pos[m] : 0;
    float c = ct[(int64_t)p * half + j], s = sign * stab[(int64_t)p * half + j];
    int64_t o1 = m * ld + (int64_t)h * hd + j, o2 = o1 + half;
    float a = ld_act(x, o1, dt), b = ld_act(x, o2, dt);
    st_act(x, o1, dt, __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)));
    st_act(x, o2, dt, __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
}

/* 16-bit, half % 8 == 0: 8 pairs per thread with 16-byte accesses. */
static __global__ void k_rope8(void *x, int64_t ld, int64_t M, int H, int hd, const int32_t *pos, const float *ct,
                               const float *stab, float sign, int dt) {
    const int half = hd / 2, nv = half / 8;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * H * nv)
        return;
    int j0 = (int)(i % nv) * 8;
    int h = (int)((i / nv) % H);
    int64_t m = i / ((int64_t)nv * H);
    int p = pos[m] > 0 ? pos[m] : 0;
    char *p1 = (char *)x + (m * ld + (int64_t)h * hd + j0) * 2, *p2 = p1 + (int64_t)half * 2;
    float a[8], b[8], o1[8], o2[8];
    ld8(p1, dt, a);
    ld8(p2, dt, b);
    rope8(a, b, ct, stab, p, half, j0, sign, o1, o2);
    st8(p1, dt, o1);
    st8(p2, dt, o2);
}

hl_status hlk_rope(cudaStream_t st, void *x, int64_t ld, int64_t M, int n_heads, int hd, const int32_t *pos,
                   const float *cos_t, const float *sin_t, int inverse, int dt) {
    if (dt != DT_F32 && (hd / 2) % 8 == 0 && ld % 8 == 0 && (uintptr_t)x % 16 == 0 && M > 0) {
        int64_t n = M * n_heads * (hd / 16);
        k_rope8<<<hl_cu_blocks(n, 256), 256, 0, st>>>(x, ld, M, n_heads, hd, pos, cos_t, sin_t, inverse ? -1.0f : 1.0f,
                                                     dt);
        CU_LAUNCHED("rope8");
        return HL_OK;
    }
    int64_t n = M * n_heads * (hd / 2);
    if (n <= 0)
        return HL_OK;
    k_rope<<<hl_cu_blocks(n, 256), 256, 0, st>>>(x, ld, M, n_heads, hd, pos, cos_t, sin_t, inverse ? -1.0f : 1.0f,
                                                 dt);
    CU_LAUNCHED("rope");
    return HL_OK;
}

/* ---- SwiGLU ------------------------------------------------------------------------------- */

static __global__ void k_swiglu_fwd(void *h, const void *gu, int64_t M, int F, int dt) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * F)
        return;
    int64_t m = i / F, j = i % F;
    float g = ld_act(gu, m * 2 * F + j, dt), u = ld_act(gu, m * 2 * F + F + j, dt);
    st_act(h, i, dt, __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u));
}

static __global__ void k_swiglu_bwd(void *gu, const void *dh, int64_t M, int F, int dt) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * F)
        return;
    int64_t m = i / F, j = i % F;
    int64_t ig = m * 2 * F + j, iu = ig + F;
    float g = ld_act(gu, ig, dt), u = ld_act(gu, iu, dt), d = ld_act(dh, i, dt);
    float sg = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g)));
    /* dh·u·sg·(1 + g(1 − sg)) and dh·(g·sg), the CPU's order */
    float dg = __fmul_rn(__fmul_rn(__fmul_rn(d, u), sg), __fadd_rn(1.0f, __fmul_rn(g, __fsub_rn(1.0f, sg))));
    float du = __fmul_rn(d, __fmul_rn(g, sg));
    st_act(gu, ig, dt, dg);
    st_act(gu, iu, dt, du);
}

static __global__ void k_swiglu_fwd8(void *h, const void *gu, int64_t M, int F, int dt) {
    const int nv = F / 8;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * nv)
        return;
    int64_t m = i / nv, j = (i % nv) * 8;
    float g[8], u[8], o[8];
    ld8((const char *)gu + (m * 2 * F + j) * 2, dt, g);
    ld8((const char *)gu + (m * 2 * F + F + j) * 2, dt, u);
#pragma unroll
    for (int k = 0; k < 8; k++)
        o[k] = __fmul_rn(__fdiv_rn(g[k], __fadd_rn(1.0f, expf(-g[k]))), u[k]);
    st8((char *)h + (m * F + j) * 2, dt, o);
}

static __global__ void k_swiglu_bwd8(void *gu, const void *dh, int64_t M, int F, int dt) {
    const int nv = F / 8;
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M * nv)
        return;
    int64_t m = i / nv, j = (i % nv) * 8;
    float g[8], u[8], d[8], dg[8], du[8];
    char *pg = (char *)gu + (m * 2 * F + j) * 2, *pu = (char *)gu + (m * 2 * F + F + j) * 2;
    ld8(pg, dt, g);
    ld8(pu, dt, u);
    ld8((const char *)dh + (m * F + j) * 2, dt, d);
#pragma unroll
    for (int k = 0; k < 8; k++) {
        float sg = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g[k])));
        dg[k] = __fmul_rn(__fmul_rn(__fmul_rn(d[k], u[k]), sg),
                          __fadd_rn(1.0f, __fmul_rn(g[k], __fsub_rn(1.0f, sg))));
        du[k] = __fmul_rn(d[k], __fmul_rn(g[k], sg));
    }
    st8(pg, dt, dg);
    st8(pu, dt, du);
}

hl_status hlk_swiglu_fwd(cudaStream_t st, void *h, const void *gu, int64_t M, int F, int dt) {
    if (M * F <= 0)
        return HL_OK;
    if (hl_cu_vec8(dt, F, h, gu, NULL)) {
        k_swiglu_fwd8<<<hl_cu_blocks(M * (F / 8), 256), 256, 0, st>>>(h, gu, M, F, dt);
        CU_LAUNCHED("swiglu_fwd8");
        return HL_OK;
    }
    k_swiglu_fwd<<<hl_cu_blocks(M * F, 256), 256, 0, st>>>(h, gu, M, F, dt);
    CU_LAUNCHED("swiglu_fwd");
    return HL_OK;
}

hl_status hlk_swiglu_bwd(cudaStream_t st, void *gu, const void *dh, int64_t M, int F, int dt) {
    if (M * F <= 0)
        return HL_OK;
    if (hl_cu_vec8(dt, F, gu, dh, NULL)) {
        k_swiglu_bwd8<<<hl_cu_blocks(M * (F / 8), 256), 256, 0, st>>>(gu, dh, M, F, dt);
        CU_LAUNCHED("swiglu_bwd8");
        return HL_OK;
    }
    k_swiglu_bwd<<<hl_cu_blocks(M * F, 256), 256, 0, st>>>(gu, dh, M, F, dt);
    CU_LAUNCHED("swiglu_bwd");
    return HL_OK;
}

/* ---- rows ------------------------------------------------------------------------------------ */

static __global__ void k_rows(void *dst, const void *src, const int32_t *rows, int64_t n, int D, int esize,
                              int scatter) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * D)
        return;
    int64_t r = i / D, j = i % D;
    int64_t di = scatter ? (int64_t)rows[r] * D + j : i, si = scatter ? i : (int64_t)rows[r] * D + j;
    if (esize == 4)
        ((float *)dst)[di] = ((const float *)src)[si];
    else
        ((uint16_t *)dst)[di] = ((const uint16_t *)src)[si];
}

hl_status hlk_gather_rows(cudaStream_t st, void *dst, const void *src, const int32_t *rows, int64_t n, int D,
                          int dt) {
    if (n <= 0)
        return HL_OK;
    k_rows<<<hl_cu_blocks(n * D, 256), 256, 0, st>>>(dst, src, rows, n, D, dt == DT_F32 ? 4 : 2, 0);
    CU_LAUNCHED("gather_rows");
    return HL_OK;
}

hl_status hlk_scatter_rows(cudaStream_t st, void *dst, const void *src, const int32_t *rows, int64_t n, int D,
                           int dt) {
    if (n <= 0)
        return HL_OK;
    k_rows<<<hl_cu_blocks(n * D, 256), 256, 0, st>>>(dst, src, rows, n, D, dt == DT_F32 ? 4 : 2, 1);
    CU_LAUNCHED("scatter_rows");
    return HL_OK;
}

/* ---- cross-entropy (one block per row; core/backend/cpu/ops.c hl_cross_entropy) ------------------------ */

static __global__ void k_cross_entropy(const float *logits, void *dlogits, int dt, const int32_t *tgt, int V,
                                       float scale, double *row_loss) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const int64_t row = blockIdx.x;
    const float *x = logits + row * (int64_t)V;
    const int y = tgt[row];
    const float xy = x[y]; /* read before dlogits (which may alias) is written */
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        mx = fmaxf(mx, x[i]);
    mx = block_max(mx, shf);
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        sum += (double)expf(x[i] - mx);
    sum = block_sum_d(sum, shd);
    const double lse = (double)mx + log(sum);
    if (threadIdx.x == 0)
        row_loss[row] = lse - (double)xy;
    if (!dlogits)
        return;
    __syncthreads(); /* every thread has read x[y] and its x[i] before any write below */
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float g = scale * expf((float)((double)x[i] - lse));
        if (i == y)
            g -= scale;
        st_act(dlogits, row * (int64_t)V + i, dt, g);
    }
}

hl_status hlk_cross_entropy(cudaStream_t st, const float *logits, void *dlogits, int dt, const int32_t *tgt,
                            int64_t n, int V, float scale, double *row_loss) {
    if (n <= 0)
        return HL_OK;
    k_cross_entropy<<<(unsigned)n, 512, 0, st>>>(logits, dlogits, dt, tgt, V, scale, row_loss);
    CU_LAUNCHED("cross_entropy");
    return HL_OK;
}

/* ---- conversions ------------------------------------------------------------------------------ */

static __global__ void k_f32_to(void *dst, int dt, const float *src, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        st_act(dst, i, dt, src[i]);
}

static __global__ void k_to_f32(float *dst, const void *src, int dt, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        dst[i] = ld_act(src, i, dt);
}

hl_status hlk_f32_to(cudaStream_t st, void *dst, int dt, const float *src, int64_t n) {
    if (n <= 0)
        return HL_OK;
    k_f32_to<<<hl_cu_blocks(n, 256), 256, 0, st>>>(dst, dt, src, n);
    CU_LAUNCHED("f32_to");
    return HL_OK;
}

hl_status hlk_to_f32(cudaStream_t st, float *dst, const void *src, int dt, int64_t n) {
    if (n <= 0)
        return HL_OK;
    k_to_f32<<<hl_cu_blocks(n, 256), 256, 0, st>>>(dst, src, dt, n);
    CU_LAUNCHED("to_f32");
    return HL_OK;
}
