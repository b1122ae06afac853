/* One adapted projection's forward and backward on the CPU (see cpu_adapter.h), and the
 * routing statistics it gathers. */
#include "core/backend/cpu/cpu_adapter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/ops.h"
#include "core/base/rng.h"

static void stats_add(hl_routing_stats *st, const hl_adapter_proj *p, const float *W, int64_t M, int N,
                      const unsigned char *valid) {
    int slot = p->layer * HL_TARGET_COUNT + p->target;
    double *ws = st->weight_sum + (size_t)slot * N, ent = 0.0;
    int64_t *top = st->top1 + (size_t)slot * N, n = 0;
    for (int64_t m = 0; m < M; m++) {
        if (valid && !valid[m])
            continue;
        const float *w = W + m * N;
        int best = 0;
        for (int i = 0; i < N; i++) {
            ws[i] += w[i];
            if (w[i] > w[best])
                best = i;
            if (w[i] > 0.0f)
                ent -= (double)w[i] * log((double)w[i]);
        }
        top[best]++;
        n++;
    }
    st->tokens[slot] += n;
    st->entropy_sum[slot] += ent;
}

/* Scratch layout (floats). */
typedef struct {
    float *H, *Zw, *Bcat, *P, *dZ, *dBcat, *dW, *dL;
} adapter_scratch;

static adapter_scratch scratch_split(const hl_adapters *ad, float *s, int64_t M, int d_in, int d_out) {
    const int64_t Nr = (int64_t)ad->N * ad->cfg.r;
    adapter_scratch a;
    a.H = s, s += M * d_in;
    a.Zw = s, s += M * Nr;
    a.Bcat = s, s += (int64_t)d_out * Nr;
    a.P = s, s += M * Nr;
    a.dZ = s, s += M * (int64_t)ad->nA * ad->cfg.r;
    a.dBcat = s, s += (int64_t)d_out * Nr;
    a.dW = s, s += M * ad->N;
    a.dL = s;
    return a;
}

int64_t hl_adapter_scratch_floats(const hl_adapters *ad, int64_t M, int d_in, int d_out) {
    const int64_t Nr = (int64_t)ad->N * ad->cfg.r;
    return M * d_in + M * Nr + (int64_t)d_out * Nr + M * Nr + M * (int64_t)ad->nA * ad->cfg.r +
           (int64_t)d_out * Nr + 2 * M * ad->N + 16;
}

/* H = dropout(X) with the mask of `drop` (keep iff u >= p, scaled by 1/(1−p)). */
static void dropout_apply(float *H, const float *X, int64_t M, int d_in, hl_dropout drop) {
    const float keep_scale = 1.0f / (1.0f - drop.p);
#pragma omp parallel for schedule(static) if (M * d_in > 131072)
    for (int64_t m = 0; m < M; m++)
        for (int j = 0; j < d_in; j++) {
            uint64_t idx = (uint64_t)m * (uint64_t)d_in + (uint64_t)j;
            H[m * d_in + j] = hl_rng_hash_uniform(drop.key, idx) >= drop.p ? X[m * d_in + j] * keep_scale : 0.0f;
        }
}

/* Zw[m, i*r + k] = s · ω_mi · Z[m, (nA > 1 ? i : 0)*r + k]; Bcat[o, i*r + k] = B_i[o, k]. */
static void build_zw_bcat(const hl_adapters *ad, const hl_adapter_proj *p, const float *Z, const float *W, int64_t M,
                          float *Zw, float *Bcat) {
    const int r = ad->cfg.r, N = ad->N, nA = ad->nA;
    const float s = ad->scale;
#pragma omp parallel for schedule(static) if (M * N * r > 131072)
    for (int64_t m = 0; m < M; m++)
        for (int i = 0; i < N; i++) {
            float w = s * W[m * N + i];
            const float *z = Z + m * nA * r + (nA > 1 ? i : 0) * r;
            for (int k = 0; k < r; k++)
                Zw[m * N * r + i * r + k] = w * z[k];
        }
    if (N > 1) {
        for (int i = 0; i < N; i++)
            for (int o = 0; o < p->d_out; o++)
                memcpy(Bcat + (int64_t)o * N * r + i * r, p->B + ((int64_t)i * p->d_out + o) * r,
                       (size_t)r * sizeof(float));
    }
}

void hl_adapter_forward(const hl_adapters *ad, const hl_adapter_proj *p, float *Y, const float *X, int64_t M,
                        float *Z, float *W, hl_dropout drop, hl_routing_stats *st, const unsigned char *valid,
                        float *scratch) {
    const int r = ad->cfg.r, N = ad->N, nA = ad->nA, d_in = p->d_in, d_out = p->d_out;
    adapter_scratch sc = scratch_split(ad, scratch, M, d_in, d_out);
    /* router weights ω [M, N] */
    if (ad->has_router) {
        hl_sgemm(0, 1, M, N, d_in, 1.0f, X, d_in, p->R, d_in, 0.0f, W, N); /* logits X · W_rᵀ */
        hl_softmax_forward(W, W, M, N);
    } else {
        float w = 1.0f / (float)N; /* LoRA: 1; uniform gate: 1/N */
        for (int64_t i = 0; i < M * N; i++)
            W[i] = w;
    }
    const float *Hin = X;
    if (drop.p > 0.0f) {
        dropout_apply(sc.H, X, M, d_in, drop);
        Hin = sc.H;
    }
    hl_sgemm(0, 1, M, (int64_t)nA * r, d_in, 1.0f, Hin, d_in, p->A, d_in, 0.0f, Z, (int64_t)nA * r); /* Z = H Aᵀ */
    build_zw_bcat(ad, p, Z, W, M, sc.Zw, sc.Bcat);
    const float *Bc = N > 1 ? sc.Bcat : p->B;
    hl_sgemm(0, 1, M, d_out, (int64_t)N * r, 1.0f, sc.Zw, (int64_t)N * r, Bc, (int64_t)N * r, 1.0f, Y, d_out);
    if (st && ad->has_router)
        stats_add(st, p, W, M, N, valid);
}

