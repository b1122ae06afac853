/* LLaMA building blocks (see ops.h). Parallel loops use static schedules and every
 * float reduction has a fixed order, so results do not depend on timing. */
#include "core/backend/cpu/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cpu/gemm.h"

/* e^x for the softmax and SiLU inner loops, written so that gcc vectorises it (glibc's expf is
 * a scalar call): e^x = 2^n · e^f with n = round(x / ln 2) from the float magic-number trick
 * (no float-to-int conversion), f = x − n ln 2 in two parts (Cody–Waite), e^f by its Taylor
 * polynomial of degree 7 (|f| <= ln2/2). Max relative error 1e-7 (< 2 ulp) on the clamped range
 * [−87.3, 88.7]; below it returns ~1e-38 rather than a denormal or 0 (harmless in a softmax). */
static inline float fast_expf(float x) {
    x = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    union {
        float f;
        int32_t i;
    } t, s;
    t.f = x * 1.44269504088896341f + 12582912.0f; /* 1.5·2^23: the low mantissa bits now hold n */
    float n = t.f - 12582912.0f;
    float f = x - n * 0.693145751953125f;
    f = f - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040.0f;
    p = p * f + 1.0f / 720.0f;
    p = p * f + 1.0f / 120.0f;
    p = p * f + 1.0f / 24.0f;
    p = p * f + 1.0f / 6.0f;
    p = p * f + 0.5f;
    p = p * f + 1.0f;
    p = p * f + 1.0f;
    s.i = (t.i - 0x4B400000 + 127) * (1 << 23); /* 2^n */
    return p * s.f;
}

/* Max and sum of a row with 16 independent lanes, so gcc vectorises them without -ffast-math;
 * the combination order is fixed (deterministic). */
static inline float row_max(const float *x, int n) {
    float m[16];
    for (int k = 0; k < 16; k++)
        m[k] = -INFINITY;
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++)
            m[k] = x[j + k] > m[k] ? x[j + k] : m[k];
    for (; j < n; j++)
        m[0] = x[j] > m[0] ? x[j] : m[0];
    for (int k = 1; k < 16; k++)
        m[0] = m[k] > m[0] ? m[k] : m[0];
    return m[0];
}

static inline float row_sum(const float *x, int n) {
    float a[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++)
            a[k] += x[j + k];
    for (; j < n; j++)
        a[0] += x[j];
    float s = 0.0f;
    for (int k = 0; k < 16; k++)
        s += a[k];
    return s;
}

/* Σ x_i² in double over 8 independent lanes (vectorised; fixed order). */
static inline double sumsq_d(const float *x, int n) {
    double s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += (double)x[i + k] * x[i + k];
    for (; i < n; i++)
        s[0] += (double)x[i] * x[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* ---- RMSNorm ------------------------------------------------------------------------- */

void hl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int64_t T, int C, float eps) {
#pragma omp parallel for schedule(static) if (T * C > 131072)
    for (int64_t t = 0; t < T; t++) {
        const float *x = inp + t * C;
        float *o = out + t * C;
        double ss = sumsq_d(x, C);
        float r = (float)(1.0 / sqrt(ss / C + (double)eps));
        for (int i = 0; i < C; i++)
            o[i] = w[i] * (x[i] * r);
        if (rstd)
            rstd[t] = r;
    }
}

void hl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int64_t T, int C) {
    /* y_i = w_i x_i r, r = (mean(x²) + eps)^(−1/2), ∂r/∂x_j = −r³ x_j / C:
     * dx_j = r w_j dy_j − (r³ / C) x_j Σ_i w_i dy_i x_i */
#pragma omp parallel for schedule(static) if (T * C > 131072)
    for (int64_t t = 0; t < T; t++) {
        const float *x = inp + t * C, *dy = dout + t * C;
        float *dx = dinp + t * C;
        float r = rstd[t];
        double dot = 0.0;
        {
            double l[8] = {0}; /* Σ w dy x in 8 double lanes, as sumsq_d */
            int i = 0;
            for (; i + 8 <= C; i += 8)
                for (int k = 0; k < 8; k++)
                    l[k] += (double)w[i + k] * dy[i + k] * x[i + k];
            for (; i < C; i++)
                l[0] += (double)w[i] * dy[i] * x[i];
            dot = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        }
        float c = (float)((double)r * r * r * dot / C);
        for (int i = 0; i < C; i++)
            dx[i] += r * w[i] * dy[i] - c * x[i];
    }
    if (dw) { /* column sums: parallel over columns keeps each sum in row order */
#pragma omp parallel for schedule(static) if (T * C > 131072)
        for (int i = 0; i < C; i++) {
            double s = 0.0;
            for (int64_t t = 0; t < T; t++)
                s += (double)dout[t * C + i] * inp[t * C + i] * rstd[t];
            dw[i] += (float)s;
        }
    }
}

