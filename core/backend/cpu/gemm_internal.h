/* Private to core/backend/cpu/gemm*.c (and the gemm unit tests): the kernels behind core/backend/cpu/gemm.h.
 *
 *   gemm.c        dispatch (compute mode → path → kernel), OpenBLAS, blocked f32 products
 *   gemm_fused.c  fused kernels for few rows: convert-and-dot in f32, bf16 dot on AVX512-BF16
 *   gemm_dnnl.c   oneDNN matmul primitives (created once per shape, cached), ISA query */
#ifndef HL_GEMM_INTERNAL_H
#define HL_GEMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/tensor.h"

/* ---- fused kernels (gemm_fused.c) ------------------------------------------------------- */

/* Y[M, N] = beta·Y + X[M, K] · Wᵀ for M <= HL_GEMM_FUSED_ROWS, any weight dtype: each weight
 * element is read and converted once per call; per (row, output) the sum runs in fixed lanes
 * (lane j: k ≡ j mod HL_FUSED_LANES), so a row's bits do not depend on M or the thread count. */
void hl_gemm_fused_f32(float *Y, int64_t ldy, const float *X, int64_t ldx, const hl_weight *W, int64_t M,
                       float beta);

/* 1 when this build has the AVX512-BF16 fused dot kernel (compiled for a CPU with it). */
int hl_gemm_fused_bf16_built(void);
/* Same product for a BF16 weight with bf16 rows Xb[M, K] (ldxb in elements), f32 sums: the weights
 * stream from memory without conversion (vdpbf16ps). M <= HL_GEMM_FUSED_ROWS. */
void hl_gemm_fused_bf16(float *Y, int64_t ldy, const uint16_t *Xb, int64_t ldxb, const hl_weight *W, int64_t M,
                        float beta);

/* Rows up to which bf16 mode prefers the fused bf16 dot over oneDNN (weights stream once at the
 * memory's speed; oneDNN repacks them, which pays off once there are enough rows to use AMX).
 * Measured on a 16-core Sapphire Rapids-class Xeon (bench_decode, x[M, 4096] · W[11008, 4096]ᵀ):
 * fused 183/452/490/515 GFLOP/s at M = 1/4/8/16, oneDNN on AMX 86/324/574/981, so with AMX
 * oneDNN takes over from 8 rows. Without AMX (AVX512-BF16 only: Cooper Lake, Zen 4) oneDNN has
 * no matrix unit either; the limit there stays at 32 rows (not measured). */
#ifndef HL_GEMM_FUSED_BF16_ROWS
#define HL_GEMM_FUSED_BF16_ROWS 32
#endif
#ifndef HL_GEMM_FUSED_BF16_ROWS_AMX
#define HL_GEMM_FUSED_BF16_ROWS_AMX 7
#endif

/* ---- oneDNN (gemm_dnnl.c) ------------------------------------------------------------------ */

/* 1 when built with oneDNN and its engine started. */
int hl_dnnl_available(void);
/* 1 when oneDNN's effective ISA has native bf16 (avx512_core_bf16, avx512_core_amx). */
int hl_dnnl_bf16_native(void);
const char *hl_dnnl_version_str(void); /* "2.6.3" or NULL */
const char *hl_dnnl_isa_str(void);     /* "avx512_core_amx", "avx2", ... or NULL */

/* C[M, N] (row stride ldc, f32) = beta·C + A[M, K] · op(B), A and B of one element type:
 * bf16 (uint16_t) when bf16, else f32. op(B): trans_b ? B stored [N, K] with row stride ldb :
 * B stored [K, N] with row stride ldb. One matmul primitive per distinct (shapes, strides, type,
 * beta, thread count), created on first use and kept for the process (thread-safe); runs on the
 * OpenMP threads, or on the calling thread alone when called from inside a parallel region
 * (several threads may then each run their own part). Returns 0, or -1 when oneDNN cannot do it
 * (not built in, type unsupported on this CPU, out of memory): the caller then computes it
 * another way. */
int hl_dnnl_matmul(int bf16, int64_t M, int64_t N, int64_t K, const void *A, int64_t lda, const void *B,
                   int64_t ldb, int trans_b, float beta, float *C, int64_t ldc);

/* 0 when the primitive for these arguments exists or could be created now (so that a product
 * made of several calls can check them all before writing anything), -1 otherwise. serial: for
 * a call that will be made from inside a parallel region (one thread), else for a call from here. */
int hl_dnnl_matmul_ready(int bf16, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int trans_b,
                         float beta, int64_t ldc, int serial);

/* Primitives created so far (benchmarks: every distinct shape costs one JIT compilation). */
int hl_dnnl_cached_primitives(void);
/* The distinct oneDNN implementations chosen so far ("bf16 brg:avx512_core_amx, ..."), into buf. */
const char *hl_dnnl_impls(char *buf, size_t n);

#endif
