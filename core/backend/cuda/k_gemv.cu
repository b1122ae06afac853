/* One-row decoding kernels (M <= HLK_GEMV_MAX_M rows, 16-bit weights): the products through the
 * frozen weights as weight-streaming dot products with everything around them fused in, so a
 * decode step of one sequence is a few launches per layer that each read their weights once.
 *
 *   k_gemv_r   Y[m, o] = W[o]·x̂[m] (+ the HydraLoRA term of output o) (+ residual) for m < M.
 *              x̂ = x, or RMSNorm(x) computed in the prologue with exactly the arithmetic of
 *              k_basic.cu's k_rmsnorm_fwd8 (same bits). The block's 256 threads split K, each
 *              keeps its pieces of x̂ in registers and streams 8 or 16 weight rows (gr_rb; 16-byte loads
 *              that bypass L1, the loads of the next rows issued before the current row is
 *              multiplied); partial sums meet once per block. SwiGLU mode computes output o
 *              from rows o (gate) and N + o (up) of [W_gate; W_up] and stores silu(g)·u (g and u
 *              rounded to 16 bits first, as k_swiglu_fwd8 reads them). The adapter term
 *              Σ_c Zw[m, c]·B[c / r][o][c % r] (Zw = s·ω ⊗ z) is added into the thread partials
 *              after the weight rows. Zw comes from k_addown or is made by the launch itself
 *              (routing inside the product: the first blocks to start take the rows of A and R,
 *              every block waits for the routers only after its weight rows), which saves a launch
 *              per input.
 *              Pre mode (SwiGLU products): the f32 gate and up outputs as they are before adapters
 *              and SwiGLU; the routing inside still makes Zw, and no block waits for it.
 *   k_swiglu_ad  silu(g)·u from pre mode's outputs with the gate's and up's adapter terms: a
 *              launch of its own after the product, so the product's blocks end with no routing
 *              wait and no terms (bench/README.md: batch-1 decode with HydraLoRA 0.12-0.15 ms per
 *              token faster on the H200).
 *   k_addown   Zw = s·softmax(R x̂) ⊗ (A x̂) for up to three adapters reading the same input: the
 *              reduction over d_in is split over blocks (partials in a fixed order; the last block
 *              to finish sums them and applies the router), so these few rows are read at full
 *              bandwidth instead of by one block.
 *   k_rope_kv  RoPE of the new query and key rows (k_rope8's arithmetic) and the keys and values
 *              written to their cache rows, one launch instead of three.
 * Arithmetic is f32 with a fixed order everywhere: the same inputs give the same bits. On sm_90 the
 * kernels start early (cuda_dev.cuh pdl_wait): weights load while the kernel before finishes.
 * (A variant with x̂ in shared memory for up to 8 rows was measured and dropped: at 8 rows it
 * streamed at 13-27 % of the copy rate, where cuBLASLt reaches 56-90 %.) */
#include "core/backend/cuda/cuda_decode.h"
#include "core/backend/cuda/cuda_dev.cuh"

HL_TRACE_UNIT(gemv)

/* A 16-byte weight load that does not allocate in L1 and is first out of L2: the weights are
 * read once per step, so the adapters, activations and cache rows keep their L2 lines. Measured
 * on the H200 (bench_bbh_gpu --batch1-only, 7B shape with HydraLoRA, both builds made in each of
 * three device runs): 4.46-4.52 against 4.48-4.54 ms per token with plain loads. (Weights put
 * into L2 ahead of their loads by sm_90 bulk prefetches were slower: bench/README.md.) */
static __device__ __forceinline__ uint4 ld_stream16(const void *p) {
    uint4 v;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    uint64_t pol;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p), "l"(pol));
#else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
#endif
    return v;
}

/* ω = softmax(R x̂) (core/backend/cpu/ops.c hl_softmax_forward, as k_route_fwd; 1/N without a
 * router) and Zw[m, i·r + k] = s·ω_i·z[(nA > 1 ? i : 0)·r + k] of row m, from z = A x̂ [nA·r] and
 * the router logits lg [N] (f32, written by other blocks of the same launch: read from L2), both
 * with a stride of zs floats.
 * A whole warp per row: lane l holds heads l and l + 32 and loads the Zw inputs of its outputs,
 * so every L2 load of the row is in flight at once (one thread per row, loading the values one
 * after another, made batch-1 decode of the 7B shape with HydraLoRA 0.5 ms per token slower on
 * the H200: 5.50 against 4.97 ms). The softmax sum still runs over the heads in order
 * on every lane (shuffles), so the bits are those of the serial loop. */
static_assert(HLK_ADDOWN_MAX_HEADS <= 64, "route_row holds two heads per lane");
static __device__ void route_row(const hlk_addown_ad &ad, const float *z, const float *lg, int m, int zs) {
    const int lane = threadIdx.x & 31, N = ad.N;
    float om0 = 0.0f, om1 = 0.0f; /* ω of heads lane, lane + 32 (HLK_ADDOWN_MAX_HEADS <= 64) */
    if (ad.R) {
        const float l0 = lane < N ? __ldcg(lg + (int64_t)lane * zs) : -INFINITY;
        const float l1 = lane + 32 < N ? __ldcg(lg + (int64_t)(lane + 32) * zs) : -INFINITY;
        const float mx = warp_max(fmaxf(l0, l1));
        const float e0 = lane < N ? expf(l0 - mx) : 0.0f, e1 = lane + 32 < N ? expf(l1 - mx) : 0.0f;
        float sum = 0.0f;
        for (int i = 0; i < N; i++) { /* in head order, as the serial loop */
            const float a = __shfl_sync(0xffffffffu, e0, i & 31), b = __shfl_sync(0xffffffffu, e1, i & 31);
            sum += i < 32 ? a : b;
        }
        const float inv = 1.0f / sum;
        om0 = e0 * inv;
        om1 = e1 * inv;
    } else {
        om0 = om1 = 1.0f / (float)N; /* LoRA: 1; uniform gate: 1/N */
    }
    if (ad.omega) {
        if (lane < N)
            ad.omega[(int64_t)m * N + lane] = om0;
        if (lane + 32 < N)
            ad.omega[(int64_t)m * N + lane + 32] = om1;
    }
    const int C = N * ad.r;
    for (int c0 = 0; c0 < C; c0 += 32) { /* every lane takes every pass: the shuffles need all 32 */
        const int c = c0 + lane, i = c < C ? c / ad.r : 0, k = c - i * ad.r;
        const float a = __shfl_sync(0xffffffffu, om0, i & 31), b = __shfl_sync(0xffffffffu, om1, i & 31);
        if (c < C) {
            const float wi = ad.s * (i < 32 ? a : b);
            ad.zw[(int64_t)m * C + c] = wi * __ldcg(z + (int64_t)((ad.nA > 1 ? i : 0) * ad.r + k) * zs);
        }
    }
}

