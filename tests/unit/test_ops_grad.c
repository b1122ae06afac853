/* Every op's backward against central finite differences of its own f32 forward.
 *
 * Method: a scalar objective L = Σ c_i · out_i with fixed random c (accumulated in double),
 * a central difference (L(x+h) − L(x−h)) / 2h per input element with h = 1e-2 (inputs are
 * O(1)). Error budget: truncation O(h²·|f'''|) ≈ 1e-4 relative for these smooth ops, f32
 * rounding of L ≈ 6e-8·|L|/h ≈ 1e-5·|L|. So analytic and numeric gradients must agree to
 * 2e-3 of the gradient's largest magnitude (elements near zero are compared against that
 * scale, not their own, since their relative error is meaningless). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/ops.h"
#include "core/base/rng.h"
#include "hl_test.h"

#define H_FD 1e-2f
#define TOL 2e-3

static hl_rng rng;
static float frand(void) { return 2.0f * hl_rng_uniform(&rng) - 1.0f; }
static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * frand();
}
static double dotc(const float *c, const float *y, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)c[i] * y[i];
    return s;
}

/* Compare analytic g[0..n) with central differences of f over x[0..n). */
typedef double (*objective)(void *ctx);
static void check_grad(const char *what, float *x, const float *g, int64_t n, objective f, void *ctx) {
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        scale = fabs(g[i]) > scale ? fabs(g[i]) : scale;
    if (scale < 1e-6)
        scale = 1e-6;
    double worst = 0.0;
    int64_t worst_i = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + H_FD;
        double lp = f(ctx);
        x[i] = keep - H_FD;
        double lm = f(ctx);
        x[i] = keep;
        double fd = (lp - lm) / (2.0 * (double)H_FD);
        double err = fabs(fd - g[i]) / scale;
        if (err > worst)
            worst = err, worst_i = i;
    }
    CHECK(worst <= TOL, "%s: worst relative error %.3g at element %lld (scale %.3g)", what, worst,
          (long long)worst_i, scale);
}

/* ---- rmsnorm ---- */
typedef struct {
    float *x, *w, *out, *rstd, *c;
    int T, C;
} rms_ctx;
static double rms_obj(void *p) {
    rms_ctx *r = p;
    hl_rmsnorm_forward(r->out, r->rstd, r->x, r->w, r->T, r->C, 1e-5f);
    return dotc(r->c, r->out, (int64_t)r->T * r->C);
}
static void test_rmsnorm(void) {
    enum { T = 3, C = 7 };
    float x[T * C], w[C], out[T * C], rstd[T], c[T * C], dx[T * C] = {0}, dw[C] = {0};
    fill(x, T * C, 1.0f);
    fill(w, C, 1.0f);
    fill(c, T * C, 1.0f);
    rms_ctx r = {x, w, out, rstd, c, T, C};
    rms_obj(&r);
    hl_rmsnorm_backward(dx, dw, c, x, w, rstd, T, C);
    check_grad("rmsnorm dx", x, dx, T * C, rms_obj, &r);
    check_grad("rmsnorm dw", w, dw, C, rms_obj, &r);
    /* forward against the definition, in double (re-run: the checks left perturbed outputs) */
    rms_obj(&r);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < C; i++)
            ss += (double)x[t * C + i] * x[t * C + i];
        double rr = 1.0 / sqrt(ss / C + 1e-5);
        for (int i = 0; i < C; i++)
            CHECK_CLOSE(out[t * C + i], w[i] * x[t * C + i] * rr, 1e-6, "rmsnorm forward");
    }
}

