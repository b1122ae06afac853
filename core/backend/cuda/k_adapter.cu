/* HydraLoRA adapter kernels (core/adapter/adapter.c on the device).
 *
 * One adapted projection y = x·W0ᵀ + s·Σ_i ω_i B_i A_(i) dropout(x) is computed as
 *   Z, router logits = ad_down(x; [A; R])        (one pass over x, dropout mask applied to A's input)
 *   ω = softmax(logits) in f32, Zw = s·ω ⊗ Z     (route_fwd, per row)
 *   y += Zw · [B_1 … B_N]ᵀ                       (ad_up: ONE product of width N·r)
 * and backward from G = ∂/∂y:
 *   P = G·[B_1 … B_N]                           (ad_down)
 *   dZ, dΩ → dL = softmax backward, Zw          (route_bwd, per row)
 *   dB += Zwᵀ G; dA += dZᵀ dropout(x), dR += dLᵀ x  (ad_wgrad, fixed-split row sums, no atomics)
 *   dx += (dZ·A) ⊙ mask + dL·R                  (ad_up)
 * The dropout mask is hl_rng_hash(key, m·d_in + j) exactly as core/adapter/adapter.c, so CPU and GPU
 * drop the same elements. All adapter arithmetic is f32 (x is read in the activation dtype). */
#include "core/backend/cuda/cuda_dev.cuh"

static __device__ __forceinline__ float wv_at(const hlk_wview &w, int i, int64_t j) {
    return w.w[(int64_t)(i / w.div) * w.s_hi + (int64_t)(i % w.div) * w.s_lo + j * w.s_j];
}
static __device__ __forceinline__ float *wv_addr(const hlk_wview &w, int i, int64_t j) {
    return w.w + (int64_t)(i / w.div) * w.s_hi + (int64_t)(i % w.div) * w.s_lo + j * w.s_j;
}

/* ---- ad_down: out[M, n] = X·Wᵀ for a few small weight rows ---------------------------------- */

#define DOWN_ROWS 4
#define DOWN_CH 16
#define DOWN_THREADS 256

static __global__ void __launch_bounds__(DOWN_THREADS)
    k_ad_down(const void *X, int64_t ldx, int dt, int64_t M, int K, hlk_wview w1, hlk_drop d1, float *out1,
              hlk_wview w2, float *out2, float keep_scale) {
    __shared__ float red[DOWN_THREADS / 32][DOWN_ROWS * DOWN_CH];
    const int64_t m0 = (int64_t)blockIdx.x * DOWN_ROWS;
    const int n1 = w1.w ? w1.n : 0, n2 = w2.w ? w2.n : 0, ntot = n1 + n2;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int c0 = 0; c0 < ntot; c0 += DOWN_CH) {
        float acc[DOWN_ROWS][DOWN_CH];
#pragma unroll
        for (int r = 0; r < DOWN_ROWS; r++)
#pragma unroll
            for (int c = 0; c < DOWN_CH; c++)
                acc[r][c] = 0.0f;
        for (int j = threadIdx.x; j < K; j += DOWN_THREADS) {
            float x[DOWN_ROWS], xm[DOWN_ROWS];
#pragma unroll
            for (int r = 0; r < DOWN_ROWS; r++) {
                int64_t m = m0 + r;
                x[r] = m < M ? ld_act(X, m * ldx + j, dt) : 0.0f;
                xm[r] = x[r] * drop_factor(d1, (uint64_t)m * (uint64_t)K + (uint64_t)j, keep_scale);
            }
#pragma unroll
            for (int c = 0; c < DOWN_CH; c++) {
                int i = c0 + c;
                if (i >= ntot)
                    break;
                if (i < n1) {
                    float w = wv_at(w1, i, j);
#pragma unroll
                    for (int r = 0; r < DOWN_ROWS; r++)
                        acc[r][c] += xm[r] * w;
                } else {
                    float w = wv_at(w2, i - n1, j);
#pragma unroll
                    for (int r = 0; r < DOWN_ROWS; r++)
                        acc[r][c] += x[r] * w;
                }
            }
        }
#pragma unroll
        for (int r = 0; r < DOWN_ROWS; r++)
#pragma unroll
            for (int c = 0; c < DOWN_CH; c++) {
                float v = warp_sum(acc[r][c]);
                if (lane == 0)
                    red[warp][r * DOWN_CH + c] = v;
            }
        __syncthreads();
        if (threadIdx.x < DOWN_ROWS * DOWN_CH) {
            int r = threadIdx.x / DOWN_CH, c = threadIdx.x % DOWN_CH, i = c0 + c;
            int64_t m = m0 + r;
            float s = 0.0f;
            for (int w = 0; w < DOWN_THREADS / 32; w++)
                s += red[w][threadIdx.x];
            if (m < M && i < ntot) {
                if (i < n1)
                    out1[m * n1 + i] = s;
                else
                    out2[m * n2 + (i - n1)] = s;
            }
        }
        __syncthreads();
    }
}

