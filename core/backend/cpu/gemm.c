/* Frozen-weight products: compute mode → path → kernel (see gemm.h), and the one place that
 * calls OpenBLAS. Kernels live beside this file: gemm_fused.c (few rows), gemm_dnnl.c (oneDNN). */
#include "core/backend/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/convert.h"
#include "core/backend/cpu/gemm_internal.h"

/* Threading model: ONE pool of threads, OpenMP's. OpenBLAS runs single-threaded inside our
 * parallel regions (each thread multiplies its own block of C), so two runtimes never
 * compete for the cores (on a busy 2-core machine, OpenBLAS threads plus spinning OpenMP
 * workers made small models ~10x slower). oneDNN is built on the same OpenMP runtime and
 * runs its primitives on these threads. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single(void) { openblas_set_num_threads(1); }
static inline void blas_init(void) { pthread_once(&blas_once, blas_single); }

void hl_set_threads(int n) {
    if (n <= 0)
        n = omp_get_num_procs();
    blas_init();
    omp_set_num_threads(n);
}

int hl_get_threads(void) { return omp_get_max_threads(); }

/* ---- compute modes and paths ------------------------------------------------------------- */

static int bf16_forced = -1;             /* hl_gemm_set_bf16_path; -1: the default choice */
static hl_gemm_kernel kernel_choice;     /* hl_gemm_set_kernel */

int hl_gemm_bf16_native(void) { return hl_dnnl_bf16_native(); }

static hl_gemm_path bf16_path(void) {
    if (bf16_forced >= 0)
        return (hl_gemm_path)bf16_forced;
    return hl_gemm_bf16_native() ? HL_GEMM_PATH_DNNL_BF16 : HL_GEMM_PATH_F32;
}

int hl_gemm_set_bf16_path(hl_gemm_path p) {
    if (p == HL_GEMM_PATH_DNNL_BF16 && !hl_gemm_bf16_native())
        return -1;
    bf16_forced = p == HL_GEMM_PATH_F32 ? -1 : (int)p;
    return 0;
}

void hl_gemm_set_kernel(hl_gemm_kernel k) { kernel_choice = k; }

hl_gemm_path hl_gemm_path_for(hl_compute c, hl_dtype wdt, int64_t rows, int64_t cols) {
    if (c == HL_COMPUTE_F32)
        return HL_GEMM_PATH_F32;
    if (c != HL_COMPUTE_BF16 && (wdt == HL_DTYPE_F32 || rows * cols < HL_GEMM_AUTO_BF16_MIN))
        return HL_GEMM_PATH_F32;
    return bf16_path();
}

const char *hl_gemm_dnnl_version(void) { return hl_dnnl_version_str(); }
const char *hl_gemm_dnnl_isa(void) { return hl_dnnl_isa_str(); }

const char *hl_gemm_describe(hl_compute c, hl_dtype wdt, char *buf, size_t n) {
    return hl_gemm_describe_shape(c, wdt, (int64_t)1 << 20, (int64_t)1 << 20, buf, n);
}

const char *hl_gemm_describe_shape(hl_compute c, hl_dtype wdt, int64_t rows, int64_t cols, char *buf, size_t n) {
    hl_gemm_path p = hl_gemm_path_for(c, wdt, rows, cols);
    const char *ver = hl_dnnl_version_str(), *isa = hl_dnnl_isa_str();
    if (p == HL_GEMM_PATH_DNNL_BF16)
        snprintf(buf, n, "oneDNN %s bf16, f32 accumulate (%s)", ver, isa);
    else if (p == HL_GEMM_PATH_REF_BF16)
        snprintf(buf, n, "bf16 reference (rounded inputs, f32 arithmetic)");
    else if (c == HL_COMPUTE_F32 || (c == HL_COMPUTE_AUTO && wdt == HL_DTYPE_F32))
        snprintf(buf, n, "OpenBLAS f32");
    else if (c == HL_COMPUTE_AUTO && rows * cols < HL_GEMM_AUTO_BF16_MIN)
        snprintf(buf, n, "OpenBLAS f32 (matrices too small to gain from bf16)");
    else if (ver) /* bf16 asked for (or auto on 16-bit weights) but this CPU has no bf16 path */
        snprintf(buf, n, "OpenBLAS f32 (no bf16 matmul on this CPU: oneDNN %s sees %s)", ver, isa);
    else
        snprintf(buf, n, "OpenBLAS f32 (built without oneDNN: no bf16 matmul)");
    return buf;
}