/* ---- RoPE ---------------------------------------------------------------------------- */

int hl_rope_table_init(hl_rope_table *rt, int max_pos, int head_dim, float theta) {
    rt->max_pos = max_pos;
    rt->half = head_dim / 2;
    size_t n = (size_t)max_pos * (size_t)rt->half;
    rt->cos = malloc((n ? n : 1) * sizeof(float));
    rt->sin = malloc((n ? n : 1) * sizeof(float));
    if (!rt->cos || !rt->sin) {
        hl_rope_table_free(rt);
        return -1;
    }
    for (int j = 0; j < rt->half; j++) {
        double inv_freq = 1.0 / pow((double)theta, (2.0 * j) / (double)head_dim);
        for (int p = 0; p < max_pos; p++) {
            double a = (double)p * inv_freq;
            rt->cos[(size_t)p * rt->half + j] = (float)cos(a);
            rt->sin[(size_t)p * rt->half + j] = (float)sin(a);
        }
    }
    return 0;
}

void hl_rope_table_free(hl_rope_table *rt) {
    free(rt->cos);
    free(rt->sin);
    rt->cos = rt->sin = NULL;
}

/* sign = +1: forward rotation by θ; −1: by −θ (the transpose, for backward). */
static void rope_row(float *x, int n_heads, int head_dim, const float *c, const float *s, float sign) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x1 = x + h * head_dim, *x2 = x1 + half;
        for (int j = 0; j < half; j++) {
            float a = x1[j], b = x2[j], sn = sign * s[j];
            x1[j] = a * c[j] - b * sn;
            x2[j] = b * c[j] + a * sn;
        }
    }
}

static void rope_rows(float *x, int64_t rows, int n_heads, int head_dim, const int *pos, const hl_rope_table *rt,
                      float sign) {
    int64_t width = (int64_t)n_heads * head_dim;
#pragma omp parallel for schedule(static) if (rows * width > 131072)
    for (int64_t i = 0; i < rows; i++) {
        size_t o = (size_t)pos[i] * rt->half;
        rope_row(x + i * width, n_heads, head_dim, rt->cos + o, rt->sin + o, sign);
    }
}

void hl_rope_forward(float *x, int64_t rows, int n_heads, int head_dim, const int *pos, const hl_rope_table *rt) {
    rope_rows(x, rows, n_heads, head_dim, pos, rt, 1.0f);
}

void hl_rope_backward(float *dx, int64_t rows, int n_heads, int head_dim, const int *pos, const hl_rope_table *rt) {
    rope_rows(dx, rows, n_heads, head_dim, pos, rt, -1.0f);
}

static void rope_bt(float *x, int B, int T, int n_heads, int head_dim, int pos0, const hl_rope_table *rt,
                    float sign) {
    int64_t width = (int64_t)n_heads * head_dim, rows = (int64_t)B * T;
#pragma omp parallel for schedule(static) if (rows * width > 131072)
    for (int64_t i = 0; i < rows; i++) {
        size_t o = (size_t)(pos0 + (int)(i % T)) * rt->half;
        rope_row(x + i * width, n_heads, head_dim, rt->cos + o, rt->sin + o, sign);
    }
}

void hl_rope_forward_bt(float *x, int B, int T, int n_heads, int head_dim, int pos0, const hl_rope_table *rt) {
    rope_bt(x, B, T, n_heads, head_dim, pos0, rt, 1.0f);
}

void hl_rope_backward_bt(float *dx, int B, int T, int n_heads, int head_dim, int pos0, const hl_rope_table *rt) {
    rope_bt(dx, B, T, n_heads, head_dim, pos0, rt, -1.0f);
}

/* ---- Attention ----------------------------------------------------------------------- */