hl_status hlk_ad_down(cudaStream_t st, const void *X, int64_t ldx, int dt, int64_t M, int K, hlk_wview w1,
                      hlk_drop d1, float *out1, hlk_wview w2, float *out2) {
    if (M <= 0 || ((!w1.w || !w1.n) && (!w2.w || !w2.n)))
        return HL_OK;
    float ks = d1.p > 0.0f ? 1.0f / (1.0f - d1.p) : 1.0f;
    k_ad_down<<<hl_cu_blocks(M, DOWN_ROWS), DOWN_THREADS, 0, st>>>(X, ldx, dt, M, K, w1, d1, out1, w2, out2, ks);
    CU_LAUNCHED("ad_down");
    return HL_OK;
}

/* ---- ad_up: Y[M, K] += mask ⊙ (S1·W1) + S2·W2 ----------------------------------------------- */

#define UP_ROWS 16
#define UP_THREADS 256
#define UP_NCH 32

static __global__ void __launch_bounds__(UP_THREADS)
    k_ad_up(void *Y, int64_t ldy, int dt, int64_t M, int K, const float *S1, hlk_wview w1, hlk_drop d1,
            const float *S2, hlk_wview w2, float keep_scale) {
    __shared__ float sS[UP_NCH][UP_ROWS];
    const int64_t j = (int64_t)blockIdx.x * UP_THREADS + threadIdx.x;
    const int64_t m0 = (int64_t)blockIdx.y * UP_ROWS;
    const int n1 = (S1 && w1.w) ? w1.n : 0, n2 = (S2 && w2.w) ? w2.n : 0, ntot = n1 + n2;
    float a1[UP_ROWS], a2[UP_ROWS];
#pragma unroll
    for (int r = 0; r < UP_ROWS; r++)
        a1[r] = a2[r] = 0.0f;
    for (int c0 = 0; c0 < ntot; c0 += UP_NCH) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < UP_NCH * UP_ROWS; idx += UP_THREADS) {
            int c = idx / UP_ROWS, r = idx % UP_ROWS, i = c0 + c;
            int64_t m = m0 + r;
            float v = 0.0f;
            if (m < M && i < ntot)
                v = i < n1 ? S1[m * n1 + i] : S2[m * n2 + (i - n1)];
            sS[c][r] = v;
        }
        __syncthreads();
        if (j < K) {
            int cn = ntot - c0 < UP_NCH ? ntot - c0 : UP_NCH;
            for (int c = 0; c < cn; c++) {
                int i = c0 + c;
                if (i < n1) {
                    float w = wv_at(w1, i, j);
#pragma unroll
                    for (int r = 0; r < UP_ROWS; r++)
                        a1[r] += sS[c][r] * w;
                } else {
                    float w = wv_at(w2, i - n1, j);
#pragma unroll
                    for (int r = 0; r < UP_ROWS; r++)
                        a2[r] += sS[c][r] * w;
                }
            }
        }
    }
    if (j >= K)
        return;
#pragma unroll
    for (int r = 0; r < UP_ROWS; r++) {
        int64_t m = m0 + r;
        if (m < M) {
            float add = a2[r];
            if (n1)
                add += a1[r] * drop_factor(d1, (uint64_t)m * (uint64_t)K + (uint64_t)j, keep_scale);
            int64_t o = m * ldy + j;
            st_act(Y, o, dt, ld_act(Y, o, dt) + add);
        }
    }
}

hl_status hlk_ad_up(cudaStream_t st, void *Y, int64_t ldy, int dt, int64_t M, int K, const float *S1, hlk_wview w1,
                    hlk_drop d1, const float *S2, hlk_wview w2) {
    if (M <= 0 || K <= 0)
        return HL_OK;
    float ks = d1.p > 0.0f ? 1.0f / (1.0f - d1.p) : 1.0f;
    dim3 grid(hl_cu_blocks(K, UP_THREADS), hl_cu_blocks(M, UP_ROWS));
    if (grid.y > 65535)
        return hl_fail(HL_ERR_ARG, "ad_up: %lld rows is more than this kernel's grid allows", (long long)M);
    k_ad_up<<<grid, UP_THREADS, 0, st>>>(Y, ldy, dt, M, K, S1, w1, d1, S2, w2, ks);
    CU_LAUNCHED("ad_up");
    return HL_OK;
}

/* ---- ad_wgrad: G(i, j) += Σ_m S[m, i]·X[m, j] over a fixed split of the rows ---------------- */