/* ---- k_gemv_r: one or two rows, x̂ in registers ------------------------------------------------
 * For M <= 2 the block's 256 threads split K instead: thread t owns the 16-byte pieces t, t + 256,
 * ... of every row (k_rmsnorm_fwd8's assignment, so the norm's sums are the same bits), keeps its
 * pieces of x̂ in registers and streams its gr_rb weight rows with the next row's loads issued before
 * the current row is multiplied; the first row's loads go out before the prologue. Partial sums
 * meet once per block (warp sums, then the 8 warps in order). No shared x̂ and no per-row warp
 * reduction: the weight stream is the only thing the block waits for. (Measured on the H200 and
 * dropped: blocks that each take an even share of the rows, as many as fit at once, with the next
 * row's loads carried across groups of 8 rows — more registers, fewer blocks per multiprocessor,
 * 2-40 % slower per product than these 8-row blocks.) */
#define GR_THREADS 256
#define GR_RB 8 /* output rows (SwiGLU: output pairs) per block */
/* Rows per block of the one-row products of K > 8192 without SwiGLU and without routing inside
 * (down of a model without adapters, K = 11008): 16, so its 256 blocks run in one wave at two
 * blocks per multiprocessor, where 512 blocks of 8 rows ran in two with a gap between them.
 * Measured on the H200 (bench_bbh_gpu --batch1-only --no-adapter, bench/README.md, eighth
 * series; builds with GR_RB_WIDE 16 and 8 in each run): 3.97 against 4.03 ms per token (one run),
 * 3.94 / 3.96 against 3.98 / 3.98 (another). The routed down (HydraLoRA) with 16 rows was slower,
 * 4.40 / 4.43 against 4.29 / 4.30 ms, so it keeps 8. (The trace build shows this down at 31.8 us
 * a layer, against 24.5 us for 8 rows in earlier traces: its step is 7 % slower than the plain
 * build's, where the other traced steps are 2-3 % slower, so --trace misreads this kernel.) */
#ifndef GR_RB_WIDE
#define GR_RB_WIDE 16
#endif
__host__ __device__ constexpr int gr_rb(int mr, int nj, int sw, int rt) {
    return mr == 1 && nj > 4 && !sw && !rt ? GR_RB_WIDE : GR_RB;
}
static_assert(GR_THREADS / 32 >= 3 * HLK_GEMV_MAX_M, "gr_route applies the routers with a warp per (adapter, row)");

template <int NJ, int SW>
static __device__ __forceinline__ void gr_load(uint4 *w, uint4 *u, const hlk_gemv &a, int64_t row, int K8) {
    const uint4 *p = (const uint4 *)((const char *)a.W + row * (int64_t)a.K * 2);
    const uint4 *q = (const uint4 *)((const char *)a.W + (row + a.N) * (int64_t)a.K * 2);
#pragma unroll
    for (int j = 0; j < NJ; j++) {
        const int c = threadIdx.x + GR_THREADS * j;
        if (c < K8) {
            w[j] = ld_stream16(p + c);
            if (SW)
                u[j] = ld_stream16(q + c);
        }
    }
}

/* ---- adapter terms: Σ_c zw[m, c]·B[c / r][o][c % r] of the block's outputs ---------------------
 * Thread t takes c = t, t + 256, ... of each adapter (c < nr = N·r); its terms are added after all
 * the block's weight rows, in c order, so an output gets the same bits wherever zw came from.
 * The shape of this code moves the products without adapters too, though they never run it: on
 * the H200 (2026-12-03, bench/README.md) the plain qkv / o / lm_head products streamed at 79 / 68
 * / 93 % of the copy rate with this form (the first pass's zw loaded by ad_zload, then the terms)
 * and at 73-74 / 64-65 / 84-85 % with the terms added row by row inside the loop or with zw loaded
 * inside each pass: the compiler schedules the weight loads differently. Measured and dropped:
 * staging B in shared memory when a block starts and reading zw (waiting for the routing) before
 * the last weight row instead of after it — batch-1 decode with HydraLoRA 0.1 ms per token slower. */
#define GR_AD(SW) ((SW) ? 2 : 3) /* adapters a product adds: gate and up, or one per segment */

/* Outputs [lo, hi) of adapter t. */
template <int SW> static __device__ __forceinline__ void ad_seg(const hlk_gemv &a, int t, int64_t &lo, int64_t &hi) {
    lo = SW || t == 0 ? 0 : a.seg[t - 1];
    hi = SW || t == 2 ? a.N : a.seg[t];
}

/* Whether any adapter adds terms. */
static __device__ __forceinline__ bool ad_any(const hlk_gemv &a) {
    return a.ad[0].B || a.ad[1].B || a.ad[2].B;
}
/* Whether adapter t adds terms to the block's outputs. */
template <int SW, int RB> static __device__ __forceinline__ bool ad_on(const hlk_gemv &a, int t, int64_t r0) {
    int64_t lo, hi;
    ad_seg<SW>(a, t, lo, hi);
    return a.ad[t].B && r0 < hi && r0 + RB > lo;
}

/* z[t][m] = zw[m, c] of adapter t for the first pass's c = threadIdx.x. zw comes from k_addown or
 * from other blocks of this launch (routing inside the product): read from L2. */
template <int MR, int SW, int RB>
static __device__ __forceinline__ void ad_zload(const hlk_gemv &a, int64_t r0, int M, float (&z)[GR_AD(SW)][MR]) {
#pragma unroll
    for (int t = 0; t < GR_AD(SW); t++) {
        const hlk_gemv_ad &g = a.ad[t];
        const bool on = ad_on<SW, RB>(a, t, r0) && (int)threadIdx.x < g.nr;
#pragma unroll
        for (int m = 0; m < MR; m++)
            z[t][m] = on && m < M ? __ldcg(g.zw + (int64_t)m * g.ldz + threadIdx.x) : 0.0f;
    }
}

/* acc[r][m] (SwiGLU: the up's in acc1) += the terms of this thread's c, every load of a pass in
 * flight together: the first pass's zw from z, any further pass's (N·r > 256) loaded here. */