/* Valid query rows nq and the key count nk one (b) needs; see hl_attn_dims. */
static void attn_extent(const hl_attn_dims *d, int b, int *pos0, int *nq, int *kvl, int *nk) {
    int p0 = d->pos0 ? d->pos0[b] : 0;
    int ql = d->q_len ? d->q_len[b] : p0 + d->Tq;
    int kl = d->kv_len ? d->kv_len[b] : (d->q_len ? d->q_len[b] : d->Tk);
    if (kl > d->Tk)
        kl = d->Tk;
    int n = ql - p0;
    n = n < 0 ? 0 : (n > d->Tq ? d->Tq : n);
    int k = p0 + n; /* the last valid query sees keys < p0 + n */
    k = k > kl ? kl : k;
    *pos0 = p0;
    *nq = n;
    *kvl = kl;
    *nk = k < 0 ? 0 : k;
}

int64_t hl_attention_scratch_floats(const hl_attn_dims *d) {
    int lanes = d->lanes > 0 ? d->lanes : 1;
    int64_t tq = d->n_seg > 0 ? d->seg_max : d->Tq, tk = d->n_seg > 0 ? d->seg_max : d->Tk;
    int64_t qb = tq < HL_ATTN_QBLOCK ? tq : HL_ATTN_QBLOCK;
    return (int64_t)lanes * 2 * qb * tk + 64;
}

/* Geometry shared by forward and backward. */
typedef struct {
    int hd, H, kv_mul, lanes;
    int64_t qw, kw, qbs, kbs, lane_floats;
    float scale;
} attn_geom;

static attn_geom attn_geometry(const hl_attn_dims *d) {
    attn_geom g;
    g.hd = d->head_dim, g.H = d->n_heads, g.kv_mul = d->n_heads / d->n_kv_heads;
    g.lanes = d->lanes > 0 ? d->lanes : 1;
    g.qw = (int64_t)g.H * g.hd, g.kw = (int64_t)d->n_kv_heads * g.hd;
    g.qbs = d->q_bstride ? d->q_bstride : d->Tq, g.kbs = d->kv_bstride ? d->kv_bstride : d->Tk;
    int64_t tq = d->n_seg > 0 ? d->seg_max : d->Tq, tk = d->n_seg > 0 ? d->seg_max : d->Tk;
    int64_t qb = tq < HL_ATTN_QBLOCK ? tq : HL_ATTN_QBLOCK;
    g.lane_floats = 2 * qb * tk;
    g.scale = 1.0f / sqrtf((float)g.hd);
    return g;
}

/* Softmax of the visible part of score rows t0..t1 (row t sees keys j < min(p0+t+1, kvl)),
 * zeroing the rest; writes the log-sum-exp of each row. */
static void attn_softmax_rows(float *S, int64_t nk, int t0, int t1, int p0, int kvl, float *L) {
    for (int t = t0; t < t1; t++) {
        float *s = S + (int64_t)(t - t0) * nk;
        int jn = p0 + t + 1 < kvl ? p0 + t + 1 : kvl;
        float mx = row_max(s, jn);
        for (int j = 0; j < jn; j++)
            s[j] = fast_expf(s[j] - mx);
        float sum = row_sum(s, jn);
        float inv = 1.0f / sum;
        for (int j = 0; j < jn; j++)
            s[j] *= inv;
        for (int64_t j = jn; j < nk; j++)
            s[j] = 0.0f;
        if (L)
            L[t] = mx + logf(sum);
    }
}

