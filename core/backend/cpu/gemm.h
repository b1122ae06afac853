/* Matrix products: the ONLY place that calls OpenBLAS and oneDNN.
 *
 * Frozen base weights (hl_weight, row-major [N, K] = nn.Linear [out, in]) stay in their
 * file dtype. Two arithmetic modes (hl_compute), chosen per context in hl_gemm_ws:
 *
 *  - f32: activations and sums in f32, weights converted to f32 on the fly. For F16/BF16
 *    weights each thread converts small blocks of the weight to f32 in its own slice of the
 *    workspace and multiplies them with a single-threaded OpenBLAS sgemm (forward: threads own
 *    rows of W = columns of Y; backward: threads own columns of W = columns of dX), so a 7B
 *    bf16 model is never inflated to f32 as a whole. For up to HL_GEMM_FUSED_ROWS rows
 *    (decoding, batched decoding) a fused convert-and-dot kernel reads every weight once per
 *    call (no workspace; a row's result bits do not depend on the other rows in the batch).
 *
 *  - bf16: the frozen products take bf16 inputs with f32 accumulation, as PyTorch does with
 *    bf16 weights: activations (X, or dY for the input gradient) are rounded to bf16 in the
 *    workspace and multiplied with the bf16 weights through oneDNN's matmul primitive (AMX
 *    tiles or AVX512-BF16 dot products), results in f32. F16/F32 weights are converted to
 *    bf16 block by block. Used only where this CPU has a native bf16 path (oneDNN reports
 *    avx512_core_bf16 or avx512_core_amx); elsewhere bf16 mode runs the f32 path (the name
 *    from hl_gemm_describe says which). Few rows on AVX512-BF16 CPUs: a fused bf16 dot kernel
 *    streams the weights without repacking them.
 *
 * Adapters, router, norms, softmax and the optimizer are not matrix products of frozen
 * weights: they call hl_sgemm, always f32.
 *
 * Determinism: for a fixed thread count and path every function gives the same bits run after
 * run (OpenBLAS splits only the M/N dimensions of sgemm; our OpenMP loops use static
 * schedules and no float atomics; oneDNN's matmul has no run-to-run variation on the CPU). */
#ifndef HL_GEMM_H
#define HL_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/backend/backend.h" /* hl_compute: the modes are the seam's */
#include "core/base/tensor.h"

/* Set the compute thread count for OpenBLAS, oneDNN and OpenMP (n <= 0: number of cores). */
void hl_set_threads(int n);
int hl_get_threads(void);

/* Compute modes: hl_compute of core/backend/backend.h. Here, HL_COMPUTE_AUTO means bf16 for 16-bit
 * weight matrices of at least HL_GEMM_AUTO_BF16_MIN elements (where bf16 pays), f32 for everything
 * else (f32 weights, tiny models); HL_COMPUTE_BF16 means bf16 for every frozen product. */
#define HL_GEMM_AUTO_BF16_MIN ((int64_t)1 << 20)

/* Per-context state of the frozen-weight products: the workspace (one slice per thread for
 * converted weight blocks, or bf16 copies of activation rows) and the compute mode. Plan it
 * with hl_gemm_ws_floats after hl_set_threads; a smaller workspace still works (fewer rows per
 * block). Zero-initialised = no workspace, HL_COMPUTE_AUTO. */
typedef struct {
    float *buf;
    int64_t floats;
    hl_compute compute;
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

/* ---- which path runs -------------------------------------------------------------------- */

/* Implementations of a frozen-weight product. */
typedef enum {
    HL_GEMM_PATH_F32 = 0,  /* OpenBLAS sgemm / fused convert-and-dot, f32 arithmetic */
    HL_GEMM_PATH_DNNL_BF16, /* oneDNN matmul, bf16 inputs, f32 accumulation */
    HL_GEMM_PATH_REF_BF16,  /* inputs rounded to bf16, products in f32 (exact), f32 sums: the bf16
                               path's arithmetic on any CPU, slow; for tests on CPUs without bf16 */
} hl_gemm_path;

/* The path a product of a `rows` x `cols` weight in `wdt` takes under mode `c` on this build and
 * CPU (rows*cols decides HL_COMPUTE_AUTO). */
hl_gemm_path hl_gemm_path_for(hl_compute c, hl_dtype wdt, int64_t rows, int64_t cols);

/* One line for `model info`, the workbench and hl_backend_info.compute (< 96 bytes) naming the
 * path that mode `c` takes for the large weights of a model stored in `wdt`, e.g.
 * "oneDNN 2.6.3 bf16, f32 accumulate (avx512_core_amx)", "OpenBLAS f32 (no bf16 matmul on this
 * CPU: avx2)". Returns buf. */
const char *hl_gemm_describe(hl_compute c, hl_dtype wdt, char *buf, size_t n);
/* The same for a weight of `rows` x `cols` (auto: small matrices stay f32). */
const char *hl_gemm_describe_shape(hl_compute c, hl_dtype wdt, int64_t rows, int64_t cols, char *buf, size_t n);

/* 1 when bf16 mode has a native path here (oneDNN built in and its CPU ISA has bf16). */
int hl_gemm_bf16_native(void);

/* oneDNN's version and effective ISA ("2.6.3", "avx512_core_amx"), or NULL when not built in. */
const char *hl_gemm_dnnl_version(void);
const char *hl_gemm_dnnl_isa(void);

/* Tests and benchmarks only (process-wide, set before computing): what bf16 mode runs
 * (HL_GEMM_PATH_F32 restores the default choice: native bf16 when present, else f32), and which
 * kernel family serves a product (0 = automatic by row count; see gemm_internal.h). Returns 0,
 * or -1 when the requested path is not available in this build / on this CPU. */
int hl_gemm_set_bf16_path(hl_gemm_path p);
typedef enum { HL_GEMM_KERNEL_AUTO = 0, HL_GEMM_KERNEL_FUSED, HL_GEMM_KERNEL_BLOCKED } hl_gemm_kernel;
void hl_gemm_set_kernel(hl_gemm_kernel k);
/* Who splits a oneDNN product over the threads: -1 automatic (each thread a one-thread
 * primitive on its own slice of the output columns when the slices are wide enough, else
 * oneDNN), 0 always oneDNN, 1 slices whenever there is more than one thread. */
void hl_gemm_set_dnnl_slices(int mode);

/* Rows up to which the fused kernels serve a product (f32 mode; bf16 mode on AVX512-BF16 CPUs
 * has its own, smaller limit below which the fused bf16 dot beats oneDNN). */
#define HL_GEMM_FUSED_ROWS 128

/* Peak-ish reference figure for benchmarks: achieved OpenBLAS sgemm GFLOP/s on an
 * n×n×n product, best of `reps` (allocates 3 n×n matrices). */
double hl_sgemm_gflops(int n, int reps);

#endif
