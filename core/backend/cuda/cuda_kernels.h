/* The CUDA backend's kernels, as C launchers (private to core/backend/cuda and its tests).
 *
 * Every launcher enqueues on `st`, checks the launch and returns hl_status; none synchronises.
 * Activations ("act") are in the model's dtype `dt` (HL_DTYPE_F32 / F16 / BF16, passed at run
 * time); everything that accumulates does so in f32 (norm statistics in double), adapter
 * tensors, router, loss and optimizer are f32. Matrices are row-major; `ld` is a row stride in
 * elements. Each kernel has a CPU counterpart in core/backend/cpu/ops.c, core/adapter/adapter.c or core/adapter/optim.c with
 * the same formula, and tests/gpu/test_cuda_ops.c compares the two on the same inputs. */
#ifndef HL_CUDA_KERNELS_H
#define HL_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/base/status.h"

/* ---- embedding, norms, rope, swiglu, rows (k_basic.cu) ------------------------------ */

/* x[m, :] = table[tok[m], :]  (same dtype; tok already clamped to valid ids). */
hl_status hlk_embed(cudaStream_t st, void *x, const void *table, int dt, const int32_t *tok, int64_t M, int D);
/* out = w ⊙ x · rstd, rstd = 1/sqrt(mean(x²) + eps) (sum of squares in double, as the CPU). rstd may be NULL. */
hl_status hlk_rmsnorm_fwd(cudaStream_t st, void *out, float *rstd, const void *x, const float *w, int64_t M, int D,
                          float eps, int dt);
/* dx = (accumulate ? dx : 0) + r w ⊙ dy − (r³/D) x Σ w dy x  (frozen weight: no dw). */
hl_status hlk_rmsnorm_bwd(cudaStream_t st, void *dx, int accumulate, const void *dy, const void *x, const float *w,
                          const float *rstd, int64_t M, int D, int dt);
/* In place on x [M, n_heads*hd] (row stride ld): rotate_half RoPE of row m at position
 * max(pos[m], 0) from f32 tables cos/sin [max_pos, hd/2]; inverse = 1 rotates by −θ (backward). */
hl_status hlk_rope(cudaStream_t st, void *x, int64_t ld, int64_t M, int n_heads, int hd, const int32_t *pos,
                   const float *cos_t, const float *sin_t, int inverse, int dt);
/* h[M, F] = silu(g) ⊙ u with gu [M, 2F] = [g | u] per row. */
hl_status hlk_swiglu_fwd(cudaStream_t st, void *h, const void *gu, int64_t M, int F, int dt);
/* In place: gu ← [dh ⊙ u ⊙ silu'(g) | dh ⊙ silu(g)]. */
hl_status hlk_swiglu_bwd(cudaStream_t st, void *gu, const void *dh, int64_t M, int F, int dt);
/* dst[i, :] = src[rows[i], :] (gather) or dst[rows[i], :] = src[i, :] (scatter), n rows of D. */
hl_status hlk_gather_rows(cudaStream_t st, void *dst, const void *src, const int32_t *rows, int64_t n, int D, int dt);
hl_status hlk_scatter_rows(cudaStream_t st, void *dst, const void *src, const int32_t *rows, int64_t n, int D,
                           int dt);
/* Cross-entropy of n rows of f32 logits [n, V] against tgt[n] (all valid ids): row_loss[i] =
 * lse − x[tgt] (double); when dlogits != NULL it is WRITTEN (dtype dt, may alias logits when dt is
 * f32) with scale · (softmax − onehot). */
hl_status hlk_cross_entropy(cudaStream_t st, const float *logits, void *dlogits, int dt, const int32_t *tgt,
                            int64_t n, int V, float scale, double *row_loss);
/* dst (dtype dt) = src (f32), n elements; and back. */
hl_status hlk_f32_to(cudaStream_t st, void *dst, int dt, const float *src, int64_t n);
hl_status hlk_to_f32(cudaStream_t st, float *dst, const void *src, int dt, int64_t n);

/* ---- optimizer (k_optim.cu) ----------------------------------------------------------- */

/* Σ g² in double over a fixed partition of n into n_parts ranges (partials[n_parts]), then the
 * fixed-order sum of the partials into *out: the same bits whatever the launch timing. */