/* <a, b> over n floats in 16 independent lanes (vectorised without -ffast-math; fixed order). */
static inline float dot16(const float *a, const float *b, int n) {
    float l[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            l[k] += a[i + k] * b[i + k];
    for (; i < n; i++)
        l[0] += a[i] * b[i];
    float s = 0.0f;
    for (int k = 0; k < 16; k++)
        s += l[k];
    return s;
}

/* Query blocks of at most this many rows (decoding: one new token per sequence) run as plain
 * dot products and row updates instead of two OpenBLAS calls: a decode step has
 * sequences x heads such items of a few thousand flops each, where a library call's fixed cost
 * (packing, buffer allocation shared by the threads) is most of the work. */
#define HL_ATTN_DIRECT_ROWS 4

/* S = s Q Kᵀ and O = P V for query rows t0..t1 (at most HL_ATTN_DIRECT_ROWS) without OpenBLAS;
 * only the keys each row sees are computed (the softmax zeroes the rest). */
static void attn_block_direct(const attn_geom *g, const float *Q, const float *K, const float *V, float *O, float *L,
                              int p0, int t0, int t1, int kvl, int64_t kb, float *S) {
    for (int t = t0; t < t1; t++) {
        float *s = S + (int64_t)(t - t0) * kb;
        int jn = p0 + t + 1 < kvl ? p0 + t + 1 : kvl;
        for (int j = 0; j < jn; j++)
            s[j] = g->scale * dot16(Q + (int64_t)t * g->qw, K + (int64_t)j * g->kw, g->hd);
    }
    attn_softmax_rows(S, kb, t0, t1, p0, kvl, L);
    for (int t = t0; t < t1; t++) {
        const float *p = S + (int64_t)(t - t0) * kb;
        float *o = O + (int64_t)t * g->qw;
        int jn = p0 + t + 1 < kvl ? p0 + t + 1 : kvl;
        for (int c = 0; c < g->hd; c++)
            o[c] = 0.0f;
        for (int j = 0; j < jn; j++) {
            const float *v = V + (int64_t)j * g->kw, pj = p[j];
            for (int c = 0; c < g->hd; c++)
                o[c] += pj * v[c];
        }
    }
}

/* One (query sequence, head): queries 0..nq-1 at positions p0 + t over keys < kvl (nk keys in
 * reach). Q, O: this head's column block (row stride qw); K, V: its kv head's (stride kw); L:
 * this head's lse row or NULL. direct: blocks of few rows without OpenBLAS (attn_block_direct).
 * Returns the query rows written. */
static int attn_forward_item(const attn_geom *g, const float *Q, const float *K, const float *V, float *O, float *L,
                             int p0, int nq, int kvl, int nk, float *S, int direct) {
    int done = 0;
    for (int t0 = 0; t0 < nq && nk > 0; t0 += HL_ATTN_QBLOCK) {
        int t1 = nq - t0 < HL_ATTN_QBLOCK ? nq : t0 + HL_ATTN_QBLOCK;
        int64_t kb = p0 + t1 < kvl ? p0 + t1 : kvl; /* keys this block can see */
        if (direct && t1 - t0 <= HL_ATTN_DIRECT_ROWS) {
            attn_block_direct(g, Q, K, V, O, L, p0, t0, t1, kvl, kb, S);
        } else {
            hl_sgemm(0, 1, t1 - t0, kb, g->hd, g->scale, Q + t0 * g->qw, g->qw, K, g->kw, 0.0f, S, kb); /* S = s Q Kᵀ */
            attn_softmax_rows(S, kb, t0, t1, p0, kvl, L);
            hl_sgemm(0, 0, t1 - t0, g->hd, kb, 1.0f, S, kb, V, g->kw, 0.0f, O + t0 * g->qw, g->qw); /* O = P V */
        }
        done = t1;
    }
    return done;
}

/* Backward of one (query sequence, query head) as attn_forward_item: dQ WRITTEN for the rows
 * done (returned), dK/dV += (the kv head's column block). P, dP: one lane's scratch halves. */
static int attn_backward_item(const attn_geom *g, const float *Q, const float *K, const float *V, const float *O,
                              const float *dO, const float *L, float *dQ, float *dK, float *dV, int p0, int nq,
                              int kvl, int nk, float *P, float *dP) {
    int done = 0;
    for (int t0 = 0; t0 < nq && nk > 0; t0 += HL_ATTN_QBLOCK) {
        int t1 = nq - t0 < HL_ATTN_QBLOCK ? nq : t0 + HL_ATTN_QBLOCK;
        int64_t kb = p0 + t1 < kvl ? p0 + t1 : kvl;
        int nb = t1 - t0;
        hl_sgemm(0, 1, nb, kb, g->hd, g->scale, Q + t0 * g->qw, g->qw, K, g->kw, 0.0f, P, kb); /* scores again */
        hl_sgemm(0, 1, nb, kb, g->hd, 1.0f, dO + t0 * g->qw, g->qw, V, g->kw, 0.0f, dP, kb); /* dP = dO Vᵀ */
        for (int t = t0; t < t1; t++) {
            float *p = P + (int64_t)(t - t0) * kb, *dp = dP + (int64_t)(t - t0) * kb;
            int jn = p0 + t + 1 < kvl ? p0 + t + 1 : kvl;
            /* D_t = <dO_t, O_t> = Σ_j P_tj dP_tj (the softmax Jacobian's row term) */
            float D = 0.0f;
            for (int c = 0; c < g->hd; c++)
                D += dO[(int64_t)t * g->qw + c] * O[(int64_t)t * g->qw + c];
            for (int j = 0; j < jn; j++) {
                p[j] = fast_expf(p[j] - L[t]);
                dp[j] = p[j] * (dp[j] - D);
            }
            for (int64_t j = jn; j < kb; j++)
                p[j] = dp[j] = 0.0f;
        }
        hl_sgemm(0, 0, nb, g->hd, kb, g->scale, dP, kb, K, g->kw, 0.0f, dQ + t0 * g->qw, g->qw); /* dQ = s dS K */
        hl_sgemm(1, 0, kb, g->hd, nb, g->scale, dP, kb, Q + t0 * g->qw, g->qw, 1.0f, dK, g->kw); /* dK += s dSᵀQ */
        hl_sgemm(1, 0, kb, g->hd, nb, 1.0f, P, kb, dO + t0 * g->qw, g->qw, 1.0f, dV, g->kw);   /* dV += PᵀdO */
        done = t1;
    }
    return done;
}

/* Packed rows: zero the rows outside every segment (x: `width` floats per row; lse: the
 * [B, H, Tq] entries of those rows, when non-NULL). */
static void attn_zero_gaps(const hl_attn_dims *d, float *x, int64_t width, float *lse) {
    int64_t end = (int64_t)d->B * d->Tq, prev = 0;
    for (int e = 0; e <= d->n_seg; e++) {
        int64_t a = e < d->n_seg ? d->seg_start[e] : end;
        if (a > prev) {
            memset(x + prev * width, 0, (size_t)((a - prev) * width) * sizeof(float));
            if (lse)
                for (int64_t p = prev; p < a; p++)
                    for (int h = 0; h < d->n_heads; h++)
                        lse[((p / d->Tq) * d->n_heads + h) * d->Tq + p % d->Tq] = 0.0f;
        }
        if (e < d->n_seg && d->seg_start[e] + d->seg_len[e] > prev)
            prev = d->seg_start[e] + d->seg_len[e];
    }
}

void hl_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          const hl_attn_dims *d, float *scratch) {
    const attn_geom g = attn_geometry(d);
    if (d->n_seg > 0) {
        const int items = d->n_seg * g.H;
        attn_zero_gaps(d, out, g.qw, lse);
        /* one (segment, head) per work item; items are independent, so any schedule gives the same bits */
#pragma omp parallel for schedule(dynamic, 1) num_threads(g.lanes) if (g.lanes > 1 && items > 1 && (double)items * d->Tq * d->seg_max * g.hd > 2e6)
        for (int it = 0; it < items; it++) {
            int e = it / g.H, h = it % g.H, n = d->seg_len[e];
            int64_t r0 = d->seg_start[e], b = r0 / d->Tq, c = r0 % d->Tq;
            float *S = scratch + (int64_t)omp_get_thread_num() * g.lane_floats;
            float *L = lse ? lse + (b * g.H + h) * d->Tq + c : NULL;
            attn_forward_item(&g, q + r0 * g.qw + h * g.hd, k + r0 * g.kw + (h / g.kv_mul) * g.hd,
                              v + r0 * g.kw + (h / g.kv_mul) * g.hd, out + r0 * g.qw + h * g.hd, L, 0, n, n, n, S, 0);
        }
        return;
    }
    const int items = d->B * g.H;
    /* one (sequence, head) per work item; a lane's scratch is owned by its thread */
#pragma omp parallel for schedule(static) num_threads(g.lanes) if (g.lanes > 1 && items > 1 && (double)items * d->Tq * d->Tk * g.hd > 2e6)
    for (int it = 0; it < items; it++) {
        int b = it / g.H, h = it % g.H;
        float *S = scratch + (int64_t)omp_get_thread_num() * g.lane_floats;
        int p0, nq, kvl, nk;
        attn_extent(d, b, &p0, &nq, &kvl, &nk);
        const float *Q = q + b * g.qbs * g.qw + h * g.hd;
        const float *K = k + b * g.kbs * g.kw + (h / g.kv_mul) * g.hd;
        const float *V = v + b * g.kbs * g.kw + (h / g.kv_mul) * g.hd;
        float *O = out + b * g.qbs * g.qw + h * g.hd;
        float *L = lse ? lse + ((int64_t)b * g.H + h) * d->Tq : NULL;
        int done = attn_forward_item(&g, Q, K, V, O, L, p0, nq, kvl, nk, S, d->Tq <= HL_ATTN_DIRECT_ROWS);
        for (int t = done; t < d->Tq; t++) {
            memset(O + t * g.qw, 0, (size_t)g.hd * sizeof(float));
            if (L)
                L[t] = 0.0f;
        }
    }
}

