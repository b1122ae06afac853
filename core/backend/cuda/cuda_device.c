/* Finding and opening a CUDA device: one clear line for each reason a GPU cannot be used, the
 * device's description and memory, utilisation through NVML when the driver ships it (loaded at
 * run time, so nothing links against it). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cuda/cuda_check.h"
#include "core/backend/cuda/cuda_session.h"

#include <cublasLt.h>

const char *hl_cu_file(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

hl_status hl_cu_fail(cudaError_t e, const char *what, const char *file, int line) {
    hl_status st = e == cudaErrorMemoryAllocation ? HL_ERR_NOMEM : HL_ERR_INTERNAL;
    return hl_fail(st, "CUDA error in %s (%s:%d): %s", what, hl_cu_file(file), line, cudaGetErrorString(e));
}

hl_status hl_cublas_fail(int status, const char *what, const char *file, int line) {
    hl_status st = status == CUBLAS_STATUS_ALLOC_FAILED ? HL_ERR_NOMEM : HL_ERR_INTERNAL;
    return hl_fail(st, "cuBLASLt error in %s (%s:%d): %s", what, hl_cu_file(file), line,
                   cublasLtGetStatusString((cublasStatus_t)status));
}

/* ---- devices ---------------------------------------------------------------------------------- */

#define HL_CU_MIN_MAJOR 8 /* bf16 tensor-core instructions (mma.m16n8k16 bf16) need sm_80 */

int cu_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error so later calls are not confused */
        return 0;
    }
    return n;
}

hl_status cu_probe(int index) {
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    if (drv == 0)
        return hl_fail(HL_ERR_NOT_FOUND, "no CUDA driver on this machine (the NVIDIA driver is not installed or "
                                         "cannot be loaded): use device cpu");
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorInsufficientDriver || drv < rt) {
        cudaGetLastError();
        return hl_fail(HL_ERR_NOT_FOUND,
                       "the NVIDIA driver supports CUDA %d.%d but this build needs CUDA %d.%d: update the driver, "
                       "or use device cpu",
                       drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
    }
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
        cudaGetLastError();
        return hl_fail(HL_ERR_NOT_FOUND, "no CUDA GPU found (the driver sees none): use device cpu");
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        return hl_fail(HL_ERR_NOT_FOUND, "CUDA cannot be used on this machine: %s", cudaGetErrorString(e));
    }
    if (index < 0 || index >= n) {
        if (n == 1)
            return hl_fail(HL_ERR_NOT_FOUND, "no device cuda:%d: this machine has one CUDA GPU (cuda:0)", index);
        return hl_fail(HL_ERR_NOT_FOUND, "no device cuda:%d: this machine has %d CUDA GPUs (cuda:0 .. cuda:%d)", index,
                       n, n - 1);
    }
    struct cudaDeviceProp p;
    CU_TRY(cudaGetDeviceProperties(&p, index));
    if (p.major < HL_CU_MIN_MAJOR)
        return hl_fail(HL_ERR_NOT_FOUND,
                       "cuda:%d (%s) has compute capability %d.%d; the CUDA backend needs %d.0 or newer (A100, "
                       "H100, RTX 30xx and later): use device cpu",
                       index, p.name, p.major, p.minor, HL_CU_MIN_MAJOR);
    return HL_OK;
}

hl_status cu_open(hl_backend *be) {
    HL_TRY(cu_probe(be->device));
    cu_backend *b = calloc(1, sizeof *b);
    if (!b)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    b->dev = be->device;
    cudaError_t e = cudaGetDeviceProperties(&b->prop, b->dev);
    if (e == cudaSuccess)
        e = cudaSetDevice(b->dev);
    if (e == cudaSuccess)
        e = cudaFree(NULL); /* create the context now: its failure is reported here, not later */
    if (e != cudaSuccess) {
        free(b);
        return hl_fail(HL_ERR_NOT_FOUND, "cuda:%d cannot be opened: %s", be->device, cudaGetErrorString(e));
    }
    be->impl = b;
    return HL_OK;
}

void cu_close(hl_backend *be) {
    free(be->impl);
    be->impl = NULL;
}

hl_status cu_set_threads(hl_backend *be, int n) {
    be->threads = n; /* the GPU path drives the device from one host thread */
    return HL_OK;
}

hl_status cu_malloc(hl_backend *be, void **p, size_t bytes, const char *what) {
    cu_backend *b = be->impl;
    *p = NULL;
    if (!bytes)
        return HL_OK;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return hl_fail(HL_ERR_NOMEM, "cannot allocate %.2f GiB of GPU memory for %s on %s: %s",
                       (double)bytes / 1073741824.0, what, be->name, cudaGetErrorString(e));
    }
    b->self_bytes += bytes;
    return HL_OK;
}

void cu_free(hl_backend *be, void *p, size_t bytes) {
    cu_backend *b = be->impl;
    if (!p)
        return;
    cudaFree(p);
    if (b)
        b->self_bytes -= bytes;
}

/* ---- NVML utilisation (optional) ------------------------------------------------------------- */

typedef int (*nvml_init_fn)(void);
typedef int (*nvml_by_bus_fn)(const char *, void **);
typedef int (*nvml_util_fn)(void *, unsigned *);

static int nvml_utilisation(int dev) {
    static void *lib;
    static int tried;
    static nvml_by_bus_fn by_bus;
    static nvml_util_fn util;
    if (!tried) {
        tried = 1;
        lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        nvml_init_fn init = lib ? (nvml_init_fn)dlsym(lib, "nvmlInit_v2") : NULL;
        by_bus = lib ? (nvml_by_bus_fn)dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2") : NULL;
        util = lib ? (nvml_util_fn)dlsym(lib, "nvmlDeviceGetUtilizationRates") : NULL;
        if (!init || !by_bus || !util || init() != 0)
            by_bus = NULL;
    }
    if (!by_bus)
        return -1;
    char bus[64];
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, dev) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    void *h = NULL;
    unsigned rates[2] = {0, 0}; /* nvmlUtilization_t: gpu, memory */
    if (by_bus(bus, &h) != 0 || util(h, rates) != 0)
        return -1;
    return (int)rates[0];
}

hl_status cu_get_info(hl_backend *be, hl_backend_info *info) {
    cu_backend *b = be->impl;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", be->name);
    snprintf(info->device, sizeof info->device, "%.80s (compute %d.%d, %d SMs)", b->prop.name, b->prop.major,
             b->prop.minor, b->prop.multiProcessorCount);
    snprintf(info->compute, sizeof info->compute, "cuBLASLt bf16/f16 tensor cores, f32 accumulate; f32 without TF32");
    info->is_gpu = 1;
    info->threads = 1;
    size_t fr = 0, tot = 0;
    CU_TRY(cudaSetDevice(b->dev));
    CU_TRY(cudaMemGetInfo(&fr, &tot));
    info->mem_total = (int64_t)tot;
    info->mem_free = (int64_t)fr;
    info->mem_used_self = (int64_t)b->self_bytes;
    info->util_percent = nvml_utilisation(b->dev);
    return HL_OK;
}