#define WG_THREADS 128
#define WG_CH 16
#define WG_ROWS 32
#define WG_MAX_SPLIT 32

/* Rows per split: at least 256, at most WG_MAX_SPLIT splits; a function of M only. */
static int64_t wg_rows_per(int64_t M) {
    int64_t per = (M + WG_MAX_SPLIT - 1) / WG_MAX_SPLIT;
    return per < 256 ? 256 : per;
}

size_t hlk_ad_wgrad_partial_floats(int64_t M, int K, int n_total) {
    int64_t per = wg_rows_per(M), ns = (M + per - 1) / per;
    return (size_t)(ns < 1 ? 1 : ns) * (size_t)n_total * (size_t)K;
}

static __global__ void __launch_bounds__(WG_THREADS)
    k_ad_wgrad(const void *X, int64_t ldx, int dt, int64_t M, int K, int64_t rows_per, const float *S1, int n1,
               hlk_drop d1, const float *S2, int n2, float *partials, float keep_scale) {
    __shared__ float sS[WG_ROWS][WG_CH];
    const int ntot = n1 + n2;
    const int64_t j = (int64_t)blockIdx.x * WG_THREADS + threadIdx.x;
    const int split = blockIdx.y, c0 = blockIdx.z * WG_CH;
    const int64_t ms = (int64_t)split * rows_per, me = ms + rows_per < M ? ms + rows_per : M;
    float acc[WG_CH];
#pragma unroll
    for (int c = 0; c < WG_CH; c++)
        acc[c] = 0.0f;
    for (int64_t mb = ms; mb < me; mb += WG_ROWS) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < WG_ROWS * WG_CH; idx += WG_THREADS) {
            int r = idx / WG_CH, c = idx % WG_CH, i = c0 + c;
            int64_t m = mb + r;
            float v = 0.0f;
            if (m < me && i < ntot)
                v = i < n1 ? S1[m * n1 + i] : S2[m * n2 + (i - n1)];
            sS[r][c] = v;
        }
        __syncthreads();
        if (j < K) {
            int rn = me - mb < WG_ROWS ? (int)(me - mb) : WG_ROWS;
            for (int r = 0; r < rn; r++) {
                int64_t m = mb + r;
                float x = ld_act(X, m * ldx + j, dt);
                float xm = n1 ? x * drop_factor(d1, (uint64_t)m * (uint64_t)K + (uint64_t)j, keep_scale) : x;
#pragma unroll
                for (int c = 0; c < WG_CH; c++)
                    acc[c] += sS[r][c] * (c0 + c < n1 ? xm : x);
            }
        }
    }
    if (j >= K)
        return;
#pragma unroll
    for (int c = 0; c < WG_CH; c++) {
        int i = c0 + c;
        if (i < ntot)
            partials[((int64_t)split * ntot + i) * K + j] = acc[c];
    }
}

static __global__ void k_ad_wgrad_reduce(const float *partials, int nsplit, int K, int n1, hlk_wview g1, int n2,
                                         hlk_wview g2) {
    const int ntot = n1 + n2;
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)ntot * K)
        return;
    int i = (int)(idx / K);
    int64_t j = idx % K;
    float s = 0.0f;
    for (int sp = 0; sp < nsplit; sp++)
        s += partials[((int64_t)sp * ntot + i) * K + j];
    float *dst = i < n1 ? wv_addr(g1, i, j) : wv_addr(g2, i - n1, j);
    *dst += s;
}

hl_status hlk_ad_wgrad(cudaStream_t st, const void *X, int64_t ldx, int dt, int64_t M, int K, const float *S1,
                       hlk_wview g1, hlk_drop d1, const float *S2, hlk_wview g2, float *partials) {
    const int n1 = (S1 && g1.w) ? g1.n : 0, n2 = (S2 && g2.w) ? g2.n : 0;
    if (M <= 0 || K <= 0 || n1 + n2 == 0)
        return HL_OK;
    int64_t per = wg_rows_per(M);
    int nsplit = (int)((M + per - 1) / per);
    float ks = d1.p > 0.0f ? 1.0f / (1.0f - d1.p) : 1.0f;
    dim3 grid(hl_cu_blocks(K, WG_THREADS), (unsigned)nsplit, hl_cu_blocks(n1 + n2, WG_CH));
    k_ad_wgrad<<<grid, WG_THREADS, 0, st>>>(X, ldx, dt, M, K, per, S1, n1, d1, S2, n2, partials, ks);
    CU_LAUNCHED("ad_wgrad");
    k_ad_wgrad_reduce<<<hl_cu_blocks((int64_t)(n1 + n2) * K, 256), 256, 0, st>>>(partials, nsplit, K, n1, g1, n2,
                                                                                g2);
    CU_LAUNCHED("ad_wgrad_reduce");
    return HL_OK;
}