void hl_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, const hl_attn_dims *d, float *scratch) {
    const attn_geom g = attn_geometry(d);
    const int G = d->n_kv_heads;
    if (d->n_seg > 0) {
        const int items = d->n_seg * G;
        attn_zero_gaps(d, dq, g.qw, NULL);
        /* one (segment, kv head) per work item: its query heads add into the segment's dk/dv rows
         * in a fixed order, and no two items touch the same rows */
#pragma omp parallel for schedule(dynamic, 1) num_threads(g.lanes) if (g.lanes > 1 && items > 1 && (double)items * d->Tq * d->seg_max * g.hd > 2e6)
        for (int it = 0; it < items; it++) {
            int e = it / G, kvh = it % G, n = d->seg_len[e];
            int64_t r0 = d->seg_start[e], b = r0 / d->Tq, c = r0 % d->Tq;
            float *P = scratch + (int64_t)omp_get_thread_num() * g.lane_floats;
            float *dP = P + g.lane_floats / 2;
            const float *K = k + r0 * g.kw + kvh * g.hd, *V = v + r0 * g.kw + kvh * g.hd;
            float *dK = dk + r0 * g.kw + kvh * g.hd, *dV = dv + r0 * g.kw + kvh * g.hd;
            for (int h = kvh * g.kv_mul; h < (kvh + 1) * g.kv_mul; h++) {
                int64_t qo = r0 * g.qw + h * g.hd;
                attn_backward_item(&g, q + qo, K, V, out + qo, dout + qo, lse + (b * g.H + h) * d->Tq + c, dq + qo,
                                   dK, dV, 0, n, n, n, P, dP);
            }
        }
        return;
    }
    const int items = d->B * G;
    /* One (sequence, kv head) per work item: the query heads sharing that kv head add into its
     * dk/dv in a fixed order, and no two items touch the same rows. */
#pragma omp parallel for schedule(static) num_threads(g.lanes) if (g.lanes > 1 && items > 1 && (double)items * d->Tq * d->Tk * g.hd > 2e6)
    for (int it = 0; it < items; it++) {
        int b = it / G, kvh = it % G;
        float *P = scratch + (int64_t)omp_get_thread_num() * g.lane_floats;
        float *dP = P + g.lane_floats / 2;
        int p0, nq, kvl, nk;
        attn_extent(d, b, &p0, &nq, &kvl, &nk);
        const float *K = k + b * g.kbs * g.kw + kvh * g.hd;
        const float *V = v + b * g.kbs * g.kw + kvh * g.hd;
        float *dK = dk + b * g.kbs * g.kw + kvh * g.hd;
        float *dV = dv + b * g.kbs * g.kw + kvh * g.hd;
        for (int h = kvh * g.kv_mul; h < (kvh + 1) * g.kv_mul; h++) {
            const float *Q = q + b * g.qbs * g.qw + h * g.hd;
            const float *O = out + b * g.qbs * g.qw + h * g.hd;
            const float *dO = dout + b * g.qbs * g.qw + h * g.hd;
            const float *L = lse + ((int64_t)b * g.H + h) * d->Tq;
            float *dQ = dq + b * g.qbs * g.qw + h * g.hd;
            int done = attn_backward_item(&g, Q, K, V, O, dO, L, dQ, dK, dV, p0, nq, kvl, nk, P, dP);
            for (int t = done; t < d->Tq; t++)
                memset(dQ + t * g.qw, 0, (size_t)g.hd * sizeof(float));
        }
    }
}