/* ---- rope ---- */
typedef struct {
    float *x, *y, *c;
    int B, T, H, hd;
    hl_rope_table *rt;
} rope_ctx;
static double rope_obj(void *p) {
    rope_ctx *r = p;
    int64_t n = (int64_t)r->B * r->T * r->H * r->hd;
    memcpy(r->y, r->x, (size_t)n * sizeof(float));
    hl_rope_forward_bt(r->y, r->B, r->T, r->H, r->hd, 3, r->rt);
    return dotc(r->c, r->y, n);
}
static void test_rope(void) {
    enum { B = 2, T = 4, H = 3, HD = 6, N = B * T * H * HD };
    hl_rope_table rt;
    CHECK(hl_rope_table_init(&rt, 16, HD, 10000.0f) == 0, "rope table");
    float x[N], y[N], c[N], dx[N];
    fill(x, N, 1.0f);
    fill(c, N, 1.0f);
    rope_ctx r = {x, y, c, B, T, H, HD, &rt};
    rope_obj(&r);
    /* rotate_half semantics at one position (b=1, t=2 → pos 5, head 1), in double */
    {
        int row = 1 * T + 2, pos = 5;
        for (int j = 0; j < HD / 2; j++) {
            double th = pos * pow(10000.0, -2.0 * j / HD);
            const float *xi = x + row * H * HD + HD;
            const float *yi = y + row * H * HD + HD;
            CHECK_CLOSE(yi[j], xi[j] * cos(th) - xi[j + HD / 2] * sin(th), 1e-6, "rope forward first half");
            CHECK_CLOSE(yi[j + HD / 2], xi[j + HD / 2] * cos(th) + xi[j] * sin(th), 1e-6, "rope forward second half");
        }
    }
    memcpy(dx, c, sizeof dx);
    hl_rope_backward_bt(dx, B, T, H, HD, 3, &rt);
    check_grad("rope dx", x, dx, N, rope_obj, &r);
    /* per-row positions equal the (B, T, pos0) form */
    rope_obj(&r);
    int pos[B * T];
    for (int i = 0; i < B * T; i++)
        pos[i] = 3 + i % T;
    float y2[N];
    memcpy(y2, x, sizeof y2);
    hl_rope_forward(y2, B * T, H, HD, pos, &rt);
    CHECK(!memcmp(y2, y, sizeof y2), "rope per-row positions equal the batched form");
    hl_rope_table_free(&rt);
}

/* ---- attention (GQA + padding) ---- */
typedef struct {
    float *q, *k, *v, *out, *lse, *c, *scratch;
    hl_attn_dims d;
    int64_t nout;
} attn_ctx;
static double attn_obj(void *p) {
    attn_ctx *a = p;
    hl_attention_forward(a->out, a->lse, a->q, a->k, a->v, &a->d, a->scratch);
    return dotc(a->c, a->out, a->nout);
}
static void test_attention(void) {
    enum { B = 2, T = 5, H = 4, KVH = 2, HD = 6 };
    const int64_t nq = B * T * H * HD, nkv = B * T * KVH * HD;
    int lens[B] = {5, 3};
    float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *out = malloc(nq * 4);
    float *c = malloc(nq * 4), *lse = malloc(B * H * T * 4), *dq = malloc(nq * 4), *dk = calloc(nkv, 4),
          *dv = calloc(nkv, 4);
    fill(q, nq, 1.0f);
    fill(k, nkv, 1.0f);
    fill(v, nkv, 1.0f);
    fill(c, nq, 1.0f);
    attn_ctx a = {q, k, v, out, lse, c, NULL, {0}, nq};
    a.d = (hl_attn_dims){.B = B, .Tq = T, .Tk = T, .n_heads = H, .n_kv_heads = KVH, .head_dim = HD, .q_len = lens};
    a.scratch = malloc((size_t)hl_attention_scratch_floats(&a.d) * 4);
    attn_obj(&a);
    /* forward against a direct double computation for one valid row of the padded sequence */
    {
        int b = 1, t = 2, h = 3, g = h / (H / KVH);
        double s[T], mx = -1e30, sum = 0;
        for (int j = 0; j <= t; j++) {
            double dot = 0;
            for (int e = 0; e < HD; e++)
                dot += (double)q[((b * T + t) * H + h) * HD + e] * k[((b * T + j) * KVH + g) * HD + e];
            s[j] = dot / sqrt((double)HD);
            mx = s[j] > mx ? s[j] : mx;
        }
        for (int j = 0; j <= t; j++)
            sum += exp(s[j] - mx);
        for (int e = 0; e < HD; e++) {
            double o = 0;
            for (int j = 0; j <= t; j++)
                o += exp(s[j] - mx) / sum * v[((b * T + j) * KVH + g) * HD + e];
            CHECK_CLOSE(out[((b * T + t) * H + h) * HD + e], o, 1e-5, "attention forward");
        }
        for (int e = 0; e < HD; e++) /* padding rows are zero */
            CHECK(out[((b * T + 4) * H + h) * HD + e] == 0.0f, "padding row output is zero");
    }
    hl_attention_backward(dq, dk, dv, c, out, lse, q, k, v, &a.d, a.scratch);
    check_grad("attention dq", q, dq, nq, attn_obj, &a);
    check_grad("attention dk (GQA, padded)", k, dk, nkv, attn_obj, &a);
    check_grad("attention dv (GQA, padded)", v, dv, nkv, attn_obj, &a);

    /* KV-cache form: the last 2 rows of sequence 0 as new queries at positions 3, 4 over a
     * cache of 5 keys give the same outputs as the full computation. */
    {
        int p0 = 3, ql = 5;
        hl_attn_dims dd = {.B = 1, .Tq = 2, .Tk = T, .n_heads = H, .n_kv_heads = KVH, .head_dim = HD,
                           .pos0 = &p0, .q_len = &ql, .kv_len = &ql};
        float o2[2 * H * HD];
        hl_attention_forward(o2, NULL, q + 3 * H * HD, k, v, &dd, a.scratch);
        double worst = 0;
        for (int i = 0; i < 2 * H * HD; i++)
            worst = fmax(worst, fabs(o2[i] - out[3 * H * HD + i]));
        CHECK(worst < 1e-6, "attention with a position offset matches the full pass (max diff %g)", worst);
    }
    free(q), free(k), free(v), free(out), free(c), free(lse), free(dq), free(dk), free(dv), free(a.scratch);
}

