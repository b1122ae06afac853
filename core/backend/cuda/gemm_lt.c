/* cuBLASLt products with a per-shape algorithm cache (see gemm_lt.h).
 *
 * Row-major D = op(A)·op(B) is column-major Dᵀ = op(B)ᵀ·op(A)ᵀ, and a row-major matrix with
 * row stride ld is the column-major transpose with leading dimension ld: so cuBLASLt gets
 * (m, n, k) = (N, M, K), its "A" is our B and its "B" our A, with the transpose flags as given. */
#include "core/backend/cuda/gemm_lt.h"

#include <cublasLt.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/base/tensor.h"

typedef struct {
    /* key */
    int64_t M, N, K, lda, ldb, ldd;
    int adt, ddt, ta, tb, beta_nz, align;
    /* value */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} gemm_entry;

#define GEMM_CACHE_MAX 512

struct hl_cu_gemm {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    gemm_entry *e;
    int n;
};

static cudaDataType_t cuda_type(int dt) {
    return dt == HL_DTYPE_F32 ? CUDA_R_32F : dt == HL_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

hl_status hl_cu_gemm_create(hl_cu_gemm **out, void *workspace, size_t ws_bytes) {
    *out = NULL;
    hl_cu_gemm *g = calloc(1, sizeof *g);
    if (!g)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    g->e = calloc(GEMM_CACHE_MAX, sizeof *g->e);
    if (!g->e) {
        free(g);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(g->e);
        free(g);
        return hl_cublas_fail((int)s, "cublasLtCreate", __FILE__, __LINE__);
    }
    g->ws = workspace;
    g->ws_bytes = ws_bytes;
    *out = g;
    return HL_OK;
}

static void entry_free(gemm_entry *e) {
    if (e->desc)
        cublasLtMatmulDescDestroy(e->desc);
    if (e->la)
        cublasLtMatrixLayoutDestroy(e->la);
    if (e->lb)
        cublasLtMatrixLayoutDestroy(e->lb);
    if (e->lc)
        cublasLtMatrixLayoutDestroy(e->lc);
    memset(e, 0, sizeof *e);
}

void hl_cu_gemm_free(hl_cu_gemm *g) {
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        entry_free(&g->e[i]);
    free(g->e);
    cublasLtDestroy(g->lt);
    free(g);
}

int hl_cu_gemm_cached(const hl_cu_gemm *g) { return g->n; }

/* Largest power of two (<= 16) dividing the byte address and the byte row stride. */
static int align_of(const void *p, int64_t ld, int dt) {
    uintptr_t v = (uintptr_t)p | (uintptr_t)(ld * (int64_t)hl_dtype_size((hl_dtype)dt));
    int a = 16;
    while (a > 1 && (v % (uintptr_t)a))
        a >>= 1;
    return a;
}

/* Builds descriptors and asks the heuristic for the key in `k`; fills the rest of *k. */
static hl_status entry_build(hl_cu_gemm *g, gemm_entry *k, const void *Ap, const void *Bp, const void *Dp) {
    cublasOperation_t opA = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N; /* cuBLASLt's A is our B */
    cublasOperation_t opB = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_TRY(cublasLtMatmulDescCreate(&k->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(k->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(k->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
    /* column-major shapes of the stored matrices */
    uint64_t a_rows = k->tb ? (uint64_t)k->K : (uint64_t)k->N, a_cols = k->tb ? (uint64_t)k->N : (uint64_t)k->K;
    uint64_t b_rows = k->ta ? (uint64_t)k->M : (uint64_t)k->K, b_cols = k->ta ? (uint64_t)k->K : (uint64_t)k->M;
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&k->la, cuda_type(k->adt), a_rows, a_cols, k->ldb));
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&k->lb, cuda_type(k->adt), b_rows, b_cols, k->lda));
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&k->lc, cuda_type(k->ddt), (uint64_t)k->N, (uint64_t)k->M, k->ldd));
    cublasLtMatmulPreference_t pref;
    CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t wsb = g->ws_bytes;
    /* split-K only with a separate f32 reduction step: no in-place (counter-ordered) or
     * output-type (16-bit intermediate) reductions */
    uint32_t red = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    uint32_t alA = (uint32_t)align_of(Bp, k->ldb, k->adt), alB = (uint32_t)align_of(Ap, k->lda, k->adt);
    uint32_t alC = (uint32_t)align_of(Dp, k->ldd, k->ddt);
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                                            sizeof wsb);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &red, sizeof red);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &alA, sizeof alA);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &alB, sizeof alB);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alC, sizeof alC);
    if (!s)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alC, sizeof alC);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!s)
        s = cublasLtMatmulAlgoGetHeuristic(g->lt, k->desc, k->la, k->lb, k->lc, k->lc, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s)
        return hl_cublas_fail((int)s, "cuBLASLt heuristic", __FILE__, __LINE__);
    if (found < 1)
        return hl_fail(HL_ERR_INTERNAL,
                       "cuBLASLt has no algorithm for a %lldx%lldx%lld product (dtype %d -> %d, transposes %d/%d)",
                       (long long)k->M, (long long)k->N, (long long)k->K, k->adt, k->ddt, k->ta, k->tb);
    k->algo = res.algo;
    return HL_OK;
}