template <int MR, int SW, int RB>
static __device__ __forceinline__ void ad_terms(const hlk_gemv &a, int64_t r0, int M, const float (&z)[GR_AD(SW)][MR],
                                                float (&acc)[RB][MR],
                                                float (&acc1)[RB][MR]) {
#pragma unroll
    for (int t = 0; t < GR_AD(SW); t++) {
        const hlk_gemv_ad &g = a.ad[t];
        if (!ad_on<SW, RB>(a, t, r0))
            continue;
        int64_t lo, hi;
        ad_seg<SW>(a, t, lo, hi);
        for (int c = threadIdx.x; c < g.nr; c += GR_THREADS) {
            const bool first = c < GR_THREADS;
            float zz[MR], b[RB];
#pragma unroll
            for (int m = 0; m < MR; m++)
                zz[m] = first ? z[t][m] : m < M ? __ldcg(g.zw + (int64_t)m * g.ldz + c) : 0.0f;
            const float *bc = g.B + (int64_t)(c / g.r) * g.d_out * g.r + c % g.r;
#pragma unroll
            for (int r = 0; r < RB; r++) {
                const int64_t row = r0 + r;
                b[r] = row >= lo && row < hi && row < a.N ? bc[(row - lo) * g.r] : 0.0f;
            }
#pragma unroll
            for (int r = 0; r < RB; r++) {
                const int64_t row = r0 + r;
                if (row >= lo && row < hi && row < a.N)
#pragma unroll
                    for (int m = 0; m < MR; m++)
                        if (m < M) {
                            if (SW && t == 1)
                                acc1[r][m] = fmaf(zz[m], b[r], acc1[r][m]);
                            else
                                acc[r][m] = fmaf(zz[m], b[r], acc[r][m]);
                        }
            }
        }
    }
}

/* Rows of adapter t's stacked [A; R] (the routing jobs it brings). */
static __device__ __forceinline__ int route_rows(const hlk_addown_ad &ad) {
    return ad.nA * ad.r + (ad.R ? ad.N : 0);
}

/* Routing inside the product: the block that started tk-th takes jobs tk, tk + G, ... Each job is
 * one dot product of a row of A or R (f32, the adapters' stacked rows, adapter by adapter) with
 * the x̂ the block holds, summed like the products (thread, warps, the 8 warps in order): over
 * the whole row, or with route_split over one slice of it, the 2,048 values that are one 16-byte
 * piece of x̂ per thread (S = ceil(K / 2048) jobs per row, so a block with a job waits for one
 * load of 32 bytes per thread instead of ceil(K / 2048) of them). The result goes to
 * route_part[(m·J + row)·S + slice]. The last of the P = min(J·S, G) blocks with jobs sums each
 * row's slices in order (into slice 0's slot), applies the routers (route_row) and raises
 * route_sync[1]. Jobs go by start order, not block index, so the blocks with jobs are running
 * whatever order the GPU starts blocks in, and they wait on nothing. Measured on the H200 (7B
 * shape, HydraLoRA r = 8 N = 4 on gate/up/down, bench/README.md eighth series): batch-1 decode
 * 4.27-4.30 ms per token (mean 4.28) against 4.29-4.35 (mean 4.31) with a job per row
 * (route_split off in the same binary; three runs, two samples each); the traced down product 30.1
 * against 30.8 us a layer. With a job per row, 12 of down's blocks each read a whole row of A or R
 * (44 KB) before their weight rows. Down's routing made by k_swiglu_ad instead (it makes h: its
 * blocks summing their share of A h and R h, then either its last block or every block of down
 * finishing the sums) was slower, 4.54-4.62 against 4.26-4.32 ms per token (bench/README.md,
 * ninth series): here the jobs run while the weight streams are in flight. */
__host__ __device__ constexpr int route_slices(int K, int route_split) {
    return route_split ? (K / 8 + GR_THREADS - 1) / GR_THREADS : 1;
}
template <int MR, int NJ, int DT>
static __device__ void gr_route(const hlk_gemv &a, const uint4 (&xr)[MR][NJ], float (*red)[MR], int J, unsigned tk) {
    __shared__ int last;
    const int K8 = a.K / 8, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, S = route_slices(a.K, a.route_split);
    for (int js = (int)tk; js < J * S; js += gridDim.x) {
        const int j = js / S, sl = js - j * S;
        int t = 0, c = j;
        while (c >= route_rows(a.route[t]))
            c -= route_rows(a.route[t]), t++;
        const hlk_addown_ad &ad = a.route[t];
        const int zr = ad.nA * ad.r;
        const float *w = c < zr ? ad.A + (int64_t)c * a.K : ad.R + (int64_t)(c - zr) * a.K;
        const bool vec = ((uintptr_t)w & 15) == 0; /* the row's 8 values per piece as two 16-byte loads */
        float s[MR];
#pragma unroll
        for (int m = 0; m < MR; m++)
            s[m] = 0.0f;
#pragma unroll
        for (int q = 0; q < NJ; q++) {
            const int c8 = threadIdx.x + GR_THREADS * q;
            if (c8 < K8 && (S == 1 || q == sl)) {
                float wf[8];
                if (vec) {
                    const float4 w0 = __ldg((const float4 *)(w + 8 * c8)), w1 = __ldg((const float4 *)(w + 8 * c8) + 1);
                    wf[0] = w0.x, wf[1] = w0.y, wf[2] = w0.z, wf[3] = w0.w;
                    wf[4] = w1.x, wf[5] = w1.y, wf[6] = w1.z, wf[7] = w1.w;
                } else {
#pragma unroll
                    for (int k = 0; k < 8; k++)
                        wf[k] = __ldg(w + 8 * c8 + k);
                }
#pragma unroll
                for (int m = 0; m < MR; m++) {
                    float xf[8];
                    cvt8<DT>(xr[m][q], xf);
#pragma unroll
                    for (int k = 0; k < 8; k++)
                        s[m] = fmaf(wf[k], xf[k], s[m]);
                }
            }
        }
#pragma unroll
        for (int m = 0; m < MR; m++) {
            const float v = warp_sum(s[m]);
            if (lane == 0)
                red[warp][m] = v;
        }
        __syncthreads();
        if (threadIdx.x < MR && (int)threadIdx.x < a.M) {
            float v = 0.0f;
#pragma unroll
            for (int w8 = 0; w8 < GR_THREADS / 32; w8++)
                v += red[w8][threadIdx.x];
            a.route_part[((int64_t)threadIdx.x * J + j) * S + sl] = v;
        }
        __syncthreads(); /* red is reused */
    }
    const int P = J * S < (int)gridDim.x ? J * S : (int)gridDim.x;
    if ((int)tk >= P)
        return;
    __threadfence(); /* this block's sums are visible before it counts itself done */
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(&a.route_sync[0], 1u) == (unsigned)P - 1;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    if (S > 1) { /* each row's slices in order, into slice 0's slot (read and written by one thread) */
        for (int i = threadIdx.x; i < a.M * J; i += GR_THREADS) {
            float v = 0.0f;
            for (int k = 0; k < S; k++)
                v += __ldcg(a.route_part + (int64_t)i * S + k);
            a.route_part[(int64_t)i * S] = v;
        }
        __syncthreads();
    }
    if (warp < a.n_route * MR) { /* a warp per (adapter, row): n_route·MR <= 6 of the 8 warps */
        const int t = warp / MR, m = warp % MR;
        int off = 0;
        for (int i = 0; i < t; i++)
            off += route_rows(a.route[i]);
        if (m < a.M) {
            const float *z = a.route_part + ((int64_t)m * J + off) * S;
            route_row(a.route[t], z, z + (int64_t)a.route[t].nA * a.route[t].r * S, m, S);
        }
    }
    __threadfence(); /* Zw and ω visible before the flag */
    __syncthreads();
    if (threadIdx.x == 0)
        atomicExch(&a.route_sync[1], 1u);
}