/* ---- rope with per-token positions (packed rows restart at 0 in every example) ---- */
typedef struct {
    float *x, *y, *c;
    const int *pos;
    int rows, H, hd;
    hl_rope_table *rt;
} rope_pos_ctx;
static double rope_pos_obj(void *p) {
    rope_pos_ctx *r = p;
    int64_t n = (int64_t)r->rows * r->H * r->hd;
    memcpy(r->y, r->x, (size_t)n * sizeof(float));
    hl_rope_forward(r->y, r->rows, r->H, r->hd, r->pos, r->rt);
    return dotc(r->c, r->y, n);
}
static void test_rope_positions(void) {
    enum { ROWS = 9, H = 2, HD = 8, N = ROWS * H * HD };
    const int pos[ROWS] = {0, 1, 2, 3, 0, 1, 0, 1, 2}; /* three examples back to back */
    hl_rope_table rt;
    CHECK(hl_rope_table_init(&rt, 8, HD, 10000.0f) == 0, "rope table");
    float x[N], y[N], c[N], dx[N];
    fill(x, N, 1.0f);
    fill(c, N, 1.0f);
    rope_pos_ctx r = {x, y, c, pos, ROWS, H, HD, &rt};
    rope_pos_obj(&r);
    /* row 5 (second token of the second example) rotates by position 1, in double */
    for (int h = 0; h < H; h++)
        for (int j = 0; j < HD / 2; j++) {
            double th = 1.0 * pow(10000.0, -2.0 * j / HD);
            const float *xi = x + (5 * H + h) * HD, *yi = y + (5 * H + h) * HD;
            CHECK_CLOSE(yi[j], xi[j] * cos(th) - xi[j + HD / 2] * sin(th), 1e-6, "rope position 1, first half");
            CHECK_CLOSE(yi[j + HD / 2], xi[j + HD / 2] * cos(th) + xi[j] * sin(th), 1e-6,
                        "rope position 1, second half");
        }
    memcpy(dx, c, sizeof dx);
    hl_rope_backward(dx, ROWS, H, HD, pos, &rt);
    check_grad("rope dx, per-token positions", x, dx, N, rope_pos_obj, &r);
    /* with the positions of B sequences from pos0 it is the (B, T, pos0) backward, bit for bit */
    {
        int p2[ROWS];
        for (int i = 0; i < ROWS; i++)
            p2[i] = 2 + i % 3;
        float a[N], b[N];
        memcpy(a, c, sizeof a);
        memcpy(b, c, sizeof b);
        hl_rope_backward(a, ROWS, H, HD, p2, &rt);
        hl_rope_backward_bt(b, 3, 3, H, HD, 2, &rt);
        CHECK(!memcmp(a, b, sizeof a), "per-token rope backward equals the batched form");
    }
    hl_rope_table_free(&rt);
}

/* ---- attention over packed rows (block-diagonal causal mask, GQA) ---- */

/* Direct double computation of one output row of a segment: query row r (flat) of head h sees
 * the keys of rows seg0 .. r. */