/* ---- workspace ----------------------------------------------------------------------------- */

/* f32 path, per lane: at least 2 MiB (a converted block stays in L2 while sgemm streams X
 * past it) and at least 16 weight rows. */
#define HL_LANE_MIN_FLOATS ((int64_t)1 << 19)
#define HL_MAX_LANES 64
/* bf16 path: activation rows converted per chunk (enough rows for the matrix units to run at
 * speed; longer inputs are done chunk by chunk). */
#define HL_BF16_CHUNK_ROWS 512

static int64_t lane_floats(int64_t cols) {
    int64_t f = 16 * cols;
    return f > HL_LANE_MIN_FLOATS ? f : HL_LANE_MIN_FLOATS;
}

size_t hl_gemm_ws_floats(int64_t cols) {
    int lanes = omp_get_max_threads();
    lanes = lanes < 1 ? 1 : lanes > HL_MAX_LANES ? HL_MAX_LANES : lanes;
    int64_t f = lanes * lane_floats(cols);
    /* bf16: a chunk of activation rows and as many weight rows, both in bf16 (or rounded f32 on
     * the reference path: half the rows each) */
    int64_t b = HL_BF16_CHUNK_ROWS * cols;
    if (bf16_path() != HL_GEMM_PATH_F32 && b > f)
        f = b;
    return (size_t)f;
}

/* Convert 16-bit weight rows [row0, row0 + nrows), columns [col0, col0 + ncols) to f32 (one thread). */
static void convert_block(float *dst, const hl_weight *W, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols) {
    for (int64_t r = 0; r < nrows; r++)
        hl_to_f32_n(dst + r * ncols, (const uint16_t *)W->data + (row0 + r) * W->cols + col0, W->dtype, ncols);
}

/* Products below this many flops run on the calling thread (~100 µs of work per thread at
 * least): a parallel region costs microseconds on an idle machine and a scheduler time slice
 * on a busy one, where spinning OpenMP workers compete with other processes. Elementwise
 * loops elsewhere use the same rule of thumb (~1e5 elements). */
#define HL_PAR_FLOPS 1e7
/* Column/row blocks handed to threads are multiples of this (whole SIMD kernels). */
#define HL_PAR_ALIGN 16

void hl_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    blas_init();
    const CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int nt = omp_get_max_threads();
    if (nt <= 1 || omp_in_parallel() || 2.0 * (double)M * (double)N * (double)K < HL_PAR_FLOPS) {
        cblas_sgemm(CblasRowMajor, TA, TB, (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B,
                    (blasint)ldb, beta, C, (blasint)ldc);
        return;
    }
    /* Split the larger of M and N into nt contiguous blocks; each element of C is computed
     * by exactly one single-threaded call over the whole K: no reduction across threads. */
    int split_n = N >= M;
    int64_t len = split_n ? N : M;
    int64_t blk = (len + nt - 1) / nt;
    blk = (blk + HL_PAR_ALIGN - 1) / HL_PAR_ALIGN * HL_PAR_ALIGN;
    int parts = (int)((len + blk - 1) / blk);
#pragma omp parallel for schedule(static) num_threads(parts)
    for (int p = 0; p < parts; p++) {
        int64_t a = p * blk, n = len - a < blk ? len - a : blk;
        if (split_n) {
            const float *Bp = tb ? B + a * ldb : B + a;
            cblas_sgemm(CblasRowMajor, TA, TB, (blasint)M, (blasint)n, (blasint)K, alpha, A, (blasint)lda, Bp,
                        (blasint)ldb, beta, C + a, (blasint)ldc);
        } else {
            const float *Ap = ta ? A + a : A + a * lda;
            cblas_sgemm(CblasRowMajor, TA, TB, (blasint)n, (blasint)N, (blasint)K, alpha, Ap, (blasint)lda, B,
                        (blasint)ldb, beta, C + a * ldc, (blasint)ldc);
        }
    }
}

/* Lanes usable with this workspace and thread count. */
static int ws_lanes(const hl_gemm_ws *ws, int64_t per_lane) {
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    int64_t fit = ws && ws->buf ? ws->floats / per_lane : 0;
    int lanes = (int)(fit < nt ? fit : nt);
    return lanes < 1 ? 1 : lanes;
}