/* Every block passes here once (routing inside the product), after its weight rows: returns when
 * Zw is ready. The blocks with routing jobs took the first tickets, so they are running. */
static __device__ __forceinline__ void gr_route_wait(const hlk_gemv &a) {
    if (threadIdx.x == 0) {
        while (*(volatile const unsigned *)&a.route_sync[1] == 0)
            __nanosleep(64);
        __threadfence();
    }
    __syncthreads();
}

/* RT: routing inside the product (a.n_route > 0); a separate instantiation, so the products
 * without it keep their registers (and blocks per multiprocessor).
 * Blocks per multiprocessor the compiler must leave room for (a register cap of 65536 / (256 x
 * blocks)). The one-row products of K <= 4096 came out at up to 80 registers (gate/up: 75 plain,
 * 80 with routing = 3 blocks per multiprocessor for its 1,376 blocks); capped at 64 (4 blocks, no
 * spills), measured on the H200: batch-1 decode with HydraLoRA on gate/up/down 5.22 -> 4.81 ms per
 * token (the routed cap, one run), the plain gate/up product 52.0 -> 48.3 us (81 -> 88 % of the
 * copy rate) and a model without adapters 4.37 -> 4.27 ms per token (the plain cap, another run).
 * A cap of 3 blocks on the K = 11008 products (down: 128 registers) spilled 412 bytes and lost
 * 0.3 ms of the first gain; products of two rows are not capped (not measured). Today (nvcc 13.0,
 * sm_90, -Xptxas -v) the one-row SwiGLU products without routing spill 32 bytes under the cap
 * (those with routing none; 32-64 bytes before the evict-first loads), the others none. The
 * 16-row blocks (gr_rb) are held to two per multiprocessor: they use 128 registers, and the
 * trace build's timer reads would otherwise take them past it (one block per multiprocessor). */
#define GR_MIN_BLOCKS(MR, NJ, SW, RT) ((MR) == 1 && (NJ) <= 2 ? 4 : gr_rb(MR, NJ, SW, RT) > GR_RB ? 2 : 1)
/* Weight rows in flight per thread: enough rows ahead of the one being multiplied that a thread
 * has about GR_AHEAD bytes of loads outstanding (1 .. GR_RB − 1 rows). One row ahead left the
 * products of K = 4096 without SwiGLU (32 bytes per row and thread) latency-bound. Measured on the
 * H200 (bench_bbh_gpu --kernels, one row, % of the copy rate; bench/README.md): one row ahead
 * qkv 73, o 71, lm_head 89; 96 bytes (3 rows; gate/up and down stay at 1) 79-81, 68-70, 93-94;
 * 128 bytes (4 rows, 2 for gate/up) lost gate/up to the register cap (87.5 -> 76.9). */
#ifndef GR_AHEAD
#define GR_AHEAD 96
#endif
/* (Down, K = 11008, two rows ahead instead of one — 122 registers, still two blocks per
 * multiprocessor — measured on the H200: batch-1 decode with HydraLoRA 4.30 / 4.33 against
 * 4.29 / 4.29 ms per token; bench/README.md, sixth series.) */
__host__ __device__ constexpr int gr_ahead(int nj, int sw, int rb) {
    const int rows = GR_AHEAD / (nj * 16 * (sw ? 2 : 1)); /* a row is nj 16-byte pieces (SwiGLU: two rows) */
    return rows < 1 ? 1 : rows > rb - 1 ? rb - 1 : rows;
}
template <int MR, int NJ, int DT, int SW, int RT>
static __global__ void __launch_bounds__(GR_THREADS, GR_MIN_BLOCKS(MR, NJ, SW, RT))
    k_gemv_r(const hlk_gemv a) {
    constexpr int RB = gr_rb(MR, NJ, SW, RT), AH = gr_ahead(NJ, SW, RB); /* rows per block, rows ahead */
    __shared__ double shd[32];
    __shared__ float red[GR_THREADS / 32][(SW ? 2 : 1) * MR * RB];
    __shared__ unsigned ticket;
    const int K8 = a.K / 8, M = a.M, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r0 = (int64_t)blockIdx.x * RB;
    uint4 wb[RB][NJ], ub[RB][NJ]; /* weight rows by block row: registers, only AH + 1 live */
    TR_BEGIN;
    pdl_trigger();
#pragma unroll
    for (int r = 0; r < AH; r++) /* in flight during the prologue (and the kernel before) */
        if (r0 + r < a.N)
            gr_load<NJ, SW>(wb[r], ub[r], a, r0 + r, K8);
    pdl_wait(); /* x is the kernel before's output; the counters are reset */
    TR_WAITED;
    if (RT && threadIdx.x == 0) /* the order in which blocks started; with pre nobody waits for the
                                 * routing, so block order can pick who routes */
        ticket = a.pre ? blockIdx.x : atomicAdd(&a.route_sync[3], 1u);
    uint4 xr[MR][NJ];
#pragma unroll
    for (int m = 0; m < MR; m++) {
        const uint4 *xv = (const uint4 *)((const char *)a.x + (int64_t)(m < M ? m : 0) * a.ldx * 2);
#pragma unroll
        for (int j = 0; j < NJ; j++) {
            const int c = threadIdx.x + GR_THREADS * j;
            xr[m][j] = c < K8 && m < M ? xv[c] : make_uint4(0, 0, 0, 0);
        }
        if (a.norm && m < M) { /* k_rmsnorm_fwd8: the same sums in the same order */
            double ss = 0.0;
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                float v[8];
                cvt8<DT>(xr[m][j], v);
#pragma unroll
                for (int k = 0; k < 8; k++)
                    ss += (double)v[k] * v[k];
            }
            ss = block_sum_d(ss, shd);
            const float r = (float)(1.0 / sqrt(ss / a.K + (double)a.eps));
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                const int c = threadIdx.x + GR_THREADS * j;
                if (c < K8) {
                    float v[8], o[8];
                    cvt8<DT>(xr[m][j], v);
#pragma unroll
                    for (int k = 0; k < 8; k++)
                        o[k] = __fmul_rn(a.norm[8 * c + k], __fmul_rn(v[k], r));
                    xr[m][j] = pack8<DT>(o);
                }
            }
        }
    }
    if (RT) {
        int J = 0;
        for (int t = 0; t < a.n_route; t++)
            J += route_rows(a.route[t]);
        __syncthreads(); /* ticket */
        gr_route<MR, NJ, DT>(a, xr, (float(*)[MR])&red[0][0], J, ticket);
    }
    const bool adt = ad_any(a);
    float acc[RB][MR], acc1[RB][MR]; /* [row of the block][x row] */
    float z[GR_AD(SW)][MR];                /* the adapters' zw of this thread's first c */