void hl_adapter_backward(const hl_adapters *ad, const hl_adapter_proj *p, float *dX, const float *G, const float *X,
                         int64_t M, const float *Z, const float *W, hl_dropout drop, float *scratch) {
    const int r = ad->cfg.r, N = ad->N, nA = ad->nA, d_in = p->d_in, d_out = p->d_out;
    const int64_t Nr = (int64_t)N * r, Ar = (int64_t)nA * r;
    const float s = ad->scale;
    adapter_scratch sc = scratch_split(ad, scratch, M, d_in, d_out);
    build_zw_bcat(ad, p, Z, W, M, sc.Zw, sc.Bcat);
    const float *Bc = N > 1 ? sc.Bcat : p->B;
    /* P = G · Bcat   [M, N*r]   (P_i = G B_i) */
    hl_sgemm(0, 0, M, Nr, d_out, 1.0f, G, d_out, Bc, Nr, 0.0f, sc.P, Nr);
    /* dB_i += s (diag(ω_i) G)ᵀ Z_(i) = Gᵀ · Zw_i */
    if (N == 1) {
        hl_sgemm(1, 0, d_out, r, M, 1.0f, G, d_out, sc.Zw, r, 1.0f, p->dB, r);
    } else {
        hl_sgemm(1, 0, d_out, Nr, M, 1.0f, G, d_out, sc.Zw, Nr, 0.0f, sc.dBcat, Nr);
        for (int i = 0; i < N; i++)
            for (int o = 0; o < d_out; o++) {
                float *dst = p->dB + ((int64_t)i * d_out + o) * r;
                const float *src = sc.dBcat + (int64_t)o * Nr + i * r;
                for (int k = 0; k < r; k++)
                    dst[k] += src[k];
            }
    }
    /* dZ (shared A: s Σ_i ω_i P_i; split: s ω_i P_i per A_i) and dΩ[m, i] = s <P_i, Z_(i)> */
#pragma omp parallel for schedule(static) if (M * Nr > 131072)
    for (int64_t m = 0; m < M; m++) {
        float *dz = sc.dZ + m * Ar;
        if (nA == 1)
            for (int k = 0; k < r; k++)
                dz[k] = 0.0f;
        for (int i = 0; i < N; i++) {
            const float *pi = sc.P + m * Nr + i * r;
            const float *z = Z + m * Ar + (nA > 1 ? i : 0) * r;
            float w = s * W[m * N + i];
            float *dzi = dz + (nA > 1 ? i : 0) * r;
            float dot = 0.0f;
            for (int k = 0; k < r; k++) {
                if (nA > 1)
                    dzi[k] = w * pi[k];
                else
                    dzi[k] += w * pi[k];
                dot += pi[k] * z[k];
            }
            sc.dW[m * N + i] = s * dot;
        }
    }
    if (ad->has_router) {
        /* dL = ω ⊙ (dΩ − <ω, dΩ>); dW_r += dLᵀ X; dX += dL W_r */
        memset(sc.dL, 0, (size_t)(M * N) * sizeof(float));
        hl_softmax_backward(sc.dL, sc.dW, W, M, N);
        hl_sgemm(1, 0, N, d_in, M, 1.0f, sc.dL, N, X, d_in, 1.0f, p->dR, d_in);
        if (dX)
            hl_sgemm(0, 0, M, d_in, N, 1.0f, sc.dL, N, p->R, d_in, 1.0f, dX, d_in);
    }
    /* dA += dZᵀ H, H = dropout(X) recomputed from the same mask */
    const float *Hin = X;
    if (drop.p > 0.0f) {
        dropout_apply(sc.H, X, M, d_in, drop);
        Hin = sc.H;
    }
    hl_sgemm(1, 0, Ar, d_in, M, 1.0f, sc.dZ, Ar, Hin, d_in, 1.0f, p->dA, d_in);
    if (!dX)
        return;
    if (drop.p <= 0.0f) {
        hl_sgemm(0, 0, M, d_in, Ar, 1.0f, sc.dZ, Ar, p->A, d_in, 1.0f, dX, d_in); /* dX += dZ A */
        return;
    }
    /* dX += (dZ A) ⊙ M/(1−p): the product goes to H's buffer, then the masked add */
    hl_sgemm(0, 0, M, d_in, Ar, 1.0f, sc.dZ, Ar, p->A, d_in, 0.0f, sc.H, d_in);
    const float keep_scale = 1.0f / (1.0f - drop.p);
#pragma omp parallel for schedule(static) if (M * d_in > 131072)
    for (int64_t m = 0; m < M; m++)
        for (int j = 0; j < d_in; j++) {
            uint64_t idx = (uint64_t)m * (uint64_t)d_in + (uint64_t)j;
            if (hl_rng_hash_uniform(drop.key, idx) >= drop.p)
                dX[m * d_in + j] += sc.H[m * d_in + j] * keep_scale;
        }
}