static double attn_ref(const float *q, const float *k, const float *v, int H, int KVH, int HD, int r, int seg0, int h,
                       int e) {
    int g = h / (H / KVH), n = r - seg0 + 1;
    double s[256], mx = -1e300, sum = 0, o = 0;
    for (int j = 0; j < n; j++) {
        double dot = 0;
        for (int c = 0; c < HD; c++)
            dot += (double)q[(r * H + h) * HD + c] * k[((seg0 + j) * KVH + g) * HD + c];
        s[j] = dot / sqrt((double)HD);
        mx = s[j] > mx ? s[j] : mx;
    }
    for (int j = 0; j < n; j++)
        sum += exp(s[j] - mx);
    for (int j = 0; j < n; j++)
        o += exp(s[j] - mx) / sum * v[((seg0 + j) * KVH + g) * HD + e];
    return o;
}

static void test_attention_packed(void) {
    /* 2 rows of 9: row 0 holds examples of 4 and 5 tokens (full), row 1 one of 1 and one of 5,
     * then 3 padding columns */
    enum { B = 2, T = 9, H = 4, KVH = 2, HD = 6, NSEG = 4 };
    const int32_t st[NSEG] = {0, 4, 9, 10}, ln[NSEG] = {4, 5, 1, 5};
    const int64_t nq = B * T * H * HD, nkv = B * T * KVH * HD;
    float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *out = malloc(nq * 4);
    float *c = malloc(nq * 4), *lse = malloc(B * H * T * 4), *dq = malloc(nq * 4), *dk = calloc(nkv, 4),
          *dv = calloc(nkv, 4);
    fill(q, nq, 1.0f);
    fill(k, nkv, 1.0f);
    fill(v, nkv, 1.0f);
    fill(c, nq, 1.0f);
    for (int i = 0; i < B * H * T; i++)
        lse[i] = 7.0f; /* must be overwritten (padding: 0) */
    for (int64_t i = 0; i < nq; i++)
        out[i] = dq[i] = 7.0f;
    attn_ctx a = {q, k, v, out, lse, c, NULL, {0}, nq};
    a.d = (hl_attn_dims){.B = B, .Tq = T, .Tk = T, .n_heads = H, .n_kv_heads = KVH, .head_dim = HD, .n_seg = NSEG,
                         .seg_start = st, .seg_len = ln, .seg_max = T};
    a.scratch = malloc((size_t)hl_attention_scratch_floats(&a.d) * 4);
    attn_obj(&a);
    double worst = 0;
    for (int e = 0; e < NSEG; e++)
        for (int r = st[e]; r < st[e] + ln[e]; r++)
            for (int h = 0; h < H; h++)
                for (int x = 0; x < HD; x++)
                    worst = fmax(worst,
                                 fabs(out[(r * H + h) * HD + x] - attn_ref(q, k, v, H, KVH, HD, r, st[e], h, x)));
    CHECK(worst < 1e-5, "packed attention forward against the block-diagonal definition (max diff %g)", worst);
    int pad_zero = 1;
    for (int r = 15; r < 18; r++)
        for (int i = 0; i < H * HD; i++)
            pad_zero &= out[r * H * HD + i] == 0.0f;
    for (int h = 0; h < H; h++)
        for (int t = 6; t < 9; t++)
            pad_zero &= lse[(1 * H + h) * T + t] == 0.0f;
    CHECK(pad_zero, "padding rows of the output and their lse are zero");
    hl_attention_backward(dq, dk, dv, c, out, lse, q, k, v, &a.d, a.scratch);
    for (int r = 15; r < 18; r++)
        for (int i = 0; i < H * HD; i++)
            pad_zero &= dq[r * H * HD + i] == 0.0f;
    CHECK(pad_zero, "padding rows of dq are zero");
    check_grad("packed attention dq", q, dq, nq, attn_obj, &a);
    check_grad("packed attention dk (GQA, block-diagonal)", k, dk, nkv, attn_obj, &a);
    check_grad("packed attention dv (GQA, block-diagonal)", v, dv, nkv, attn_obj, &a);
    free(q), free(k), free(v), free(out), free(c), free(lse), free(dq), free(dk), free(dv), free(a.scratch);
}

/* Segments longer than a query block, in one row longer than seg_max, with more work than the
 * parallel threshold: every segment equals itself run alone as a plain causal sequence
 * (outputs, lse and all gradients). */