#pragma unroll
    for (int r = 0; r < RB; r++) {
        const int64_t row = r0 + r;
        if (r + AH < RB && row + AH < a.N)
            gr_load<NJ, SW>(wb[r + AH], ub[r + AH], a, row + AH, K8);
#pragma unroll
        for (int m = 0; m < MR; m++)
            acc[r][m] = acc1[r][m] = 0.0f;
        if (row < a.N) {
#pragma unroll
            for (int j = 0; j < NJ; j++) {
                const int c = threadIdx.x + GR_THREADS * j;
                if (c < K8) {
                    float f0[8], f1[8];
                    cvt8<DT>(wb[r][j], f0);
                    if (SW)
                        cvt8<DT>(ub[r][j], f1);
#pragma unroll
                    for (int m = 0; m < MR; m++) {
                        float xf[8];
                        cvt8<DT>(xr[m][j], xf);
#pragma unroll
                        for (int k = 0; k < 8; k++) {
                            acc[r][m] = fmaf(f0[k], xf[k], acc[r][m]);
                            if (SW)
                                acc1[r][m] = fmaf(f1[k], xf[k], acc1[r][m]);
                        }
                    }
                }
            }
        }
    }
    if (RT && !a.pre)
        gr_route_wait(a); /* Zw is made by this launch: waited for once, after the weight rows */
    if (adt && !a.pre) {
        ad_zload<MR, SW, RB>(a, r0, M, z);
        ad_terms<MR, SW, RB>(a, r0, M, z, acc, acc1);
    }
    /* block sums: warps, then the 8 warps in order */
#pragma unroll
    for (int m = 0; m < MR; m++)
#pragma unroll
        for (int r = 0; r < RB; r++) {
            const float v = warp_sum(acc[r][m]);
            if (lane == 0)
                red[warp][m * RB + r] = v;
            if (SW) {
                const float u = warp_sum(acc1[r][m]);
                if (lane == 0)
                    red[warp][MR * RB + m * RB + r] = u;
            }
        }
    __syncthreads();
    if (threadIdx.x < MR * RB) {
        const int m = threadIdx.x / RB, r = threadIdx.x % RB;
        const int64_t o = r0 + r;
        if (m < M && o < a.N) {
            float v = 0.0f, u = 0.0f;
#pragma unroll
            for (int w = 0; w < GR_THREADS / 32; w++) {
                v += red[w][threadIdx.x];
                if (SW)
                    u += red[w][MR * RB + threadIdx.x];
            }
            if (SW && a.pre) { /* f32 gate and up for hlk_swiglu_ad */
                ((float *)a.y)[(int64_t)m * a.ldy + o] = v;
                ((float *)a.y)[(int64_t)m * a.ldy + a.N + o] = u;
            } else if (SW) {
                const float g = widen16<DT>(round16<DT>(v)), uu = widen16<DT>(round16<DT>(u));
                ((uint16_t *)a.y)[(int64_t)m * a.ldy + o] = round16<DT>(__fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), uu));
            } else {
                if (a.res)
                    v += widen16<DT>(((const uint16_t *)a.res)[(int64_t)m * a.ldres + o]);
                if (a.y_f32)
                    ((float *)a.y)[(int64_t)m * a.ldy + o] = v;
                else
                    ((uint16_t *)a.y)[(int64_t)m * a.ldy + o] = round16<DT>(v);
            }
        }
    }
    if (RT && threadIdx.x == 0 && atomicAdd(&a.route_sync[2], 1u) == gridDim.x - 1) {
        /* the last block: every block has passed the wait, the counters are free for the next launch */
        a.route_sync[0] = a.route_sync[1] = a.route_sync[2] = a.route_sync[3] = 0;
    }
    TR_END(1, a.N, a.K, SW | RT << 1 | (a.pre ? 4 : 0) | (adt ? 8 : 0));
}

template <int MR, int NJ, int DT, int SW> static hl_status launch_gemv_sw(cudaStream_t st, const hlk_gemv *a) {
    const int RB = gr_rb(MR, NJ, SW, a->n_route > 0);
    const unsigned grid = (unsigned)((a->N + RB - 1) / RB);
    if (a->n_route)
        CU_TRY(hl_cu_launch(k_gemv_r<MR, NJ, DT, SW, 1>, dim3(grid), dim3(GR_THREADS), 0, st, a->pdl, *a));
    else
        CU_TRY(hl_cu_launch(k_gemv_r<MR, NJ, DT, SW, 0>, dim3(grid), dim3(GR_THREADS), 0, st, a->pdl, *a));
    CU_LAUNCHED("gemv_r");
    return HL_OK;
}
template <int MR, int NJ, int DT> static hl_status launch_gemv_r(cudaStream_t st, const hlk_gemv *a) {
    return a->swiglu ? launch_gemv_sw<MR, NJ, DT, 1>(st, a) : launch_gemv_sw<MR, NJ, DT, 0>(st, a);
}
template <int MR, int DT> static hl_status gemv_r_k(cudaStream_t st, const hlk_gemv *a) {
    const int nj = (a->K / 8 + GR_THREADS - 1) / GR_THREADS;
    if (nj <= 2)
        return launch_gemv_r<MR, 2, DT>(st, a);
    if (nj <= 4)
        return launch_gemv_r<MR, 4, DT>(st, a);
    if (nj <= 6) /* 11008 (LLaMA-2-7B's hidden size) */
        return launch_gemv_r<MR, 6, DT>(st, a);
    return launch_gemv_r<MR, 8, DT>(st, a);
}
#define GR_MAX_K (8 * 8 * GR_THREADS) /* x̂ pieces a thread keeps: K <= 16384 */