/* ---- f32 path -------------------------------------------------------------------------------- */

static int use_fused_f32(int64_t M) {
    return M <= HL_GEMM_FUSED_ROWS && kernel_choice != HL_GEMM_KERNEL_BLOCKED;
}

static void xwt_f32(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M, float beta,
                    const hl_gemm_ws *ws) {
    const int64_t N = W->rows, K = W->cols;
    if (W->dtype == HL_DTYPE_F32) {
        hl_sgemm(0, 1, M, N, K, 1.0f, X, ldx, (const float *)W->data, K, beta, Y, ldy);
        return;
    }
    if (use_fused_f32(M)) {
        hl_gemm_fused_f32(Y, ldy, X, ldx, W, M, beta);
        return;
    }
    int64_t per = lane_floats(K);
    if (ws->floats < per) /* a smaller workspace still works, with fewer rows per block */
        per = ws->floats;
    int64_t sub = per / K; /* weight rows converted at a time */
    sub = sub >= 16 ? sub / 16 * 16 : sub;
    int lanes = 2.0 * (double)M * N * K < HL_PAR_FLOPS ? 1 : ws_lanes(ws, per);
    int64_t blk = (N + lanes - 1) / lanes;
    blk = (blk + 15) / 16 * 16;
    int parts = (int)((N + blk - 1) / blk);
    /* Each lane owns rows [n0, n1) of W, i.e. columns of Y: convert a block, multiply, repeat. */
#pragma omp parallel for schedule(static) num_threads(parts) if (parts > 1)
    for (int p = 0; p < parts; p++) {
        float *slice = ws->buf + (int64_t)(parts > 1 ? omp_get_thread_num() : 0) * per;
        int64_t n1 = (p + 1) * blk < N ? (p + 1) * blk : N;
        for (int64_t n0 = p * blk; n0 < n1; n0 += sub) {
            int64_t nb = n1 - n0 < sub ? n1 - n0 : sub;
            convert_block(slice, W, n0, nb, 0, K);
            hl_sgemm(0, 1, M, nb, K, 1.0f, X, ldx, slice, K, beta, Y + n0, ldy);
        }
    }
}

static void dx_f32(float *dX, const float *dY, const hl_weight *W, int64_t M, const hl_gemm_ws *ws) {
    const int64_t N = W->rows, K = W->cols;
    if (W->dtype == HL_DTYPE_F32) {
        hl_sgemm(0, 0, M, K, N, 1.0f, dY, N, (const float *)W->data, K, 1.0f, dX, K);
        return;
    }
    int64_t per = lane_floats(K);
    if (ws->floats < per)
        per = ws->floats;
    int lanes = 2.0 * (double)M * N * K < HL_PAR_FLOPS ? 1 : ws_lanes(ws, per);
    /* Each lane owns columns [k0, k1) of W, i.e. of dX, so the sum over W's rows stays inside
     * one thread, in row order (deterministic, no reduction across threads). */
    int64_t kc = (K + lanes - 1) / lanes;
    kc = (kc + 15) / 16 * 16;
    int parts = (int)((K + kc - 1) / kc);
    int64_t sub = per / kc; /* weight rows per block */
    sub = sub < 1 ? 1 : sub;
#pragma omp parallel for schedule(static) num_threads(parts) if (parts > 1)
    for (int p = 0; p < parts; p++) {
        float *slice = ws->buf + (int64_t)(parts > 1 ? omp_get_thread_num() : 0) * per;
        int64_t k0 = p * kc, kn = K - k0 < kc ? K - k0 : kc;
        for (int64_t n0 = 0; n0 < N; n0 += sub) {
            int64_t nb = N - n0 < sub ? N - n0 : sub;
            convert_block(slice, W, n0, nb, k0, kn);
            hl_sgemm(0, 0, M, kn, nb, 1.0f, dY + n0, N, slice, kn, 1.0f, dX + k0, K);
        }
    }
}