/* ---- SwiGLU -------------------------------------------------------------------------- */

void hl_swiglu_forward(float *h, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 131072)
    for (int64_t i = 0; i < n; i++)
        h[i] = g[i] / (1.0f + fast_expf(-g[i])) * u[i];
}

void hl_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 131072)
    for (int64_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + fast_expf(-g[i]));
        float silu = g[i] * sg;
        dg[i] += dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
        du[i] += dh[i] * silu;
    }
}

void hl_swiglu_backward_inplace(float *g, float *u, const float *dh, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 131072)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i], ui = u[i];
        float sg = 1.0f / (1.0f + fast_expf(-gi));
        g[i] = dh[i] * ui * sg * (1.0f + gi * (1.0f - sg));
        u[i] = dh[i] * (gi * sg);
    }
}

/* ---- Softmax ------------------------------------------------------------------------- */

void hl_softmax_forward(float *out, const float *inp, int64_t rows, int cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 131072)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = inp + r * cols;
        float *o = out + r * cols;
        float mx = row_max(x, cols);
        for (int i = 0; i < cols; i++)
            o[i] = fast_expf(x[i] - mx);
        float sum = row_sum(o, cols);
        float inv = 1.0f / sum;
        for (int i = 0; i < cols; i++)
            o[i] *= inv;
    }
}

