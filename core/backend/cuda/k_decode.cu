/* Kernels of the KV-cache decoder (cuda_decoder.c): the paged key/value pool, the decode
 * attention over it (split-K, "flash-decoding"), the prefill geometry for the flash kernels, and
 * the greedy arg-max.
 *
 * Pool layout (per layer, keys and values alike): [n_blocks][block_size][Dkv] in the activation
 * dtype; row r = block·block_size + offset is one position's keys (or values) of every kv head.
 * A sequence's logical position p lives in row table[p / bs]·bs + p % bs of its slot's table.
 *
 * Decode attention semantics are those of core/backend/cpu/ops.c hl_attention_forward for one
 * query row at position len − 1: s_j = (q·k_j)/√hd over j < len, softmax, Σ p_j v_j, f32
 * accumulation. A (row, head) pair is split into chunks of positions; each chunk keeps a running
 * max, sum and unnormalised output (per warp, then per block), and a second kernel merges the
 * chunks (log-sum-exp weights) in chunk order, so the result does not depend on timing. */
#include "core/backend/cuda/cuda_decode.h"
#include "core/backend/cuda/cuda_dev.cuh"

HL_TRACE_UNIT(decode)

#include <mma.h>
#include <type_traits>

#define DEC_WARPS 4

/* ---- pool writes and gathers ------------------------------------------------------------- */

/* Pool row of rows[m] gets the Dkv values (keys, then values) of row m of the new k/v. */
static __global__ void k_kv_write(void *kpool, void *vpool, const void *k, const void *v, int64_t ld,
                                  const int32_t *rows, int64_t M, int Dkv, int esz) {
    const int64_t m = blockIdx.x;
    const int64_t dst = (int64_t)rows[m] * Dkv;
    if (esz == 4) {
        for (int j = threadIdx.x; j < Dkv; j += blockDim.x) {
            ((float *)kpool)[dst + j] = ((const float *)k)[m * ld + j];
            ((float *)vpool)[dst + j] = ((const float *)v)[m * ld + j];
        }
    } else {
        for (int j = threadIdx.x; j < Dkv; j += blockDim.x) {
            ((uint16_t *)kpool)[dst + j] = ((const uint16_t *)k)[m * ld + j];
            ((uint16_t *)vpool)[dst + j] = ((const uint16_t *)v)[m * ld + j];
        }
    }
}

hl_status hlk_kv_write(cudaStream_t st, void *kpool, void *vpool, const void *k, const void *v, int64_t ld,
                       const int32_t *rows, int64_t M, int Dkv, int dt) {
    if (M <= 0)
        return HL_OK;
    int th = Dkv < 256 ? ((Dkv + 31) / 32) * 32 : 256;
    k_kv_write<<<(unsigned)M, th, 0, st>>>(kpool, vpool, k, v, ld, rows, M, Dkv, dt == DT_F32 ? 4 : 2);
    CU_LAUNCHED("kv_write");
    return HL_OK;
}

/* Positions [0, n) of one slot from the pool into k/v rows (row stride ld). */
static __global__ void k_kv_gather(void *k, void *v, int64_t ld, const void *kpool, const void *vpool,
                                   const int32_t *table, int bs, int n, int Dkv, int esz) {
    const int p = blockIdx.x;
    if (p >= n)
        return;
    const int64_t src = ((int64_t)table[p / bs] * bs + p % bs) * Dkv;
    if (esz == 4) {
        for (int j = threadIdx.x; j < Dkv; j += blockDim.x) {
            ((float *)k)[p * ld + j] = ((const float *)kpool)[src + j];
            ((float *)v)[p * ld + j] = ((const float *)vpool)[src + j];
        }
    } else {
        for (int j = threadIdx.x; j < Dkv; j += blockDim.x) {
            ((uint16_t *)k)[p * ld + j] = ((const uint16_t *)kpool)[src + j];
            ((uint16_t *)v)[p * ld + j] = ((const uint16_t *)vpool)[src + j];
        }
    }
}

hl_status hlk_kv_gather(cudaStream_t st, void *k, void *v, int64_t ld, const void *kpool, const void *vpool,
                        const int32_t *table, int bs, int n, int Dkv, int dt) {
    if (n <= 0)
        return HL_OK;
    int th = Dkv < 256 ? ((Dkv + 31) / 32) * 32 : 256;
    k_kv_gather<<<(unsigned)n, th, 0, st>>>(k, v, ld, kpool, vpool, table, bs, n, Dkv, dt == DT_F32 ? 4 : 2);
    CU_LAUNCHED("kv_gather");
    return HL_OK;
}

/* Block src -> block dst of every layer's keys and values (copy-on-write); grid (L, 2). */
static __global__ void k_kv_copy_block(char *kpool, char *vpool, size_t layer_bytes, size_t block_bytes, int64_t src,
                                       int64_t dst) {
    char *pool = blockIdx.y ? vpool : kpool;
    const uint4 *s = (const uint4 *)(pool + blockIdx.x * layer_bytes + (size_t)src * block_bytes);
    uint4 *d = (uint4 *)(pool + blockIdx.x * layer_bytes + (size_t)dst * block_bytes);
    for (size_t i = threadIdx.x; i < block_bytes / 16; i += blockDim.x)
        d[i] = s[i];
}

hl_status hlk_kv_copy_block(cudaStream_t st, void *kpool, void *vpool, size_t layer_bytes, size_t block_bytes, int L,
                            int64_t src, int64_t dst) {
    if (block_bytes % 16 || layer_bytes % 16)
        return hl_fail(HL_ERR_ARG, "KV block copy: %zu-byte blocks are not 16-byte multiples", block_bytes);
    k_kv_copy_block<<<dim3((unsigned)L, 2), 256, 0, st>>>((char *)kpool, (char *)vpool, layer_bytes, block_bytes, src,
                                                          dst);
    CU_LAUNCHED("kv_copy_block");
    return HL_OK;
}

/* ---- prefill geometry ---------------------------------------------------------------------- */