/* ---- per-row router and head mixing --------------------------------------------------------- */

static __global__ void k_route_fwd(float *W, const float *Z, float *Zw, int64_t M, int N, int r, int nA, float s,
                                   int has_router) {
    int64_t m = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= M)
        return;
    float *w = W + m * N;
    if (has_router) { /* core/backend/cpu/ops.c hl_softmax_forward */
        float mx = -INFINITY;
        for (int i = 0; i < N; i++)
            mx = fmaxf(mx, w[i]);
        float sum = 0.0f;
        for (int i = 0; i < N; i++) {
            w[i] = expf(w[i] - mx);
            sum += w[i];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < N; i++)
            w[i] *= inv;
    } else {
        float u = 1.0f / (float)N; /* LoRA: 1; uniform gate: 1/N */
        for (int i = 0; i < N; i++)
            w[i] = u;
    }
    const float *z = Z + m * (int64_t)nA * r;
    float *zw = Zw + m * (int64_t)N * r;
    for (int i = 0; i < N; i++) {
        float wi = s * w[i];
        const float *zi = z + (nA > 1 ? i : 0) * r;
        for (int k = 0; k < r; k++)
            zw[i * r + k] = wi * zi[k];
    }
}

hl_status hlk_ad_route_fwd(cudaStream_t st, float *W, const float *Z, float *Zw, int64_t M, int N, int r, int nA,
                           float s, int has_router) {
    if (M <= 0)
        return HL_OK;
    k_route_fwd<<<hl_cu_blocks(M, 128), 128, 0, st>>>(W, Z, Zw, M, N, r, nA, s, has_router);
    CU_LAUNCHED("route_fwd");
    return HL_OK;
}

#define ROUTE_MAX_N 64 /* hl_adapter_config_check: N <= 64 */

static __global__ void k_route_bwd(const float *P, const float *Z, const float *W, float *dZ, float *dL, float *Zw,
                                   int64_t M, int N, int r, int nA, float s, int has_router) {
    int64_t m = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= M)
        return;
    const int64_t Nr = (int64_t)N * r, Ar = (int64_t)nA * r;
    const float *p = P + m * Nr, *z = Z + m * Ar, *w = W + m * N;
    float *dz = dZ + m * Ar;
    float dw[ROUTE_MAX_N];
    if (nA == 1)
        for (int k = 0; k < r; k++)
            dz[k] = 0.0f;
    for (int i = 0; i < N; i++) { /* core/adapter/adapter.c hl_adapter_backward, same order */
        const float *pi = p + i * r, *zi = z + (nA > 1 ? i : 0) * r;
        float wi = s * w[i];
        float *dzi = dz + (nA > 1 ? i : 0) * r;
        float dot = 0.0f;
        for (int k = 0; k < r; k++) {
            if (nA > 1)
                dzi[k] = wi * pi[k];
            else
                dzi[k] += wi * pi[k];
            dot += pi[k] * zi[k];
        }
        dw[i] = s * dot;
    }
    if (has_router) { /* dL = ω ⊙ (dΩ − <ω, dΩ>) (core/backend/cpu/ops.c hl_softmax_backward) */
        float dot = 0.0f;
        for (int i = 0; i < N; i++)
            dot += w[i] * dw[i];
        for (int i = 0; i < N; i++)
            dL[m * N + i] = w[i] * (dw[i] - dot);
    }
    float *zw = Zw + m * Nr;
    for (int i = 0; i < N; i++) {
        float wi = s * w[i];
        const float *zi = z + (nA > 1 ? i : 0) * r;
        for (int k = 0; k < r; k++)
            zw[i * r + k] = wi * zi[k];
    }
}

hl_status hlk_ad_route_bwd(cudaStream_t st, const float *P, const float *Z, const float *W, float *dZ, float *dL,
                           float *Zw, int64_t M, int N, int r, int nA, float s, int has_router) {
    if (M <= 0)
        return HL_OK;
    if (N > ROUTE_MAX_N)
        return hl_fail(HL_ERR_ARG, "route_bwd: N=%d heads is more than %d", N, ROUTE_MAX_N);
    k_route_bwd<<<hl_cu_blocks(M, 128), 128, 0, st>>>(P, Z, W, dZ, dL, Zw, M, N, r, nA, s, has_router);
    CU_LAUNCHED("route_bwd");
    return HL_OK;
}

/* ---- one projection --------------------------------------------------------------------------- */

