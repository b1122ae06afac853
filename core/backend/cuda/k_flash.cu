/* Causal attention on the tensor cores (bf16/f16, head size 64 or 128), flash-style:
 * mma.sync m16n8k16 with f32 accumulation, tiles of 64 rows staged in shared memory with
 * cp.async (double-buffered), online softmax in registers, nothing T×T in global memory.
 *
 *   forward   one block per (64-query block, head): O = softmax(s·QKᵀ)V, lse saved
 *   dQ        one block per (64-query block, head): recompute P from lse, dS = P(dP − D), dQ = s·dS K
 *   dK, dV    one block per (64-key block, kv head): loops over the group's query heads and the
 *             query blocks at or after the keys, dV = PᵀdO, dK = s·dSᵀQ
 * dQ has its own pass instead of atomics so that every sum has a fixed order (deterministic).
 * Blocks come from the host's list of 64-row blocks of the packed examples (hlk_attn).
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16, g = lane/4, t = lane%4): A rows g / g+8, columns
 * 2t..2t+1 / +8; B (k×n) k = 2t..2t+1 / +8, n = g; C rows g / g+8, columns 2t..2t+1. A C tile
 * of S converts to an A operand of P·V without shuffles (FlashAttention-2's register reuse).
 * Head size and element type are template parameters here because register arrays and the
 * mma instruction need them at compile time. */
#include "core/backend/cuda/cuda_dev.cuh"

#define FL_ROWS 64     /* rows per block tile (HLK_ATTN_BLOCK) */
#define FL_THREADS 128 /* 4 warps × 16 rows */
#define FL_QB 32       /* queries per step in the dK/dV kernel */

static __device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

static __device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
static __device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> static __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

static __device__ __forceinline__ void ldsm4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}
static __device__ __forceinline__ void ldsm4t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t a) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a));
}

template <bool BF16>
static __device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    if constexpr (BF16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats → one register of two 16-bit values (first in the low half). */
template <bool BF16> static __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    if constexpr (BF16) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    } else {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
}

/* Stage rows [0, 64) of a tile (row r at g + r·ld) into shared memory with row stride LDS;
 * rows >= nvalid are zero-filled (g must be a valid address). */
template <int HD>
static __device__ __forceinline__ void load_tile(uint16_t *s, const uint16_t *g, int64_t ld, int rows, int nvalid) {
    constexpr int CPR = HD / 8, LDS = HD + 8;
    for (int c = threadIdx.x; c < rows * CPR; c += FL_THREADS) {
        int r = c / CPR, col = (c % CPR) * 8;
        const uint16_t *src = r < nvalid ? g + (int64_t)r * ld + col : g;
        cp_async16(smem_u32(s + r * LDS + col), src, r < nvalid ? 16 : 0);
    }
}

/* A operand (16 rows × 16 columns at column k0) of a row-major smem tile. */
template <int LDS> static __device__ __forceinline__ void frag_a(uint32_t *a, const uint16_t *s, int row0, int k0) {
    int l = threadIdx.x & 31;
    ldsm4(a[0], a[1], a[2], a[3], smem_u32(s + (row0 + (l & 7) + ((l >> 3) & 1) * 8) * LDS + k0 + (l >> 4) * 8));
}
/* B operands for two n-tiles (rows n0..n0+15 of the tile are the n index, columns k0..k0+15 the
 * k index): b[0..1] for n0..n0+7, b[2..3] for n0+8..n0+15. */
template <int LDS> static __device__ __forceinline__ void frag_b_rows(uint32_t *b, const uint16_t *s, int n0, int k0) {
    int l = threadIdx.x & 31;
    ldsm4(b[0], b[1], b[2], b[3], smem_u32(s + (n0 + (l & 7) + (l >> 4) * 8) * LDS + k0 + ((l >> 3) & 1) * 8));
}
/* B operands for two n-tiles where the tile's rows are the k index (k0..k0+15) and its columns
 * the n index (n0..n0+15): b[0..1] for n0..n0+7, b[2..3] for n0+8.. (transposing load). */