/* ---- bf16 paths ------------------------------------------------------------------------------ *
 * One driver for both products, C = beta·C + A · op(W):
 *   xwt: A = X [M, K], C = Y [M, N], op(W) = Wᵀ            (reduction over K)
 *   dx:  A = dY [M, N], C = dX [M, K], op(W) = W, beta = 1  (reduction over N)
 * Rows of A are converted chunk by chunk into the front of the workspace; weights that are not
 * bf16 already (and every weight on the reference path, which works in f32) are converted block
 * by block of rows into the back. oneDNN multiplies (or, on the reference path, OpenBLAS on the
 * rounded f32 values: the same arithmetic, since a product of two bf16 numbers is exact in f32). */

typedef struct {
    int dx;        /* 0: xwt, 1: dx */
    int ref;       /* reference path (f32 elements) instead of oneDNN (bf16 elements) */
    int conv_w;    /* weights converted block by block */
    int64_t Kr;    /* reduction length = columns of A */
    int64_t mb;    /* rows of A per chunk */
    int64_t nb;    /* weight rows per block (conv_w), else W->rows */
    size_t es;     /* element size in the workspace */
    char *wpart;   /* weight blocks (conv_w) */
} bf16_plan;

static int bf16_plan_make(bf16_plan *pl, int dx, hl_gemm_path path, const hl_weight *W, int64_t M,
                          const hl_gemm_ws *ws) {
    memset(pl, 0, sizeof *pl);
    pl->dx = dx;
    pl->ref = path == HL_GEMM_PATH_REF_BF16;
    pl->conv_w = pl->ref || W->dtype != HL_DTYPE_BF16;
    pl->es = pl->ref ? sizeof(float) : sizeof(uint16_t);
    pl->Kr = dx ? W->rows : W->cols;
    if (!ws || !ws->buf || ws->floats <= 0)
        return -1;
    size_t cap = (size_t)ws->floats * sizeof(float);
    size_t xcap = pl->conv_w ? cap / 2 : cap;
    int64_t mb = (int64_t)(xcap / (pl->es * (size_t)pl->Kr));
    mb = mb < M ? mb : M;
    pl->mb = mb < HL_BF16_CHUNK_ROWS ? mb : HL_BF16_CHUNK_ROWS;
    pl->nb = W->rows;
    if (pl->conv_w) {
        size_t off = (xcap + 63) / 64 * 64;
        pl->wpart = (char *)ws->buf + off;
        int64_t nb = (int64_t)((cap - off) / (pl->es * (size_t)W->cols));
        nb = nb >= 16 ? nb / 16 * 16 : nb;
        pl->nb = nb < W->rows ? nb : W->rows;
    }
    return pl->mb >= 1 && pl->nb >= 1 ? 0 : -1;
}

/* A's rows [m0, m0 + mc) → workspace (bf16, or rounded f32 on the reference path), row stride Kr. */
static void bf16_convert_rows(const bf16_plan *pl, void *dst, const float *A, int64_t lda, int64_t m0, int64_t mc) {
#pragma omp parallel for schedule(static) if (mc * pl->Kr > 131072 && !omp_in_parallel())
    for (int64_t i = 0; i < mc; i++) {
        if (pl->ref)
            hl_round_bf16_n((float *)dst + i * pl->Kr, A + (m0 + i) * lda, pl->Kr);
        else
            hl_f32_to_bf16_n((uint16_t *)dst + i * pl->Kr, A + (m0 + i) * lda, pl->Kr);
    }
}

/* Weight rows [n0, n0 + nc) → the workspace's weight part, row stride W->cols. */
static void bf16_convert_weights(const bf16_plan *pl, const hl_weight *W, int64_t n0, int64_t nc) {
    const int64_t K = W->cols;
    const size_t wes = hl_dtype_size(W->dtype);
#pragma omp parallel for schedule(static) if (nc * K > 131072 && !omp_in_parallel())
    for (int64_t r = 0; r < nc; r++) {
        const void *src = (const char *)W->data + (size_t)(n0 + r) * (size_t)K * wes;
        if (pl->ref) {
            float *d = (float *)pl->wpart + r * K;
            hl_to_f32_n(d, src, W->dtype, K);
            hl_round_bf16_n(d, d, K);
        } else {
            hl_to_bf16_n((uint16_t *)pl->wpart + r * K, src, W->dtype, K);
        }
    }
}

/* The arguments of one product of the driver: rows [m0, m0 + mc) of A against weight rows
 * [n0, n0 + nc) (all of W without conv_w). */