static hlk_wview view_A(const hlk_adapter *a, const float *A) {
    hlk_wview w = {(float *)A, a->nA * a->r, a->r, (int64_t)a->r * a->d_in, a->d_in, 1};
    return w;
}
static hlk_wview view_B(const hlk_adapter *a, const float *B) {
    hlk_wview w = {(float *)B, a->N * a->r, a->r, (int64_t)a->d_out * a->r, 1, a->r};
    return w;
}
/* Bᵀcat [N·r, d_out] (row i·r+k = column k of B_i), contiguous rows. */
static hlk_wview view_BT(const hlk_adapter *a) {
    hlk_wview w = {a->bt, a->N * a->r, 1, a->d_out, 0, 1};
    return w;
}

static __global__ void k_transpose_b(float *bt, const float *B, int n, int d_out, int r) {
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)n * d_out)
        return;
    int i = (int)(idx / d_out), o = (int)(idx % d_out); /* i = h·r + k */
    bt[idx] = B[(int64_t)(i / r) * d_out * r + (int64_t)o * r + (i % r)];
}

static hl_status transpose_b(cudaStream_t st, const hlk_adapter *a) {
    int64_t n = (int64_t)a->N * a->r * a->d_out;
    k_transpose_b<<<hl_cu_blocks(n, 256), 256, 0, st>>>(a->bt, a->B, a->N * a->r, a->d_out, a->r);
    CU_LAUNCHED("transpose_b");
    return HL_OK;
}

static hlk_wview view_R(const hlk_adapter *a, const float *R) {
    hlk_wview w = {NULL, 0, 1, 0, 0, 0};
    if (a->has_router && R) {
        w.w = (float *)R;
        w.n = a->N;
        w.s_hi = a->d_in;
        w.s_j = 1;
    }
    return w;
}

size_t hlk_adapter_partial_floats(const hlk_adapter *a) {
    size_t x = hlk_ad_wgrad_partial_floats(a->M, a->d_out, a->N * a->r);
    size_t y = hlk_ad_wgrad_partial_floats(a->M, a->d_in, a->nA * a->r + (a->has_router ? a->N : 0));
    return x > y ? x : y;
}

hl_status hlk_adapter_fwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *Y, int64_t ldy, const void *X,
                          int64_t ldx, float *Z, float *W) {
    const hlk_wview none = {NULL, 0, 1, 0, 0, 0};
    const hlk_drop nod = {0, 0.0f};
    HL_TRY(hlk_ad_down(st, X, ldx, a->dt, a->M, a->d_in, view_A(a, a->A), drop, Z, view_R(a, a->R), W));
    HL_TRY(hlk_ad_route_fwd(st, W, Z, a->zw, a->M, a->N, a->r, a->nA, a->scale, a->has_router));
    HL_TRY(transpose_b(st, a));
    return hlk_ad_up(st, Y, ldy, a->dt, a->M, a->d_out, a->zw, view_BT(a), nod, NULL, none);
}

hl_status hlk_adapter_bwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *dX, int64_t lddx, const void *G,
                          int64_t ldg, const void *X, int64_t ldx, const float *Z, const float *W) {
    const hlk_wview none = {NULL, 0, 1, 0, 0, 0};
    const hlk_drop nod = {0, 0.0f};
    const float *dl = a->has_router ? a->dl : NULL;
    /* P = G·[B_1 … B_N] */
    HL_TRY(transpose_b(st, a));
    HL_TRY(hlk_ad_down(st, G, ldg, a->dt, a->M, a->d_out, view_BT(a), nod, a->p, none, NULL));
    HL_TRY(hlk_ad_route_bwd(st, a->p, Z, W, a->dz, a->dl, a->zw, a->M, a->N, a->r, a->nA, a->scale, a->has_router));
    /* dB += Zwᵀ G;  dA += dZᵀ dropout(X), dR += dLᵀ X */
    HL_TRY(hlk_ad_wgrad(st, G, ldg, a->dt, a->M, a->d_out, a->zw, view_B(a, a->dB), nod, NULL, none, a->partials));
    HL_TRY(hlk_ad_wgrad(st, X, ldx, a->dt, a->M, a->d_in, a->dz, view_A(a, a->dA), drop, dl, view_R(a, a->dR),
                        a->partials));
    if (!dX)
        return HL_OK;
    return hlk_ad_up(st, dX, lddx, a->dt, a->M, a->d_in, a->dz, view_A(a, a->A), drop, dl, view_R(a, a->R));
}

/* ---- routing statistics (block i < N: head i; block N: tokens and entropy) ------------------ */