void hl_softmax_backward(float *dinp, const float *dout, const float *out, int64_t rows, int cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 131072)
    for (int64_t r = 0; r < rows; r++) {
        const float *y = out + r * cols, *dy = dout + r * cols;
        float dot = 0.0f;
        for (int i = 0; i < cols; i++)
            dot += y[i] * dy[i];
        for (int i = 0; i < cols; i++)
            dinp[r * cols + i] += y[i] * (dy[i] - dot);
    }
}

/* ---- Cross-entropy ------------------------------------------------------------------- */

#define HL_CE_CHUNKS 64 /* fixed partition: the loss sum is independent of the thread count */

/* One row: loss −log softmax(x)[y] in double; with g, g = scale · (softmax(x) − onehot(y)).
 * e^(x_i − max) once per element (fast_expf, vectorised), the row sum in double over 8 lanes;
 * g may alias x (x[y] and the sum are taken before g is written). */
static double ce_row(float *g, const float *x, int y, int V, float scale) {
    const float mx = row_max(x, V);
    const float xy = x[y];
    double l[8] = {0};
    int i = 0;
    if (g) { /* keep the exponentials in g, scale them after the sum */
        for (; i + 8 <= V; i += 8)
            for (int k = 0; k < 8; k++) {
                float e = fast_expf(x[i + k] - mx);
                g[i + k] = e;
                l[k] += (double)e;
            }
        for (; i < V; i++) {
            float e = fast_expf(x[i] - mx);
            g[i] = e;
            l[0] += (double)e;
        }
    } else {
        for (; i + 8 <= V; i += 8)
            for (int k = 0; k < 8; k++)
                l[k] += (double)fast_expf(x[i + k] - mx);
        for (; i < V; i++)
            l[0] += (double)fast_expf(x[i] - mx);
    }
    double sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    if (g) {
        const float f = (float)((double)scale / sum);
        for (i = 0; i < V; i++)
            g[i] *= f;
        g[y] -= scale;
    }
    return (double)mx + log(sum) - (double)xy;
}

double hl_cross_entropy(float *dlogits, const float *logits, const int *targets, int64_t rows, int V, float scale,
                        int64_t *count) {
    double part[HL_CE_CHUNKS];
    int64_t cnt[HL_CE_CHUNKS];
#pragma omp parallel for schedule(static) if (rows * (int64_t)V > 131072)
    for (int c = 0; c < HL_CE_CHUNKS; c++) {
        int64_t r0 = rows * c / HL_CE_CHUNKS, r1 = rows * (c + 1) / HL_CE_CHUNKS;
        double s = 0.0;
        int64_t n = 0;
        for (int64_t r = r0; r < r1; r++) {
            int y = targets[r];
            if (y < 0 || y >= V) { /* −100 (or anything out of range): ignored */
                if (dlogits)
                    memset(dlogits + r * V, 0, (size_t)V * sizeof(float));
                continue;
            }
            s += ce_row(dlogits ? dlogits + r * V : NULL, logits + r * V, y, V, scale);
            n++;
        }
        part[c] = s;
        cnt[c] = n;
    }
    double total = 0.0;
    int64_t n = 0;
    for (int c = 0; c < HL_CE_CHUNKS; c++) {
        total += part[c];
        n += cnt[c];
    }
    if (count)
        *count = n;
    return total;
}
