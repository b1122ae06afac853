/* Fused kernels for products with few rows (decoding, batched decoding): y[m, n] = Σ_k x[m, k]
 * w[n, k] without a workspace, each weight element read from memory once per call.
 *
 * Sums: FUSED_LANES partial sums per (row, output), lane j holding k ≡ j (mod FUSED_LANES) in
 * increasing k (one fused multiply-add each), then the K % FUSED_LANES tail, then the lanes added
 * in order. That order depends neither on M nor on the thread count nor on where a row falls in
 * a register tile, so a row of X gets the same bits alone or in a batch (batched decoding equals
 * one-by-one) and run after run.
 *
 * Threads own blocks of weight rows; inside a block, FUSED_MC input rows at a time go through
 * register tiles (rows × weight rows, see below) over the whole K, the weights converted to f32
 * in registers as they are loaded: the first rows read them from memory, later ones from L2.
 * Intrinsics with named accumulators rather than lane loops: gcc 12 turned plain lane loops
 * into gathers (1-2 GFLOP/s on a Zen 3 core) and kept arrays of vectors in memory. The build's
 * -march decides: AVX-512 (16 lanes = one zmm), AVX2+FMA (8 lanes = one ymm), else plain C. */
#include <omp.h>
#include <string.h>

#include "core/base/convert.h"
#include "core/backend/cpu/gemm.h"
#include "core/backend/cpu/gemm_internal.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define FUSED_NB 32 /* weight rows per block (a thread's unit of work) */
#define FUSED_MC 32 /* input rows per pass over a block */

/* Register tiles (rows × weight rows): "narrow" for few rows (more weight rows at a time: more
 * memory streams while the weights come from memory), "wide" from FUSED_WIDE_FROM rows on (each
 * converted weight vector serves more rows). Measured on a Zen 3 core (AVX2): narrow 2×4 gives
 * 12 / 35 GFLOP/s at 1 / 4 rows against 9 / 26 for 4×2; from 16 rows on 4×2 gives 50-61 against
 * 48-54. One row alone goes through a 1 × FUSED_NR1 tile. */
#define FUSED_WIDE_FROM 16
#if defined(__AVX512F__)
#define FUSED_LANES 16
#define VF __m512
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VFMA _mm512_fmadd_ps
#define NARROW_MB 2 /* 16 accumulators of 32 zmm registers */
#define NARROW_NR 8
#define WIDE_MB 4
#define WIDE_NR 4
#define FUSED_NR1 8
#elif defined(__AVX2__) && defined(__FMA__)
#define FUSED_LANES 8
#define VF __m256
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VFMA _mm256_fmadd_ps
#define NARROW_MB 2 /* 8 accumulators of 16 ymm registers */
#define NARROW_NR 4
#define WIDE_MB 4
#define WIDE_NR 2
#define FUSED_NR1 4
#else
#define FUSED_LANES 8
#define NARROW_MB 2
#define NARROW_NR 4
#define WIDE_MB 4
#define WIDE_NR 2
#define FUSED_NR1 4
#endif

typedef float lanes_t[FUSED_NB][FUSED_LANES];

/* FUSED_LANES weights of dtype dt at element k of row p, as f32 (dt is a constant after inlining). */
#ifdef VF
static inline __attribute__((always_inline)) VF wload(const void *p, int64_t k, hl_dtype dt) {
#if defined(__AVX512F__)
    if (dt == HL_DTYPE_BF16)
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k))), 16));
    if (dt == HL_DTYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k)));
#else
    if (dt == HL_DTYPE_BF16)
        return _mm256_castsi256_ps(
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + k))), 16));
    if (dt == HL_DTYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + k)));
#endif
    return VLOAD((const float *)p + k);
}
#endif

static inline __attribute__((always_inline)) float wscalar(const void *p, int64_t k, hl_dtype dt) {
    return dt == HL_DTYPE_F32    ? ((const float *)p)[k]
           : dt == HL_DTYPE_BF16 ? hl_bf16_to_f32(((const uint16_t *)p)[k])
                                 : hl_f16_to_f32(((const uint16_t *)p)[k]);
}

