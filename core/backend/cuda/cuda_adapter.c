/* One adapted projection on the GPU: the f32 kernels for f32 models, tensor-core products for
 * 16-bit models (see cuda_kernels.h).
 *
 * 16-bit path, forward (X [M, d_in], Y [M, d_out] in the model's dtype):
 *   H  = mask ⊙ X                        (dropout without its scale; exact in 16 bits)
 *   Zp = H · [A1; A2; A3]ᵀ   [M, 3zr]    A = A1 + A2 + A3 (16-bit parts of the f32 A)
 *   Lp = X · [R1; R2; R3]ᵀ   [M, 3N]     router logits, same split
 *   Z = keep·ΣZp, ω = softmax(ΣLp) (f32), Zw = s·ω ⊗ Z, Zs = [z1 | z2 | z1 | z1] (parts of Zw)
 *   Y += Zs · [B1; B1; B2; B3]           one product of width 4·N·r straight into the 16-bit Y
 *                                        (= z1B1 + z2B1 + z1B2 + z1B3: Zw·B to ~2⁻¹⁶, then rounded into Y)
 * backward (G = ∂/∂Y):
 *   Pp = G · [B1; B2; B3]ᵀ   [M, 3Nr]    → P = ΣPp, dZ, dΩ, dL (f32), and their parts
 *   dB += Σparts(Zw3ᵀ · G), dA += keep·Σparts(dZ3ᵀ · H), dR += Σparts(dL3ᵀ · X)
 *   T = [dz1 | dz2 | dz1 | dz1] · [A1; A1; A2; A3]   [M, d_in] (16-bit), dX += mask·keep·T + dL·R
 * Products of 16-bit parts are exact in f32, so Z, ω and the gradients keep f32 accuracy; the
 * activations are read by tensor-core products once each, nothing [M, d_out] is kept in f32. */
#include <string.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cuda_kernels.h"
#include "core/backend/cuda/gemm_lt.h"
#include "core/base/tensor.h"

#define AL(n) (((n) + 127) / 128 * 128) /* element offsets of sub-buffers: 256-byte aligned for 16-bit */

void hlk_adapter16_sizes(int64_t M, int d_in, int d_out, int N, int r, int nA, int has_router, size_t out[5]) {
    const int64_t zr = (int64_t)nA * r, Nr = (int64_t)N * r, Rn = has_router ? N : 0;
    const hlk_parts_ld ld = hlk_parts_lds(N, r, nA);
    int64_t fp = AL(M * ld.z3) + M * ld.l3, fpb = M * ld.p3;
    int64_t hf = AL(M * ld.zs4), hb = AL(M * ld.p3) + AL(M * ld.z3) + AL(M * ld.l3) + AL(M * ld.dz4);
    out[0] = (size_t)(M * d_in);
    out[1] = (size_t)AL(fp > fpb ? fp : fpb) + 128;
    out[2] = (size_t)(hf > hb ? hf : hb);
    out[3] = (size_t)(AL(4 * zr * d_in) + AL(3 * Rn * d_in) + AL(4 * Nr * d_out));
    int64_t g1 = 3 * Nr * d_out, g2 = 3 * zr * d_in, g3 = 3 * Rn * d_in;
    int64_t g = g1 > g2 ? g1 : g2;
    out[4] = (size_t)(g > g3 ? g : g3);
}

static hlk_wview v_A(const hlk_adapter *a, const float *A) {
    hlk_wview w = {(float *)A, a->nA * a->r, a->r, (int64_t)a->r * a->d_in, a->d_in, 1};
    return w;
}
static hlk_wview v_B(const hlk_adapter *a, const float *B) { /* row i·r+k, column o = B_i[o, k] */
    hlk_wview w = {(float *)B, a->N * a->r, a->r, (int64_t)a->d_out * a->r, 1, a->r};
    return w;
}
static hlk_wview v_R(const hlk_adapter *a, const float *R) {
    hlk_wview w = {(float *)R, a->N, 1, a->d_in, 0, 1};
    return w;
}

typedef struct {
    char *Ap4, *Rp3, *Bp4; /* [A1; A1; A2; A3], [R1; R2; R3], [B1; B1; B2; B3] */
} wsplit;

