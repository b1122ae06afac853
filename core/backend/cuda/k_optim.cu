/* Global gradient norm and AdamW on the device (core/adapter/optim.c formulas).
 *
 * The norm is a double sum over a fixed partition of the slab (HLK_NORM_PARTS ranges, each
 * reduced by one block in a fixed tree, then the partials by one block): the same bits on every
 * run. The AdamW update uses round-to-nearest intrinsics so that no multiply-add is contracted:
 * given the same gradient and scale, each parameter gets the bits core/adapter/optim.c gives. */
#include "core/backend/cuda/cuda_dev.cuh"

static __global__ void k_sumsq_parts(const float *g, size_t n, double *partials) {
    __shared__ double sh[32];
    size_t a = n * (size_t)blockIdx.x / HLK_NORM_PARTS, b = n * (size_t)(blockIdx.x + 1) / HLK_NORM_PARTS;
    double s = 0.0;
    for (size_t i = a + threadIdx.x; i < b; i += blockDim.x)
        s += (double)g[i] * g[i];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0)
        partials[blockIdx.x] = s;
}

static __global__ void k_sum_parts(const double *partials, double *out) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < HLK_NORM_PARTS; i += blockDim.x)
        s += partials[i];
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0)
        *out = s;
}

hl_status hlk_sumsq(cudaStream_t st, const float *g, size_t n, double *partials, double *out) {
    k_sumsq_parts<<<HLK_NORM_PARTS, 256, 0, st>>>(g, n, partials);
    CU_LAUNCHED("sumsq_parts");
    k_sum_parts<<<1, 256, 0, st>>>(partials, out);
    CU_LAUNCHED("sum_parts");
    return HL_OK;
}

static __global__ void k_adamw(float *p, float *g, float *m, float *v, size_t n, float gscale, float decay, float b1,
                               float b2, float step_size, float bc2_sqrt, float eps) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float gi = g[i];
    if (gscale != 1.0f)
        g[i] = gi = __fmul_rn(gi, gscale);
    float pi = __fmul_rn(p[i], decay);
    float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(__fsub_rn(1.0f, b1), gi));
    float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, b2), gi), gi));
    float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
    pi = __fsub_rn(pi, __fdiv_rn(__fmul_rn(step_size, mi), den));
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
}

hl_status hlk_adamw(cudaStream_t st, float *p, float *g, float *m, float *v, size_t n, float gscale, float decay,
                    float b1, float b2, float step_size, float bc2_sqrt, float eps) {
    if (!n)
        return HL_OK;
    k_adamw<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(p, g, m, v, n, gscale, decay, b1, b2, step_size, bc2_sqrt,
                                                       eps);
    CU_LAUNCHED("adamw");
    return HL_OK;
}