size_t hlk_gemv_route_part_floats(int M, int J, int K, int route_split) {
    return (size_t)M * J * route_slices(K, route_split);
}

int hlk_gemv_supported(int dt, int64_t M, int K, const void *x, int64_t ldx, const void *W) {
    return (dt == DT_BF16 || dt == DT_F16) && M >= 1 && M <= HLK_GEMV_MAX_M && K % 8 == 0 && K <= GR_MAX_K &&
           ldx % 8 == 0 && ((uintptr_t)x | (uintptr_t)W) % 16 == 0;
}

hl_status hlk_gemv_run(cudaStream_t st, const hlk_gemv *a) {
    if (!hlk_gemv_supported(a->dt, a->M, a->K, a->x, a->ldx, a->W) || a->N <= 0 || (a->swiglu && a->y_f32) ||
        (a->pre && (!a->swiglu || a->ldy < 2 * a->N)))
        return hl_fail(HL_ERR_INTERNAL, "gemv: unsupported shape (M %d, K %d, dtype %d)", a->M, a->K, a->dt);
    if (a->n_route < 0 || a->n_route > 3 || (a->n_route && (!a->route_part || !a->route_sync)))
        return hl_fail(HL_ERR_INTERNAL, "gemv: %d adapters routed inside the product", a->n_route);
    for (int t = 0; t < a->n_route; t++)
        if (a->route[t].N > HLK_ADDOWN_MAX_HEADS || !a->route[t].A || !a->route[t].zw)
            return hl_fail(HL_ERR_INTERNAL, "gemv: routed adapter %d unsupported", t);
    if (a->dt == DT_BF16)
        return a->M == 1 ? gemv_r_k<1, DT_BF16>(st, a) : gemv_r_k<2, DT_BF16>(st, a);
    return a->M == 1 ? gemv_r_k<1, DT_F16>(st, a) : gemv_r_k<2, DT_F16>(st, a);
}

/* ---- k_swiglu_ad: SwiGLU of the f32 gate and up with their adapter terms ------------------- */

/* A thread per output o: g = pre[m, o] + Σ_c zw0[m, c]·B0[c / r][o][c % r] and u likewise from
 * pre[m, N + o] and adapter 1 (terms in c order), each rounded to 16 bits, then silu(g)·u as
 * k_gemv_r's SwiGLU. For N·r <= SA_FAST with r a multiple of 4 every B and Zw value of a row is
 * loaded at once (16-byte loads, one memory round trip); other shapes load them in turn. */
#define SA_THREADS 128
#define SA_FAST 32
template <int DT> static __global__ void __launch_bounds__(SA_THREADS) k_swiglu_ad(const hlk_swiglu_ad a) {
    TR_BEGIN;
    pdl_trigger(); /* the product after it may start; this launch itself starts plain (hlk_swiglu_ad_run) */
    const int64_t o = (int64_t)blockIdx.x * SA_THREADS + threadIdx.x;
    if (o >= a.N)
        return;
    bool fast = true;
#pragma unroll
    for (int t = 0; t < 2; t++)
        fast = fast && (!a.ad[t].B || (a.ad[t].nr <= SA_FAST && a.ad[t].r % 4 == 0 && a.ad[t].ldz % 4 == 0 &&
                                       ((uintptr_t)a.ad[t].B | (uintptr_t)a.ad[t].zw) % 16 == 0));
    for (int m = 0; m < a.M; m++) {
        float gu[2];
        if (fast) {
            float4 bv[2][SA_FAST / 4], zv[2][SA_FAST / 4];
#pragma unroll
            for (int t = 0; t < 2; t++) {
                const hlk_gemv_ad &g = a.ad[t];
#pragma unroll
                for (int q = 0; q < SA_FAST / 4; q++) {
                    const int c = 4 * q;
                    const bool on = g.B && c < g.nr;
                    bv[t][q] = on ? __ldg((const float4 *)(g.B + ((int64_t)(c / g.r) * g.d_out + o) * g.r + c % g.r))
                                  : make_float4(0, 0, 0, 0);
                    zv[t][q] = on ? __ldcg((const float4 *)(g.zw + (int64_t)m * g.ldz + c)) : make_float4(0, 0, 0, 0);
                }
            }
#pragma unroll
            for (int t = 0; t < 2; t++) {
                float v = __ldcg(a.pre + (int64_t)m * a.ldp + t * a.N + o);
#pragma unroll
                for (int q = 0; q < SA_FAST / 4; q++)
                    if (a.ad[t].B && 4 * q < a.ad[t].nr) {
                        v = fmaf(zv[t][q].x, bv[t][q].x, v);
                        v = fmaf(zv[t][q].y, bv[t][q].y, v);
                        v = fmaf(zv[t][q].z, bv[t][q].z, v);
                        v = fmaf(zv[t][q].w, bv[t][q].w, v);
                    }
                gu[t] = widen16<DT>(round16<DT>(v));
            }
        } else {
#pragma unroll
            for (int t = 0; t < 2; t++) {
                const hlk_gemv_ad &g = a.ad[t];
                float v = __ldcg(a.pre + (int64_t)m * a.ldp + t * a.N + o);
                if (g.B) {
                    const float *zw = g.zw + (int64_t)m * g.ldz;
                    for (int c = 0; c < g.nr; c++)
                        v = fmaf(__ldcg(zw + c), g.B[((int64_t)(c / g.r) * g.d_out + o) * g.r + c % g.r], v);
                }
                gu[t] = widen16<DT>(round16<DT>(v));
            }
        }
        ((uint16_t *)a.h)[(int64_t)m * a.ldh + o] =
            round16<DT>(__fmul_rn(__fdiv_rn(gu[0], __fadd_rn(1.0f, expf(-gu[0]))), gu[1]));
    }
    TR_END(2, a.N, 0, 0);
}

