/* Launchers of the decoder's kernels (k_decode.cu), private to core/backend/cuda and its tests.
 * Same conventions as cuda_kernels.h: enqueue on `st`, check the launch, never synchronise. */
#ifndef HL_CUDA_DECODE_H
#define HL_CUDA_DECODE_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "core/backend/cuda/cuda_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "core/base/status.h"

/* Pool rows rows[m] (see k_decode.cu for the pool layout) get keys k[m, :Dkv] and values
 * v[m, :Dkv] (act, row stride ld), m < M. */
hl_status hlk_kv_write(cudaStream_t st, void *kpool, void *vpool, const void *k, const void *v, int64_t ld,
                       const int32_t *rows, int64_t M, int Dkv, int dt);
/* k/v rows [0, n) (row stride ld) = positions [0, n) of the slot whose block table is `table`. */
hl_status hlk_kv_gather(cudaStream_t st, void *k, void *v, int64_t ld, const void *kpool, const void *vpool,
                        const int32_t *table, int bs, int n, int Dkv, int dt);

/* Copy-on-write: block src -> block dst in every one of L layers, keys and values (layer_bytes
 * apart; block_bytes and layer_bytes multiples of 16). */
hl_status hlk_kv_copy_block(cudaStream_t st, void *kpool, void *vpool, size_t layer_bytes, size_t block_bytes, int L,
                            int64_t src, int64_t dst);

/* The attention geometry (cuda_kernels.h hlk_attn) of one example of n rows whose rows
 * [pos0, n) are the queries: pos[n], send[n] and hlk_prefill_blocks(pos0, n) query blocks. */
hl_status hlk_prefill_geom(cudaStream_t st, int32_t *pos, int32_t *send, int32_t *blk_start, int32_t *blk_len,
                           int32_t *blk_off, int pos0, int n);
int hlk_prefill_blocks(int pos0, int n);

/* Decode attention: one query row per sequence b < B at position len[b] − 1 of slot slot[b],
 * keys/values from the paged pool of one layer. Positions are split in n_split chunks of `chunk`
 * (n_split == 1: written straight to out; else partial results part [B·H·n_split, hd] and
 * part_ml [B·H·n_split, 2] f32, merged in chunk order). */
typedef struct {
    int B, H, Hkv, hd, dt, Dkv;
    const void *q; /* [B, H·hd] act, row stride ldq */
    int64_t ldq;
    void *out;     /* [B, H·hd] act, row stride ldo */
    int64_t ldo;
    const void *kpool, *vpool;
    const int32_t *tables; /* [slots, max_blocks] */
    int max_blocks, bs;
    const int32_t *slot, *len; /* [B] */
    int n_split, chunk;
    float *part, *part_ml;
    /* Shared-prefix ("cascade") mode, when pre_n != NULL: row b's positions [0, start[b]) were
     * done by hlk_prefix_attn (pre_n[b] chunk partials in pre_part / pre_ml, npc per (b, h));
     * the chunks here cover [start[b], len[b]), always as partials, and the merge takes both. */
    const int32_t *start, *pre_n;
    const float *pre_part, *pre_ml;
    int npc;
    int pdl; /* the 16-bit kernel launched with programmatic dependent launch */
    /* [B·H] counters, zero before the call and after it: the 16-bit kernel's last block of each
     * (b, h) merges the chunks itself. NULL: a second launch merges. */
    unsigned *merge_count;
    /* RoPE inside the 16-bit kernel (rope_cos != NULL; not with pre_n): q holds the query rows
     * before RoPE, knew / vnew the key and value rows of position len[b] − 1 (row stride ldq,
     * before RoPE); the kernel rotates them at pos[b] (hlk_rope_kv's arithmetic, rounded to 16
     * bits) and writes that position's key and value rows to the cache, as hlk_rope_kv would.
     * One launch instead of two: the same bits in out and in the cache. */
    const float *rope_cos, *rope_sin; /* [positions, hd/2] */
    const int32_t *pos;               /* [B] */
    const void *knew, *vnew;
} hlk_decode;
hl_status hlk_decode_attn(cudaStream_t st, const hlk_decode *a);
/* Blocks of the 16-bit decode attention one multiprocessor holds at once (0: not that kernel, or
 * unknown). */
int hlk_decode_attn_resident(int dt, int hd);