hl_status hl_cu_gemm_run(hl_cu_gemm *g, cudaStream_t st, int64_t M, int64_t N, int64_t K, float alpha, hl_cu_mat A,
                         hl_cu_mat B, float beta, const void *C, void *D, int ddt, int64_t ldd) {
    if (M <= 0 || N <= 0)
        return HL_OK;
    if (A.dt != B.dt)
        return hl_fail(HL_ERR_INTERNAL, "gemm: operand dtypes differ (%d, %d)", A.dt, B.dt);
    if (K <= 0) { /* nothing to multiply: D = beta·C */
        if (beta == 0.0f)
            for (int64_t i = 0; i < M; i++)
                CU_TRY(cudaMemsetAsync((char *)D + (size_t)(i * ldd) * hl_dtype_size((hl_dtype)ddt), 0,
                                       (size_t)N * hl_dtype_size((hl_dtype)ddt), st));
        return HL_OK;
    }
    gemm_entry key;
    memset(&key, 0, sizeof key);
    key.M = M, key.N = N, key.K = K, key.lda = A.ld, key.ldb = B.ld, key.ldd = ldd;
    key.adt = A.dt, key.ddt = ddt, key.ta = !!A.trans, key.tb = !!B.trans, key.beta_nz = beta != 0.0f;
    key.align = align_of(A.p, A.ld, A.dt) | align_of(B.p, B.ld, B.dt) << 5 | align_of(D, ldd, ddt) << 10;
    if (C && C != D)
        key.align |= align_of(C, ldd, ddt) << 15;
    gemm_entry *e = NULL;
    for (int i = 0; i < g->n; i++) {
        gemm_entry *c = &g->e[i];
        if (c->M == M && c->N == N && c->K == K && c->lda == key.lda && c->ldb == key.ldb && c->ldd == ldd &&
            c->adt == key.adt && c->ddt == ddt && c->ta == key.ta && c->tb == key.tb && c->beta_nz == key.beta_nz &&
            c->align == key.align) {
            e = c;
            break;
        }
    }
    if (!e) {
        if (g->n == GEMM_CACHE_MAX) { /* full: start over (shapes of one session are far fewer) */
            for (int i = 0; i < g->n; i++)
                entry_free(&g->e[i]);
            g->n = 0;
        }
        hl_status s = entry_build(g, &key, A.p, B.p, D);
        if (s) {
            entry_free(&key);
            return s;
        }
        g->e[g->n] = key;
        e = &g->e[g->n++];
    }
    const void *Cp = beta != 0.0f ? (C ? C : D) : D;
    CUBLAS_TRY(cublasLtMatmul(g->lt, e->desc, &alpha, B.p, e->la, A.p, e->lb, &beta, Cp, e->lc, D, e->lc, &e->algo,
                              g->ws, g->ws_bytes, st));
    return HL_OK;
}

hl_status hl_cu_linear(hl_cu_gemm *g, cudaStream_t st, int64_t M, int64_t N, int64_t K, const void *X, int64_t ldx,
                       const void *W, int dt, float beta, const void *C, void *Y, int64_t ldy) {
    hl_cu_mat a = {X, dt, ldx, 0}, b = {W, dt, K, 1};
    return hl_cu_gemm_run(g, st, M, N, K, 1.0f, a, b, beta, C, Y, dt, ldy);
}

hl_status hl_cu_linear_dx(hl_cu_gemm *g, cudaStream_t st, int64_t M, int64_t N, int64_t K, const void *dY,
                          int64_t lddy, const void *W, int dt, float beta, void *dX, int64_t lddx) {
    hl_cu_mat a = {dY, dt, lddy, 0}, b = {W, dt, K, 0};
    return hl_cu_gemm_run(g, st, M, K, N, 1.0f, a, b, beta, dX, dX, dt, lddx);
}