#define HLK_NORM_PARTS 1024
hl_status hlk_sumsq(cudaStream_t st, const float *g, size_t n, double *partials, double *out);
/* AdamW (core/adapter/optim.c formula, no FMA contraction): g ← g·gscale (when gscale != 1, written
 * back), p ← p·decay, m ← b1 m + (1−b1) g, v ← b2 v + (1−b2) g g, p ← p − step_size·m/(√v/bc2_sqrt + eps). */
hl_status hlk_adamw(cudaStream_t st, float *p, float *g, float *m, float *v, size_t n, float gscale, float decay,
                    float b1, float b2, float step_size, float bc2_sqrt, float eps);

/* ---- HydraLoRA adapters (k_adapter.cu) ------------------------------------------------- */

/* A small f32 weight set of n rows over the K columns of an activation, stored in an adapter
 * slab with the layout addr(i, j) = w + (i / div)·s_hi + (i % div)·s_lo + j·s_j:
 *   A  [nA·r, d_in]  : div r, s_hi r·d_in, s_lo d_in, s_j 1
 *   R  [N, d_in]     : div 1, s_hi d_in, s_lo 0, s_j 1
 *   Bcat (row i·r+k, column o = B_i[o, k]): div r, s_hi d_out·r, s_lo 1, s_j r
 * n == 0 (or w == NULL) means "no set". */
typedef struct {
    float *w;
    int n, div;
    int64_t s_hi, s_lo, s_j;
} hlk_wview;

/* Dropout mask of one projection and micro-batch: element (m, j) of an input with K columns is
 * kept iff hl_rng_hash_uniform(key, m·K + j) >= p, scaled by 1/(1−p). p == 0: no mask. */
typedef struct {
    uint64_t key;
    float p;
} hlk_drop;

/* out1[M, w1.n] = (mask ⊙ X)·W1ᵀ, out2[M, w2.n] = X·W2ᵀ (f32); X [M, K] act, row stride ldx. */
hl_status hlk_ad_down(cudaStream_t st, const void *X, int64_t ldx, int dt, int64_t M, int K, hlk_wview w1,
                      hlk_drop d1, float *out1, hlk_wview w2, float *out2);
/* Y[M, K] (act, ldy) += mask ⊙ (S1·W1) + S2·W2, S1 [M, w1.n], S2 [M, w2.n] f32, rounded once. */
hl_status hlk_ad_up(cudaStream_t st, void *Y, int64_t ldy, int dt, int64_t M, int K, const float *S1, hlk_wview w1,
                    hlk_drop d1, const float *S2, hlk_wview w2);
/* Weight gradients: G1(i, j) += Σ_m S1[m, i]·(mask ⊙ X)[m, j], G2(i, j) += Σ_m S2[m, i]·X[m, j],
 * written through the layouts g1/g2 (gradient slab views). Deterministic: the rows are summed in
 * a fixed split (partials: hlk_ad_wgrad_partial_floats floats of scratch), then in split order. */
size_t hlk_ad_wgrad_partial_floats(int64_t M, int K, int n_total);
hl_status hlk_ad_wgrad(cudaStream_t st, const void *X, int64_t ldx, int dt, int64_t M, int K, const float *S1,
                       hlk_wview g1, hlk_drop d1, const float *S2, hlk_wview g2, float *partials);
/* Per row: W [M, N] holds router logits on entry and ω = softmax on return (has_router), or is
 * filled with 1/N; Zw[m, i·r+k] = s·ω[m,i]·Z[m, (nA>1 ? i : 0)·r + k]. */
hl_status hlk_ad_route_fwd(cudaStream_t st, float *W, const float *Z, float *Zw, int64_t M, int N, int r, int nA,
                           float s, int has_router);
/* Per row, from P = G·Bcat [M, N·r]: dZ [M, nA·r] (shared A: s Σ_i ω_i P_i; split: s ω_i P_i),
 * dΩ_i = s <P_i, Z_(i)>, dL = ω ⊙ (dΩ − <ω, dΩ>) [M, N] (has_router), and Zw as in route_fwd. */
hl_status hlk_ad_route_bwd(cudaStream_t st, const float *P, const float *Z, const float *W, float *dZ, float *dL,
                           float *Zw, int64_t M, int N, int r, int nA, float s, int has_router);
/* One adapted projection (composed in cuda_adapter.c from the kernels here and cuBLASLt).
 * f32 models run the exact f32 kernels above; 16-bit models run tensor-core products on the
 * 16-bit activations with each f32 adapter matrix split into 16-bit parts (hi + mid + lo, which
 * carry f32's 24 bits), so Z, ω and the adapter gradients keep f32 accuracy and the activations are
 * read once per product. */