typedef struct {
    int64_t M, N, K, lda, ldb, ldc;
    int trans_b;
    float beta;
    const void *A, *B;
    float *C;
} mm_args;

static mm_args bf16_args(const bf16_plan *pl, const void *xa, const hl_weight *W, float *C, int64_t ldc, float beta,
                         int64_t m0, int64_t mc, int64_t n0, int64_t nc) {
    const int64_t K = W->cols;
    const void *B = pl->conv_w ? (const void *)pl->wpart : (const char *)W->data + (size_t)n0 * (size_t)K * pl->es;
    mm_args a;
    if (!pl->dx) /* C[m0.., n0..] = beta·C + A_chunk · Wblkᵀ */
        a = (mm_args){mc, nc, K, pl->Kr, K, ldc, 1, beta, xa, B, C + m0 * ldc + n0};
    else /* C[m0.., :] += A_chunk[:, n0..] · Wblk */
        a = (mm_args){mc, K, nc, pl->Kr, K, ldc, 0, 1.0f, (const char *)xa + (size_t)n0 * pl->es, B, C + m0 * ldc};
    return a;
}

/* What oneDNN computes, in plain loops: the last resort when executing a primitive fails after
 * it was created (a small allocation inside oneDNN), so the product is still right. */
static void bf16_plain(const mm_args *a) {
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (int64_t m = 0; m < a->M; m++)
        for (int64_t n = 0; n < a->N; n++) {
            float s = 0.0f;
            for (int64_t k = 0; k < a->K; k++) {
                uint16_t x = ((const uint16_t *)a->A)[m * a->lda + k];
                uint16_t w = ((const uint16_t *)a->B)[a->trans_b ? n * a->ldb + k : k * a->ldb + n];
                s += hl_bf16_to_f32(x) * hl_bf16_to_f32(w);
            }
            float *c = &a->C[m * a->ldc + n];
            *c = a->beta == 0.0f ? s : a->beta * *c + s;
        }
}

/* Who splits a oneDNN product over the threads. oneDNN plans the split of a product over the
 * team itself, and some of oneDNN 2.6's plans are poor: on the 2-core AMX machine the input
 * gradient dY[M, 32000] · W[32000, 4096] (the lm_head's, bf16) took 1.44 s at M = 496, 0.46-0.77 s
 * at M = 511 and 0.41-0.90 s at M = 159, against 0.31, 0.32 and 0.12 s when each thread runs a
 * one-thread primitive on its own slice of the output columns, and every 7B-step product ran at
 * 82-96 GFLOP/s at M = 496 against 360-380 in slices. At row counts where oneDNN's plan is good
 * the two were within about 15% of each other either way (the lm_head's forward at 511-512 rows
 * the exception: 486-744 against ~390), so slices trade a little there for no cliffs anywhere
 * (the one-thread primitives there are oneDNN's AVX512-BF16 gemm, 210 GFLOP/s per
 * thread, where its AMX kernels reached 171 alone and 331 on two threads). Each slice re-reads
 * all of A, which costs little while slices are wide. Teams of more than 4 threads keep oneDNN's
 * own split (on the 16-core Xeon its AMX plans ran the 7B step at 1.28x PyTorch) except for
 * products of few rows whose K is deeper than their N is wide: at 16 rows (batch-16 decode) the
 * down product x[16, 11008]·W[4096, 11008]ᵀ streamed its weights at 47.9 GB/s under oneDNN's
 * split and 67.6 in slices of 256 columns, where q/k/v, o, gate/up and lm_head (K <= N) were
 * 25-45 % slower in slices (bench_decode's slices variant, one run). */
#define HL_DNNL_SLICE_MIN_COLS 1024
#define HL_DNNL_SLICE_MAX_THREADS 4
#define HL_DNNL_SLICE_DEEP_ROWS 64 /* "few rows" above */
static int dnnl_slices_mode = -1; /* hl_gemm_set_dnnl_slices: -1 automatic, 0 never, 1 always */

void hl_gemm_set_dnnl_slices(int mode) { dnnl_slices_mode = mode < 0 ? -1 : !!mode; }

/* Width of each column slice of product a (a multiple of 64, the last slice narrower), or 0 when
 * oneDNN splits the product itself. */
