/* Causal attention over packed examples, the general kernels (any head size up to 256, f32 or
 * 16-bit activations): one warp per (query row, head) forward and for dQ, one warp per (key row,
 * kv head) for dK/dV, online softmax, nothing T×T in global memory. These are the f32 parity
 * path and the path for small head sizes; 16-bit models with head size 64 or 128 go to the
 * tensor-core kernels in k_flash.cu (hlk_attn_tensor_cores).
 *
 * Semantics (core/backend/cpu/ops.c hl_attention_*): s = scale·q·k, scale = 1/√hd; row m sees the keys of
 * its own example at positions <= its own; lse = max + log Σ exp(s − max) (natural log);
 * backward recomputes p = exp(s − lse), D = <dO, O>, dS = p(dP − D), dQ = scale·dS K,
 * dK = scale·dSᵀQ, dV = PᵀdO. dK/dV of a kv head sum its query heads in a fixed order. */
#include <stdlib.h>
#include <string.h>

#include "core/backend/cuda/cuda_dev.cuh"

#define ATT_WARPS 4
#define ATT_HDMAX 256
#define ATT_PER_LANE (ATT_HDMAX / 32)

/* ---- forward ------------------------------------------------------------------------------ */

static __global__ void __launch_bounds__(ATT_WARPS * 32) k_attn_fwd(hlk_attn a, void *o, int64_t ldo, float *lse) {
    __shared__ float sq[ATT_WARPS][ATT_HDMAX];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t item = (int64_t)blockIdx.x * ATT_WARPS + warp;
    if (item >= a.M * a.H)
        return;
    const int64_t m = item / a.H;
    const int h = (int)(item % a.H), hd = a.hd, kvh = h / (a.H / a.Hkv);
    const int p = a.pos[m];
    if (p < 0)
        return;
    const int dt = a.dt;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t start = m - p;
    for (int d = lane; d < hd; d += 32)
        sq[warp][d] = ld_act(a.q, m * a.ldq + (int64_t)h * hd + d, dt);
    __syncwarp();
    float acc[ATT_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; c++)
        acc[c] = 0.0f;
    float mrun = -INFINITY, lsum = 0.0f;
    for (int64_t j0 = start; j0 <= m; j0 += 32) {
        const int64_t key = j0 + lane;
        const int valid = key <= m;
        float s = -INFINITY;
        if (valid) {
            const int64_t kb = key * a.ldk + (int64_t)kvh * hd;
            float dot = 0.0f;
            for (int d = 0; d < hd; d++)
                dot += sq[warp][d] * ld_act(a.k, kb + d, dt);
            s = dot * scale;
        }
        const float mnew = fmaxf(mrun, warp_max(s));
        const float pl = valid ? expf(s - mnew) : 0.0f;
        const float corr = mrun == -INFINITY ? 0.0f : expf(mrun - mnew);
        lsum = lsum * corr + warp_sum(pl);
#pragma unroll
        for (int c = 0; c < ATT_PER_LANE; c++)
            acc[c] *= corr;
        const int nk = m - j0 + 1 < 32 ? (int)(m - j0 + 1) : 32;
        for (int t = 0; t < nk; t++) {
            const float pt = __shfl_sync(0xffffffffu, pl, t);
            const int64_t vb = (j0 + t) * a.ldv + (int64_t)kvh * hd;
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; c++) {
                int d = lane + 32 * c;
                if (d < hd)
                    acc[c] += pt * ld_act(a.v, vb + d, dt);
            }
        }
        mrun = mnew;
    }
    const float inv = 1.0f / lsum;
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; c++) {
        int d = lane + 32 * c;
        if (d < hd)
            st_act(o, m * ldo + (int64_t)h * hd + d, dt, acc[c] * inv);
    }
    if (lane == 0)
        lse[(int64_t)h * a.M + m] = mrun + logf(lsum);
}

/* ---- backward: D = <dO, O> per (row, head) ------------------------------------------------- */

static __global__ void k_attn_dsum(hlk_attn a, const void *o, int64_t ldo, const void *dout, int64_t lddo,
                                   float *Dbuf) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t item = (int64_t)blockIdx.x * ATT_WARPS + warp;
    if (item >= a.M * a.H)
        return;
    const int64_t m = item / a.H;
    const int h = (int)(item % a.H);
    if (a.pos[m] < 0)
        return;
    float s = 0.0f;
    for (int d = lane; d < a.hd; d += 32)
        s += ld_act(dout, m * lddo + (int64_t)h * a.hd + d, a.dt) * ld_act(o, m * ldo + (int64_t)h * a.hd + d, a.dt);
    s = warp_sum(s);
    if (lane == 0)
        Dbuf[(int64_t)h * a.M + m] = s;
}

