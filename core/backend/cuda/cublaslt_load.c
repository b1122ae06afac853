/* cuBLASLt opened at first use instead of linked.
 *
 * libcublasLt is about 540 MB with some 350,000 relocations: linked into the program, every
 * hydralora process (a CPU-only command, --help, each test) paid about 0.15 s of CPU and 100 MB of
 * resident memory at start to relocate it, twice with the OpenMP re-exec. Here the functions the
 * backend calls are defined with cuBLASLt's own prototypes (from cublasLt.h, so a changed
 * signature fails to compile) and forward to the library, which is opened with dlopen the first
 * time one of them is called: only a CUDA session pays for it.
 *
 * Search: the library's soname (the loader's usual path: LD_LIBRARY_PATH, ld.so.cache), then the
 * toolkit's library directory seen at build time (HL_CUDA_LIBDIR). When it cannot be opened every
 * call returns CUBLAS_STATUS_NOT_INITIALIZED and cublasLtGetStatusString says why (that string
 * reaches the user through hl_cublas_fail). A backend function that calls another cuBLASLt entry
 * point needs a line in the table below. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cublasLt.h>

#ifndef HL_CUDA_LIBDIR
#define HL_CUDA_LIBDIR "/usr/local/cuda/lib64"
#endif
#define HL_STR2(x) #x
#define HL_STR(x) HL_STR2(x)
#define LT_SONAME "libcublasLt.so." HL_STR(CUBLAS_VER_MAJOR)

/* X(name): every cuBLASLt function the backend calls */
#define LT_FUNCTIONS(X)                                                                                                \
    X(cublasLtCreate)                                                                                                  \
    X(cublasLtDestroy)                                                                                                 \
    X(cublasLtGetStatusString)                                                                                         \
    X(cublasLtMatmul)                                                                                                  \
    X(cublasLtMatmulAlgoGetHeuristic)                                                                                  \
    X(cublasLtMatmulDescCreate)                                                                                        \
    X(cublasLtMatmulDescDestroy)                                                                                       \
    X(cublasLtMatmulDescSetAttribute)                                                                                  \
    X(cublasLtMatmulPreferenceCreate)                                                                                  \
    X(cublasLtMatmulPreferenceDestroy)                                                                                 \
    X(cublasLtMatmulPreferenceSetAttribute)                                                                            \
    X(cublasLtMatrixLayoutCreate)                                                                                      \
    X(cublasLtMatrixLayoutDestroy)

static struct {
#define LT_FIELD(name) __typeof__(name) *name;
    LT_FUNCTIONS(LT_FIELD)
#undef LT_FIELD
} lt;
static int lt_ok;
static char lt_why[512];
static pthread_once_t lt_once = PTHREAD_ONCE_INIT;

static void lt_open(void) {
    void *h = dlopen(LT_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        char first[256];
        snprintf(first, sizeof first, "%s", dlerror());
        h = dlopen(HL_CUDA_LIBDIR "/" LT_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            snprintf(lt_why, sizeof lt_why,
                     "cuBLASLt cannot be loaded (%s; also tried %s): install the CUDA toolkit's cuBLAS or add its "
                     "library folder to LD_LIBRARY_PATH",
                     first, HL_CUDA_LIBDIR "/" LT_SONAME);
            return;
        }
    }
    const char *missing = NULL;
    /* dlsym returns void *; POSIX guarantees it holds a function pointer's bits */
#define LT_LOAD(name)                                                                                                  \
    {                                                                                                                  \
        void *p = dlsym(h, #name);                                                                                     \
        memcpy(&lt.name, &p, sizeof p);                                                                                \
        if (!p && !missing)                                                                                            \
            missing = #name;                                                                                           \
    }
    LT_FUNCTIONS(LT_LOAD)
#undef LT_LOAD
    if (missing) {
        snprintf(lt_why, sizeof lt_why, "cuBLASLt (%s) lacks %s: the library is older than this build's toolkit",
                 LT_SONAME, missing);
        dlclose(h);
        return;
    }
    lt_ok = 1;
}

static int lt_ready(void) {
    pthread_once(&lt_once, lt_open);
    return lt_ok;
}

const char *CUBLASWINAPI cublasLtGetStatusString(cublasStatus_t status) {
    return lt_ready() ? lt.cublasLtGetStatusString(status) : lt_why;
}

cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t *lightHandle) {
    return lt_ready() ? lt.cublasLtCreate(lightHandle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
    return lt_ready() ? lt.cublasLtDestroy(lightHandle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                                           const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                                           const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                                           const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                                           cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                                           void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
    return lt_ready() ? lt.cublasLtMatmul(lightHandle, computeDesc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc, D,
                                          Ddesc, algo, workspace, workspaceSizeInBytes, stream)
                      : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle,
                                                           cublasLtMatmulDesc_t operationDesc,
                                                           cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                           cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                           cublasLtMatmulPreference_t preference,
                                                           int requestedAlgoCount,
                                                           cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                                           int *returnAlgoCount) {
    return lt_ready() ? lt.cublasLtMatmulAlgoGetHeuristic(lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc,
                                                          preference, requestedAlgoCount, heuristicResultsArray,
                                                          returnAlgoCount)
                      : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc,
                                                     cublasComputeType_t computeType, cudaDataType_t scaleType) {
    return lt_ready() ? lt.cublasLtMatmulDescCreate(matmulDesc, computeType, scaleType)
                      : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    return lt_ready() ? lt.cublasLtMatmulDescDestroy(matmulDesc) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr, const void *buf,
                                                           size_t sizeInBytes) {
    return lt_ready() ? lt.cublasLtMatmulDescSetAttribute(matmulDesc, attr, buf, sizeInBytes)
                      : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    return lt_ready() ? lt.cublasLtMatmulPreferenceCreate(pref) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    return lt_ready() ? lt.cublasLtMatmulPreferenceDestroy(pref) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                                 cublasLtMatmulPreferenceAttributes_t attr,
                                                                 const void *buf, size_t sizeInBytes) {
    return lt_ready() ? lt.cublasLtMatmulPreferenceSetAttribute(pref, attr, buf, sizeInBytes)
                      : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type,
                                                       uint64_t rows, uint64_t cols, int64_t ld) {
    return lt_ready() ? lt.cublasLtMatrixLayoutCreate(matLayout, type, rows, cols, ld) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    return lt_ready() ? lt.cublasLtMatrixLayoutDestroy(matLayout) : CUBLAS_STATUS_NOT_INITIALIZED;
}