/* One example of n rows whose rows [pos0, n) are queries: pos = row (or −1 before pos0),
 * send = n, and the 64-row query blocks from the one holding pos0. */
static __global__ void k_prefill_geom(int32_t *pos, int32_t *send, int32_t *blk_start, int32_t *blk_len,
                                      int32_t *blk_off, int pos0, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        pos[i] = i >= pos0 ? i : -1;
        send[i] = n;
    }
    const int b0 = pos0 / HLK_ATTN_BLOCK, nb = (n + HLK_ATTN_BLOCK - 1) / HLK_ATTN_BLOCK - b0;
    if (i < nb) {
        blk_start[i] = 0;
        blk_len[i] = n;
        blk_off[i] = (b0 + i) * HLK_ATTN_BLOCK;
    }
}

hl_status hlk_prefill_geom(cudaStream_t st, int32_t *pos, int32_t *send, int32_t *blk_start, int32_t *blk_len,
                           int32_t *blk_off, int pos0, int n) {
    k_prefill_geom<<<hl_cu_blocks(n, 256), 256, 0, st>>>(pos, send, blk_start, blk_len, blk_off, pos0, n);
    CU_LAUNCHED("prefill_geom");
    return HL_OK;
}

int hlk_prefill_blocks(int pos0, int n) {
    return (n + HLK_ATTN_BLOCK - 1) / HLK_ATTN_BLOCK - pos0 / HLK_ATTN_BLOCK;
}

/* ---- decode attention ---------------------------------------------------------------------- */

/* Lane `lane` holds dims [lane·EPL, lane·EPL + EPL) of the head (those < hd). */
template <int EPL>
static __device__ __forceinline__ void ld_lane(float *f, const void *p, int64_t base, int lane, int hd, int dt) {
    const int d0 = lane * EPL;
    if (dt != DT_F32 && EPL == 4 && d0 + 4 <= hd) { /* one 8-byte load */
        uint2 u = *reinterpret_cast<const uint2 *>((const uint16_t *)p + base + d0);
        const uint16_t *e = reinterpret_cast<const uint16_t *>(&u);
#pragma unroll
        for (int c = 0; c < 4; c++)
            f[c] = dt == DT_BF16 ? __bfloat162float(__ushort_as_bfloat16(e[c])) : __half2float(__ushort_as_half(e[c]));
        return;
    }
#pragma unroll
    for (int c = 0; c < EPL; c++)
        f[c] = d0 + c < hd ? ld_act(p, base + d0 + c, dt) : 0.0f;
}

/* grid (n_split, H, B), DEC_WARPS warps. Block (s, h, b) covers positions [s·chunk, (s+1)·chunk)
 * ∩ [0, len[b]) of row b's slot; warp w takes every DEC_WARPS-th position of them. */
template <int EPL>
static __global__ void __launch_bounds__(DEC_WARPS * 32) k_decode_attn(hlk_decode a) {
    __shared__ float sm_m[DEC_WARPS], sm_l[DEC_WARPS];
    __shared__ float sm_acc[DEC_WARPS][EPL * 32];
    const int s = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int hd = a.hd, dt = a.dt, kvh = h / (a.H / a.Hkv);
    const int len = a.len[b];
    const int p_lo = (a.start ? a.start[b] : 0) + s * a.chunk, p_hi = min(len, p_lo + a.chunk);
    const bool partial = a.n_split > 1 || a.pre_n;
    const int32_t *table = a.tables + (int64_t)a.slot[b] * a.max_blocks;
    const float scale = 1.0f / sqrtf((float)hd);
    float q[EPL], acc[EPL];
    ld_lane<EPL>(q, a.q, (int64_t)b * a.ldq + (int64_t)h * hd, lane, hd, dt);
#pragma unroll
    for (int c = 0; c < EPL; c++)
        acc[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int p = p_lo + warp; p < p_hi; p += DEC_WARPS) {
        const int64_t row = (int64_t)table[p / a.bs] * a.bs + p % a.bs;
        const int64_t base = row * a.Dkv + (int64_t)kvh * hd;
        float k[EPL], v[EPL];
        ld_lane<EPL>(k, a.kpool, base, lane, hd, dt);
        ld_lane<EPL>(v, a.vpool, base, lane, hd, dt);
        float dot = 0.0f;
#pragma unroll
        for (int c = 0; c < EPL; c++)
            dot += q[c] * k[c];
        const float sc = warp_sum(dot) * scale;
        const float mn = fmaxf(m, sc);
        const float corr = m == -INFINITY ? 0.0f : expf(m - mn);
        const float pr = expf(sc - mn);
        l = l * corr + pr;
#pragma unroll
        for (int c = 0; c < EPL; c++)
            acc[c] = acc[c] * corr + pr * v[c];
        m = mn;
    }
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
#pragma unroll
    for (int c = 0; c < EPL; c++)
        sm_acc[warp][lane * EPL + c] = acc[c];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < DEC_WARPS; w++)
        M = fmaxf(M, sm_m[w]);
    float L = 0.0f, wgt[DEC_WARPS];
#pragma unroll
    for (int w = 0; w < DEC_WARPS; w++) {
        wgt[w] = sm_m[w] == -INFINITY ? 0.0f : expf(sm_m[w] - M);
        L += sm_l[w] * wgt[w];
    }
    const int64_t item = ((int64_t)b * a.H + h) * a.n_split + s;
    for (int d = threadIdx.x; d < hd; d += DEC_WARPS * 32) {
        float o = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++)
            o += sm_acc[w][d] * wgt[w];
        if (!partial)
            st_act(a.out, (int64_t)b * a.ldo + (int64_t)h * hd + d, dt, o / L);
        else
            a.part[item * hd + d] = o;
    }
    if (partial && threadIdx.x == 0) {
        a.part_ml[2 * item] = M;
        a.part_ml[2 * item + 1] = L;
    }
}