template <int LDS> static __device__ __forceinline__ void frag_b_cols(uint32_t *b, const uint16_t *s, int k0, int n0) {
    int l = threadIdx.x & 31;
    ldsm4t(b[0], b[1], b[2], b[3], smem_u32(s + (k0 + (l & 7) + ((l >> 3) & 1) * 8) * LDS + n0 + (l >> 4) * 8));
}

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* ---- forward -------------------------------------------------------------------------------- */

template <int HD, bool BF16>
static __global__ void __launch_bounds__(FL_THREADS) k_flash_fwd(hlk_attn a, void *o, int64_t ldo, float *lse) {
    constexpr int LDS = HD + 8, NT = FL_ROWS / 8, DT = HD / 8;
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t *sQ = smem, *sK = sQ + FL_ROWS * LDS, *sV = sK + 2 * FL_ROWS * LDS;
    const int blk = blockIdx.x, h = blockIdx.y, kvh = h / (a.H / a.Hkv);
    const int64_t start = a.blk_start[blk];
    const int len = a.blk_len[blk], q0 = a.blk_off[blk];
    const int nq = len - q0 < FL_ROWS ? len - q0 : FL_ROWS;
    const uint16_t *Q = (const uint16_t *)a.q + start * a.ldq + (int64_t)h * HD;
    const uint16_t *K = (const uint16_t *)a.k + start * a.ldk + (int64_t)kvh * HD;
    const uint16_t *V = (const uint16_t *)a.v + start * a.ldv + (int64_t)kvh * HD;
    const int nkb = (q0 + nq + FL_ROWS - 1) / FL_ROWS;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const float sl2 = LOG2E / sqrtf((float)HD);

    load_tile<HD>(sQ, Q + (int64_t)q0 * a.ldq, a.ldq, FL_ROWS, nq);
    load_tile<HD>(sK, K, a.ldk, FL_ROWS, len < FL_ROWS ? len : FL_ROWS);
    load_tile<HD>(sV, V, a.ldv, FL_ROWS, len < FL_ROWS ? len : FL_ROWS);
    cp_commit();

    float acc[DT][4];
#pragma unroll
    for (int i = 0; i < DT; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};

    for (int kb = 0; kb < nkb; kb++) {
        const int cur = kb & 1;
        if (kb + 1 < nkb) {
            int k1 = (kb + 1) * FL_ROWS, kn = len - k1 < FL_ROWS ? len - k1 : FL_ROWS;
            load_tile<HD>(sK + (cur ^ 1) * FL_ROWS * LDS, K + (int64_t)k1 * a.ldk, a.ldk, FL_ROWS, kn);
            load_tile<HD>(sV + (cur ^ 1) * FL_ROWS * LDS, V + (int64_t)k1 * a.ldv, a.ldv, FL_ROWS, kn);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const uint16_t *bK = sK + cur * FL_ROWS * LDS, *bV = sV + cur * FL_ROWS * LDS;
        float s[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++)
            s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t qa[4];
            frag_a<LDS>(qa, sQ, warp * 16, kk * 16);
#pragma unroll
            for (int n2 = 0; n2 < NT / 2; n2++) {
                uint32_t b[4];
                frag_b_rows<LDS>(b, bK, n2 * 16, kk * 16);
                mma16816<BF16>(s[2 * n2], qa, b[0], b[1]);
                mma16816<BF16>(s[2 * n2 + 1], qa, b[2], b[3]);
            }
        }
        /* scale to log2 units, mask (only the last block reaches the diagonal / the end) */
        const bool edge = kb == nkb - 1;
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float v = s[i][e] * sl2;
                if (edge) {
                    int qi = q0 + warp * 16 + g + (e >> 1) * 8, kj = kb * FL_ROWS + i * 8 + 2 * t + (e & 1);
                    if (kj > qi || kj >= len)
                        v = -INFINITY;
                }
                s[i][e] = v;
                mx[e >> 1] = fmaxf(mx[e >> 1], v);
            }
        float corr[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
            mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
            float mn = fmaxf(mrow[rr], mx[rr]);
            corr[rr] = mrow[rr] == -INFINITY ? 0.0f : exp2f(mrow[rr] - mn);
            mrow[rr] = mn;
            lrow[rr] *= corr[rr];
        }
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = s[i][e] == -INFINITY ? 0.0f : exp2f(s[i][e] - mrow[e >> 1]);
                s[i][e] = p;
                lrow[e >> 1] += p;
            }
