/* Error checking for the CUDA backend (host code in .c and .cu files).
 *
 * Every CUDA runtime call, cuBLASLt call and kernel launch goes through one of these macros:
 * on failure they record "where: what" with the CUDA error string via hl_fail and RETURN the
 * hl_status from the enclosing function (which must return hl_status). Nothing is printed. */
#ifndef HL_CUDA_CHECK_H
#define HL_CUDA_CHECK_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/base/status.h"

/* "core/backend/cuda/x.cu" -> "x.cu" (messages name the file, not the build path). */
const char *hl_cu_file(const char *path);
/* Records the failure of a CUDA runtime call; cudaErrorMemoryAllocation maps to HL_ERR_NOMEM. */
hl_status hl_cu_fail(cudaError_t e, const char *what, const char *file, int line);
/* Records a failed cuBLASLt call (status code as int so this header needs no cuBLAS include). */
hl_status hl_cublas_fail(int status, const char *what, const char *file, int line);
#ifdef __cplusplus
}
#endif

/* A CUDA runtime call: returns its hl_status from the enclosing function on failure. */
#define CU_TRY(call)                                                                                                  \
    do {                                                                                                              \
        cudaError_t hl_cu_e_ = (call);                                                                                \
        if (hl_cu_e_ != cudaSuccess)                                                                                  \
            return hl_cu_fail(hl_cu_e_, #call, __FILE__, __LINE__);                                                   \
    } while (0)

/* After a kernel launch: launch-configuration errors (and earlier asynchronous ones). */
#define CU_LAUNCHED(name)                                                                                             \
    do {                                                                                                              \
        cudaError_t hl_cu_e_ = cudaGetLastError();                                                                    \
        if (hl_cu_e_ != cudaSuccess)                                                                                  \
            return hl_cu_fail(hl_cu_e_, "launch of " name, __FILE__, __LINE__);                                       \
    } while (0)

/* A cuBLASLt call (cublasStatus_t). */
#define CUBLAS_TRY(call)                                                                                              \
    do {                                                                                                              \
        int hl_cb_s_ = (int)(call);                                                                                   \
        if (hl_cb_s_ != 0)                                                                                            \
            return hl_cublas_fail(hl_cb_s_, #call, __FILE__, __LINE__);                                               \
    } while (0)

#endif