struct hl_cu_gemm;
typedef struct {
    int64_t M;
    int d_in, d_out, N, r, nA, has_router, dt;
    float scale;
    const float *A, *B, *R; /* device parameters: A [nA·r, d_in], B [N, d_out, r], R [N, d_in] (NULL: none) */
    float *dA, *dB, *dR;    /* device gradients, same layout (accumulated) */
    float *dl;              /* [M, N] f32: router logit gradients (both paths) */
    /* f32 models */
    float *zw, *p, *dz, *partials; /* [M, N·r], [M, N·r], [M, nA·r], wgrad partials */
    float *bt;                     /* [N·r, d_out]: [B_1 … B_N] transposed (coalesced reads) */
    /* 16-bit models */
    struct hl_cu_gemm *gemm;
    void *h;   /* [M, d_in] act: dropout(X) without the 1/(1−p) scale, later the dX product */
    float *fp; /* f32 product parts (hlk_adapter16_sizes) */
    void *hp;  /* act parts of Zw, dZ, dL */
    void *wsp; /* act parts of A, R, B */
    int wsp_ready; /* wsp already holds the parts of these A, R, B (frozen adapters: split once) */
    float *gp; /* f32 gradient parts */
} hlk_adapter;
/* Y (ldy) += s·Σ_i ω_i B_i A_(i) dropout(X); writes Z [M, nA·r] and ω [M, N]. */
hl_status hlk_adapter_fwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *Y, int64_t ldy, const void *X,
                          int64_t ldx, float *Z, float *W);
/* From G = ∂/∂Y (ldg): dA, dB, dR +=; dX (lddx) += the adapter's part when dX != NULL. */
hl_status hlk_adapter_bwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *dX, int64_t lddx, const void *G,
                          int64_t ldg, const void *X, int64_t ldx, const float *Z, const float *W);
/* Scratch floats of hlk_adapter.partials for the larger of the two gradient products (f32 path). */
size_t hlk_adapter_partial_floats(const hlk_adapter *a);
/* The same through the 16-bit path when a->dt is F16/BF16 (cuda_adapter.c). */
hl_status hl_cu_adapter_fwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *Y, int64_t ldy, const void *X,
                            int64_t ldx, float *Z, float *W);
hl_status hl_cu_adapter_bwd(cudaStream_t st, const hlk_adapter *a, hlk_drop drop, void *dX, int64_t lddx,
                            const void *G, int64_t ldg, const void *X, int64_t ldx, const float *Z, const float *W);
/* Split A, R, B into a->wsp (16-bit models) for later calls with wsp_ready = 1. */
hl_status hl_cu_adapter_presplit(cudaStream_t st, const hlk_adapter *a);
/* Scratch of the 16-bit path in elements: [0] h (act), [1] fp (f32), [2] hp (act), [3] wsp (act), [4] gp (f32). */
void hlk_adapter16_sizes(int64_t M, int d_in, int d_out, int N, int r, int nA, int has_router, size_t out[5]);

/* 16-bit path kernels (k_adapter.cu). Parts of a value v: p1 = rnd(v), p2 = rnd(v − p1), p3 = rnd(v − p1 − p2). */
/* dst [nb·n, K] (act): block b holds part pattern[b] (1..3) of the n rows of `src` (a view). */
hl_status hlk_split_rows(cudaStream_t st, void *dst, int dt, hlk_wview src, int K, const int *pattern, int nb);
/* H [M, K] = mask ⊙ X (no 1/(1−p) scale; exact in 16 bits). */
hl_status hlk_mask_rows(cudaStream_t st, void *H, const void *X, int64_t ldx, int dt, int64_t M, int K, hlk_drop d);
/* Row strides of the part buffers (elements, multiples of 8 so every product operand is 16-byte
 * aligned): parts of widths 3zr, 3N, 3Nr, 4Nr, 4zr. */
typedef struct {
    int64_t z3, l3, p3, zs4, dz4;
} hlk_parts_ld;
hlk_parts_ld hlk_parts_lds(int N, int r, int nA);
/* Per row, from Zp [M, 3zr] and Lp [M, 3N] (NULL without router): Z = keep·ΣZp, ω = softmax(ΣLp) or 1/N,
 * Zs4 [M, 4Nr] (act) = [z1 | z2 | z1 | z1] of Zw = s·ω ⊗ Z. */
hl_status hlk_route_fwd16(cudaStream_t st, const float *Zp, const float *Lp, float keep, float *Z, float *W, void *Zs4,
                          hlk_parts_ld ld, int dt, int64_t M, int N, int r, int nA, float s, int has_router);