#pragma unroll
        for (int i = 0; i < DT; i++) {
            acc[i][0] *= corr[0], acc[i][1] *= corr[0];
            acc[i][2] *= corr[1], acc[i][3] *= corr[1];
        }
#pragma unroll
        for (int k2 = 0; k2 < NT / 2; k2++) {
            uint32_t pa[4] = {pack2<BF16>(s[2 * k2][0], s[2 * k2][1]), pack2<BF16>(s[2 * k2][2], s[2 * k2][3]),
                              pack2<BF16>(s[2 * k2 + 1][0], s[2 * k2 + 1][1]),
                              pack2<BF16>(s[2 * k2 + 1][2], s[2 * k2 + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < DT / 2; d2++) {
                uint32_t b[4];
                frag_b_cols<LDS>(b, bV, k2 * 16, d2 * 16);
                mma16816<BF16>(acc[2 * d2], pa, b[0], b[1]);
                mma16816<BF16>(acc[2 * d2 + 1], pa, b[2], b[3]);
            }
        }
        __syncthreads(); /* everyone is done with this buffer before it is refilled */
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        lrow[rr] += __shfl_xor_sync(0xffffffffu, lrow[rr], 1);
        lrow[rr] += __shfl_xor_sync(0xffffffffu, lrow[rr], 2);
    }
    uint16_t *O = (uint16_t *)o + start * ldo + (int64_t)h * HD;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        int row = warp * 16 + g + rr * 8;
        if (row >= nq)
            continue;
        float inv = 1.0f / lrow[rr];
        uint16_t *orow = O + (int64_t)(q0 + row) * ldo;
#pragma unroll
        for (int i = 0; i < DT; i++)
            *reinterpret_cast<uint32_t *>(orow + i * 8 + 2 * t) =
                pack2<BF16>(acc[i][2 * rr] * inv, acc[i][2 * rr + 1] * inv);
        if (t == 0)
            lse[(int64_t)h * a.M + start + q0 + row] = (mrow[rr] + log2f(lrow[rr])) * LN2;
    }
}

/* ---- dQ ------------------------------------------------------------------------------------ */

template <int HD, bool BF16>
static __global__ void __launch_bounds__(FL_THREADS)
    k_flash_dq(hlk_attn a, const void *dout, int64_t lddo, const float *lse, const float *Dbuf, void *dq,
               int64_t lddq) {
    constexpr int LDS = HD + 8, NT = FL_ROWS / 8, DT = HD / 8;
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t *sQ = smem, *sO = sQ + FL_ROWS * LDS, *sK = sO + FL_ROWS * LDS, *sV = sK + 2 * FL_ROWS * LDS;
    const int blk = blockIdx.x, h = blockIdx.y, kvh = h / (a.H / a.Hkv);
    const int64_t start = a.blk_start[blk];
    const int len = a.blk_len[blk], q0 = a.blk_off[blk];
    const int nq = len - q0 < FL_ROWS ? len - q0 : FL_ROWS;
    const uint16_t *Q = (const uint16_t *)a.q + start * a.ldq + (int64_t)h * HD;
    const uint16_t *dO = (const uint16_t *)dout + start * lddo + (int64_t)h * HD;
    const uint16_t *K = (const uint16_t *)a.k + start * a.ldk + (int64_t)kvh * HD;
    const uint16_t *V = (const uint16_t *)a.v + start * a.ldv + (int64_t)kvh * HD;
    const int nkb = (q0 + nq + FL_ROWS - 1) / FL_ROWS;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const float sl2 = LOG2E / sqrtf((float)HD);

    load_tile<HD>(sQ, Q + (int64_t)q0 * a.ldq, a.ldq, FL_ROWS, nq);
    load_tile<HD>(sO, dO + (int64_t)q0 * lddo, lddo, FL_ROWS, nq);
    load_tile<HD>(sK, K, a.ldk, FL_ROWS, len < FL_ROWS ? len : FL_ROWS);
    load_tile<HD>(sV, V, a.ldv, FL_ROWS, len < FL_ROWS ? len : FL_ROWS);
    cp_commit();

    float L2[2], Dr[2];
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        int row = warp * 16 + g + rr * 8;
        int64_t fi = (int64_t)h * a.M + start + q0 + row;
        L2[rr] = row < nq ? lse[fi] * LOG2E : 0.0f;
        Dr[rr] = row < nq ? Dbuf[fi] : 0.0f;
    }
    float acc[DT][4];