static int64_t slice_cols(const mm_args *a) {
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (dnnl_slices_mode == 0 || nt <= 1)
        return 0;
    int64_t w = (a->N + nt - 1) / nt;
    w = (w + 63) / 64 * 64;
    if (w >= a->N)
        return 0;
    if (dnnl_slices_mode > 0 || (nt <= HL_DNNL_SLICE_MAX_THREADS && w >= HL_DNNL_SLICE_MIN_COLS) ||
        (a->M <= HL_DNNL_SLICE_DEEP_ROWS && a->K > a->N))
        return w;
    return 0;
}

/* Columns [c0, c0 + n) of product a (C's columns; op(B)'s columns). */
static mm_args slice_args(const mm_args *a, int64_t c0, int64_t n) {
    mm_args s = *a;
    s.N = n;
    s.C = a->C + c0;
    s.B = (const uint16_t *)a->B + (a->trans_b ? c0 * a->ldb : c0);
    return s;
}

static void bf16_run(const bf16_plan *pl, const mm_args *a) {
    if (pl->ref) {
        hl_sgemm(0, a->trans_b, a->M, a->N, a->K, 1.0f, a->A, a->lda, a->B, a->ldb, a->beta, a->C, a->ldc);
        return;
    }
    int64_t w = slice_cols(a);
    if (w > 0) {
        int parts = (int)((a->N + w - 1) / w);
#pragma omp parallel for schedule(static) num_threads(parts)
        for (int p = 0; p < parts; p++) {
            int64_t c0 = p * w;
            mm_args s = slice_args(a, c0, a->N - c0 < w ? a->N - c0 : w);
            if (hl_dnnl_matmul(1, s.M, s.N, s.K, s.A, s.lda, s.B, s.ldb, s.trans_b, s.beta, s.C, s.ldc))
                bf16_plain(&s);
        }
        return;
    }
    if (hl_dnnl_matmul(1, a->M, a->N, a->K, a->A, a->lda, a->B, a->ldb, a->trans_b, a->beta, a->C, a->ldc))
        bf16_plain(a);
}

/* 0 when the primitives product a needs (the whole, or its slices) exist or can be made. */
static int bf16_args_ready(const mm_args *a) {
    int64_t w = slice_cols(a);
    if (w == 0)
        return hl_dnnl_matmul_ready(1, a->M, a->N, a->K, a->lda, a->ldb, a->trans_b, a->beta, a->ldc, 0);
    int64_t last = a->N - (a->N - 1) / w * w;
    return hl_dnnl_matmul_ready(1, a->M, w, a->K, a->lda, a->ldb, a->trans_b, a->beta, a->ldc, 1) ||
                   hl_dnnl_matmul_ready(1, a->M, last, a->K, a->lda, a->ldb, a->trans_b, a->beta, a->ldc, 1)
               ? -1
               : 0;
}

/* 0 when every oneDNN primitive the product needs exists (checked before anything is written). */
static int bf16_ready(const bf16_plan *pl, const hl_weight *W, float beta, int64_t ldc, int64_t M) {
    if (pl->ref)
        return 0;
    static float probe[1]; /* stands in for the data: only shapes and strides matter here */
    const int64_t N = W->rows;
    const int64_t ms[2] = {pl->mb, M % pl->mb}, ns[2] = {pl->nb, N % pl->nb};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            if (ms[i] == 0 || ns[j] == 0)
                continue;
            mm_args a = bf16_args(pl, probe, W, probe, ldc, beta, 0, ms[i], 0, ns[j]);
            if (bf16_args_ready(&a))
                return -1;
        }
    return 0;
}

/* C = beta·C + A · op(W) on a bf16 path; -1 (nothing written) when it cannot run here. */
static int bf16_product(int dx, hl_gemm_path path, float *C, int64_t ldc, const float *A, int64_t lda,
                        const hl_weight *W, int64_t M, float beta, const hl_gemm_ws *ws) {
    bf16_plan pl;
    if (bf16_plan_make(&pl, dx, path, W, M, ws) || bf16_ready(&pl, W, beta, ldc, M))
        return -1;
    const int64_t N = W->rows;
    void *xa = ws->buf;
    for (int64_t m0 = 0; m0 < M; m0 += pl.mb) {
        int64_t mc = M - m0 < pl.mb ? M - m0 : pl.mb;
        bf16_convert_rows(&pl, xa, A, lda, m0, mc);
        for (int64_t n0 = 0; n0 < N; n0 += pl.nb) {
            int64_t nc = N - n0 < pl.nb ? N - n0 : pl.nb;
            if (pl.conv_w)
                bf16_convert_weights(&pl, W, n0, nc);
            mm_args a = bf16_args(&pl, xa, W, C, ldc, beta, m0, mc, n0, nc);
            bf16_run(&pl, &a);
        }
    }
    return 0;
}