/* Lists for the tile bodies: L<n>(X) expands X(0) .. X(n-1); L<n>R(X, r) the same with r. */
#define L1(X) X(0)
#define L2(X) X(0) X(1)
#define L4(X) X(0) X(1) X(2) X(3)
#define L8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define L1R(X, r) X(0, r)
#define L2R(X, r) X(0, r) X(1, r)
#define L4R(X, r) X(0, r) X(1, r) X(2, r) X(3, r)
#define LIST_(n) L##n
#define LIST(n) LIST_(n)
#define LISTR_(n) L##n##R
#define LISTR(n) LISTR_(n)

/* acc[i][r0 + r] += the vector part [0, kv) for rows x[0..MB) (stride ldx) and weight rows
 * w[0..NR) of dtype dt: a register tile, every accumulator a named variable, each weight vector
 * loaded (and converted) once for MB rows. */
#ifdef VF
#define DEFINE_TILE(NAME, MB, NR)                                                                                     \
    static inline __attribute__((always_inline)) void NAME(lanes_t *acc, const float *x, int64_t ldx,                 \
                                                            const void *const *w, hl_dtype dt, int r0, int64_t kv) { \
        TILE_BODY(MB, NR)                                                                                             \
    }
#define DECL_IR(i, r) VF a##i##_##r = VLOAD(acc[i][r0 + r]);
#define DECL_R(r) LISTR(TILE_MB)(DECL_IR, r) const void *w##r = w[r];
#define XLOAD(i) VF xv##i = VLOAD(x + i * ldx + k);
/* keep the rows in registers: otherwise gcc folds their loads into every FMA */
#define XPIN(i) __asm__("" : "+x"(xv##i));
#define FMA_IR(i, r) a##i##_##r = VFMA(xv##i, wv, a##i##_##r);
#define STEP_R(r)                                                                                                     \
    wv = wload(w##r, k, dt);                                                                                          \
    LISTR(TILE_MB)(FMA_IR, r)
#define STORE_IR(i, r) VSTORE(acc[i][r0 + r], a##i##_##r);
#define STORE_R(r) LISTR(TILE_MB)(STORE_IR, r)
#define TILE_BODY(MB, NR)                                                                                             \
    LIST(NR)(DECL_R)                                                                                                  \
    for (int64_t k = 0; k < kv; k += FUSED_LANES) {                                                                   \
        LIST(MB)(XLOAD)                                                                                               \
        LIST(MB)(XPIN)                                                                                                \
        VF wv;                                                                                                        \
        LIST(NR)(STEP_R)                                                                                              \
    }                                                                                                                 \
    LIST(NR)(STORE_R)
#else
#define DEFINE_TILE(NAME, MB, NR)                                                                                     \
    static inline void NAME(lanes_t *acc, const float *x, int64_t ldx, const void *const *w, hl_dtype dt, int r0,    \
                            int64_t kv) {                                                                             \
        for (int i = 0; i < MB; i++)                                                                                  \
            for (int r = 0; r < NR; r++) {                                                                            \
                float *a = acc[i][r0 + r];                                                                            \
                const float *xi = x + i * ldx;                                                                        \
                for (int64_t k = 0; k < kv; k += FUSED_LANES)                                                         \
                    for (int j = 0; j < FUSED_LANES; j++)                                                             \
                        a[j] += xi[k + j] * wscalar(w[r], k + j, dt);                                                 \
            }                                                                                                         \
    }
#endif

/* TILE_MB names the row count inside the body macros (set before each definition). */
#define TILE_MB NARROW_MB
DEFINE_TILE(tile_narrow, NARROW_MB, NARROW_NR)
#undef TILE_MB
#define TILE_MB WIDE_MB
DEFINE_TILE(tile_wide, WIDE_MB, WIDE_NR)
#undef TILE_MB
#define TILE_MB 1
DEFINE_TILE(tile_one, 1, FUSED_NR1)
#undef TILE_MB

/* The same arithmetic one (row, weight row) pair at a time, for the leftovers of a block. */
static inline __attribute__((always_inline)) void pairs(lanes_t *acc, const float *x, int64_t ldx,
                                                         const void *const *w, hl_dtype dt, int mb, int nr, int r0,
                                                         int64_t kv) {
    for (int i = 0; i < mb; i++)
        for (int r = 0; r < nr; r++) {
#ifdef VF
            VF a = VLOAD(acc[i][r0 + r]);
            for (int64_t k = 0; k < kv; k += FUSED_LANES)
                a = VFMA(VLOAD(x + i * ldx + k), wload(w[r], k, dt), a);
            VSTORE(acc[i][r0 + r], a);
#else
            float *a = acc[i][r0 + r];
            const float *xi = x + i * ldx;
            for (int64_t k = 0; k < kv; k += FUSED_LANES)
                for (int j = 0; j < FUSED_LANES; j++)
                    a[j] += xi[k + j] * wscalar(w[r], k + j, dt);
#endif
        }
}

/* Rows [i, i + MB) of the chunk against all block rows: full tiles, then the leftover weight rows. */
#define ROW_GROUP(TILE, MB, NR)                                                                                       \
    do {                                                                                                              \
        int r = 0;                                                                                                    \
        for (; r + (NR) <= nb; r += (NR))                                                                             \
            TILE(acc + i, x + i * ldx, ldx, w + r, dt, r, kv);                                                        \
        pairs(acc + i, x + i * ldx, ldx, w + r, dt, (MB), nb - r, r, kv);                                             \
    } while (0)

/* All of one chunk's vector part for rows [0, mc) and block rows [0, nb). */
static inline __attribute__((always_inline)) void chunk(lanes_t *acc, const float *x, int64_t ldx,
                                                         const void *const *w, hl_dtype dt, int mc, int nb,
                                                         int64_t kv, int wide) {
    int i = 0;
    if (wide)
        for (; i + WIDE_MB <= mc; i += WIDE_MB)
            ROW_GROUP(tile_wide, WIDE_MB, WIDE_NR);
    for (; i + NARROW_MB <= mc; i += NARROW_MB)
        ROW_GROUP(tile_narrow, NARROW_MB, NARROW_NR);
    for (; i < mc; i++)
        ROW_GROUP(tile_one, 1, FUSED_NR1);
}

static void sums_zero(lanes_t *acc, float (*tail)[FUSED_NB], int mc, int nb) {
    for (int i = 0; i < mc; i++)
        for (int r = 0; r < nb; r++) {
            tail[i][r] = 0.0f;
            for (int j = 0; j < FUSED_LANES; j++)
                acc[i][r][j] = 0.0f;
        }
}

static void sums_out(float *Y, int64_t ldy, const lanes_t *acc, const float (*tail)[FUSED_NB], int64_t m0, int mc,
                     int64_t n0, int nb, float beta) {
    for (int i = 0; i < mc; i++)
        for (int r = 0; r < nb; r++) {
            float v = tail[i][r];
            for (int j = 0; j < FUSED_LANES; j++)
                v += acc[i][r][j];
            float *y = &Y[(m0 + i) * ldy + n0 + r];
            *y = beta == 0.0f ? v : beta * *y + v;
        }
}

/* Rows [m0, m0 + mc) (mc <= FUSED_MC) against block rows [n0, n0 + nb): every pair of rows
 * streams the block's weights over the whole K, converting them in registers. The first pair
 * reads them from memory, later pairs from L2 (8 rows of an 11008-wide bf16 weight are 176 KiB):
 * measured on a Zen 3 core this beats converting K chunks into an L1 buffer once per pass, at
 * every row count (2-3x at 4-16 rows, 1.2x at 128). */
static inline __attribute__((always_inline)) void block_rows(float *Y, int64_t ldy, const float *X, int64_t ldx,
                                                              const hl_weight *W, hl_dtype dt, int64_t m0, int mc,
                                                              int64_t n0, int nb, float beta, int wide, lanes_t *acc,
                                                              float (*tail)[FUSED_NB]) {
    const int64_t K = W->cols, kv = K / FUSED_LANES * FUSED_LANES;
    const size_t es = hl_dtype_size(dt);
    const float *x = X + m0 * ldx;
    const void *w[FUSED_NB];
    for (int r = 0; r < nb; r++)
        w[r] = (const char *)W->data + (size_t)(n0 + r) * (size_t)K * es;
    sums_zero(acc, tail, mc, nb);
    chunk(acc, x, ldx, w, dt, mc, nb, kv, wide);
    for (int i = 0; i < mc; i++)
        for (int r = 0; r < nb; r++)
            for (int64_t k = kv; k < K; k++)
                tail[i][r] += x[i * ldx + k] * wscalar(w[r], k, dt);
    sums_out(Y, ldy, acc, tail, m0, mc, n0, nb, beta);
}

static inline __attribute__((always_inline)) void fused_dt(float *Y, int64_t ldy, const float *X, int64_t ldx,
                                                            const hl_weight *W, hl_dtype dt, int64_t M, float beta) {
    const int64_t N = W->rows, K = W->cols;
    /* blocks of 8 weight rows up to 16 input rows (fewer memory streams), else 32 (fewer passes
     * over the input rows) */
    const int64_t bn = M <= 16 ? 8 : FUSED_NB;
    const int64_t blocks = (N + bn - 1) / bn;
#pragma omp parallel for schedule(static) if (N * K > 131072 && !omp_in_parallel())
    for (int64_t b = 0; b < blocks; b++) {
        lanes_t acc[FUSED_MC]; /* 64 KiB with AVX-512, on this thread's stack */
        float tail[FUSED_MC][FUSED_NB];
        int64_t n0 = b * bn;
        int nb = (int)(N - n0 < bn ? N - n0 : bn);
        for (int64_t m0 = 0; m0 < M; m0 += FUSED_MC)
            block_rows(Y, ldy, X, ldx, W, dt, m0, (int)(M - m0 < FUSED_MC ? M - m0 : FUSED_MC), n0, nb, beta,
                       M >= FUSED_WIDE_FROM, acc, tail);
    }
}

void hl_gemm_fused_f32(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M,
                       float beta) {
    switch (W->dtype) {
    case HL_DTYPE_F32: fused_dt(Y, ldy, X, ldx, W, HL_DTYPE_F32, M, beta); break;
    case HL_DTYPE_F16: fused_dt(Y, ldy, X, ldx, W, HL_DTYPE_F16, M, beta); break;
    case HL_DTYPE_BF16: fused_dt(Y, ldy, X, ldx, W, HL_DTYPE_BF16, M, beta); break;
    }
}

/* ---- bf16 dot (AVX512-BF16) ------------------------------------------------------------------
 * Same structure with bf16 rows and bf16 weights read in place: one vdpbf16ps adds 16 lanes of
 * two products each (lane j: k ≡ 2j, 2j+1 mod 32), so there is nothing to convert and the weight
 * stream is half the bytes per multiply-add of the f32 kernel's. */
#if defined(__AVX512BF16__) && defined(__AVX512F__)

int hl_gemm_fused_bf16_built(void) { return 1; }

#define BF_NR 8
#define BF_MB 2
#define BF_NR_LIST(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
typedef float bf_lanes_t[FUSED_NB][16];

static inline __attribute__((always_inline)) __m512bh bf_load(const uint16_t *p) {
    return (__m512bh)_mm512_loadu_si512((const void *)p);
}

static inline __attribute__((always_inline)) void tile_bf16(bf_lanes_t *acc, const uint16_t *x, int64_t ldx,
                                                             const uint16_t *const *w, const int mbt, int r0,
                                                             int64_t kv) {
    const uint16_t *x0 = x, *x1 = x + ldx;
#define DECL(r)                                                                                                       \
    __m512 a0##r = _mm512_loadu_ps(acc[0][r0 + r]), a1##r = mbt > 1 ? _mm512_loadu_ps(acc[1][r0 + r]) : a0##r;       \
    const uint16_t *w##r = w[r];
    BF_NR_LIST(DECL)
#undef DECL
    if (mbt > 1) {
        for (int64_t k = 0; k < kv; k += 32) {
            __m512bh xv0 = bf_load(x0 + k), xv1 = bf_load(x1 + k), wv;
#define STEP(r)                                                                                                       \
    wv = bf_load(w##r + k);                                                                                           \
    a0##r = _mm512_dpbf16_ps(a0##r, xv0, wv);                                                                         \
    a1##r = _mm512_dpbf16_ps(a1##r, xv1, wv);
            BF_NR_LIST(STEP)
#undef STEP
        }
    } else {
        for (int64_t k = 0; k < kv; k += 32) {
            __m512bh xv0 = bf_load(x0 + k);
#define STEP(r) a0##r = _mm512_dpbf16_ps(a0##r, xv0, bf_load(w##r + k));
            BF_NR_LIST(STEP)
#undef STEP
        }
    }
#define STORE(r)                                                                                                      \
    _mm512_storeu_ps(acc[0][r0 + r], a0##r);                                                                          \
    if (mbt > 1)                                                                                                      \
        _mm512_storeu_ps(acc[1][r0 + r], a1##r);
    BF_NR_LIST(STORE)
#undef STORE
}

static void pairs_bf16(bf_lanes_t *acc, const uint16_t *x, int64_t ldx, const uint16_t *const *w, int mb, int nr,
                       int r0, int64_t kv) {
    for (int i = 0; i < mb; i++)
        for (int r = 0; r < nr; r++) {
            __m512 a = _mm512_loadu_ps(acc[i][r0 + r]);
            for (int64_t k = 0; k < kv; k += 32)
                a = _mm512_dpbf16_ps(a, bf_load(x + i * ldx + k), bf_load(w[r] + k));
            _mm512_storeu_ps(acc[i][r0 + r], a);
        }
}

static void block_rows_bf16(float *Y, int64_t ldy, const uint16_t *X, int64_t ldx, const hl_weight *W, int64_t m0,
                            int mc, int64_t n0, int nb, float beta, bf_lanes_t *acc, float (*tail)[FUSED_NB]) {
    const int64_t K = W->cols, kv = K / 32 * 32;
    const uint16_t *x = X + m0 * ldx;
    const uint16_t *w[FUSED_NB];
    for (int r = 0; r < nb; r++)
        w[r] = (const uint16_t *)W->data + (n0 + r) * K;
    for (int i = 0; i < mc; i++)
        for (int r = 0; r < nb; r++) {
            tail[i][r] = 0.0f;
            for (int j = 0; j < 16; j++)
                acc[i][r][j] = 0.0f;
        }
    int i = 0;
    for (; i + BF_MB <= mc; i += BF_MB) {
        int r = 0;
        for (; r + BF_NR <= nb; r += BF_NR)
            tile_bf16(acc + i, x + i * ldx, ldx, w + r, BF_MB, r, kv);
        pairs_bf16(acc + i, x + i * ldx, ldx, w + r, BF_MB, nb - r, r, kv);
    }
    for (; i < mc; i++) {
        int r = 0;
        for (; r + BF_NR <= nb; r += BF_NR)
            tile_bf16(acc + i, x + i * ldx, ldx, w + r, 1, r, kv);
        pairs_bf16(acc + i, x + i * ldx, ldx, w + r, 1, nb - r, r, kv);
    }
    for (i = 0; i < mc; i++)
        for (int r = 0; r < nb; r++) {
            float v = tail[i][r];
            for (int64_t k = kv; k < K; k++)
                v += hl_bf16_to_f32(x[i * ldx + k]) * hl_bf16_to_f32(w[r][k]);
            for (int j = 0; j < 16; j++)
                v += acc[i][r][j];
            float *y = &Y[(m0 + i) * ldy + n0 + r];
            *y = beta == 0.0f ? v : beta * *y + v;
        }
}

void hl_gemm_fused_bf16(float *Y, int64_t ldy, const uint16_t *Xb, int64_t ldxb, const hl_weight *W, int64_t M,
                        float beta) {
    const int64_t N = W->rows, K = W->cols;
    const int64_t bn = M <= 16 ? 8 : FUSED_NB;
    const int64_t blocks = (N + bn - 1) / bn;
#pragma omp parallel for schedule(static) if (N * K > 131072 && !omp_in_parallel())
    for (int64_t b = 0; b < blocks; b++) {
        bf_lanes_t acc[FUSED_MC];
        float tail[FUSED_MC][FUSED_NB];
        int64_t n0 = b * bn;
        int nb = (int)(N - n0 < bn ? N - n0 : bn);
        for (int64_t m0 = 0; m0 < M; m0 += FUSED_MC)
            block_rows_bf16(Y, ldy, Xb, ldxb, W, m0, (int)(M - m0 < FUSED_MC ? M - m0 : FUSED_MC), n0, nb, beta, acc,
                            tail);
    }
}

#else

int hl_gemm_fused_bf16_built(void) { return 0; }

void hl_gemm_fused_bf16(float *Y, int64_t ldy, const uint16_t *Xb, int64_t ldxb, const hl_weight *W, int64_t M,
                        float beta) {
    /* Not built for this CPU: the caller checks hl_gemm_fused_bf16_built() first. Computing it
     * anyway keeps a wrong call correct (bf16 rows, f32 arithmetic). */
    const int64_t N = W->rows, K = W->cols;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            float v = 0.0f;
            for (int64_t k = 0; k < K; k++)
                v += hl_bf16_to_f32(Xb[m * ldxb + k]) * hl_bf16_to_f32(((const uint16_t *)W->data)[n * K + k]);
            Y[m * ldy + n] = beta == 0.0f ? v : beta * Y[m * ldy + n] + v;
        }
}

#endif