static void test_attention_packed_long(void) {
    enum { T = 160, H = 4, KVH = 2, HD = 16, NSEG = 3, SEGMAX = 80 }; /* 3·4·160·80·16 > 2e6 */
    const int32_t st[NSEG] = {0, 70, 136}, ln[NSEG] = {70, 66, 20}; /* 4 padding columns */
    const int64_t qw = H * HD, kw = KVH * HD;
    float *q = malloc(T * qw * 4), *k = malloc(T * kw * 4), *v = malloc(T * kw * 4), *out = malloc(T * qw * 4);
    float *dout = malloc(T * qw * 4), *lse = malloc(H * T * 4), *dq = malloc(T * qw * 4), *dk = calloc(T * kw, 4),
          *dv = calloc(T * kw, 4);
    float *o1 = malloc(T * qw * 4), *l1 = malloc(H * T * 4), *dq1 = malloc(T * qw * 4), *dk1 = calloc(T * kw, 4),
          *dv1 = calloc(T * kw, 4);
    fill(q, T * qw, 1.0f);
    fill(k, T * kw, 1.0f);
    fill(v, T * kw, 1.0f);
    fill(dout, T * qw, 1.0f);
    hl_attn_dims d = {.B = 1, .Tq = T, .Tk = T, .n_heads = H, .n_kv_heads = KVH, .head_dim = HD, .lanes = 2,
                      .n_seg = NSEG, .seg_start = st, .seg_len = ln, .seg_max = SEGMAX};
    hl_attn_dims d1 = {.B = 1, .Tq = SEGMAX, .Tk = SEGMAX, .n_heads = H, .n_kv_heads = KVH, .head_dim = HD};
    float *scratch = malloc((size_t)hl_attention_scratch_floats(&d) * 4);
    CHECK(hl_attention_scratch_floats(&d) == hl_attention_scratch_floats(&(hl_attn_dims){
                                                 .B = 2, .Tq = SEGMAX, .Tk = SEGMAX, .lanes = 2}),
          "packed scratch is sized by seg_max like a padded batch of seg_max columns");
    hl_attention_forward(out, lse, q, k, v, &d, scratch);
    hl_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, &d, scratch);
    for (int e = 0; e < NSEG; e++) {
        int64_t r0 = st[e];
        d1.Tq = d1.Tk = ln[e];
        hl_attention_forward(o1 + r0 * qw, l1, q + r0 * qw, k + r0 * kw, v + r0 * kw, &d1, scratch);
        hl_attention_backward(dq1 + r0 * qw, dk1 + r0 * kw, dv1 + r0 * kw, dout + r0 * qw, o1 + r0 * qw, l1,
                              q + r0 * qw, k + r0 * kw, v + r0 * kw, &d1, scratch);
        double wl = 0;
        for (int h = 0; h < H; h++)
            for (int t = 0; t < ln[e]; t++)
                wl = fmax(wl, fabs(l1[h * ln[e] + t] - lse[h * T + r0 + t]));
        CHECK(wl < 1e-6, "segment %d: lse equals the segment alone (max diff %g)", e, wl);
    }
    double w[4] = {0, 0, 0, 0}, m[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < 156 * qw; i++) {
        w[0] = fmax(w[0], fabs(out[i] - o1[i])), m[0] = fmax(m[0], fabs(o1[i]));
        w[1] = fmax(w[1], fabs(dq[i] - dq1[i])), m[1] = fmax(m[1], fabs(dq1[i]));
    }
    for (int64_t i = 0; i < 156 * kw; i++) {
        w[2] = fmax(w[2], fabs(dk[i] - dk1[i])), m[2] = fmax(m[2], fabs(dk1[i]));
        w[3] = fmax(w[3], fabs(dv[i] - dv1[i])), m[3] = fmax(m[3], fabs(dv1[i]));
    }
    const char *nm[4] = {"out", "dq", "dk", "dv"};
    for (int i = 0; i < 4; i++)
        CHECK(w[i] <= 1e-6 * m[i], "long packed segments: %s equals each segment alone (max diff %g of %g)", nm[i],
              w[i], m[i]);
    free(q), free(k), free(v), free(out), free(dout), free(lse), free(dq), free(dk), free(dv);
    free(o1), free(l1), free(dq1), free(dk1), free(dv1), free(scratch);
}