/* Attention of a group of decode rows over the prefix positions they share (the same cache
 * blocks): the keys/values of a chunk of HLK_PREFIX_CHUNK positions are read once into shared
 * memory and used by every row of the group. Group g: rows members[first[g] .. + count[g]),
 * shared positions [0, plen[g]) read through slot gslot[g]'s block table; writes for each member
 * row b, head h and chunk c < ceil(plen/HLK_PREFIX_CHUNK) the unnormalised partial
 * pre_part[((b·H + h)·npc + c)·hd ..] and pre_ml (max, sum). 16-bit, hd 64 or 128. */
#define HLK_PREFIX_CHUNK 64
typedef struct {
    int H, Hkv, hd, dt, Dkv, n_groups, npc;
    const void *q;
    int64_t ldq;
    const void *kpool, *vpool;
    const int32_t *tables;
    int max_blocks, bs;
    const int32_t *members, *first, *count, *plen, *gslot;
    float *pre_part, *pre_ml;
    int tensor_cores; /* the device has bf16/f16 WMMA (compute capability 8.0 or later) */
} hlk_prefix;
int hlk_prefix_supported(int dt, int hd);
hl_status hlk_prefix_attn(cudaStream_t st, const hlk_prefix *a);

/* Per row of x [rows, V] f32 (row stride ldx): idx = first index of the largest value, val = that
 * value (NaN when the row starts with NaN). */
hl_status hlk_argmax(cudaStream_t st, const float *x, int64_t ldx, int64_t rows, int V, int32_t *idx, float *val);

/* W [d_out, d_in] (act) += s · B A  (A [r, d_in], B [d_out, r] f32): merge a plain LoRA. */
hl_status hlk_merge_lora(cudaStream_t st, void *W, int dt, const float *A, const float *B, int d_out, int d_in, int r,
                         float s);


/* ---- one-row decoding (k_gemv.cu) ------------------------------------------------------------ */

#define HLK_GEMV_MAX_M 2        /* rows of the one-row kernels (k_gemv.cu) */
#define HLK_ADDOWN_MAX_HEADS 64 /* HydraLoRA heads k_addown routes */

/* One adapter of hlk_addown: zw[m, i·r + k] = s·ω[m, i]·z[m, (nA > 1 ? i : 0)·r + k] with
 * z = A x̂ and ω = softmax(R x̂) (R NULL: ω = 1/N); ω also to omega [M, N] when not NULL. */
typedef struct {
    const float *A; /* [nA·r, K] f32 */
    const float *R; /* [N, K] f32 or NULL */
    int nA, N, r;
    float s;
    float *zw;    /* [M, N·r] */
    float *omega; /* [M, N] or NULL */
} hlk_addown_ad;
/* One adapter's term in a k_gemv output: Σ_c zw[m, c]·B[c / r][o][c % r], c < nr = N·r. */
typedef struct {
    const float *zw; /* [M, nr] f32 (row stride ldz), from hlk_addown_run; NULL-B: no adapter */
    const float *B;  /* [N, d_out, r] f32 */
    int nr, r, d_out;
    int64_t ldz;
} hlk_gemv_ad;

/* y[m, o] = W[o]·x̂[m] (+ adapter) (+ res[m, o]) for m < M, o < N, weights [rows, K] 16-bit (dt).
 * x̂ = RMSNorm(x; norm, eps) when norm != NULL (the same bits as hlk_rmsnorm_fwd), else x.
 * Plain: outputs [0, seg[0]) take adapter ad[0], [seg[0], seg[1]) ad[1], [seg[1], N) ad[2]
 * (seg = {N, N}: one), the output is 16-bit or f32 (y_f32). SwiGLU (swiglu = 1): y[m, o] =
 * silu(g)·u with g = W[o]·x̂ + ad[0] and u = W[N + o]·x̂ + ad[1] rounded to 16 bits, W = [gate; up]
 * [2N, K]. K <= 16384 (a thread keeps K/256 values of x̂). */