static hl_status split_weights(cudaStream_t st, const hlk_adapter *a, wsplit *w) {
    const size_t es = hl_dtype_size((hl_dtype)a->dt);
    const int64_t zr = (int64_t)a->nA * a->r, Rn = a->has_router ? a->N : 0;
    w->Ap4 = a->wsp;
    w->Rp3 = w->Ap4 + (size_t)AL(4 * zr * a->d_in) * es;
    w->Bp4 = w->Rp3 + (size_t)AL(3 * Rn * a->d_in) * es;
    if (a->wsp_ready)
        return HL_OK;
    static const int p4[4] = {1, 1, 2, 3}, p3[3] = {1, 2, 3};
    HL_TRY(hlk_split_rows(st, w->Ap4, a->dt, v_A(a, a->A), a->d_in, p4, 4));
    if (a->has_router)
        HL_TRY(hlk_split_rows(st, w->Rp3, a->dt, v_R(a, a->R), a->d_in, p3, 3));
    return hlk_split_rows(st, w->Bp4, a->dt, v_B(a, a->B), a->d_out, p4, 4);
}

static hl_status fwd16(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *Y, int64_t ldy, const void *X,
                       int64_t ldx, float *Z, float *W) {
    const int dt = a->dt;
    const size_t es = hl_dtype_size((hl_dtype)dt);
    const int64_t M = a->M, zr = (int64_t)a->nA * a->r, Nr = (int64_t)a->N * a->r, N = a->N;
    wsplit w;
    HL_TRY(split_weights(st, a, &w));
    const void *XA = X;
    int64_t ldxa = ldx;
    if (drop.p > 0.0f) {
        HL_TRY(hlk_mask_rows(st, a->h, X, ldx, dt, M, a->d_in, drop));
        XA = a->h, ldxa = a->d_in;
    }
    const hlk_parts_ld ld = hlk_parts_lds(a->N, a->r, a->nA);
    float *Zp = a->fp, *Lp = a->fp + AL(M * ld.z3);
    hl_cu_mat mA = {XA, dt, ldxa, 0}, wA = {w.Ap4 + (size_t)(zr * a->d_in) * es, dt, a->d_in, 1};
    HL_TRY(hl_cu_gemm_run(a->gemm, st, M, 3 * zr, a->d_in, 1.0f, mA, wA, 0.0f, NULL, Zp, HL_DTYPE_F32, ld.z3));
    if (a->has_router) {
        hl_cu_mat mX = {X, dt, ldx, 0}, wR = {w.Rp3, dt, a->d_in, 1};
        HL_TRY(hl_cu_gemm_run(a->gemm, st, M, 3 * N, a->d_in, 1.0f, mX, wR, 0.0f, NULL, Lp, HL_DTYPE_F32, ld.l3));
    }
    const float keep = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
    HL_TRY(hlk_route_fwd16(st, Zp, a->has_router ? Lp : NULL, keep, Z, W, a->hp, ld, dt, M, a->N, a->r, a->nA,
                           a->scale, a->has_router));
    hl_cu_mat mZ = {a->hp, dt, ld.zs4, 0}, wB = {w.Bp4, dt, a->d_out, 0};
    return hl_cu_gemm_run(a->gemm, st, M, a->d_out, 4 * Nr, 1.0f, mZ, wB, 1.0f, Y, Y, dt, ldy);
}