/* ---- swiglu ---- */
typedef struct {
    float *g, *u, *h, *c;
    int n;
} swi_ctx;
static double swi_obj(void *p) {
    swi_ctx *s = p;
    hl_swiglu_forward(s->h, s->g, s->u, s->n);
    return dotc(s->c, s->h, s->n);
}
static void test_swiglu(void) {
    enum { N = 20 };
    float g[N], u[N], h[N], c[N], dg[N] = {0}, du[N] = {0};
    fill(g, N, 3.0f);
    fill(u, N, 1.0f);
    fill(c, N, 1.0f);
    swi_ctx s = {g, u, h, c, N};
    swi_obj(&s);
    for (int i = 0; i < N; i++)
        CHECK_CLOSE(h[i], g[i] / (1.0 + exp(-(double)g[i])) * u[i], 1e-6, "swiglu forward");
    hl_swiglu_backward(dg, du, c, g, u, N);
    check_grad("swiglu dg", g, dg, N, swi_obj, &s);
    check_grad("swiglu du", u, du, N, swi_obj, &s);
    /* the in-place form writes the same values */
    float g2[N], u2[N];
    memcpy(g2, g, sizeof g2);
    memcpy(u2, u, sizeof u2);
    hl_swiglu_backward_inplace(g2, u2, c, N);
    CHECK(!memcmp(g2, dg, sizeof g2) && !memcmp(u2, du, sizeof u2), "in-place swiglu backward equals accumulate form");
}

/* ---- softmax ---- */
typedef struct {
    float *x, *y, *c;
    int rows, cols;
} sm_ctx;
static double sm_obj(void *p) {
    sm_ctx *s = p;
    hl_softmax_forward(s->y, s->x, s->rows, s->cols);
    return dotc(s->c, s->y, (int64_t)s->rows * s->cols);
}
static void test_softmax(void) {
    enum { R = 3, C = 5 };
    float x[R * C], y[R * C], c[R * C], dx[R * C] = {0};
    fill(x, R * C, 2.0f);
    fill(c, R * C, 1.0f);
    sm_ctx s = {x, y, c, R, C};
    sm_obj(&s);
    hl_softmax_backward(dx, c, y, R, C);
    check_grad("softmax dx", x, dx, R * C, sm_obj, &s);
}

/* ---- cross-entropy ---- */
typedef struct {
    float *logits;
    int *tg;
    int rows, V;
} ce_ctx;
static double ce_obj(void *p) {
    ce_ctx *c = p;
    int64_t n;
    return hl_cross_entropy(NULL, c->logits, c->tg, c->rows, c->V, 1.0f, &n) / (double)n;
}
static void test_cross_entropy(void) {
    enum { R = 4, V = 9 };
    float lg[R * V], d[R * V];
    int tg[R] = {3, -100, 0, 8};
    fill(lg, R * V, 3.0f);
    ce_ctx c = {lg, tg, R, V};
    int64_t n;
    double sum = hl_cross_entropy(d, lg, tg, R, V, 1.0f / 3.0f, &n);
    CHECK(n == 3, "3 counted rows (got %lld)", (long long)n);
    /* the loss against its definition */
    double ref = 0;
    for (int r = 0; r < R; r++) {
        if (tg[r] < 0)
            continue;
        double s = 0;
        for (int i = 0; i < V; i++)
            s += exp((double)lg[r * V + i]);
        ref += log(s) - lg[r * V + tg[r]];
    }
    CHECK_CLOSE(sum, ref, 1e-6, "cross-entropy sum");
    for (int i = 0; i < V; i++)
        CHECK(d[1 * V + i] == 0.0f, "ignored row has zero gradient");
    check_grad("cross-entropy dlogits", lg, d, R * V, ce_obj, &c);
    /* in-place (aliasing) form */
    float lg2[R * V];
    memcpy(lg2, lg, sizeof lg2);
    hl_cross_entropy(lg2, lg2, tg, R, V, 1.0f / 3.0f, &n);
    CHECK(!memcmp(lg2, d, sizeof d), "aliased dlogits equal the separate buffer");
}