/* Merge the chunks of (b, h) in chunk order (shared-prefix chunks first, when there are any),
 * the block's threads over hd. The partials may come from other blocks of the same launch (the
 * fused merge): read from L2.
 * Up to MG_FAST chunks with hd <= blockDim.x (every decode step of the 16-bit kernel): thread d
 * loads its dim's partial of every chunk and lane j the (max, sum) of chunk j, all at once, so
 * the merge costs one L2 round trip; the sums then run over the chunks in order with the
 * weights passed round by shuffles: the same operations, so the same bits, as the serial loops
 * below, which wait for one load after another (three loops over 16 chunks made the merging
 * block of each head end 6-7 us after the others at batch 1 of the 7B shape on the H200: the
 * block trace, bench/README.md). */
#define MG_FAST 32  /* chunks: one (max, sum) per lane */
#define MG_BATCH 16 /* partials in flight per thread (registers: more made the 16-bit kernel's
                     * 128 registers 151, three blocks per multiprocessor instead of four) */
static __device__ void merge_item_fast(const hlk_decode &a, int b, int h, int np, int nc) {
    const int64_t item0 = ((int64_t)b * a.H + h) * a.n_split, pre0 = ((int64_t)b * a.H + h) * a.npc;
    const int lane = threadIdx.x & 31, d = threadIdx.x;
    const bool mine = d < a.hd;
    float mc = -INFINITY, lc = 0.0f; /* chunk `lane`'s max and sum */
    if (lane < nc) {
        const float *ml = lane < np ? a.pre_ml + 2 * (pre0 + lane) : a.part_ml + 2 * (item0 + lane - np);
        mc = __ldcg(ml);
        lc = __ldcg(ml + 1);
    }
    float L = 0.0f, o = 0.0f, M = 0.0f, e = 0.0f;
    for (int j0 = 0; j0 < nc; j0 += MG_BATCH) {
        float v[MG_BATCH]; /* dim d's partial of chunks j0 .. */
#pragma unroll
        for (int u = 0; u < MG_BATCH; u++) {
            const int j = j0 + u;
            v[u] = mine && j < nc ? __ldcg(j < np ? a.pre_part + (pre0 + j) * a.hd + d : a.part + (item0 + j - np) * a.hd + d)
                                  : 0.0f;
        }
        if (j0 == 0) {
            M = warp_max(mc);
            e = mc != -INFINITY ? expf(mc - M) : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < MG_BATCH; u++) {
            const int j = j0 + u;
            const float mj = __shfl_sync(0xffffffffu, mc, j & 31), lj = __shfl_sync(0xffffffffu, lc, j & 31),
                        ej = __shfl_sync(0xffffffffu, e, j & 31);
            if (j < nc && mj != -INFINITY) {
                L = fmaf(lj, ej, L);
                o = fmaf(v[u], ej, o);
            }
        }
    }
    if (mine)
        st_act(a.out, (int64_t)b * a.ldo + (int64_t)h * a.hd + d, a.dt, o / L);
}
static __device__ void merge_item(const hlk_decode &a, int b, int h) {
    const int64_t item0 = ((int64_t)b * a.H + h) * a.n_split;
    const int np = a.pre_n ? a.pre_n[b] : 0;
    const int64_t pre0 = ((int64_t)b * a.H + h) * a.npc;
    if (np + a.n_split <= MG_FAST && a.hd <= (int)blockDim.x && blockDim.x % 32 == 0) {
        merge_item_fast(a, b, h, np, np + a.n_split);
        return;
    }
    float M = -INFINITY;
    for (int c = 0; c < np; c++)
        M = fmaxf(M, a.pre_ml[2 * (pre0 + c)]);
    for (int s = 0; s < a.n_split; s++)
        M = fmaxf(M, __ldcg(a.part_ml + 2 * (item0 + s)));
    float L = 0.0f;
    for (int c = 0; c < np; c++) {
        float ms = a.pre_ml[2 * (pre0 + c)];
        if (ms != -INFINITY)
            L = fmaf(a.pre_ml[2 * (pre0 + c) + 1], expf(ms - M), L);
    }
    for (int s = 0; s < a.n_split; s++) {
        float ms = __ldcg(a.part_ml + 2 * (item0 + s));
        if (ms != -INFINITY)
            L = fmaf(__ldcg(a.part_ml + 2 * (item0 + s) + 1), expf(ms - M), L);
    }
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float o = 0.0f;
        for (int c = 0; c < np; c++) {
            float ms = a.pre_ml[2 * (pre0 + c)];
            if (ms != -INFINITY)
                o = fmaf(a.pre_part[(pre0 + c) * a.hd + d], expf(ms - M), o);
        }
        for (int s = 0; s < a.n_split; s++) {
            float ms = __ldcg(a.part_ml + 2 * (item0 + s));
            if (ms != -INFINITY)
                o = fmaf(__ldcg(a.part + (item0 + s) * a.hd + d), expf(ms - M), o);
        }
        st_act(a.out, (int64_t)b * a.ldo + (int64_t)h * a.hd + d, a.dt, o / L);
    }
}

/* 16-bit keys/values, hd 64 or 128: the same semantics with the loads spread for bandwidth. A
 * key or value row is read by HD/8 lanes (16 bytes each), so a warp covers 32/(HD/8) positions
 * at once. The block's positions go in pieces of DA_SUB whose keys AND values are all loaded
 * before anything waits on them (one memory round trip per piece): scores of the piece into
 * shared memory, the running max/sum updated once per piece, then Σ p_j v_j with thread t owning
 * 8 dims of every (t / (HD/8))-th position, summed over the thread groups at the end in a fixed
 * order. */
#define DA_THREADS 128
#define DA_SUB 64 /* positions per piece: all their keys and values are loaded at once */
/* Blocks per multiprocessor the registers must allow (128 threads: at most 128 registers for 4).
 * Left to itself the compiler took 151 registers once the merge's loads went in flight together,
 * which leaves room for 3; with the cap there are no spills (nvcc 13.0, sm_90). The decoder sizes
 * its chunks from this residency (hlk_decode_attn_resident), so a step's blocks run in one wave. */