static __global__ void k_route_stats(const float *W, const int32_t *pos, int64_t M, int N, int64_t *tokens,
                                     double *wsum, int64_t *top1, double *ent) {
    __shared__ double sh[32];
    const int head = blockIdx.x;
    double a = 0.0, b = 0.0;
    for (int64_t m = threadIdx.x; m < M; m += blockDim.x) {
        if (pos[m] < 0)
            continue;
        const float *w = W + m * N;
        if (head < N) {
            int best = 0;
            for (int i = 1; i < N; i++)
                if (w[i] > w[best])
                    best = i;
            a += w[head];
            b += best == head ? 1.0 : 0.0;
        } else {
            double e = 0.0;
            for (int i = 0; i < N; i++)
                if (w[i] > 0.0f)
                    e -= (double)w[i] * log((double)w[i]);
            a += e;
            b += 1.0;
        }
    }
    a = block_sum_d(a, sh);
    b = block_sum_d(b, sh);
    if (threadIdx.x)
        return;
    if (head < N) {
        wsum[head] += a;
        top1[head] += (int64_t)b;
    } else {
        *ent += a;
        *tokens += (int64_t)b;
    }
}

hl_status hlk_route_stats(cudaStream_t st, const float *W, const int32_t *pos, int64_t M, int N, int64_t *tokens,
                          double *wsum, int64_t *top1, double *ent) {
    if (M <= 0)
        return HL_OK;
    k_route_stats<<<(unsigned)(N + 1), 256, 0, st>>>(W, pos, M, N, tokens, wsum, top1, ent);
    CU_LAUNCHED("route_stats");
    return HL_OK;
}

/* ---- the 16-bit path: parts of f32 values for tensor-core products ----------------------------- */

/* v → (p1, p2, p3) in dtype dt with v ≈ p1 + p2 + p3 to f32 accuracy (each difference is exact in f32). */
static __device__ __forceinline__ void split3(float v, int dt, float *p) {
    float r = v;
    for (int k = 0; k < 3; k++) {
        float q = dt == DT_BF16 ? __bfloat162float(__float2bfloat16_rn(r)) : __half2float(__float2half_rn(r));
        p[k] = q;
        r -= q;
    }
}

static __global__ void k_split_rows(void *dst, int dt, hlk_wview src, int K, int4 pat, int nb) {
    const int64_t total = (int64_t)src.n * K;
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total)
        return;
    int i = (int)(idx / K);
    int64_t j = idx % K;
    float p[3];
    split3(wv_at(src, i, j), dt, p);
    const int pv[4] = {pat.x, pat.y, pat.z, pat.w};
    for (int b = 0; b < nb; b++)
        st_act(dst, (int64_t)b * total + idx, dt, p[pv[b] - 1]);
}

hl_status hlk_split_rows(cudaStream_t st, void *dst, int dt, hlk_wview src, int K, const int *pattern, int nb) {
    if (!src.w || src.n <= 0 || K <= 0)
        return HL_OK;
    int4 pat = make_int4(pattern[0], nb > 1 ? pattern[1] : 1, nb > 2 ? pattern[2] : 1, nb > 3 ? pattern[3] : 1);
    k_split_rows<<<hl_cu_blocks((int64_t)src.n * K, 256), 256, 0, st>>>(dst, dt, src, K, pat, nb);
    CU_LAUNCHED("split_rows");
    return HL_OK;
}

/* 8 elements per thread with 16-byte accesses when rows allow it. */
static __global__ void k_mask_rows(uint16_t *H, const uint16_t *X, int64_t ldx, int64_t M, int K, hlk_drop d,
                                   int vec) {
    const int per = vec ? 8 : 1, cpr = (K + per - 1) / per;
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= M * cpr)
        return;
    int64_t m = idx / cpr;
    int j0 = (int)(idx % cpr) * per;
    const uint64_t base = (uint64_t)m * (uint64_t)K;
    if (vec) {
        uint4 v = *reinterpret_cast<const uint4 *>(X + m * ldx + j0);
        uint16_t *e = reinterpret_cast<uint16_t *>(&v);
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (dev_hash_uniform(d.key, base + (uint64_t)(j0 + k)) < d.p)
                e[k] = 0;
        *reinterpret_cast<uint4 *>(H + m * (int64_t)K + j0) = v;
    } else {
        uint16_t v = X[m * ldx + j0];
        H[m * (int64_t)K + j0] = dev_hash_uniform(d.key, base + (uint64_t)j0) < d.p ? (uint16_t)0 : v;
    }
}

hl_status hlk_mask_rows(cudaStream_t st, void *H, const void *X, int64_t ldx, int dt, int64_t M, int K, hlk_drop d) {
    if (dt == DT_F32)
        return hl_fail(HL_ERR_INTERNAL, "mask_rows is for 16-bit activations");
    if (M <= 0 || K <= 0)
        return HL_OK;
    int vec = K % 8 == 0 && ldx % 8 == 0 && (uintptr_t)X % 16 == 0 && (uintptr_t)H % 16 == 0;
    int64_t n = M * ((K + (vec ? 7 : 0)) / (vec ? 8 : 1));
    k_mask_rows<<<hl_cu_blocks(n, 256), 256, 0, st>>>((uint16_t *)H, (const uint16_t *)X, ldx, M, K, d, vec);
    CU_LAUNCHED("mask_rows");
    return HL_OK;
}