/* ---- weight gemm for every dtype ---- */
static void test_gemm_dtypes(void) {
    enum { M = 130, N = 300, K = 70 };
    static float x[M * K], w32[N * K], y[M * N], dy[M * N], dx[M * K];
    static uint16_t w16[N * K];
    fill(x, M * K, 1.0f);
    fill(dy, M * N, 1.0f);
    /* the f32 path (bf16 arithmetic is checked in test_gemm_paths) */
    hl_gemm_ws ws = {malloc(hl_gemm_ws_floats(K) * 4), (int64_t)hl_gemm_ws_floats(K), HL_COMPUTE_F32};
    for (int dt = 0; dt < 3; dt++) {
        for (int i = 0; i < N * K; i++) {
            float f = frand();
            if (dt == 1)
                w16[i] = hl_f32_to_f16(f), w32[i] = hl_f16_to_f32(w16[i]);
            else if (dt == 2)
                w16[i] = hl_f32_to_bf16(f), w32[i] = hl_bf16_to_f32(w16[i]);
            else
                w32[i] = f;
        }
        hl_weight W = {(hl_dtype)dt, dt ? (const void *)w16 : (const void *)w32, N, K};
        static const int ms[] = {1, 4, 7, M}; /* up to HL_GEMM_FUSED_ROWS the fused kernel, M the tiles */
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            int m = ms[mi];
            hl_gemm_xwt(y, x, &W, m, 0.0f, &ws);
            double worst = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int kk = 0; kk < K; kk++)
                        s += (double)x[i * K + kk] * w32[j * K + kk];
                    worst = fmax(worst, fabs(s - y[i * N + j]));
                }
            CHECK(worst < 1e-4, "x·Wᵀ dtype %s M=%d: max error %g", hl_dtype_name((hl_dtype)dt), m, worst);
        }
        memset(dx, 0, sizeof dx);
        hl_gemm_dx_acc(dx, dy, &W, M, &ws);
        double worst = 0;
        for (int i = 0; i < M; i++)
            for (int kk = 0; kk < K; kk++) {
                double s = 0;
                for (int j = 0; j < N; j++)
                    s += (double)dy[i * N + j] * w32[j * K + kk];
                worst = fmax(worst, fabs(s - dx[i * K + kk]));
            }
        CHECK(worst < 1e-4, "dX += dY·W dtype %s: max error %g", hl_dtype_name((hl_dtype)dt), worst);
    }
    free(ws.buf);
}

/* Large enough to run in parallel lanes, with a workspace so small that every lane
 * converts many blocks (forward: 16 rows; backward: a few rows of its column range). */
static void test_gemm_blocks(void) {
    enum { M = HL_GEMM_FUSED_ROWS + 32, N = 300, K = 700 }; /* more rows than the fused kernel takes */
    float *x = malloc(M * K * 4), *w32 = malloc(N * K * 4), *y = malloc(M * N * 4), *dy = malloc(M * N * 4);
    float *dx = calloc(M * K, 4);
    uint16_t *w16 = malloc(N * K * 2);
    fill(x, M * K, 1.0f);
    fill(dy, M * N, 1.0f);
    for (int i = 0; i < N * K; i++)
        w16[i] = hl_f32_to_bf16(frand()), w32[i] = hl_bf16_to_f32(w16[i]);
    hl_gemm_ws ws = {malloc(2 * 16 * K * 4), 2 * 16 * K, HL_COMPUTE_F32};
    hl_weight W = {HL_DTYPE_BF16, w16, N, K};
    hl_gemm_xwt(y, x, &W, M, 0.0f, &ws);
    hl_gemm_dx_acc(dx, dy, &W, M, &ws);
    double wy = 0, wx = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)x[i * K + k] * w32[j * K + k];
            wy = fmax(wy, fabs(s - y[i * N + j]));
        }
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < N; j++)
                s += (double)dy[i * N + j] * w32[j * K + k];
            wx = fmax(wx, fabs(s - dx[i * K + k]));
        }
    CHECK(wy < 1e-3 && wx < 1e-3, "blocked bf16 products with a small workspace: max errors %g, %g", wy, wx);
    free(x), free(w32), free(y), free(dy), free(dx), free(w16), free(ws.buf);
}

int main(void) {
    hl_rng_seed(&rng, 1234, HL_RNG_STREAM_USER);
    test_gemm_blocks();
    test_rmsnorm();
    test_rope();
    test_attention();
    test_rope_positions();
    test_attention_packed();
    test_attention_packed_long();
    test_swiglu();
    test_softmax();
    test_cross_entropy();
    test_gemm_dtypes();
    return hl_test_finish();
}
