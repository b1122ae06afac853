/* The one place that talks to OpenBLAS (see gemm.h). */
#include "core/backend/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#if defined(__F16C__) || defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/* Threading model: ONE pool of threads, OpenMP's. OpenBLAS runs single-threaded inside our
 * parallel regions (each thread multiplies its own block of C), so two runtimes never
 * compete for the cores (on a busy 2-core machine, OpenBLAS threads plus spinning OpenMP
 * workers made small models ~10x slower). */
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

/* Per-lane workspace: at least 2 MiB (a converted block stays in L2 while sgemm streams X
 * past it) and at least 16 weight rows. */
#define HL_LANE_MIN_FLOATS ((int64_t)1 << 19)
#define HL_MAX_LANES 64

static int64_t lane_floats(int64_t cols) {
    int64_t f = 16 * cols;
    return f > HL_LANE_MIN_FLOATS ? f : HL_LANE_MIN_FLOATS;
}

size_t hl_gemm_ws_floats(int64_t cols) {
    int lanes = omp_get_max_threads();
    lanes = lanes < 1 ? 1 : lanes > HL_MAX_LANES ? HL_MAX_LANES : lanes;
    return (size_t)(lanes * lane_floats(cols));
}

/* Convert n elements of a 16-bit dtype to f32 (vectorised; called inside parallel loops). */
static void convert_span(float *dst, const uint16_t *src, int64_t n, hl_dtype dt) {
    int64_t i = 0;
    if (dt == HL_DTYPE_BF16) {
        for (; i < n; i++) { /* plain shift: gcc vectorises this */
            uint32_t u = (uint32_t)src[i] << 16;
            memcpy(&dst[i], &u, 4);
        }
        return;
    }
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
#endif
    for (; i < n; i++)
        dst[i] = hl_f16_to_f32(src[i]);
}

/* dst[nrows, ncols] = W[row0 .. row0+nrows, col0 .. col0+ncols) as f32 (one thread). */
static void convert_block(float *dst, const hl_weight *W, int64_t row0, int64_t nrows, int64_t col0, int64_t ncols) {
    for (int64_t r = 0; r < nrows; r++)
        convert_span(dst + r * ncols, (const uint16_t *)W->data + (row0 + r) * W->cols + col0, ncols, W->dtype);
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

/* Few rows (decoding, batched decoding): y[m, n] = Σ_k x[m, k] w[n, k] without a workspace.
 * Each thread owns blocks of HL_FUSED_NR weight rows; a block is converted to f32 one K chunk
 * at a time into a stack buffer (L1-sized) and dotted with all M input rows, so every weight
 * element is read from memory and converted exactly once per call, whatever M is (the tiled
 * path below converts the whole matrix and then runs a small-M sgemm, which loses for a
 * handful of rows). Partial sums: 16 lanes per (m, n), lane j holding k ≡ j (mod 16), then the
 * K % 16 tail, then the lanes in order. That order depends neither on M nor on the thread
 * count, so a row of X gets the same bits alone or in a batch (batched decoding equals
 * one-by-one) and run after run. With AVX-512 the lanes are one register updated by fused
 * multiply-adds (MB × NR register blocks, or one row at a time: same arithmetic per lane);
 * elsewhere plain mul+add loops over 16 lanes, vectorised by the compiler.
 * HL_SMALL_M (rows up to which this path is used) was chosen by measurement on the 7B shapes
 * (bf16 4096×4096, 11008×4096, 4096×11008; 2 threads, AVX-512): fused 1.3-2x faster than
 * convert+sgemm from 2 to 48 rows, still ahead or level at 64. bench_decode prints the
 * "weight product" figures for M = 1..64 to re-check on another machine. */
#ifndef HL_SMALL_M
#define HL_SMALL_M 64
#endif
#ifndef HL_FUSED_NR
#define HL_FUSED_NR 8 /* weight rows per block (8 × 512 × 4 B = 16 KiB converted per K chunk) */
#endif
#ifndef HL_FUSED_MB
#define HL_FUSED_MB 2 /* input rows per register block (MB × NR accumulators of 16 lanes) */
#endif
#define HL_FUSED_KC 512 /* K chunk */

/* One block: rows [n0, n0 + nr) of W (nr <= HL_FUSED_NR) against all M rows of X. Inlined
 * with nr == HL_FUSED_NR for the full blocks so the row loop unrolls. */
static inline __attribute__((always_inline)) void fused_block(float *Y, int64_t ldy, const float *X, int64_t ldx,
                                                              const hl_weight *W, int64_t M, float beta, int64_t n0,
                                                              int nr, float (*acc)[HL_FUSED_NR][16],
                                                              float (*tail)[HL_FUSED_NR]) {
    const int64_t K = W->cols;
    float wbuf[HL_FUSED_NR][HL_FUSED_KC];
    for (int64_t m = 0; m < M; m++)
        for (int r = 0; r < nr; r++) {
            tail[m][r] = 0.0f;
            for (int j = 0; j < 16; j++)
                acc[m][r][j] = 0.0f;
        }
    for (int64_t k0 = 0; k0 < K; k0 += HL_FUSED_KC) {
        const int64_t kn = K - k0 < HL_FUSED_KC ? K - k0 : HL_FUSED_KC;
        const int64_t kv = kn & ~(int64_t)15;
        const float *w[HL_FUSED_NR];
        for (int r = 0; r < nr; r++) {
            if (W->dtype == HL_DTYPE_F32) {
                w[r] = (const float *)W->data + (n0 + r) * K + k0;
            } else {
                convert_span(wbuf[r], (const uint16_t *)W->data + (n0 + r) * K + k0, kn, W->dtype);
                w[r] = wbuf[r];
            }
        }
        int64_t m = 0;
#if defined(__AVX512F__)
        /* MB input rows × NR weight rows in registers: MB + NR loads per MB·NR FMAs. */
        if (nr == HL_FUSED_NR)
            for (; m + HL_FUSED_MB <= M; m += HL_FUSED_MB) {
                __m512 a[HL_FUSED_MB][HL_FUSED_NR];
                for (int i = 0; i < HL_FUSED_MB; i++)
                    for (int r = 0; r < HL_FUSED_NR; r++)
                        a[i][r] = _mm512_loadu_ps(acc[m + i][r]);
                const float *x = X + m * ldx + k0;
                for (int64_t k = 0; k < kv; k += 16) {
                    __m512 xv[HL_FUSED_MB];
                    for (int i = 0; i < HL_FUSED_MB; i++)
                        xv[i] = _mm512_loadu_ps(x + i * ldx + k);
                    for (int r = 0; r < HL_FUSED_NR; r++) {
                        __m512 wv = _mm512_loadu_ps(w[r] + k);
                        for (int i = 0; i < HL_FUSED_MB; i++)
                            a[i][r] = _mm512_fmadd_ps(xv[i], wv, a[i][r]);
                    }
                }
                for (int i = 0; i < HL_FUSED_MB; i++)
                    for (int r = 0; r < HL_FUSED_NR; r++)
                        _mm512_storeu_ps(acc[m + i][r], a[i][r]);
            }
        /* Remaining input rows one at a time, same per-lane arithmetic (fused multiply-add in
         * lane j for k ≡ j mod 16), so a row's bits do not depend on where it falls. */
        for (; m < M; m++) {
            const float *x = X + m * ldx + k0;
            __m512 a[HL_FUSED_NR];
            for (int r = 0; r < nr; r++)
                a[r] = _mm512_loadu_ps(acc[m][r]);
            for (int64_t k = 0; k < kv; k += 16) {
                __m512 xv = _mm512_loadu_ps(x + k);
                for (int r = 0; r < nr; r++)
                    a[r] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w[r] + k), a[r]);
            }
            for (int r = 0; r < nr; r++)
                _mm512_storeu_ps(acc[m][r], a[r]);
        }
#else
        for (; m < M; m++) {
            const float *x = X + m * ldx + k0;
            float a[HL_FUSED_NR][16];
            for (int r = 0; r < nr; r++)
                for (int j = 0; j < 16; j++)
                    a[r][j] = acc[m][r][j];
            for (int64_t k = 0; k < kv; k += 16)
                for (int r = 0; r < nr; r++)
                    for (int j = 0; j < 16; j++)
                        a[r][j] += x[k + j] * w[r][k + j];
            for (int r = 0; r < nr; r++)
                for (int j = 0; j < 16; j++)
                    acc[m][r][j] = a[r][j];
        }
#endif
        for (m = 0; m < M; m++) {
            const float *x = X + m * ldx + k0;
            for (int r = 0; r < nr; r++)
                for (int64_t k = kv; k < kn; k++)
                    tail[m][r] += x[k] * w[r][k];
        }
    }
    for (int64_t m = 0; m < M; m++)
        for (int r = 0; r < nr; r++) {
            float s = tail[m][r];
            for (int j = 0; j < 16; j++)
                s += acc[m][r][j];
            float *y = &Y[m * ldy + n0 + r];
            *y = beta == 0.0f ? s : beta * *y + s;
        }
}