/* ---- backward: dQ, one warp per (query row, head) ----------------------------------------- */

static __global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attn_dq(hlk_attn a, const void *dout, int64_t lddo, const float *lse, const float *Dbuf, void *dq,
              int64_t lddq) {
    __shared__ float sq[ATT_WARPS][ATT_HDMAX], sdo[ATT_WARPS][ATT_HDMAX];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t item = (int64_t)blockIdx.x * ATT_WARPS + warp;
    if (item >= a.M * a.H)
        return;
    const int64_t m = item / a.H;
    const int h = (int)(item % a.H), hd = a.hd, kvh = h / (a.H / a.Hkv), dt = a.dt;
    const int p = a.pos[m];
    if (p < 0)
        return;
    const float scale = 1.0f / sqrtf((float)hd);
    const float L = lse[(int64_t)h * a.M + m], Dm = Dbuf[(int64_t)h * a.M + m];
    for (int d = lane; d < hd; d += 32) {
        sq[warp][d] = ld_act(a.q, m * a.ldq + (int64_t)h * hd + d, dt);
        sdo[warp][d] = ld_act(dout, m * lddo + (int64_t)h * hd + d, dt);
    }
    __syncwarp();
    float acc[ATT_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; c++)
        acc[c] = 0.0f;
    for (int64_t j0 = m - p; j0 <= m; j0 += 32) {
        const int64_t key = j0 + lane;
        float ds = 0.0f;
        if (key <= m) {
            const int64_t kb = key * a.ldk + (int64_t)kvh * hd, vb = key * a.ldv + (int64_t)kvh * hd;
            float s = 0.0f, dp = 0.0f;
            for (int d = 0; d < hd; d++) {
                s += sq[warp][d] * ld_act(a.k, kb + d, dt);
                dp += sdo[warp][d] * ld_act(a.v, vb + d, dt);
            }
            float pr = expf(s * scale - L);
            ds = pr * (dp - Dm);
        }
        const int nk = m - j0 + 1 < 32 ? (int)(m - j0 + 1) : 32;
        for (int t = 0; t < nk; t++) {
            const float dst = __shfl_sync(0xffffffffu, ds, t);
            const int64_t kb = (j0 + t) * a.ldk + (int64_t)kvh * hd;
#pragma unroll
            for (int c = 0; c < ATT_PER_LANE; c++) {
                int d = lane + 32 * c;
                if (d < hd)
                    acc[c] += dst * ld_act(a.k, kb + d, dt);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; c++) {
        int d = lane + 32 * c;
        if (d < hd)
            st_act(dq, m * lddq + (int64_t)h * hd + d, dt, scale * acc[c]);
    }
}

/* ---- backward: dK, dV, one warp per (key row, kv head), its query heads in order ---------- */

static __global__ void __launch_bounds__(ATT_WARPS * 32)
    k_attn_dkv(hlk_attn a, const void *dout, int64_t lddo, const float *lse, const float *Dbuf, void *dk,
               int64_t lddk, void *dv, int64_t lddv) {
    __shared__ float sk[ATT_WARPS][ATT_HDMAX], sv[ATT_WARPS][ATT_HDMAX];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t item = (int64_t)blockIdx.x * ATT_WARPS + warp;
    if (item >= a.M * a.Hkv)
        return;
    const int64_t j = item / a.Hkv;
    const int g = (int)(item % a.Hkv), hd = a.hd, group = a.H / a.Hkv, dt = a.dt;
    if (a.pos[j] < 0)
        return;
    const int64_t end = a.send[j];
    const float scale = 1.0f / sqrtf((float)hd);
    for (int d = lane; d < hd; d += 32) {
        sk[warp][d] = ld_act(a.k, j * a.ldk + (int64_t)g * hd + d, dt);
        sv[warp][d] = ld_act(a.v, j * a.ldv + (int64_t)g * hd + d, dt);
    }
    __syncwarp();
    float ak[ATT_PER_LANE], av[ATT_PER_LANE];
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; c++)
        ak[c] = av[c] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int64_t i0 = j; i0 < end; i0 += 32) {
            const int64_t qi = i0 + lane;
            float pr = 0.0f, ds = 0.0f;
            if (qi < end) {
                const int64_t qb = qi * a.ldq + (int64_t)h * hd, ob = qi * lddo + (int64_t)h * hd;
                float s = 0.0f, dp = 0.0f;
                for (int d = 0; d < hd; d++) {
                    s += ld_act(a.q, qb + d, dt) * sk[warp][d];
                    dp += ld_act(dout, ob + d, dt) * sv[warp][d];
                }
                pr = expf(s * scale - lse[(int64_t)h * a.M + qi]);
                ds = pr * (dp - Dbuf[(int64_t)h * a.M + qi]);
            }
            const int nq = end - i0 < 32 ? (int)(end - i0) : 32;
            for (int t = 0; t < nq; t++) {
                const float pt = __shfl_sync(0xffffffffu, pr, t), dst = __shfl_sync(0xffffffffu, ds, t);
                const int64_t qb = (i0 + t) * a.ldq + (int64_t)h * hd, ob = (i0 + t) * lddo + (int64_t)h * hd;
#pragma unroll
                for (int c = 0; c < ATT_PER_LANE; c++) {
                    int d = lane + 32 * c;
                    if (d < hd) {
                        av[c] += pt * ld_act(dout, ob + d, dt);
                        ak[c] += dst * ld_act(a.q, qb + d, dt);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int c = 0; c < ATT_PER_LANE; c++) {
        int d = lane + 32 * c;
        if (d < hd) {
            st_act(dk, j * lddk + (int64_t)g * hd + d, dt, scale * ak[c]);
            st_act(dv, j * lddv + (int64_t)g * hd + d, dt, av[c]);
        }
    }
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static hl_status attn_check(const hlk_attn *a) {
    if (a->hd < 1 || a->hd > ATT_HDMAX || a->Hkv < 1 || a->H % a->Hkv)
        return hl_fail(HL_ERR_ARG, "attention: head size %d (1..%d) or heads %d / kv heads %d not supported", a->hd,
                       ATT_HDMAX, a->H, a->Hkv);
    return HL_OK;
}

static int force_general = -1; /* -1: not decided yet (read HL_CUDA_ATTN once) */

void hlk_attn_force_general(int on) { force_general = on; }

int hlk_attn_tensor_cores(const hlk_attn *a) {
    if (force_general < 0) {
        const char *e = getenv("HL_CUDA_ATTN");
        force_general = e && !strcmp(e, "general");
    }
    if (force_general)
        return 0;
    if (a->dt == DT_F32 || (a->hd != 64 && a->hd != 128) || a->n_blk <= 0 || !a->blk_start)
        return 0;
    /* 16-byte rows and bases for cp.async */
    if ((a->ldq | a->ldk | a->ldv) % 8)
        return 0;
    if (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v) % 16)
        return 0;
    return 1;
}

hl_status hlk_attn_fwd(cudaStream_t st, const hlk_attn *a, void *o, int64_t ldo, float *lse) {
    HL_TRY(attn_check(a));
    if (a->M <= 0)
        return HL_OK;
    if (hlk_attn_tensor_cores(a) && ldo % 8 == 0 && (uintptr_t)o % 16 == 0)
        return hlk_flash_fwd(st, a, o, ldo, lse);
    k_attn_fwd<<<hl_cu_blocks(a->M * a->H, ATT_WARPS), ATT_WARPS * 32, 0, st>>>(*a, o, ldo, lse);
    CU_LAUNCHED("attn_fwd");
    return HL_OK;
}

hl_status hlk_attn_bwd(cudaStream_t st, const hlk_attn *a, const void *o, int64_t ldo, const void *dout,
                       int64_t lddo, const float *lse, float *Dbuf, void *dq, int64_t lddq, void *dk, int64_t lddk,
                       void *dv, int64_t lddv) {
    HL_TRY(attn_check(a));
    if (a->M <= 0)
        return HL_OK;
    k_attn_dsum<<<hl_cu_blocks(a->M * a->H, ATT_WARPS), ATT_WARPS * 32, 0, st>>>(*a, o, ldo, dout, lddo, Dbuf);
    CU_LAUNCHED("attn_dsum");
    if (hlk_attn_tensor_cores(a) && (lddo | lddq | lddk | lddv) % 8 == 0 &&
        ((uintptr_t)dout | (uintptr_t)dq | (uintptr_t)dk | (uintptr_t)dv) % 16 == 0)
        return hlk_flash_bwd(st, a, dout, lddo, lse, Dbuf, dq, lddq, dk, lddk, dv, lddv);
    k_attn_dq<<<hl_cu_blocks(a->M * a->H, ATT_WARPS), ATT_WARPS * 32, 0, st>>>(*a, dout, lddo, lse, Dbuf, dq, lddq);
    CU_LAUNCHED("attn_dq");
    k_attn_dkv<<<hl_cu_blocks(a->M * a->Hkv, ATT_WARPS), ATT_WARPS * 32, 0, st>>>(*a, dout, lddo, lse, Dbuf, dk, lddk,
                                                                                 dv, lddv);
    CU_LAUNCHED("attn_dkv");
    return HL_OK;
}
