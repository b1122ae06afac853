/* Device helpers shared by the .cu files: dtype load/store with the dtype as a run-time value,
 * deterministic block reductions, the dropout hash (bit-identical to core/base/rng.c). */
#ifndef HL_CUDA_DEV_CUH
#define HL_CUDA_DEV_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cuda_kernels.h"

/* hl_dtype values (core/base/tensor.h), repeated here so device code needs no host header. */
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

static __device__ __forceinline__ float ld_act(const void *p, int64_t i, int dt) {
    if (dt == DT_F32)
        return ((const float *)p)[i];
    if (dt == DT_BF16)
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return __half2float(((const __half *)p)[i]);
}

static __device__ __forceinline__ void st_act(void *p, int64_t i, int dt, float x) {
    if (dt == DT_F32)
        ((float *)p)[i] = x;
    else if (dt == DT_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(x);
    else
        ((__half *)p)[i] = __float2half_rn(x);
}

/* 8 consecutive 16-bit values (one 16-byte access; p 16-byte aligned) <-> f32. */
static __device__ __forceinline__ void ld8(const void *p, int dt, float *f) {
    uint4 v = *reinterpret_cast<const uint4 *>(p);
    const uint16_t *e = reinterpret_cast<const uint16_t *>(&v);
#pragma unroll
    for (int k = 0; k < 8; k++)
        f[k] = dt == DT_BF16 ? __bfloat162float(__ushort_as_bfloat16(e[k])) : __half2float(__ushort_as_half(e[k]));
}
static __device__ __forceinline__ void st8(void *p, int dt, const float *f) {
    uint4 v;
    uint16_t *e = reinterpret_cast<uint16_t *>(&v);
#pragma unroll
    for (int k = 0; k < 8; k++)
        e[k] = dt == DT_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(f[k])) : __half_as_ushort(__float2half_rn(f[k]));
    *reinterpret_cast<uint4 *>(p) = v;
}
/* The same with the 16-bit type fixed at compile time (DT_BF16 or DT_F16) and the values in
 * registers: the hot loops of the decode kernels (k_gemv.cu, k_decode.cu). */
template <int DT> static __device__ __forceinline__ void cvt8(const uint4 v, float *f) {
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        if (DT == DT_BF16) {
            f[2 * k] = __uint_as_float(u[k] << 16);
            f[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
        } else {
            __half2 h = *reinterpret_cast<const __half2 *>(&u[k]);
            float2 t = __half22float2(h);
            f[2 * k] = t.x;
            f[2 * k + 1] = t.y;
        }
    }
}
template <int DT> static __device__ __forceinline__ uint16_t round16(float x) {
    return DT == DT_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(x)) : __half_as_ushort(__float2half_rn(x));
}
template <int DT> static __device__ __forceinline__ float widen16(uint16_t h) {
    return DT == DT_BF16 ? __uint_as_float((uint32_t)h << 16) : __half2float(__ushort_as_half(h));
}
template <int DT> static __device__ __forceinline__ uint4 pack8(const float *f) {
    uint32_t u[4];
#pragma unroll
    for (int k = 0; k < 4; k++)
        u[k] = (uint32_t)round16<DT>(f[2 * k]) | ((uint32_t)round16<DT>(f[2 * k + 1]) << 16);
    return make_uint4(u[0], u[1], u[2], u[3]);
}

/* RoPE of 8 dimension pairs of one head at position p: a[k] = x[j0 + k], b[k] = x[j0 + half + k]
 * become o1 = a·cos − b·sin and o2 = b·cos + a·sin (sin times sign: −1 undoes the rotation), each
 * product and sum rounded as written. The one formula of every 16-bit RoPE kernel, so their
 * results agree bit for bit (k_rope8, k_rope_kv, the decode attention's rope_piece). */
static __device__ __forceinline__ void rope8(const float *a, const float *b, const float *ct, const float *stab,
                                             int64_t p, int half, int j0, float sign, float *o1, float *o2) {
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const float c = ct[p * half + j0 + k], s = sign * stab[p * half + j0 + k];
        o1[k] = __fsub_rn(__fmul_rn(a[k], c), __fmul_rn(b[k], s));
        o2[k] = __fadd_rn(__fmul_rn(b[k], c), __fmul_rn(a[k], s));
    }
}

