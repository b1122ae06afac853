/* Matrix products of the CUDA backend through cuBLASLt (private to core/backend/cuda).
 *
 * Row-major like the rest of the engine: D[M, N] = alpha · op(A) · op(B) + beta · C, where
 * op(X) = X or Xᵀ, A/B in f32, f16 or bf16 (both the same), C/D in the input dtype or f32.
 * Compute is f32 (CUBLAS_COMPUTE_32F): 16-bit inputs run on the tensor cores with f32
 * accumulation, f32 inputs run in true f32 (no TF32, so the f32 path matches the CPU). The
 * algorithm is chosen once per (shape, dtypes, transposes, strides, alignment) by cuBLASLt's
 * heuristic and cached; only split-K schemes that reduce in a separate step in f32 are allowed
 * (no in-place/atomic reductions), so the same call gives the same bits every time. One fixed
 * workspace, allocated by the caller. */
#ifndef HL_CUDA_GEMM_LT_H
#define HL_CUDA_GEMM_LT_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct hl_cu_gemm hl_cu_gemm;

/* An operand: pointer, dtype (hl_dtype), row stride (elements) of the STORED matrix, and
 * whether it is used transposed. */
typedef struct {
    const void *p;
    int dt;
    int64_t ld;
    int trans;
} hl_cu_mat;

#define HL_CU_GEMM_WORKSPACE ((size_t)32 << 20)

/* `workspace` (device, ws_bytes) must outlive the handle. */
hl_status hl_cu_gemm_create(hl_cu_gemm **out, void *workspace, size_t ws_bytes);
void hl_cu_gemm_free(hl_cu_gemm *g);

/* D (ldd, dtype ddt) = alpha · op(A)[M, K] · op(B)[K, N] + beta · C (C may equal D; C may be NULL
 * when beta == 0; C has D's dtype and stride). */
hl_status hl_cu_gemm_run(hl_cu_gemm *g, cudaStream_t st, int64_t M, int64_t N, int64_t K, float alpha, hl_cu_mat A,
                         hl_cu_mat B, float beta, const void *C, void *D, int ddt, int64_t ldd);

/* Y[M, N] = beta·C + X[M, K] · W[N, K]ᵀ  (a frozen nn.Linear weight W; X, W, C, Y one dtype). */
hl_status hl_cu_linear(hl_cu_gemm *g, cudaStream_t st, int64_t M, int64_t N, int64_t K, const void *X, int64_t ldx,
                       const void *W, int dt, float beta, const void *C, void *Y, int64_t ldy);
/* dX[M, K] = beta·dX + dY[M, N] · W[N, K]  (backward through the frozen W). */
hl_status hl_cu_linear_dx(hl_cu_gemm *g, cudaStream_t st, int64_t M, int64_t N, int64_t K, const void *dY,
                          int64_t lddy, const void *W, int dt, float beta, void *dX, int64_t lddx);

/* Cache entries in use (tests). */
int hl_cu_gemm_cached(const hl_cu_gemm *g);

#endif