#pragma unroll
    for (int i = 0; i < DT; i++)
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

    for (int kb = 0; kb < nkb; kb++) {
        const int cur = kb & 1;
        if (kb + 1 < nkb) {
            int k1 = (kb + 1) * FL_ROWS, kn = len - k1 < FL_ROWS ? len - k1 : FL_ROWS;
            load_tile<HD>(sK + (cur ^ 1) * FL_ROWS * LDS, K + (int64_t)k1 * a.ldk, a.ldk, FL_ROWS, kn);
            load_tile<HD>(sV + (cur ^ 1) * FL_ROWS * LDS, V + (int64_t)k1 * a.ldv, a.ldv, FL_ROWS, kn);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const uint16_t *bK = sK + cur * FL_ROWS * LDS, *bV = sV + cur * FL_ROWS * LDS;
        float s[NT][4], dp[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[i][e] = dp[i][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t qa[4], oa[4];
            frag_a<LDS>(qa, sQ, warp * 16, kk * 16);
            frag_a<LDS>(oa, sO, warp * 16, kk * 16);
#pragma unroll
            for (int n2 = 0; n2 < NT / 2; n2++) {
                uint32_t b[4];
                frag_b_rows<LDS>(b, bK, n2 * 16, kk * 16);
                mma16816<BF16>(s[2 * n2], qa, b[0], b[1]);
                mma16816<BF16>(s[2 * n2 + 1], qa, b[2], b[3]);
                frag_b_rows<LDS>(b, bV, n2 * 16, kk * 16);
                mma16816<BF16>(dp[2 * n2], oa, b[0], b[1]);
                mma16816<BF16>(dp[2 * n2 + 1], oa, b[2], b[3]);
            }
        }
        const bool edge = kb == nkb - 1;
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s[i][e] * sl2 - L2[e >> 1]);
                if (edge) {
                    int qi = q0 + warp * 16 + g + (e >> 1) * 8, kj = kb * FL_ROWS + i * 8 + 2 * t + (e & 1);
                    if (kj > qi || kj >= len)
                        p = 0.0f;
                }
                s[i][e] = p * (dp[i][e] - Dr[e >> 1]); /* dS */
            }
#pragma unroll
        for (int k2 = 0; k2 < NT / 2; k2++) {
            uint32_t da[4] = {pack2<BF16>(s[2 * k2][0], s[2 * k2][1]), pack2<BF16>(s[2 * k2][2], s[2 * k2][3]),
                              pack2<BF16>(s[2 * k2 + 1][0], s[2 * k2 + 1][1]),
                              pack2<BF16>(s[2 * k2 + 1][2], s[2 * k2 + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < DT / 2; d2++) {
                uint32_t b[4];
                frag_b_cols<LDS>(b, bK, k2 * 16, d2 * 16);
                mma16816<BF16>(acc[2 * d2], da, b[0], b[1]);
                mma16816<BF16>(acc[2 * d2 + 1], da, b[2], b[3]);
            }
        }
        __syncthreads();
    }
    const float scale = 1.0f / sqrtf((float)HD);
    uint16_t *DQ = (uint16_t *)dq + start * lddq + (int64_t)h * HD;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        int row = warp * 16 + g + rr * 8;
        if (row >= nq)
            continue;
        uint16_t *drow = DQ + (int64_t)(q0 + row) * lddq;
#pragma unroll
        for (int i = 0; i < DT; i++)
            *reinterpret_cast<uint32_t *>(drow + i * 8 + 2 * t) =
                pack2<BF16>(acc[i][2 * rr] * scale, acc[i][2 * rr + 1] * scale);
    }
}