hl_status hlk_swiglu_ad_run(cudaStream_t st, const hlk_swiglu_ad *a) {
    if (a->M < 1 || a->M > HLK_GEMV_MAX_M || a->N <= 0 || a->ldp < 2 * a->N || (a->dt != DT_BF16 && a->dt != DT_F16))
        return hl_fail(HL_ERR_INTERNAL, "swiglu_ad: unsupported shape (M %d, N %lld)", a->M, (long long)a->N);
    /* A plain launch, after the product has finished: started early (programmatic dependent
     * launch) its blocks sat on the product's multiprocessors waiting, and the split was slower
     * than no split (H200, 7B shape: 4.98-5.01 against 4.68-4.71 ms per token). */
    const dim3 grid((unsigned)((a->N + SA_THREADS - 1) / SA_THREADS));
    if (a->dt == DT_BF16)
        CU_TRY(hl_cu_launch(k_swiglu_ad<DT_BF16>, grid, dim3(SA_THREADS), 0, st, 0, *a));
    else
        CU_TRY(hl_cu_launch(k_swiglu_ad<DT_F16>, grid, dim3(SA_THREADS), 0, st, 0, *a));
    CU_LAUNCHED("swiglu_ad");
    return HL_OK;
}

/* ---- k_addown: Zw of up to three adapters over the same input ------------------------------ */

#define AD_THREADS 256
static_assert(AD_THREADS / 32 >= HLK_GEMV_MAX_M, "k_addown applies the router with a warp per row");
#define AD_CT 16 /* adapter rows per pass (HydraLoRA r = 8, N = 4: 12, one pass) */