/* Rows up to which the fused bf16 dot serves a product by default (gemm_internal.h). */
static int fused_bf16_rows(void) {
    const char *isa = hl_dnnl_isa_str(); /* found once per process (gemm_dnnl.c) */
    return isa && strstr(isa, "amx") ? HL_GEMM_FUSED_BF16_ROWS_AMX : HL_GEMM_FUSED_BF16_ROWS;
}

/* Few rows of a BF16 weight on a CPU with AVX512-BF16: rows to bf16, then the fused dot. */
static int bf16_fused(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M, float beta,
                      const hl_gemm_ws *ws) {
    const int64_t K = W->cols;
    int limit = kernel_choice == HL_GEMM_KERNEL_FUSED     ? HL_GEMM_FUSED_ROWS
                : kernel_choice == HL_GEMM_KERNEL_BLOCKED ? 0
                                                          : fused_bf16_rows();
    if (!hl_gemm_fused_bf16_built() || W->dtype != HL_DTYPE_BF16 || M > limit || !ws || !ws->buf ||
        (size_t)ws->floats * 2 < (size_t)(M * K))
        return -1;
    uint16_t *xb = (uint16_t *)ws->buf;
#pragma omp parallel for schedule(static) if (M * K > 131072 && !omp_in_parallel())
    for (int64_t m = 0; m < M; m++)
        hl_f32_to_bf16_n(xb + m * K, X + m * ldx, K);
    hl_gemm_fused_bf16(Y, ldy, xb, K, W, M, beta);
    return 0;
}

/* ---- the products ------------------------------------------------------------------------------ */

void hl_gemm_xwt_ld(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M, float beta,
                    const hl_gemm_ws *ws) {
    const int64_t N = W->rows, K = W->cols;
    if (M <= 0 || N <= 0)
        return;
    hl_gemm_path p = hl_gemm_path_for(ws ? ws->compute : HL_COMPUTE_AUTO, W->dtype, N, K);
    if (p == HL_GEMM_PATH_DNNL_BF16 && bf16_fused(Y, ldy, X, ldx, W, M, beta, ws) == 0)
        return;
    if (p != HL_GEMM_PATH_F32 && bf16_product(0, p, Y, ldy, X, ldx, W, M, beta, ws) == 0)
        return;
    xwt_f32(Y, ldy, X, ldx, W, M, beta, ws);
}

void hl_gemm_xwt(float *Y, const float *X, const hl_weight *W, int64_t M, float beta, const hl_gemm_ws *ws) {
    hl_gemm_xwt_ld(Y, W->rows, X, W->cols, W, M, beta, ws);
}

void hl_gemm_dx_acc(float *dX, const float *dY, const hl_weight *W, int64_t M, const hl_gemm_ws *ws) {
    const int64_t N = W->rows, K = W->cols;
    if (M <= 0 || N <= 0)
        return;
    hl_gemm_path p = hl_gemm_path_for(ws ? ws->compute : HL_COMPUTE_AUTO, W->dtype, N, K);
    if (p != HL_GEMM_PATH_F32 && bf16_product(1, p, dX, K, dY, N, W, M, 1.0f, ws) == 0)
        return;
    dx_f32(dX, dY, W, M, ws);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double hl_sgemm_gflops(int n, int reps) {
    size_t nn = (size_t)n * (size_t)n;
    float *a = malloc(nn * 4), *b = malloc(nn * 4), *c = malloc(nn * 4);
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0.0;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7) % 13) * 0.01f;
        b[i] = (float)((i * 5) % 11) * 0.01f;
        c[i] = 0.0f;
    }
    hl_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm up threads and caches */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        hl_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    free(a), free(b), free(c);
    return 2.0 * (double)n * n * n / best * 1e-9;
}
