/* Matrix products: the ONLY place that calls OpenBLAS.
 *
 * Frozen base weights (hl_weight, row-major [N, K] = nn.Linear [out, in]) stay in their
 * file dtype. For F16/BF16 weights each thread converts small blocks of the weight to f32
 * in its own slice of a caller-provided workspace and multiplies them with a single-threaded
 * cblas_sgemm (forward: threads own rows of W = columns of Y; backward: threads own columns
 * of W = columns of dX), so a 7B bf16 model is never inflated to f32 as a whole and no
 * barrier separates conversion from multiplication. For up to 64 rows (decoding, batched
 * decoding) a fused convert-and-dot kernel is used instead (each weight read and converted once
 * per call, no workspace; a row's result bits do not depend on the other rows in the batch).
 *
 * Determinism: for a fixed thread count every function gives the same bits run after
 * run (OpenBLAS splits only the M/N dimensions of sgemm; our OpenMP loops use static
 * schedules and no float atomics). */
#ifndef HL_GEMM_H
#define HL_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/tensor.h"

/* Set the compute thread count for OpenBLAS and OpenMP (n <= 0: number of cores). */
void hl_set_threads(int n);
int hl_get_threads(void);

/* Workspace for converting 16-bit weight blocks: one slice per thread ("lane"). Plan it with
 * hl_gemm_ws_floats after hl_set_threads; if more threads run later, only as many lanes as
 * fit are used. F32 weights need none (buf may be NULL). */
typedef struct {
    float *buf;
    int64_t floats;
} hl_gemm_ws;

/* Floats of workspace for weights of `cols` columns with the current thread count. */
size_t hl_gemm_ws_floats(int64_t cols);

/* Y[M, N] = beta * Y + X[M, K] · Wᵀ          (W: [N, K], any dtype; ldx = K, ldy = N) */
void hl_gemm_xwt(float *Y, const float *X, const hl_weight *W, int64_t M, float beta, const hl_gemm_ws *ws);

/* Same with explicit leading dimensions (row strides, in floats) for X and Y. */
void hl_gemm_xwt_ld(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M, float beta,
                    const hl_gemm_ws *ws);

/* dX[M, K] += dY[M, N] · W                   (backward through a frozen W: [N, K]) */
void hl_gemm_dx_acc(float *dX, const float *dY, const hl_weight *W, int64_t M, const hl_gemm_ws *ws);

/* Plain f32 sgemm, row-major: C[M,N] = alpha * op(A) · op(B) + beta * C,
 * op(A) = A (M×K, lda) or Aᵀ (A stored K×M) when ta; likewise op(B) with tb. */
void hl_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Peak-ish reference figure for benchmarks: achieved OpenBLAS sgemm GFLOP/s on an
 * n×n×n product, best of `reps` (allocates 3 n×n matrices). */
double hl_sgemm_gflops(int n, int reps);

#endif