typedef struct {
    int M, K, dt;
    int64_t N;
    const void *x;
    int64_t ldx;
    const float *norm;
    float eps;
    const void *W;
    int swiglu;
    int64_t seg[2];
    hlk_gemv_ad ad[3];
    const void *res;
    int64_t ldres;
    void *y;
    int64_t ldy;
    int y_f32;
    int pdl; /* launched with programmatic dependent launch (cuda_dev.cuh pdl_wait) */
    /* Routing inside the product (n_route > 0): Zw of adapters route[0 .. n_route) over this x̂
     * (hlk_addown's semantics) is made by the launch itself before any adapter term is added;
     * ad[i].zw point at route[j].zw. route_part holds hlk_gemv_route_part_floats(M, J, K,
     * route_split) floats, J = Σ(nA·r + N); route_sync HLK_GEMV_SYNC counters, zero before the
     * launch and again after it. route_split: each row of A and R is a job per 2,048 values of
     * x̂ (one 16-byte piece per thread) instead of one job per row, so the blocks that take jobs
     * are held up by one load each. */
    int n_route;
    hlk_addown_ad route[3];
    float *route_part;
    unsigned *route_sync;
    int route_split;
    /* SwiGLU products only: y [M, ldy >= 2N] f32 gets the gate (o < N) and up (N + o) outputs as
     * they are before adapters and SwiGLU, for hlk_swiglu_ad; no adapter term is added and no
     * block waits for the routing (the launch after it reads Zw). */
    int pre;
} hlk_gemv;
#define HLK_GEMV_SYNC 4
size_t hlk_gemv_route_part_floats(int M, int J, int K, int route_split);
int hlk_gemv_supported(int dt, int64_t M, int K, const void *x, int64_t ldx, const void *W);
hl_status hlk_gemv_run(cudaStream_t st, const hlk_gemv *a);

/* h[m, o] = silu(g)·u for m < M, o < N, g = pre[m, o] + the term of ad[0], u = pre[m, N + o] +
 * the term of ad[1] (B NULL: none), each rounded to 16 bits first: the SwiGLU product's result
 * (hlk_gemv swiglu) from its pre outputs, the adapter terms added in a launch of their own. */
typedef struct {
    int M, dt;
    int64_t N;
    const float *pre; /* [M, ldp >= 2N] f32 */
    int64_t ldp;
    hlk_gemv_ad ad[2];
    void *h; /* [M, ldh] 16-bit */
    int64_t ldh;
} hlk_swiglu_ad;
hl_status hlk_swiglu_ad_run(cudaStream_t st, const hlk_swiglu_ad *a);

/* Up to three adapters over the same rows x (M <= HLK_GEMV_MAX_M, 16-bit, x̂ as in hlk_gemv).
 * The reduction over K runs in blocks of `chunk` columns (at most max_chunks); part holds
 * hlk_addown_part_floats(n_ad, cmax, max_chunks) floats with cmax >= nA·r + N of every adapter;
 * count[n_ad] are zero before the call and again after it. */
typedef struct {
    int M, K, dt;
    const void *x;
    int64_t ldx;
    const float *norm;
    float eps;
    int n_ad;
    hlk_addown_ad ad[3];
    float *part;
    unsigned *count;
    int chunk, max_chunks, cmax;
    int64_t part_stride; /* set by hlk_addown_run */
    int pdl;
} hlk_addown;
size_t hlk_addown_part_floats(int n_ad, int cmax, int n_chunks);
hl_status hlk_addown_run(cudaStream_t st, const hlk_addown *a);

/* RoPE (sign +1) of the H query and Hkv key heads of rows m < M of qkv ([M, (H + 2·Hkv)·hd],
 * row stride ld) in place, then the keys and values of row m into cache row rows[m] (16-bit,
 * hd/2 a multiple of 8): hlk_rope on q and k followed by hlk_kv_write, in one launch. */
int hlk_rope_kv_supported(int dt, int hd, int64_t ld, const void *qkv);
hl_status hlk_rope_kv(cudaStream_t st, void *qkv, int64_t ld, int64_t M, int H, int Hkv, int hd, const int32_t *pos,
                      const float *cos_t, const float *sin_t, void *kpool, void *vpool, const int32_t *rows, int dt,
                      int pdl);

/* Block trace, for bench_bbh_gpu --trace: with k_gemv.cu and k_decode.cu built with
 * -DHL_GPU_TRACE, thread 0 of every block of the one-row products (kind 1: n = N, k = K, flags =
 * SwiGLU | routing << 1 | pre << 2 | adapter terms << 3), k_swiglu_ad (kind 2: n = N) and the
 * decode attention (kind 3: n = its positions, k = heads, flags = split) writes one record. arm
 * points a unit's records at cap records of device memory (NULL: off) and zeroes its count; it
 * returns 0 when the trace is not built in. count: the records written since (may exceed cap:
 * the rest were lost). */
typedef struct {
    unsigned kind, n, k, block, smid, flags;
    unsigned long long t_start, t_waited, t_end; /* ns, the GPU's global timer */
} hlk_trace_rec;
int hlk_trace_arm_gemv(void *buf, unsigned cap);
unsigned hlk_trace_count_gemv(void);
int hlk_trace_arm_decode(void *buf, unsigned cap);
unsigned hlk_trace_count_decode(void);

#ifdef __cplusplus
}
#endif

#endif