#ifndef DA_MIN_BLOCKS
#define DA_MIN_BLOCKS 4
#endif

/* RoPE (sign +1) of dims [8·sub, 8·sub + 8) of one head's row before RoPE, at position p (rope8,
 * as k_rope_kv), the result rounded to 16 bits as it would be stored. */
template <int HD, int DT>
static __device__ __forceinline__ uint4 rope_piece(const uint16_t *row, int sub, const float *ct, const float *stb,
                                                   int p) {
    constexpr int half = HD / 2;
    const int d0 = 8 * sub, first = d0 < half, j0 = first ? d0 : d0 - half;
    float a[8], b[8], o1[8], o2[8];
    cvt8<DT>(*(const uint4 *)(row + j0), a);
    cvt8<DT>(*(const uint4 *)(row + j0 + half), b);
    rope8(a, b, ct, stb, p, half, j0, 1.0f, o1, o2);
    if constexpr (HD == 64) {
        /* A select per value: picking the array by pointer put both arrays in local memory in
         * this kernel (a 64-byte stack frame, nvcc 13.0, sm_90). The head-size-128 kernel keeps
         * the pointer form: it has no stack frame, and its code shape, measured on the H200, is
         * left as it is. */
#pragma unroll
        for (int k = 0; k < 8; k++)
            a[k] = first ? o1[k] : o2[k];
        return pack8<DT>(a);
    } else {
        return pack8<DT>(first ? o1 : o2);
    }
}
template <int HD, int DT> static __global__ void __launch_bounds__(DA_THREADS, DA_MIN_BLOCKS) k_decode_attn16(hlk_decode a) {
    constexpr int LPR = HD / 8;              /* lanes per row */
    constexpr int RPB = DA_THREADS / LPR;    /* rows per block step */
    __shared__ float sc[DA_SUB];
    __shared__ float red[DA_THREADS / 32];
    __shared__ float accs[RPB][HD];
    TR_BEGIN;
    pdl_trigger();
    const int s = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int sub = threadIdx.x % LPR, grp = threadIdx.x / LPR, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int kvh = h / (a.H / a.Hkv);
    const int len = a.len[b];
    const int p_lo = (a.start ? a.start[b] : 0) + s * a.chunk, p_hi = min(len, p_lo + a.chunk);
    const bool partial = a.n_split > 1 || a.pre_n;
    const int32_t *table = a.tables + (int64_t)a.slot[b] * a.max_blocks;
    const float scale = 1.0f / sqrtf((float)HD);
    const int64_t col = (int64_t)kvh * HD + sub * 8;
    constexpr int NU = DA_SUB / RPB; /* positions per thread and piece */
    /* Every key and value row of a piece in flight at once (thread: positions grp + RPB·u). The
     * first piece's rows load before pdl_wait, while the kernels before finish: the cache rows
     * before the newest position were written by earlier steps (the host synchronised since, and
     * copy-on-write copies run before the step's first launch). The newest position's row is
     * this step's (k_rope_kv, or rotated here from knew / vnew): it loads after the wait. With
     * RoPE here, the blocks of the first query head of each key head write that row to the cache
     * (no block of this launch reads it from there). Later pieces load as the block reaches
     * them (the second one copied into shared memory before the wait as well, 32 KB a block,
     * made batch-1 decode of the 7B shape slower on the H200, 4.37-4.39 against 4.26 ms per
     * token: bench/README.md, ninth series). */
    uint4 kv[NU], vv[NU];
    const int rope_p = a.rope_cos ? max(a.pos[b], 0) : 0;
    auto load_piece = [&](int base, int newest) { /* newest: only position len − 1; else all but it */
        const int n = min(DA_SUB, p_hi - base);
#pragma unroll
        for (int u = 0; u < NU; u++) {
            const int j = grp + u * RPB, p = base + j;
            if (j < n && (p == len - 1) == (newest != 0)) {
                const int64_t row = (int64_t)table[p / a.bs] * a.bs + p % a.bs;
                uint16_t *kc = (uint16_t *)a.kpool + row * a.Dkv + col, *vc = (uint16_t *)a.vpool + row * a.Dkv + col;
                if (newest && a.rope_cos) {
                    const int64_t nb = (int64_t)b * a.ldq + (int64_t)kvh * HD;
                    kv[u] = rope_piece<HD, DT>((const uint16_t *)a.knew + nb, sub, a.rope_cos, a.rope_sin, rope_p);
                    vv[u] = *(const uint4 *)((const uint16_t *)a.vnew + nb + sub * 8);
                    if (h % (a.H / a.Hkv) == 0) {
                        *(uint4 *)kc = kv[u];
                        *(uint4 *)vc = vv[u];
                    }
                } else {
                    kv[u] = *(const uint4 *)kc;
                    vv[u] = *(const uint4 *)vc;
                }
            } else if (!newest) {
                kv[u] = vv[u] = make_uint4(0, 0, 0, 0);
            }
        }
    };
    if (p_lo < p_hi)
        load_piece(p_lo, 0);
    pdl_wait();
    TR_WAITED;
    float q[8], acc[8];
    {
        const uint16_t *qrow = (const uint16_t *)a.q + (int64_t)b * a.ldq + (int64_t)h * HD;
        cvt8<DT>(a.rope_cos ? rope_piece<HD, DT>(qrow, sub, a.rope_cos, a.rope_sin, rope_p)
                            : *(const uint4 *)(qrow + sub * 8),
                 q);
    }
#pragma unroll
    for (int k = 0; k < 8; k++)
        acc[k] = 0.0f;
    float m = -INFINITY, l = 0.0f; /* running max and sum (every thread holds them) */
    for (int base = p_lo; base < p_hi; base += DA_SUB) {
        const int n = min(DA_SUB, p_hi - base);
        if (base != p_lo)
            load_piece(base, 0);
        if (len - 1 >= base && len - 1 < base + n)
            load_piece(base, 1); /* this piece holds the newest position */
        /* scores (every lane of a row group takes part in its shuffles: uniform trip count) */
#pragma unroll
        for (int u = 0; u < NU; u++) {
            const int j = grp + u * RPB;
            float k8[8];
            cvt8<DT>(kv[u], k8);
            float dot = 0.0f;
#pragma unroll
            for (int k = 0; k < 8; k++)
                dot = fmaf(q[k], k8[k], dot);
#pragma unroll
            for (int o = LPR / 2; o > 0; o >>= 1) /* within the row's lanes */
                dot += __shfl_xor_sync(0xffffffffu, dot, o);
            if (j < n && sub == 0)
                sc[j] = dot * scale;
        }
        __syncthreads();
        /* the piece's max, the new running max, p_j = exp(s_j − m), their sum */
        float pm = -INFINITY;
        for (int j = threadIdx.x; j < n; j += DA_THREADS)
            pm = fmaxf(pm, sc[j]);
        pm = warp_max(pm);
        if (lane == 0)
            red[warp] = pm;
        __syncthreads();
        pm = red[0];
#pragma unroll
        for (int w = 1; w < DA_THREADS / 32; w++)
            pm = fmaxf(pm, red[w]);
        const float mn = fmaxf(m, pm);
        const float corr = m == -INFINITY ? 0.0f : expf(m - mn);
        __syncthreads(); /* red is reused */
        float ps = 0.0f;
        for (int j = threadIdx.x; j < n; j += DA_THREADS) {
            const float e = expf(sc[j] - mn);
            sc[j] = e;
            ps += e;
        }
        ps = warp_sum(ps);
        if (lane == 0)
            red[warp] = ps;
        __syncthreads();
        ps = 0.0f;
#pragma unroll
        for (int w = 0; w < DA_THREADS / 32; w++)
            ps += red[w];
        l = l * corr + ps;
        m = mn;
#pragma unroll
        for (int k = 0; k < 8; k++)
            acc[k] *= corr;
        /* Σ p_j v_j over this thread's positions (values already loaded) */
#pragma unroll
        for (int u = 0; u < NU; u++) {
            const int j = grp + u * RPB;
            if (j < n) {
                const float pj = sc[j];
                float v8[8];
                cvt8<DT>(vv[u], v8);
#pragma unroll
                for (int k = 0; k < 8; k++)
                    acc[k] = fmaf(pj, v8[k], acc[k]);
            }
        }
        __syncthreads(); /* sc and red are rewritten by the next piece */
    }
    /* sum the thread groups' accumulators in group order */
#pragma unroll
    for (int k = 0; k < 8; k++)
        accs[grp][sub * 8 + k] = acc[k];
    __syncthreads();
    const int64_t item = ((int64_t)b * a.H + h) * a.n_split + s;
    for (int d = threadIdx.x; d < HD; d += DA_THREADS) {
        float o = 0.0f;
#pragma unroll
        for (int g = 0; g < RPB; g++)
            o += accs[g][d];
        if (!partial)
            st_act(a.out, (int64_t)b * a.ldo + (int64_t)h * HD + d, DT, p_hi > p_lo ? o / l : 0.0f);
        else
            a.part[item * HD + d] = o;
    }
    if (partial && threadIdx.x == 0) {
        a.part_ml[2 * item] = m;
        a.part_ml[2 * item + 1] = l;
    }
    if (partial && a.merge_count) { /* the last block of (b, h) merges its chunks: no second launch */
        __shared__ int last;
        __threadfence(); /* this block's partials are visible before it counts itself done */
        __syncthreads();
        unsigned *cnt = a.merge_count + (int64_t)b * a.H + h;
        if (threadIdx.x == 0)
            last = atomicAdd(cnt, 1u) == gridDim.x - 1;
        __syncthreads();
        if (last) {
            __threadfence();
            merge_item(a, b, h);
            if (threadIdx.x == 0)
                *cnt = 0; /* ready for the next launch */
        }
    }
    TR_END(3, p_hi - p_lo, a.H, partial);
}