static inline int hl_cu_vec8(int dt, int64_t n, const void *a, const void *b, const void *c) {
    return dt != DT_F32 && n % 8 == 0 && ((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) % 16 == 0;
}

/* core/base/rng.c hl_rng_hash / hl_rng_hash_uniform, the same integer arithmetic. */
static __device__ __forceinline__ uint64_t dev_hash(uint64_t key, uint64_t idx) {
    uint64_t z = key + (idx + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static __device__ __forceinline__ float dev_hash_uniform(uint64_t key, uint64_t idx) {
    return (float)(dev_hash(key, idx) >> 40) * (1.0f / 16777216.0f);
}
/* Dropout factor of element idx: 0 or 1/(1−p) (1 when p == 0). */
static __device__ __forceinline__ float drop_factor(hlk_drop d, uint64_t idx, float keep_scale) {
    if (d.p <= 0.0f)
        return 1.0f;
    return dev_hash_uniform(d.key, idx) >= d.p ? keep_scale : 0.0f;
}

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sums/max for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
 * `sh` holds 32 values. The combination order is fixed by the thread layout. */
static __device__ __forceinline__ double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    double t = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(t);
}
static __device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(t);
}
static __device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    float t = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(t);
}

/* Programmatic dependent launch (sm_90): a kernel launched with hl_cu_launch(..., pdl = 1, ...)
 * may start while the kernel before it on the stream is still running. It calls pdl_trigger()
 * first (so the kernel after it may start early in turn), does only work that needs nothing from
 * earlier kernels (loading weights), then pdl_wait() (returns once the earlier kernel has finished
 * and its writes are visible) before it reads anything they wrote. Every thread that a PDL launch
 * runs passes pdl_wait() before exiting, so the grid never finishes before its predecessor.
 * On older devices both are no-ops and launches are plain. */
static __device__ __forceinline__ void pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
static __device__ __forceinline__ void pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
template <typename... P, typename... A>
static inline cudaError_t hl_cu_launch(void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, int pdl,
                                       A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, args...);
}

static inline unsigned hl_cu_blocks(int64_t n, int per) { return (unsigned)((n + per - 1) / per); }

/* Block trace (built with -DHL_GPU_TRACE, for bench_bbh_gpu --trace): thread 0 of every block of
 * an instrumented kernel records when the block started, passed pdl_wait and ended (the GPU's
 * global timer, ns), on which multiprocessor, and what it ran. Each translation unit that traces
 * has its own buffer (HL_TRACE_UNIT), armed from the host (cuda_decode.h, which defines the record).
 * Without the flag the macros record nothing. */
#ifdef HL_GPU_TRACE
static __device__ __forceinline__ unsigned long long tr_now(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
static __device__ __forceinline__ unsigned tr_smid(void) {
    unsigned s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}
#define HL_TRACE_UNIT(name)                                                                                            \
    static __device__ hlk_trace_rec *tr_buf;                                                                           \
    static __device__ unsigned tr_n, tr_cap;                                                                           \
    extern "C" int hlk_trace_arm_##name(void *buf, unsigned cap) {                                                     \
        const unsigned zero = 0;                                                                                       \
        return cudaMemcpyToSymbol(tr_buf, &buf, sizeof buf) == cudaSuccess &&                                          \
               cudaMemcpyToSymbol(tr_cap, &cap, sizeof cap) == cudaSuccess &&                                          \
               cudaMemcpyToSymbol(tr_n, &zero, sizeof zero) == cudaSuccess;                                            \
    }                                                                                                                  \
    extern "C" unsigned hlk_trace_count_##name(void) {                                                                 \
        unsigned n = 0;                                                                                                \
        return cudaMemcpyFromSymbol(&n, tr_n, sizeof n) == cudaSuccess ? n : 0;                                        \
    }
#define TR_BEGIN unsigned long long tr_t0 = tr_now(), tr_t1 = tr_t0
#define TR_WAITED (tr_t1 = tr_now())
#define TR_END(kind_, n_, k_, flags_)                                                                                  \
    do {                                                                                                               \
        if (threadIdx.x == 0 && tr_buf) {                                                                              \
            const unsigned i_ = atomicAdd(&tr_n, 1u);                                                                  \
            if (i_ < tr_cap) {                                                                                         \
                hlk_trace_rec r_ = {(unsigned)(kind_), (unsigned)(n_), (unsigned)(k_),                                 \
                                       blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z), tr_smid(),      \
                                       (unsigned)(flags_), tr_t0, tr_t1, tr_now()};                                    \
                tr_buf[i_] = r_;                                                                                       \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)
#else
#define HL_TRACE_UNIT(name)                                                                                            \
    extern "C" int hlk_trace_arm_##name(void *buf, unsigned cap) { return (void)buf, (void)cap, 0; }                   \
    extern "C" unsigned hlk_trace_count_##name(void) { return 0; }
#define TR_BEGIN
#define TR_WAITED
#define TR_END(kind_, n_, k_, flags_)
#endif

#endif