/* Per row, from Pp [M, 3Nr] (= G·[B parts]ᵀ), Z, ω: dL [M, N] f32 and the act parts Zw3 [M, 3Nr],
 * dZ3 [M, 3zr], dL3 [M, 3N], dZ4 [M, 4zr] = [dz1 | dz2 | dz1 | dz1]. */
hl_status hlk_route_bwd16(cudaStream_t st, const float *Pp, const float *Z, const float *W, float *dL, void *Zw3,
                          void *dZ3, void *dL3, void *dZ4, hlk_parts_ld ld, int dt, int64_t M, int N, int r, int nA,
                          float s, int has_router);
/* dst(i, j) += scale · (parts[i] + parts[n + i] + parts[2n + i])[j] through the view (gradients). */
hl_status hlk_acc_parts(cudaStream_t st, hlk_wview dst, const float *parts, int n, int K, float scale);
/* dX[m, j] += mask·keep·T[m, j] + Σ_i dL[m, i]·R[i, j] (T act [M, K] or NULL, R f32 [N, K] or NULL). */
hl_status hlk_dx_mix(cudaStream_t st, void *dX, int64_t lddx, const void *T, int dt, int64_t M, int K, hlk_drop d,
                     const float *dL, const float *R, int N);

/* Routing statistics of the rows with pos[m] >= 0, added to one (layer, target) slot:
 * *tokens += rows, wsum[i] += Σ ω_i, top1[i] += rows whose arg-max is i (lowest on ties),
 * *ent += Σ −Σ_i ω_i ln ω_i. Fixed-order sums. */
hl_status hlk_route_stats(cudaStream_t st, const float *W, const int32_t *pos, int64_t M, int N, int64_t *tokens,
                          double *wsum, int64_t *top1, double *ent);

/* ---- attention (k_attention.cu: any head size and f32; k_flash.cu: tensor cores) ------- */

/* Rows of the flat batch belong to examples (segments) packed in rows of the batch; attention
 * is causal inside an example and never crosses examples. */
typedef struct {
    int64_t M;              /* rows of the flat batch; lse / D are [H, M] */
    int H, Hkv, hd, dt;
    const void *q, *k, *v;  /* [M, H·hd], [M, Hkv·hd] (after RoPE), row strides below */
    int64_t ldq, ldk, ldv;
    const int32_t *pos;     /* [M] position inside the example, −1 for padding */
    const int32_t *send;    /* [M] flat index one past the row's example (any value for padding) */
    /* 64-row blocks of the examples, for the tensor-core kernels: example start (flat row),
     * example length, first row of the block inside the example. */
    int n_blk;
    const int32_t *blk_start, *blk_len, *blk_off;
} hlk_attn;

#define HLK_ATTN_BLOCK 64
/* Diagnostics: force the general kernels even where the tensor-core ones apply (1), or not (0);
 * also set by HL_CUDA_ATTN=general in the environment. */
void hlk_attn_force_general(int on);
/* 1 when the tensor-core kernels handle this geometry (16-bit dtype, hd 64 or 128, 16-byte
 * aligned rows), else the general kernels run. */
int hlk_attn_tensor_cores(const hlk_attn *a);
/* o [M, H·hd] (ldo) rows of valid positions written (padding rows untouched), lse [H, M] (natural log). */
hl_status hlk_attn_fwd(cudaStream_t st, const hlk_attn *a, void *o, int64_t ldo, float *lse);
/* dq, dk, dv WRITTEN for valid rows (GQA heads summed in a fixed order, no atomics);
 * Dbuf [H, M] f32 scratch (rowsum(dO ⊙ O)). */
hl_status hlk_attn_bwd(cudaStream_t st, const hlk_attn *a, const void *o, int64_t ldo, const void *dout,
                       int64_t lddo, const float *lse, float *Dbuf, void *dq, int64_t lddq, void *dk, int64_t lddk,
                       void *dv, int64_t lddv);

/* The tensor-core path (k_flash.cu), called by the above. */
hl_status hlk_flash_fwd(cudaStream_t st, const hlk_attn *a, void *o, int64_t ldo, float *lse);
hl_status hlk_flash_bwd(cudaStream_t st, const hlk_attn *a, const void *dout, int64_t lddo, const float *lse,
                        const float *Dbuf, void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv);

#ifdef __cplusplus
}
#endif

#endif