/* ---- dK, dV ------------------------------------------------------------------------------- */

template <int HD, bool BF16>
static __global__ void __launch_bounds__(FL_THREADS)
    k_flash_dkv(hlk_attn a, const void *dout, int64_t lddo, const float *lse, const float *Dbuf, void *dk,
                int64_t lddk, void *dv, int64_t lddv) {
    constexpr int LDS = HD + 8, NQ = FL_QB / 8, DT = HD / 8;
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t *sK = smem, *sV = sK + FL_ROWS * LDS, *sQ = sV + FL_ROWS * LDS, *sO = sQ + 2 * FL_QB * LDS;
    float *sL = (float *)(sO + 2 * FL_QB * LDS), *sD = sL + 2 * FL_QB;
    const int blk = blockIdx.x, kvh = blockIdx.y, group = a.H / a.Hkv;
    const int64_t start = a.blk_start[blk];
    const int len = a.blk_len[blk], k0 = a.blk_off[blk];
    const int nk = len - k0 < FL_ROWS ? len - k0 : FL_ROWS;
    const uint16_t *K = (const uint16_t *)a.k + start * a.ldk + (int64_t)kvh * HD;
    const uint16_t *V = (const uint16_t *)a.v + start * a.ldv + (int64_t)kvh * HD;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const float sl2 = LOG2E / sqrtf((float)HD);

    load_tile<HD>(sK, K + (int64_t)k0 * a.ldk, a.ldk, FL_ROWS, nk);
    load_tile<HD>(sV, V + (int64_t)k0 * a.ldv, a.ldv, FL_ROWS, nk);
    cp_commit();

    float ak[DT][4], av[DT][4];
#pragma unroll
    for (int i = 0; i < DT; i++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            ak[i][e] = av[i][e] = 0.0f;

    const int nqs = (len - k0 + FL_QB - 1) / FL_QB; /* query steps per head */
    const int steps = group * nqs;
    /* stage step `st` (head, query block) into buffer `buf` */
    auto stage = [&](int st, int buf) {
        int hh = kvh * group + st / nqs, qs = k0 + (st % nqs) * FL_QB;
        int nv = len - qs < FL_QB ? len - qs : FL_QB;
        const uint16_t *Q = (const uint16_t *)a.q + start * a.ldq + (int64_t)hh * HD;
        const uint16_t *dO = (const uint16_t *)dout + start * lddo + (int64_t)hh * HD;
        load_tile<HD>(sQ + buf * FL_QB * LDS, Q + (int64_t)qs * a.ldq, a.ldq, FL_QB, nv);
        load_tile<HD>(sO + buf * FL_QB * LDS, dO + (int64_t)qs * lddo, lddo, FL_QB, nv);
        for (int i = threadIdx.x; i < FL_QB; i += FL_THREADS) {
            int64_t fi = (int64_t)hh * a.M + start + qs + i;
            sL[buf * FL_QB + i] = i < nv ? lse[fi] * LOG2E : 0.0f;
            sD[buf * FL_QB + i] = i < nv ? Dbuf[fi] : 0.0f;
        }
    };
    stage(0, 0);
    cp_commit();

    for (int st = 0; st < steps; st++) {
        const int cur = st & 1, qs = k0 + (st % nqs) * FL_QB;
        if (st + 1 < steps) {
            stage(st + 1, cur ^ 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const uint16_t *bQ = sQ + cur * FL_QB * LDS, *bO = sO + cur * FL_QB * LDS;
        const float *bL = sL + cur * FL_QB, *bD = sD + cur * FL_QB;
        /* Sᵀ = K Qᵀ and dPᵀ = V dOᵀ for this warp's 16 keys × FL_QB queries */
        float s[NQ][4], dp[NQ][4];
#pragma unroll
        for (int i = 0; i < NQ; i++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[i][e] = dp[i][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t ka[4], va[4];
            frag_a<LDS>(ka, sK, warp * 16, kk * 16);
            frag_a<LDS>(va, sV, warp * 16, kk * 16);
#pragma unroll
            for (int n2 = 0; n2 < NQ / 2; n2++) {
                uint32_t b[4];
                frag_b_rows<LDS>(b, bQ, n2 * 16, kk * 16);
                mma16816<BF16>(s[2 * n2], ka, b[0], b[1]);
                mma16816<BF16>(s[2 * n2 + 1], ka, b[2], b[3]);
                frag_b_rows<LDS>(b, bO, n2 * 16, kk * 16);
                mma16816<BF16>(dp[2 * n2], va, b[0], b[1]);
                mma16816<BF16>(dp[2 * n2 + 1], va, b[2], b[3]);
            }
        }
        /* Pᵀ and dSᵀ (row = key, column = query); masked where query < key or query >= len */
        const bool edge = qs < k0 + FL_ROWS || qs + FL_QB > len;
#pragma unroll
        for (int i = 0; i < NQ; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int qc = i * 8 + 2 * t + (e & 1);
                float p = exp2f(s[i][e] * sl2 - bL[qc]);
                if (edge) {
                    int kj = k0 + warp * 16 + g + (e >> 1) * 8, qi = qs + qc;
                    if (qi < kj || qi >= len)
                        p = 0.0f;
                }
                s[i][e] = p;
                dp[i][e] = p * (dp[i][e] - bD[qc]);
            }
#pragma unroll
        for (int k2 = 0; k2 < NQ / 2; k2++) {
            uint32_t pa[4] = {pack2<BF16>(s[2 * k2][0], s[2 * k2][1]), pack2<BF16>(s[2 * k2][2], s[2 * k2][3]),
                              pack2<BF16>(s[2 * k2 + 1][0], s[2 * k2 + 1][1]),
                              pack2<BF16>(s[2 * k2 + 1][2], s[2 * k2 + 1][3])};
            uint32_t da[4] = {pack2<BF16>(dp[2 * k2][0], dp[2 * k2][1]), pack2<BF16>(dp[2 * k2][2], dp[2 * k2][3]),
                              pack2<BF16>(dp[2 * k2 + 1][0], dp[2 * k2 + 1][1]),
                              pack2<BF16>(dp[2 * k2 + 1][2], dp[2 * k2 + 1][3])};
#pragma unroll
            for (int d2 = 0; d2 < DT / 2; d2++) {
                uint32_t b[4];
                frag_b_cols<LDS>(b, bO, k2 * 16, d2 * 16);
                mma16816<BF16>(av[2 * d2], pa, b[0], b[1]);
                mma16816<BF16>(av[2 * d2 + 1], pa, b[2], b[3]);
                frag_b_cols<LDS>(b, bQ, k2 * 16, d2 * 16);
                mma16816<BF16>(ak[2 * d2], da, b[0], b[1]);
                mma16816<BF16>(ak[2 * d2 + 1], da, b[2], b[3]);
            }
        }
        __syncthreads();
    }
    const float scale = 1.0f / sqrtf((float)HD);
    uint16_t *DK = (uint16_t *)dk + start * lddk + (int64_t)kvh * HD;
    uint16_t *DV = (uint16_t *)dv + start * lddv + (int64_t)kvh * HD;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        int row = warp * 16 + g + rr * 8;
        if (row >= nk)
            continue;
        uint16_t *krow = DK + (int64_t)(k0 + row) * lddk, *vrow = DV + (int64_t)(k0 + row) * lddv;
#pragma unroll
        for (int i = 0; i < DT; i++) {
            *reinterpret_cast<uint32_t *>(krow + i * 8 + 2 * t) =
                pack2<BF16>(ak[i][2 * rr] * scale, ak[i][2 * rr + 1] * scale);
            *reinterpret_cast<uint32_t *>(vrow + i * 8 + 2 * t) = pack2<BF16>(av[i][2 * rr], av[i][2 * rr + 1]);
        }
    }
}

/* ---- launchers -------------------------------------------------------------------------------- */

static size_t fwd_smem(int hd) { return (size_t)5 * FL_ROWS * (hd + 8) * 2; }
static size_t dq_smem(int hd) { return (size_t)6 * FL_ROWS * (hd + 8) * 2; }
static size_t dkv_smem(int hd) { return (size_t)(2 * FL_ROWS + 4 * FL_QB) * (hd + 8) * 2 + 4 * FL_QB * sizeof(float); }

/* The dynamic shared-memory limit is a per-device function attribute: set it before each launch
 * (a cheap driver call) so that any device the process uses has it. */
#define FL_LAUNCH(kernel, grid, smem_bytes, st, ...)                                                                 \
    do {                                                                                                              \
        CU_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)(smem_bytes)));         \
        kernel<<<grid, FL_THREADS, smem_bytes, st>>>(__VA_ARGS__);                                                    \
        CU_LAUNCHED(#kernel);                                                                                         \
    } while (0)

hl_status hlk_flash_fwd(cudaStream_t st, const hlk_attn *a, void *o, int64_t ldo, float *lse) {
    dim3 grid((unsigned)a->n_blk, (unsigned)a->H);
    size_t sm = fwd_smem(a->hd);
    const int bf = a->dt == DT_BF16;
    if (a->hd == 64) {
        if (bf)
            FL_LAUNCH((k_flash_fwd<64, true>), grid, sm, st, *a, o, ldo, lse);
        else
            FL_LAUNCH((k_flash_fwd<64, false>), grid, sm, st, *a, o, ldo, lse);
    } else {
        if (bf)
            FL_LAUNCH((k_flash_fwd<128, true>), grid, sm, st, *a, o, ldo, lse);
        else
            FL_LAUNCH((k_flash_fwd<128, false>), grid, sm, st, *a, o, ldo, lse);
    }
    return HL_OK;
}

hl_status hlk_flash_bwd(cudaStream_t st, const hlk_attn *a, const void *dout, int64_t lddo, const float *lse,
                        const float *Dbuf, void *dq, int64_t lddq, void *dk, int64_t lddk, void *dv, int64_t lddv) {
    dim3 gq((unsigned)a->n_blk, (unsigned)a->H), gkv((unsigned)a->n_blk, (unsigned)a->Hkv);
    size_t s1 = dq_smem(a->hd), s2 = dkv_smem(a->hd);
    const int bf = a->dt == DT_BF16;
    if (a->hd == 64) {
        if (bf) {
            FL_LAUNCH((k_flash_dq<64, true>), gq, s1, st, *a, dout, lddo, lse, Dbuf, dq, lddq);
            FL_LAUNCH((k_flash_dkv<64, true>), gkv, s2, st, *a, dout, lddo, lse, Dbuf, dk, lddk, dv, lddv);
        } else {
            FL_LAUNCH((k_flash_dq<64, false>), gq, s1, st, *a, dout, lddo, lse, Dbuf, dq, lddq);
            FL_LAUNCH((k_flash_dkv<64, false>), gkv, s2, st, *a, dout, lddo, lse, Dbuf, dk, lddk, dv, lddv);
        }
    } else {
        if (bf) {
            FL_LAUNCH((k_flash_dq<128, true>), gq, s1, st, *a, dout, lddo, lse, Dbuf, dq, lddq);
            FL_LAUNCH((k_flash_dkv<128, true>), gkv, s2, st, *a, dout, lddo, lse, Dbuf, dk, lddk, dv, lddv);
        } else {
            FL_LAUNCH((k_flash_dq<128, false>), gq, s1, st, *a, dout, lddo, lse, Dbuf, dq, lddq);
            FL_LAUNCH((k_flash_dkv<128, false>), gkv, s2, st, *a, dout, lddo, lse, Dbuf, dk, lddk, dv, lddv);
        }
    }
    return HL_OK;
}