hlk_parts_ld hlk_parts_lds(int N, int r, int nA) {
    const int64_t zr = (int64_t)nA * r, Nr = (int64_t)N * r;
#define P8(x) (((x) + 7) / 8 * 8)
    hlk_parts_ld ld = {P8(3 * zr), P8(3 * (int64_t)N), P8(3 * Nr), P8(4 * Nr), P8(4 * zr)};
#undef P8
    return ld;
}

static __global__ void k_route_fwd16(const float *Zp, const float *Lp, float keep, float *Z, float *W, void *Zs4,
                                     hlk_parts_ld ld, int dt, int64_t M, int N, int r, int nA, float s,
                                     int has_router) {
    int64_t m = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= M)
        return;
    const int zr = nA * r, Nr = N * r;
    const float *zp = Zp + m * ld.z3;
    float *z = Z + m * zr;
    for (int k = 0; k < zr; k++)
        z[k] = keep * ((zp[k] + zp[zr + k]) + zp[2 * zr + k]);
    float *w = W + m * N;
    if (has_router) { /* core/backend/cpu/ops.c hl_softmax_forward on the summed logits */
        const float *lp = Lp + m * ld.l3;
        float mx = -INFINITY;
        for (int i = 0; i < N; i++) {
            w[i] = (lp[i] + lp[N + i]) + lp[2 * N + i];
            mx = fmaxf(mx, w[i]);
        }
        float sum = 0.0f;
        for (int i = 0; i < N; i++) {
            w[i] = expf(w[i] - mx);
            sum += w[i];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < N; i++)
            w[i] *= inv;
    } else {
        for (int i = 0; i < N; i++)
            w[i] = 1.0f / (float)N;
    }
    const int64_t row = m * ld.zs4;
    for (int i = 0; i < N; i++) {
        float wi = s * w[i];
        const float *zi = z + (nA > 1 ? i : 0) * r;
        for (int k = 0; k < r; k++) {
            float p[3];
            split3(wi * zi[k], dt, p);
            int c = i * r + k;
            st_act(Zs4, row + c, dt, p[0]);
            st_act(Zs4, row + Nr + c, dt, p[1]);
            st_act(Zs4, row + 2 * Nr + c, dt, p[0]);
            st_act(Zs4, row + 3 * Nr + c, dt, p[0]);
        }
    }
}

hl_status hlk_route_fwd16(cudaStream_t st, const float *Zp, const float *Lp, float keep, float *Z, float *W, void *Zs4,
                          hlk_parts_ld ld, int dt, int64_t M, int N, int r, int nA, float s, int has_router) {
    if (M <= 0)
        return HL_OK;
    k_route_fwd16<<<hl_cu_blocks(M, 128), 128, 0, st>>>(Zp, Lp, keep, Z, W, Zs4, ld, dt, M, N, r, nA, s, has_router);
    CU_LAUNCHED("route_fwd16");
    return HL_OK;
}