/* grid (H, B): the merge as its own launch (k_decode_attn without merge_count). */
static __global__ void k_decode_merge(hlk_decode a) { merge_item(a, blockIdx.y, blockIdx.x); }

int hlk_decode_attn_resident(int dt, int hd) {
    if (dt == DT_F32 || (hd != 64 && hd != 128))
        return 0;
    void (*k)(hlk_decode) = hd == 128 ? (dt == DT_BF16 ? k_decode_attn16<128, DT_BF16> : k_decode_attn16<128, DT_F16>)
                                      : (dt == DT_BF16 ? k_decode_attn16<64, DT_BF16> : k_decode_attn16<64, DT_F16>);
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k, DA_THREADS, 0) != cudaSuccess) {
        (void)cudaGetLastError(); /* not sticky: clear it */
        return 0;
    }
    return n;
}

hl_status hlk_decode_attn(cudaStream_t st, const hlk_decode *a) {
    if (a->B <= 0)
        return HL_OK;
    if (a->hd > 256 || a->hd < 1 || a->n_split < 1 || a->chunk < 1)
        return hl_fail(HL_ERR_ARG, "decode attention: head size %d, %d chunks of %d", a->hd, a->n_split, a->chunk);
    dim3 grid((unsigned)a->n_split, (unsigned)a->H, (unsigned)a->B);
    const int epl = (a->hd + 31) / 32;
    const int vec16 = a->dt != DT_F32 && (a->hd == 64 || a->hd == 128) && a->ldq % 8 == 0 && a->Dkv % 8 == 0 &&
                      (uintptr_t)a->q % 16 == 0;
    if (a->rope_cos && (!vec16 || a->pre_n || !a->knew || !a->vnew || !a->pos || a->ldq % 8 != 0 ||
                        ((uintptr_t)a->knew | (uintptr_t)a->vnew) % 16 != 0))
        return hl_fail(HL_ERR_INTERNAL, "decode attention: RoPE inside needs 16-bit rows of head size 64 or 128");
    if (vec16) {
        void (*k)(hlk_decode) = a->hd == 128 ? (a->dt == DT_BF16 ? k_decode_attn16<128, DT_BF16> : k_decode_attn16<128, DT_F16>)
                                             : (a->dt == DT_BF16 ? k_decode_attn16<64, DT_BF16> : k_decode_attn16<64, DT_F16>);
        CU_TRY(hl_cu_launch(k, grid, dim3(DA_THREADS), 0, st, a->pdl, *a));
    } else if (epl <= 1)
        k_decode_attn<1><<<grid, DEC_WARPS * 32, 0, st>>>(*a);
    else if (epl <= 2)
        k_decode_attn<2><<<grid, DEC_WARPS * 32, 0, st>>>(*a);
    else if (epl <= 4)
        k_decode_attn<4><<<grid, DEC_WARPS * 32, 0, st>>>(*a);
    else
        k_decode_attn<8><<<grid, DEC_WARPS * 32, 0, st>>>(*a);
    CU_LAUNCHED("decode_attn");
    if ((a->n_split > 1 || a->pre_n) && !(vec16 && a->merge_count)) {
        int th = a->hd < 128 ? ((a->hd + 31) / 32) * 32 : 128;
        k_decode_merge<<<dim3((unsigned)a->H, (unsigned)a->B), th, 0, st>>>(*a);
        CU_LAUNCHED("decode_merge");
    }
    return HL_OK;
}