static hl_status bwd16(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *dX, int64_t lddx, const void *G,
                       int64_t ldg, const void *X, int64_t ldx, const float *Z, const float *W) {
    const int dt = a->dt;
    const size_t es = hl_dtype_size((hl_dtype)dt);
    const int64_t M = a->M, zr = (int64_t)a->nA * a->r, Nr = (int64_t)a->N * a->r, N = a->N;
    wsplit w;
    HL_TRY(split_weights(st, a, &w));
    const hlk_parts_ld ld = hlk_parts_lds(a->N, a->r, a->nA);
    /* Pp = G · [B1; B2; B3]ᵀ */
    hl_cu_mat mG = {G, dt, ldg, 0}, wB3 = {w.Bp4 + (size_t)(Nr * a->d_out) * es, dt, a->d_out, 1};
    HL_TRY(hl_cu_gemm_run(a->gemm, st, M, 3 * Nr, a->d_out, 1.0f, mG, wB3, 0.0f, NULL, a->fp, HL_DTYPE_F32, ld.p3));
    char *Zw3 = a->hp, *dZ3 = Zw3 + (size_t)AL(M * ld.p3) * es, *dL3 = dZ3 + (size_t)AL(M * ld.z3) * es;
    char *dZ4 = dL3 + (size_t)AL(M * ld.l3) * es;
    HL_TRY(hlk_route_bwd16(st, a->fp, Z, W, a->dl, Zw3, dZ3, dL3, dZ4, ld, dt, M, a->N, a->r, a->nA, a->scale,
                           a->has_router));
    /* dB += Σ parts of Zw3ᵀ · G */
    hl_cu_mat tZw = {Zw3, dt, ld.p3, 1};
    HL_TRY(hl_cu_gemm_run(a->gemm, st, 3 * Nr, a->d_out, M, 1.0f, tZw, mG, 0.0f, NULL, a->gp, HL_DTYPE_F32, a->d_out));
    HL_TRY(hlk_acc_parts(st, v_B(a, a->dB), a->gp, (int)Nr, a->d_out, 1.0f));
    /* dA += keep · Σ parts of dZ3ᵀ · dropout(X) */
    const void *XA = X;
    int64_t ldxa = ldx;
    if (drop.p > 0.0f) {
        HL_TRY(hlk_mask_rows(st, a->h, X, ldx, dt, M, a->d_in, drop));
        XA = a->h, ldxa = a->d_in;
    }
    const float keep = drop.p > 0.0f ? 1.0f / (1.0f - drop.p) : 1.0f;
    hl_cu_mat tdZ = {dZ3, dt, ld.z3, 1}, mXA = {XA, dt, ldxa, 0};
    HL_TRY(hl_cu_gemm_run(a->gemm, st, 3 * zr, a->d_in, M, 1.0f, tdZ, mXA, 0.0f, NULL, a->gp, HL_DTYPE_F32, a->d_in));
    HL_TRY(hlk_acc_parts(st, v_A(a, a->dA), a->gp, (int)zr, a->d_in, keep));
    /* dR += Σ parts of dL3ᵀ · X */
    if (a->has_router) {
        hl_cu_mat tdL = {dL3, dt, ld.l3, 1}, mX = {X, dt, ldx, 0};
        HL_TRY(hl_cu_gemm_run(a->gemm, st, 3 * N, a->d_in, M, 1.0f, tdL, mX, 0.0f, NULL, a->gp, HL_DTYPE_F32, a->d_in));
        HL_TRY(hlk_acc_parts(st, v_R(a, a->dR), a->gp, (int)N, a->d_in, 1.0f));
    }
    if (!dX)
        return HL_OK;
    /* T = dZ4 · [A1; A1; A2; A3] (16-bit, into h), then dX += mask·keep·T + dL·R */
    hl_cu_mat mdZ = {dZ4, dt, ld.dz4, 0}, wA4 = {w.Ap4, dt, a->d_in, 0};
    HL_TRY(hl_cu_gemm_run(a->gemm, st, M, a->d_in, 4 * zr, 1.0f, mdZ, wA4, 0.0f, NULL, a->h, dt, a->d_in));
    return hlk_dx_mix(st, dX, lddx, a->h, dt, M, a->d_in, drop, a->has_router ? a->dl : NULL,
                      a->has_router ? a->R : NULL, a->N);
}

hl_status hl_cu_adapter_presplit(cudaStream_t st, const hlk_adapter *a) {
    if (a->dt == HL_DTYPE_F32)
        return HL_OK;
    hlk_adapter c = *a;
    c.wsp_ready = 0;
    wsplit w;
    return split_weights(st, &c, &w);
}

hl_status hl_cu_adapter_fwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *Y, int64_t ldy, const void *X,
                            int64_t ldx, float *Z, float *W) {
    if (a->dt == HL_DTYPE_F32)
        return hlk_adapter_fwd(st, a, drop, Y, ldy, X, ldx, Z, W);
    return fwd16(st, a, drop, Y, ldy, X, ldx, Z, W);
}

hl_status hl_cu_adapter_bwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *dX, int64_t lddx,
                            const void *G, int64_t ldg, const void *X, int64_t ldx, const float *Z, const float *W) {
    if (a->dt == HL_DTYPE_F32)
        return hlk_adapter_bwd(st, a, drop, dX, lddx, G, ldg, X, ldx, Z, W);
    return bwd16(st, a, drop, dX, lddx, G, ldg, X, ldx, Z, W);
}