static void gemm_small_m(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M,
                         float beta) {
    const int64_t N = W->rows, K = W->cols;
    const int64_t blocks = (N + HL_FUSED_NR - 1) / HL_FUSED_NR;
#pragma omp parallel for schedule(static) if (N * K > 131072 && !omp_in_parallel())
    for (int64_t b = 0; b < blocks; b++) {
        float acc[HL_SMALL_M][HL_FUSED_NR][16]; /* 32 KiB */
        float tail[HL_SMALL_M][HL_FUSED_NR];
        int64_t n0 = b * HL_FUSED_NR;
        if (N - n0 >= HL_FUSED_NR)
            fused_block(Y, ldy, X, ldx, W, M, beta, n0, HL_FUSED_NR, acc, tail);
        else
            fused_block(Y, ldy, X, ldx, W, M, beta, n0, (int)(N - n0), acc, tail);
    }
}

/* Lanes usable with this workspace and thread count. */
static int ws_lanes(const hl_gemm_ws *ws, int64_t per_lane) {
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    int64_t fit = ws && ws->buf ? ws->floats / per_lane : 0;
    int lanes = (int)(fit < nt ? fit : nt);
    return lanes < 1 ? 1 : lanes;
}

void hl_gemm_xwt_ld(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M, float beta,
                    const hl_gemm_ws *ws) {
    const int64_t N = W->rows, K = W->cols;
    if (M <= 0 || N <= 0)
        return;
    if (W->dtype == HL_DTYPE_F32) {
        hl_sgemm(0, 1, M, N, K, 1.0f, X, ldx, (const float *)W->data, K, beta, Y, ldy);
        return;
    }
    if (M <= HL_SMALL_M) {
        gemm_small_m(Y, ldy, X, ldx, W, M, beta);
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

void hl_gemm_xwt(float *Y, const float *X, const hl_weight *W, int64_t M, float beta, const hl_gemm_ws *ws) {
    hl_gemm_xwt_ld(Y, W->rows, X, W->cols, W, M, beta, ws);
}

void hl_gemm_dx_acc(float *dX, const float *dY, const hl_weight *W, int64_t M, const hl_gemm_ws *ws) {
    const int64_t N = W->rows, K = W->cols;
    if (M <= 0 || N <= 0)
        return;
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