/* ---- shared-prefix attention ------------------------------------------------------------- */

/* grid (npc, H, n_groups), DEC_WARPS warps. Block (c, h, g) loads positions [c·PC, c·PC + PC) ∩
 * [0, plen[g]) of kv head h's keys and values into shared memory (16-bit pairs, rows padded by
 * one word so lanes reading different rows hit different banks), then each warp takes members
 * of the group in turn: lane j scores positions j and j + 32, a warp-wide softmax of the chunk,
 * and lane l accumulates dims [l·HD/32, (l+1)·HD/32) of Σ p_j v_j. */
template <int HD>
static __global__ void __launch_bounds__(DEC_WARPS * 32) k_prefix_attn(hlk_prefix a) {
    constexpr int PC = HLK_PREFIX_CHUNK, W = HD / 2 + 1, DL = HD / 32;
    __shared__ uint32_t sK[PC * W], sV[PC * W];
    __shared__ float sq[DEC_WARPS][HD];
    const int c = blockIdx.x, h = blockIdx.y, g = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int G = a.count[g], P = a.plen[g], p0 = c * PC;
    if (G <= 0 || p0 >= P)
        return;
    const int np = min(PC, P - p0), kvh = h / (a.H / a.Hkv), dt = a.dt;
    const int32_t *table = a.tables + (int64_t)a.gslot[g] * a.max_blocks;
    for (int i = threadIdx.x; i < np * (HD / 2); i += blockDim.x) {
        const int r = i / (HD / 2), w = i % (HD / 2), pos = p0 + r;
        const int64_t row = (int64_t)table[pos / a.bs] * a.bs + pos % a.bs;
        const int64_t off = (row * a.Dkv + (int64_t)kvh * HD) / 2 + w;
        sK[r * W + w] = ((const uint32_t *)a.kpool)[off];
        sV[r * W + w] = ((const uint32_t *)a.vpool)[off];
    }
    __syncthreads();
    const float scale = 1.0f / sqrtf((float)HD);
    for (int mi = warp; mi < G; mi += DEC_WARPS) {
        const int b = a.members[a.first[g] + mi];
        for (int d = lane; d < HD; d += 32)
            sq[warp][d] = ld_act(a.q, (int64_t)b * a.ldq + (int64_t)h * HD + d, dt);
        __syncwarp();
        float sc[2];
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const int j = lane + 32 * jj;
            float dot = 0.0f;
            if (j < np) {
                const uint32_t *kr = sK + j * W;
#pragma unroll 8
                for (int w = 0; w < HD / 2; w++) {
                    const uint32_t u = kr[w];
                    float k0, k1;
                    if (dt == DT_BF16) {
                        k0 = __bfloat162float(__ushort_as_bfloat16((unsigned short)(u & 0xffffu)));
                        k1 = __bfloat162float(__ushort_as_bfloat16((unsigned short)(u >> 16)));
                    } else {
                        k0 = __half2float(__ushort_as_half((unsigned short)(u & 0xffffu)));
                        k1 = __half2float(__ushort_as_half((unsigned short)(u >> 16)));
                    }
                    dot += sq[warp][2 * w] * k0 + sq[warp][2 * w + 1] * k1;
                }
                sc[jj] = dot * scale;
            } else {
                sc[jj] = -INFINITY;
            }
        }
        const float mx = warp_max(fmaxf(sc[0], sc[1]));
        const float e0 = sc[0] == -INFINITY ? 0.0f : expf(sc[0] - mx);
        const float e1 = sc[1] == -INFINITY ? 0.0f : expf(sc[1] - mx);
        const float l = warp_sum(e0 + e1);
        float o[DL];
#pragma unroll
        for (int k = 0; k < DL; k++)
            o[k] = 0.0f;
        for (int j = 0; j < np; j++) {
            const float pj = __shfl_sync(0xffffffffu, j < 32 ? e0 : e1, j & 31);
            const uint32_t *vr = sV + j * W + lane * (DL / 2);
#pragma unroll
            for (int k2 = 0; k2 < DL / 2; k2++) {
                const uint32_t u = vr[k2];
                float v0, v1;
                if (dt == DT_BF16) {
                    v0 = __bfloat162float(__ushort_as_bfloat16((unsigned short)(u & 0xffffu)));
                    v1 = __bfloat162float(__ushort_as_bfloat16((unsigned short)(u >> 16)));
                } else {
                    v0 = __half2float(__ushort_as_half((unsigned short)(u & 0xffffu)));
                    v1 = __half2float(__ushort_as_half((unsigned short)(u >> 16)));
                }
                o[2 * k2] += pj * v0;
                o[2 * k2 + 1] += pj * v1;
            }
        }
        const int64_t item = ((int64_t)b * a.H + h) * a.npc + c;
#pragma unroll
        for (int k = 0; k < DL; k++)
            a.pre_part[item * HD + lane * DL + k] = o[k];
        if (lane == 0) {
            a.pre_ml[2 * item] = mx;
            a.pre_ml[2 * item + 1] = l;
        }
        __syncwarp(); /* sq[warp] is refilled for the next member */
    }
}