static __global__ void k_route_bwd16(const float *Pp, const float *Z, const float *W, float *dL, void *Zw3, void *dZ3,
                                     void *dL3, void *dZ4, hlk_parts_ld ld, int dt, int64_t M, int N, int r, int nA,
                                     float s, int has_router) {
    int64_t m = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= M)
        return;
    const int zr = nA * r, Nr = N * r;
    const float *pp = Pp + m * ld.p3, *z = Z + m * zr, *w = W + m * N;
    float dw[ROUTE_MAX_N];
    /* dΩ_i = s <P_i, Z_(i)>, Zw = s ω_i Z_(i) (core/adapter/adapter.c hl_adapter_backward) */
    for (int i = 0; i < N; i++) {
        const float *zi = z + (nA > 1 ? i : 0) * r;
        float wi = s * w[i], dot = 0.0f;
        for (int k = 0; k < r; k++) {
            int c = i * r + k;
            float pk = (pp[c] + pp[Nr + c]) + pp[2 * Nr + c];
            dot += pk * zi[k];
            float q[3];
            split3(wi * zi[k], dt, q);
            st_act(Zw3, m * ld.p3 + c, dt, q[0]);
            st_act(Zw3, m * ld.p3 + Nr + c, dt, q[1]);
            st_act(Zw3, m * ld.p3 + 2 * Nr + c, dt, q[2]);
        }
        dw[i] = s * dot;
    }
    /* dZ: shared A sums the heads, LoRA-Split keeps one block per head */
    for (int c = 0; c < zr; c++) {
        float dz = 0.0f;
        if (nA > 1) {
            int i = c / r, k = c % r;
            float pk = (pp[i * r + k] + pp[Nr + i * r + k]) + pp[2 * Nr + i * r + k];
            dz = s * w[i] * pk;
        } else {
            for (int i = 0; i < N; i++) {
                float pk = (pp[i * r + c] + pp[Nr + i * r + c]) + pp[2 * Nr + i * r + c];
                dz += s * w[i] * pk;
            }
        }
        float q[3];
        split3(dz, dt, q);
        st_act(dZ3, m * ld.z3 + c, dt, q[0]);
        st_act(dZ3, m * ld.z3 + zr + c, dt, q[1]);
        st_act(dZ3, m * ld.z3 + 2 * zr + c, dt, q[2]);
        st_act(dZ4, m * ld.dz4 + c, dt, q[0]);
        st_act(dZ4, m * ld.dz4 + zr + c, dt, q[1]);
        st_act(dZ4, m * ld.dz4 + 2 * zr + c, dt, q[0]);
        st_act(dZ4, m * ld.dz4 + 3 * zr + c, dt, q[0]);
    }
    if (has_router) { /* dL = ω ⊙ (dΩ − <ω, dΩ>) */
        float dot = 0.0f;
        for (int i = 0; i < N; i++)
            dot += w[i] * dw[i];
        for (int i = 0; i < N; i++) {
            float g = w[i] * (dw[i] - dot);
            dL[m * N + i] = g;
            float q[3];
            split3(g, dt, q);
            st_act(dL3, m * ld.l3 + i, dt, q[0]);
            st_act(dL3, m * ld.l3 + N + i, dt, q[1]);
            st_act(dL3, m * ld.l3 + 2 * N + i, dt, q[2]);
        }
    }
}

hl_status hlk_route_bwd16(cudaStream_t st, const float *Pp, const float *Z, const float *W, float *dL, void *Zw3,
                          void *dZ3, void *dL3, void *dZ4, hlk_parts_ld ld, int dt, int64_t M, int N, int r, int nA,
                          float s, int has_router) {
    if (M <= 0)
        return HL_OK;
    if (N > ROUTE_MAX_N)
        return hl_fail(HL_ERR_ARG, "route_bwd16: N=%d heads is more than %d", N, ROUTE_MAX_N);
    k_route_bwd16<<<hl_cu_blocks(M, 128), 128, 0, st>>>(Pp, Z, W, dL, Zw3, dZ3, dL3, dZ4, ld, dt, M, N, r, nA, s,
                                                      has_router);
    CU_LAUNCHED("route_bwd16");
    return HL_OK;
}

static __global__ void k_acc_parts(hlk_wview dst, const float *parts, int n, int K, float scale) {
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t total = (int64_t)n * K;
    if (idx >= total)
        return;
    int i = (int)(idx / K);
    int64_t j = idx % K;
    float v = (parts[idx] + parts[total + idx]) + parts[2 * total + idx];
    *wv_addr(dst, i, j) += scale * v;
}

hl_status hlk_acc_parts(cudaStream_t st, hlk_wview dst, const float *parts, int n, int K, float scale) {
    if (!dst.w || n <= 0 || K <= 0)
        return HL_OK;
    k_acc_parts<<<hl_cu_blocks((int64_t)n * K, 256), 256, 0, st>>>(dst, parts, n, K, scale);
    CU_LAUNCHED("acc_parts");
    return HL_OK;
}

#define MIX_MAX_N 64
static __global__ void k_dx_mix(void *dX, int64_t lddx, const void *T, int dt, int64_t M, int K, hlk_drop d,
                                float keep, const float *dL, const float *R, int N) {
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= M * K)
        return;
    int64_t m = idx / K, j = idx % K;
    float add = 0.0f;
    if (T)
        add = ld_act(T, idx, dt) * drop_factor(d, (uint64_t)idx, keep);
    if (R)
        for (int i = 0; i < N; i++)
            add += dL[m * N + i] * R[(int64_t)i * K + j];
    int64_t o = m * lddx + j;
    st_act(dX, o, dt, ld_act(dX, o, dt) + add);
}

hl_status hlk_dx_mix(cudaStream_t st, void *dX, int64_t lddx, const void *T, int dt, int64_t M, int K, hlk_drop d,
                     const float *dL, const float *R, int N) {
    if (M <= 0 || K <= 0)
        return HL_OK;
    float keep = d.p > 0.0f ? 1.0f / (1.0f - d.p) : 1.0f;
    k_dx_mix<<<hl_cu_blocks(M * K, 256), 256, 0, st>>>(dX, lddx, T, dt, M, K, d, keep, dL, R, N);
    CU_LAUNCHED("dx_mix");
    return HL_OK;
}