template <int DT> static __global__ void __launch_bounds__(AD_THREADS) k_addown(const hlk_addown a) {
    extern __shared__ float xsl[]; /* [M][chunk]: this block's slice of x̂ (f32 of the 16-bit values) */
    __shared__ double shd[32];
    __shared__ float red[AD_THREADS / 32][HLK_GEMV_MAX_M * AD_CT];
    __shared__ float rstd[HLK_GEMV_MAX_M];
    __shared__ int last;
    pdl_trigger();
    const int t = blockIdx.y, M = a.M, K = a.K;
    const hlk_addown_ad ad = a.ad[t];
    const int zr = ad.nA * ad.r, C = zr + (ad.R ? ad.N : 0);
    const int k0 = blockIdx.x * a.chunk, k1 = min(K, k0 + a.chunk), n = k1 - k0;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    /* the adapter's own rows for this thread's first column: parameters, not the kernel before's
     * output, so they load while that kernel finishes */
    float wpre[AD_CT];
#pragma unroll
    for (int c = 0; c < AD_CT; c++) {
        const int j = threadIdx.x;
        wpre[c] = j < n && c < C ? (c < zr ? ad.A[(int64_t)c * K + k0 + j] : ad.R[(int64_t)(c - zr) * K + k0 + j]) : 0.0f;
    }
    pdl_wait();
    /* x̂ slice: the row's RMS needs the whole row (k_rmsnorm_fwd8's sums, as k_gemv_r) */
    for (int m = 0; m < M; m++) {
        const uint16_t *xr = (const uint16_t *)a.x + (int64_t)m * a.ldx;
        if (a.norm) {
            const uint4 *xv = (const uint4 *)xr;
            double ss = 0.0;
            for (int i = threadIdx.x; i < K / 8; i += AD_THREADS) {
                float v[8];
                cvt8<DT>(xv[i], v);
#pragma unroll
                for (int k = 0; k < 8; k++)
                    ss += (double)v[k] * v[k];
            }
            ss = block_sum_d(ss, shd);
            if (threadIdx.x == 0)
                rstd[m] = (float)(1.0 / sqrt(ss / K + (double)a.eps));
            __syncthreads();
        }
        for (int j = threadIdx.x; j < n; j += AD_THREADS) {
            float v = widen16<DT>(xr[k0 + j]);
            if (a.norm)
                v = widen16<DT>(round16<DT>(__fmul_rn(a.norm[k0 + j], __fmul_rn(v, rstd[m]))));
            xsl[m * a.chunk + j] = v;
        }
    }
    __syncthreads();
    float *part = a.part + (int64_t)t * a.part_stride;
    for (int c0 = 0; c0 < C; c0 += AD_CT) {
        float acc[HLK_GEMV_MAX_M][AD_CT];
#pragma unroll
        for (int m = 0; m < HLK_GEMV_MAX_M; m++)
#pragma unroll
            for (int c = 0; c < AD_CT; c++)
                acc[m][c] = 0.0f;
        for (int j = threadIdx.x; j < n; j += AD_THREADS) {
#pragma unroll
            for (int c = 0; c < AD_CT; c++) {
                const int row = c0 + c;
                if (row < C) {
                    const float w = c0 == 0 && j == (int)threadIdx.x
                                        ? wpre[c]
                                        : row < zr ? ad.A[(int64_t)row * K + k0 + j] : ad.R[(int64_t)(row - zr) * K + k0 + j];
#pragma unroll
                    for (int m = 0; m < HLK_GEMV_MAX_M; m++)
                        if (m < M)
                            acc[m][c] = fmaf(xsl[m * a.chunk + j], w, acc[m][c]);
                }
            }
        }
#pragma unroll
        for (int m = 0; m < HLK_GEMV_MAX_M; m++)
#pragma unroll
            for (int c = 0; c < AD_CT; c++) {
                float s = warp_sum(acc[m][c]);
                if (lane == 0)
                    red[warp][m * AD_CT + c] = s;
            }
        __syncthreads();
        if (threadIdx.x < HLK_GEMV_MAX_M * AD_CT) {
            const int m = threadIdx.x / AD_CT, c = threadIdx.x % AD_CT;
            if (m < M && c0 + c < C) {
                float s = 0.0f;
                for (int w = 0; w < AD_THREADS / 32; w++)
                    s += red[w][threadIdx.x];
                part[((int64_t)blockIdx.x * HLK_GEMV_MAX_M + m) * a.cmax + c0 + c] = s;
            }
        }
        __syncthreads();
    }
    /* the last block of this adapter sums the partials in block order and applies the router */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(&a.count[t], 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    for (int i = warp; i < M * C; i += AD_THREADS / 32) { /* a warp per (m, c), lanes over the blocks */
        const int m = i / C, c = i % C;
        float s = 0.0f;
        for (int b = lane; b < (int)gridDim.x; b += 32) /* other blocks' writes: read past L1 */
            s += __ldcg(part + ((int64_t)b * HLK_GEMV_MAX_M + m) * a.cmax + c);
        s = warp_sum(s);
        if (lane == 0)
            part[(int64_t)m * a.cmax + c] = s; /* block 0's slot of the same (m, c): read only by this warp */
    }
    __syncthreads();
    /* ω and Zw, a warp per row */
    if (warp < M) {
        const float *z = part + (int64_t)warp * a.cmax;
        route_row(ad, z, z + zr, warp, 1);
    }
    if (threadIdx.x == 0)
        a.count[t] = 0; /* ready for the next launch (a later kernel on the stream) */
}

size_t hlk_addown_part_floats(int n_ad, int cmax, int n_chunks) {
    return (size_t)n_ad * n_chunks * HLK_GEMV_MAX_M * cmax;
}

hl_status hlk_addown_run(cudaStream_t st, const hlk_addown *a) {
    if (a->M < 1 || a->M > HLK_GEMV_MAX_M || a->n_ad < 1 || a->n_ad > 3 || (a->dt != DT_BF16 && a->dt != DT_F16) ||
        a->chunk < 1 || (a->norm && (a->K % 8 || a->ldx % 8 || (uintptr_t)a->x % 16)))
        return hl_fail(HL_ERR_INTERNAL, "addown: unsupported call (M %d, %d adapters)", a->M, a->n_ad);
    const int n_chunks = (a->K + a->chunk - 1) / a->chunk;
    if (n_chunks > a->max_chunks)
        return hl_fail(HL_ERR_INTERNAL, "addown: %d chunks, room for %d", n_chunks, a->max_chunks);
    for (int t = 0; t < a->n_ad; t++) {
        const hlk_addown_ad *d = &a->ad[t];
        if (d->nA * d->r + (d->R ? d->N : 0) > a->cmax || d->N > HLK_ADDOWN_MAX_HEADS)
            return hl_fail(HL_ERR_INTERNAL, "addown: adapter %d larger than its scratch", t);
    }
    hlk_addown c = *a;
    c.part_stride = (int64_t)n_chunks * HLK_GEMV_MAX_M * a->cmax;
    const size_t smem = (size_t)a->M * a->chunk * 4;
    dim3 grid((unsigned)n_chunks, (unsigned)a->n_ad);
    if (a->dt == DT_BF16)
        CU_TRY(hl_cu_launch(k_addown<DT_BF16>, grid, dim3(AD_THREADS), smem, st, a->pdl, c));
    else
        CU_TRY(hl_cu_launch(k_addown<DT_F16>, grid, dim3(AD_THREADS), smem, st, a->pdl, c));
    CU_LAUNCHED("addown");
    return HL_OK;
}

/* ---- k_rope_kv: RoPE of q and k in place, k and v into the cache ---------------------------- */

template <int DT>
static __global__ void k_rope_kv(void *qkv, int64_t ld, int64_t M, int H, int Hkv, int hd, const int32_t *pos,
                                 const float *ct, const float *stab, void *kpool, void *vpool, const int32_t *rows) {
    pdl_trigger();
    pdl_wait();
    const int half = hd / 2, nv = half / 8, Dq = H * hd, Dkv = Hkv * hd;
    const int64_t n_rope = M * (H + Hkv) * nv, n_v = M * (Dkv / 8);
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_rope) {
        const int j0 = (int)(i % nv) * 8, h = (int)((i / nv) % (H + Hkv));
        const int64_t m = i / ((int64_t)nv * (H + Hkv));
        const int p = pos[m] > 0 ? pos[m] : 0;
        const int col = h < H ? h * hd : Dq + (h - H) * hd; /* k heads follow the q heads */
        uint4 *p1 = (uint4 *)((char *)qkv + (m * ld + col + j0) * 2), *p2 = (uint4 *)((char *)p1 + (int64_t)half * 2);
        float a[8], b[8], o1[8], o2[8];
        cvt8<DT>(*p1, a);
        cvt8<DT>(*p2, b);
        rope8(a, b, ct, stab, p, half, j0, 1.0f, o1, o2);
        const uint4 r1 = pack8<DT>(o1), r2 = pack8<DT>(o2);
        *p1 = r1;
        *p2 = r2;
        if (h >= H) {
            char *dst = (char *)kpool + ((int64_t)rows[m] * Dkv + (h - H) * hd + j0) * 2;
            *(uint4 *)dst = r1;
            *(uint4 *)(dst + (int64_t)half * 2) = r2;
        }
    } else if (i < n_rope + n_v) {
        const int64_t k = i - n_rope, m = k / (Dkv / 8);
        const int j = (int)(k % (Dkv / 8)) * 8;
        *(uint4 *)((char *)vpool + ((int64_t)rows[m] * Dkv + j) * 2) =
            *(const uint4 *)((const char *)qkv + (m * ld + Dq + Dkv + j) * 2);
    }
}

int hlk_rope_kv_supported(int dt, int hd, int64_t ld, const void *qkv) {
    return (dt == DT_BF16 || dt == DT_F16) && (hd / 2) % 8 == 0 && ld % 8 == 0 && (uintptr_t)qkv % 16 == 0;
}

hl_status hlk_rope_kv(cudaStream_t st, void *qkv, int64_t ld, int64_t M, int H, int Hkv, int hd, const int32_t *pos,
                      const float *cos_t, const float *sin_t, void *kpool, void *vpool, const int32_t *rows, int dt,
                      int pdl) {
    if (M <= 0)
        return HL_OK;
    if (!hlk_rope_kv_supported(dt, hd, ld, qkv))
        return hl_fail(HL_ERR_INTERNAL, "rope_kv: unsupported layout");
    const int64_t n = M * (H + Hkv) * (hd / 16) + M * (Hkv * hd / 8);
    const dim3 grid(hl_cu_blocks(n, 256)), block(256);
    if (dt == DT_BF16)
        CU_TRY(hl_cu_launch(k_rope_kv<DT_BF16>, grid, block, 0, st, pdl, qkv, ld, M, H, Hkv, hd, pos, cos_t, sin_t,
                            kpool, vpool, rows));
    else
        CU_TRY(hl_cu_launch(k_rope_kv<DT_F16>, grid, block, 0, st, pdl, qkv, ld, M, H, Hkv, hd, pos, cos_t, sin_t,
                            kpool, vpool, rows));
    CU_LAUNCHED("rope_kv");
    return HL_OK;
}