/* Tensor-core version of the same (sm_80 and later): per block the chunk's keys and values sit in
 * shared memory once, and the group's members go through in tiles of 16 rows as two small
 * products on the tensor cores (WMMA 16×16×16, f32 accumulation): S = Q·Kᵀ (16 × 64), the
 * per-row max and exp in f32, P rounded to 16 bits, O = P·V (16 × HD). Each member row writes its
 * unnormalised partial and (max, Σ exp) exactly as k_prefix_attn does, so the merge is unchanged.
 * This is the part of a batched decode step whose work grows with the batch (every member row
 * against every shared position), so it belongs on the tensor cores. */
#define PX_LD(HD) ((HD) + 8) /* 16-bit row stride of K, V, Q in shared memory (bank spread, WMMA ld % 8) */
#define PX_SLD 68            /* f32 row stride of S */
#define PX_PLD 72            /* 16-bit row stride of P */
template <int HD> static size_t prefix_tc_smem(void) {
    return (size_t)(2 * HLK_PREFIX_CHUNK + 16) * PX_LD(HD) * 2 /* K, V, Q */ + (size_t)16 * (HD + 4) * 4 /* S / O */ +
           (size_t)16 * PX_PLD * 2 /* P */ + 32 * 4;                                                  /* row max, sum */
}

template <int HD, int DT> static __global__ void __launch_bounds__(DEC_WARPS * 32) k_prefix_attn_tc(hlk_prefix a) {
#if __CUDA_ARCH__ >= 800
    using T = typename std::conditional<DT == DT_BF16, __nv_bfloat16, __half>::type;
    constexpr int PC = HLK_PREFIX_CHUNK, LD = PX_LD(HD);
    extern __shared__ __align__(16) unsigned char px_smem[];
    T *sK = (T *)px_smem, *sV = sK + PC * LD, *sQ = sV + PC * LD;
    float *sS = (float *)(sQ + 16 * LD); /* [16][PX_SLD] scores, later [16][HD + 4] outputs */
    T *sP = (T *)(sS + 16 * (HD + 4));
    float *sM = (float *)(sP + 16 * PX_PLD), *sL = sM + 16;
    const int c = blockIdx.x, h = blockIdx.y, g = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int G = a.count[g], P = a.plen[g], p0 = c * PC;
    if (G <= 0 || p0 >= P)
        return;
    const int np = min(PC, P - p0), kvh = h / (a.H / a.Hkv);
    const int32_t *table = a.tables + (int64_t)a.gslot[g] * a.max_blocks;
    constexpr int V8 = HD / 8; /* 16-byte pieces per row */
    for (int i = threadIdx.x; i < PC * V8; i += blockDim.x) {
        const int r = i / V8, w = i % V8, pos = p0 + r;
        uint4 k4 = make_uint4(0, 0, 0, 0), v4 = k4; /* rows past the prefix: zeros (their p is 0) */
        if (r < np) {
            const int64_t row = (int64_t)table[pos / a.bs] * a.bs + pos % a.bs;
            const int64_t off = row * a.Dkv + (int64_t)kvh * HD + w * 8;
            k4 = *(const uint4 *)((const uint16_t *)a.kpool + off);
            v4 = *(const uint4 *)((const uint16_t *)a.vpool + off);
        }
        *(uint4 *)(sK + r * LD + w * 8) = k4;
        *(uint4 *)(sV + r * LD + w * 8) = v4;
    }
    const float scale = 1.0f / sqrtf((float)HD);
    for (int t0 = 0; t0 < G; t0 += 16) {
        const int nt = min(16, G - t0);
        __syncthreads(); /* K/V written; the previous tile's sQ / sS / sP are free */
        for (int i = threadIdx.x; i < 16 * V8; i += blockDim.x) {
            const int r = i / V8, w = i % V8;
            uint4 q4 = make_uint4(0, 0, 0, 0);
            if (r < nt) {
                const int b = a.members[a.first[g] + t0 + r];
                q4 = *(const uint4 *)((const uint16_t *)a.q + (int64_t)b * a.ldq + (int64_t)h * HD + w * 8);
            }
            *(uint4 *)(sQ + r * LD + w * 8) = q4;
        }
        __syncthreads();
        { /* S = Q·Kᵀ: warp w takes columns [16w, 16w + 16) */
            nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc;
            nvcuda::wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int k0 = 0; k0 < HD; k0 += 16) {
                nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> fa;
                nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::col_major> fb;
                nvcuda::wmma::load_matrix_sync(fa, sQ + k0, LD);
                nvcuda::wmma::load_matrix_sync(fb, sK + warp * 16 * LD + k0, LD);
                nvcuda::wmma::mma_sync(acc, fa, fb, acc);
            }
            nvcuda::wmma::store_matrix_sync(sS + warp * 16, acc, PX_SLD, nvcuda::wmma::mem_row_major);
        }
        __syncthreads();
        /* per member row: max over the chunk's positions, exp, sum; P in 16 bits */
        for (int r = warp; r < 16; r += DEC_WARPS) {
            float s0 = lane < np ? sS[r * PX_SLD + lane] * scale : -INFINITY;
            float s1 = lane + 32 < np ? sS[r * PX_SLD + lane + 32] * scale : -INFINITY;
            const float mx = warp_max(fmaxf(s0, s1));
            const float e0 = s0 == -INFINITY ? 0.0f : expf(s0 - mx), e1 = s1 == -INFINITY ? 0.0f : expf(s1 - mx);
            const float l = warp_sum(e0 + e1);
            sP[r * PX_PLD + lane] = (T)e0;
            sP[r * PX_PLD + lane + 32] = (T)e1;
            if (lane == 0)
                sM[r] = mx, sL[r] = l;
        }
        __syncthreads();
        /* O = P·V into sS (as [16][HD + 4]): warp w takes column tiles w, w + 4, ... */
        for (int n0 = warp * 16; n0 < HD; n0 += DEC_WARPS * 16) {
            nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc;
            nvcuda::wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int k0 = 0; k0 < PC; k0 += 16) {
                nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> fa;
                nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::row_major> fb;
                nvcuda::wmma::load_matrix_sync(fa, sP + k0, PX_PLD);
                nvcuda::wmma::load_matrix_sync(fb, sV + k0 * LD + n0, LD);
                nvcuda::wmma::mma_sync(acc, fa, fb, acc);
            }
            nvcuda::wmma::store_matrix_sync(sS + n0, acc, HD + 4, nvcuda::wmma::mem_row_major);
        }
        __syncthreads();
        for (int i = threadIdx.x; i < nt * HD; i += blockDim.x) {
            const int r = i / HD, d = i % HD;
            const int b = a.members[a.first[g] + t0 + r];
            const int64_t item = ((int64_t)b * a.H + h) * a.npc + c;
            a.pre_part[item * HD + d] = sS[r * (HD + 4) + d];
            if (d == 0) {
                a.pre_ml[2 * item] = sM[r];
                a.pre_ml[2 * item + 1] = sL[r];
            }
        }
    }
