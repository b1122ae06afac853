/* Helpers for the GPU tests: device buffers in a dtype from f32 host data, comparison lines in
 * the llama.cpp test-backend-ops style (op, dtype, shape, max abs / rel error, PASS/FAIL), and the
 * "no usable GPU" exit (77, which ctest counts as skipped). Header-only; every test keeps going
 * after a failing case and exits non-zero at the end when any failed. */
#ifndef HL_GPU_UTIL_H
#define HL_GPU_UTIL_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/rng.h"
#include "core/base/status.h"
#include "core/base/tensor.h"

static int gpu_passed, gpu_failed;

static inline const char *gpu_dt_name(int dt) { return dt == HL_DTYPE_F32 ? "f32" : dt == HL_DTYPE_BF16 ? "bf16" : "f16"; }

/* Tolerance on max|got − ref| / max|ref| for outputs stored in dtype dt. */
static inline double gpu_tol(int dt) { return dt == HL_DTYPE_F32 ? 1e-5 : dt == HL_DTYPE_BF16 ? 2e-2 : 5e-3; }

/* Round f32 values through dtype dt (so the CPU reference sees exactly what the GPU stores). */
static inline void gpu_round(float *x, size_t n, int dt) {
    for (size_t i = 0; i < n; i++)
        x[i] = dt == HL_DTYPE_F32    ? x[i]
               : dt == HL_DTYPE_BF16 ? hl_bf16_to_f32(hl_f32_to_bf16(x[i]))
                                     : hl_f16_to_f32(hl_f32_to_f16(x[i]));
}

static inline void gpu_fill(float *x, size_t n, hl_rng *r, float center, float scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = center + scale * (2.0f * hl_rng_uniform(r) - 1.0f);
}

/* Device copy of n floats converted to dt (NULL on failure, with a message). */
static inline void *gpu_put(const float *h, size_t n, int dt) {
    size_t es = hl_dtype_size((hl_dtype)dt);
    void *d = NULL, *tmp = malloc(n * es + 1);
    if (!tmp)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (dt == HL_DTYPE_F32)
            ((float *)tmp)[i] = h[i];
        else if (dt == HL_DTYPE_BF16)
            ((uint16_t *)tmp)[i] = hl_f32_to_bf16(h[i]);
        else
            ((uint16_t *)tmp)[i] = hl_f32_to_f16(h[i]);
    }
    if (cudaMalloc(&d, n * es + 16) != cudaSuccess || cudaMemcpy(d, tmp, n * es, cudaMemcpyHostToDevice) != cudaSuccess) {
        fprintf(stderr, "device upload of %zu elements failed: %s\n", n, cudaGetErrorString(cudaGetLastError()));
        cudaFree(d);
        d = NULL;
    }
    free(tmp);
    return d;
}

static inline void *gpu_put_bytes(const void *h, size_t bytes) {
    void *d = NULL;
    if (cudaMalloc(&d, bytes + 16) != cudaSuccess || cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        fprintf(stderr, "device upload of %zu bytes failed\n", bytes);
        cudaFree(d);
        return NULL;
    }
    return d;
}

/* n elements of dt at d → f32 host (0 on success). */
static inline int gpu_get(float *h, const void *d, size_t n, int dt) {
    size_t es = hl_dtype_size((hl_dtype)dt);
    void *tmp = malloc(n * es + 1);
    if (!tmp)
        return -1;
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess)
        e = cudaMemcpy(tmp, d, n * es, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        fprintf(stderr, "device download failed: %s\n", cudaGetErrorString(e));
        free(tmp);
        memset(h, 0, n * sizeof(float));
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = dt == HL_DTYPE_F32    ? ((float *)tmp)[i]
               : dt == HL_DTYPE_BF16 ? hl_bf16_to_f32(((uint16_t *)tmp)[i])
                                     : hl_f16_to_f32(((uint16_t *)tmp)[i]);
    free(tmp);
    return 0;
}

/* Strided compare: rows × cols of got (row stride ldg) against ref (row stride ldr). */
static inline void gpu_cmp2(const float *got, int64_t ldg, const float *ref, int64_t ldr, int64_t rows, int64_t cols,
                            double *max_abs, double *ref_max) {
    double ma = 0.0, rm = 0.0;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double g = got[i * ldg + j], r = ref[i * ldr + j];
            double d = fabs(g - r);
            if (!(d <= ma)) /* NaN propagates */
                ma = isnan(d) ? INFINITY : d;
            if (fabs(r) > rm)
                rm = fabs(r);
        }
    *max_abs = ma;
    *ref_max = rm;
}

/* One result line; returns 1 when it passed. */
static inline int gpu_report(const char *op, int dt, const char *shape, double max_abs, double ref_max, double tol) {
    double rel = max_abs / (ref_max > 0.0 ? ref_max : 1.0);
    int ok = isfinite(rel) && rel <= tol;
    printf("%-26s %-5s %-40s max_abs %9.3e  rel %9.3e  (tol %.0e)  %s\n", op, gpu_dt_name(dt), shape, max_abs, rel, tol,
           ok ? "PASS" : "FAIL");
    fflush(stdout);
    if (ok)
        gpu_passed++;
    else
        gpu_failed++;
    return ok;
}

static inline int gpu_cmp_report(const char *op, int dt, const char *shape, const float *got, const float *ref,
                                 size_t n, double tol) {
    double ma, rm;
    gpu_cmp2(got, 0, ref, 0, 1, (int64_t)n, &ma, &rm);
    return gpu_report(op, dt, shape, ma, rm, tol);
}

/* A check that is not a numeric comparison. */
static inline void gpu_check(int ok, const char *op, const char *what) {
    printf("%-26s %-5s %-40s %s\n", op, "-", what, ok ? "PASS" : "FAIL");
    fflush(stdout);
    if (ok)
        gpu_passed++;
    else
        gpu_failed++;
}

/* A failed call inside a case: counts as a failure, prints the reason, the test keeps going. */
#define GPU_CALL(op, expr)                                                                                            \
    do {                                                                                                              \
        hl_status gpu_st_ = (expr);                                                                                   \
        if (gpu_st_ != HL_OK) {                                                                                       \
            printf("%-26s %-5s %-40s FAIL (%s: %s)\n", op, "-", #expr, hl_status_message(gpu_st_), hl_last_error());   \
            gpu_failed++;                                                                                             \
            cudaGetLastError();                                                                                       \
        }                                                                                                             \
    } while (0)

static inline int gpu_finish(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n) == cudaSuccess && n > 0 ? cudaDeviceSynchronize() : cudaSuccess;
    if (e != cudaSuccess) {
        printf("device error at the end: %s\n", cudaGetErrorString(e));
        gpu_failed++;
    }
    printf("%d passed, %d failed\n", gpu_passed, gpu_failed);
    return gpu_failed ? 1 : 0;
}

#endif