#endif
}

int hlk_prefix_supported(int dt, int hd) { return dt != DT_F32 && (hd == 64 || hd == 128); }

hl_status hlk_prefix_attn(cudaStream_t st, const hlk_prefix *a) {
    if (a->n_groups <= 0 || a->npc <= 0)
        return HL_OK;
    if (!hlk_prefix_supported(a->dt, a->hd))
        return hl_fail(HL_ERR_ARG, "shared-prefix attention needs 16-bit keys and head size 64 or 128 (got %d)", a->hd);
    dim3 grid((unsigned)a->npc, (unsigned)a->H, (unsigned)a->n_groups);
    if (a->tensor_cores) {
        static int attr_done[4]; /* dynamic shared memory above 48 KB is allowed once per instantiation */
        const int which = (a->hd == 128) * 2 + (a->dt == DT_BF16);
        const size_t smem = a->hd == 128 ? prefix_tc_smem<128>() : prefix_tc_smem<64>();
        void (*k)(hlk_prefix) = a->hd == 128 ? (a->dt == DT_BF16 ? k_prefix_attn_tc<128, DT_BF16> : k_prefix_attn_tc<128, DT_F16>)
                                             : (a->dt == DT_BF16 ? k_prefix_attn_tc<64, DT_BF16> : k_prefix_attn_tc<64, DT_F16>);
        if (!attr_done[which]) {
            CU_TRY(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            attr_done[which] = 1;
        }
        k<<<grid, DEC_WARPS * 32, smem, st>>>(*a);
        CU_LAUNCHED("prefix_attn_tc");
        return HL_OK;
    }
    if (a->hd == 64)
        k_prefix_attn<64><<<grid, DEC_WARPS * 32, 0, st>>>(*a);
    else
        k_prefix_attn<128><<<grid, DEC_WARPS * 32, 0, st>>>(*a);
    CU_LAUNCHED("prefix_attn");
    return HL_OK;
}

/* ---- greedy arg-max ---------------------------------------------------------------------- */

/* One block per row: the first index of the largest non-NaN value (torch.argmax's tie rule, and
 * the CPU decoder's scan from x[0] with '>'); val[b] = that value, or NaN when x[0] is NaN (the
 * CPU scan then never moves and reports a non-finite row). */
static __global__ void k_argmax(const float *x, int64_t ldx, int V, int32_t *idx, float *val) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *row = x + (int64_t)blockIdx.x * ldx;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float v = row[i];
        if (v > bv || (v == bv && i < bi)) {
            bv = v;
            bi = i;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < nw; k++)
            if (sv[k] > sv[0] || (sv[k] == sv[0] && si[k] < si[0])) {
                sv[0] = sv[k];
                si[0] = si[k];
            }
        int best = si[0] == 0x7fffffff ? 0 : si[0];
        idx[blockIdx.x] = best;
        val[blockIdx.x] = isnan(row[0]) ? NAN : (si[0] == 0x7fffffff ? NAN : sv[0]);
    }
}

hl_status hlk_argmax(cudaStream_t st, const float *x, int64_t ldx, int64_t rows, int V, int32_t *idx, float *val) {
    if (rows <= 0)
        return HL_OK;
    k_argmax<<<(unsigned)rows, 256, 0, st>>>(x, ldx, V, idx, val);
    CU_LAUNCHED("argmax");
    return HL_OK;
}

/* ---- merging a plain LoRA into a frozen weight ------------------------------------------- */

/* W[o, i] += s · Σ_k B[o, k] A[k, i]  (W [d_out, d_in] act, A [r, d_in], B [d_out, r] f32). */
static __global__ void k_merge_lora(void *W, int dt, const float *A, const float *B, int d_out, int d_in, int r,
                                    float s) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)d_out * d_in)
        return;
    const int o = (int)(i / d_in), c = (int)(i % d_in);
    float acc = 0.0f;
    for (int k = 0; k < r; k++)
        acc += B[(int64_t)o * r + k] * A[(int64_t)k * d_in + c];
    st_act(W, i, dt, ld_act(W, i, dt) + s * acc);
}

hl_status hlk_merge_lora(cudaStream_t st, void *W, int dt, const float *A, const float *B, int d_out, int d_in, int r,
                         float s) {
    int64_t n = (int64_t)d_out * d_in;
    k_merge_lora<<<hl_cu_blocks(n, 256), 256, 0, st>>>(W, dt, A, B, d_out, d_in, r, s);
    CU_LAUNCHED("merge_lora");
    return HL_OK;
}
