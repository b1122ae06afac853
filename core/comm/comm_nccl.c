/* The NCCL half of the communicator: one NCCL communicator over the MPI ranks (one GPU each),
 * bootstrapped as nccl-tests and llm.c do (rank 0 makes the unique id, MPI broadcasts it,
 * every rank calls ncclCommInitRank), and the in-place sum of one contiguous f32 device
 * buffer. Completion is polled with a deadline and NCCL's asynchronous error state, so a lost
 * peer becomes an error (after ncclCommAbort) instead of a hang. Built without NCCL (no HL_HAVE_NCCL),
 * every entry refuses with a "built without NCCL" error. */
#include "core/comm/comm_private.h"

#include <stdlib.h>

#ifdef HL_HAVE_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    ncclComm_t comm;
    int device;
    int aborted;
} nccl_state;

#define CUDA_OK(call, what)                                                                        \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess)                                                                     \
            return hl_fail(HL_ERR_INTERNAL, "rank %d: %s: %s", c->rank, (what), cudaGetErrorString(e_)); \
    } while (0)

hl_status comm_nccl_open(hl_comm *c, int device) {
    int n_dev = 0;
    CUDA_OK(cudaGetDeviceCount(&n_dev), "counting CUDA devices");
    if (device < 0 || device >= n_dev)
        return hl_fail(HL_ERR_NOT_FOUND, "rank %d (local rank %d on %s): no CUDA device %d (this host has %d); start "
                       "at most one rank per GPU", c->rank, c->local_rank, hl_comm_host(c, c->rank), device, n_dev);
    CUDA_OK(cudaSetDevice(device), "selecting the CUDA device");
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess)
            return hl_fail(HL_ERR_IO, "rank 0: ncclGetUniqueId: %s", ncclGetErrorString(r));
    }
    if (c->size > 1) /* (one process: nothing to send) */
        HL_TRY(comm_mpi_bcast(c, &id, sizeof id, 0));
    nccl_state *ns = calloc(1, sizeof *ns);
    if (!ns)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    ns->device = device;
    ncclResult_t r = ncclCommInitRank(&ns->comm, c->size, id, c->rank);
    if (r != ncclSuccess) {
        free(ns);
        return hl_fail(HL_ERR_IO, "rank %d: ncclCommInitRank on GPU %d: %s (NCCL_DEBUG=INFO shows why)", c->rank,
                       device, ncclGetErrorString(r));
    }
    c->nccl = ns;
    return HL_OK;
}

hl_status comm_nccl_allreduce_f32(hl_comm *c, float *dev_buf, size_t n, void *stream) {
    nccl_state *ns = c->nccl;
    cudaStream_t s = (cudaStream_t)stream;
    ncclResult_t r = ncclAllReduce(dev_buf, dev_buf, n, ncclFloat, ncclSum, ns->comm, s);
    if (r != ncclSuccess) {
        c->failed = 1;
        return hl_fail(HL_ERR_IO, "rank %d: ncclAllReduce: %s", c->rank, ncclGetErrorString(r));
    }
    double t0 = comm_now();
    for (unsigned long it = 0;; it++) {
        cudaError_t q = cudaStreamQuery(s);
        if (q == cudaSuccess)
            return HL_OK;
        if (q != cudaErrorNotReady) {
            c->failed = 1;
            return hl_fail(HL_ERR_INTERNAL, "rank %d: gradient all-reduce on the GPU: %s", c->rank, cudaGetErrorString(q));
        }
        ncclResult_t async = ncclSuccess;
        ncclCommGetAsyncError(ns->comm, &async);
        if (async != ncclSuccess && async != ncclInProgress) {
            ncclCommAbort(ns->comm);
            ns->aborted = 1;
            c->failed = 1;
            return hl_fail(HL_ERR_IO, "rank %d: NCCL all-reduce failed: %s", c->rank, ncclGetErrorString(async));
        }
        if ((it & 255) == 0 && comm_now() - t0 > c->timeout) {
            ncclCommAbort(ns->comm);
            ns->aborted = 1;
            return comm_fail_timeout(c, "GPU gradient all-reduce (NCCL)", comm_now() - t0);
        }
        if (it > 2000) {
            struct timespec ts = {0, 10000};
            nanosleep(&ts, NULL);
        }
    }
}

void comm_nccl_close(hl_comm *c) {
    nccl_state *ns = c->nccl;
    if (!ns)
        return;
    if (!ns->aborted)
        ncclCommDestroy(ns->comm);
    free(ns);
    c->nccl = NULL;
}

#else

hl_status comm_nccl_open(hl_comm *c, int device) {
    (void)c;
    (void)device;
    return hl_fail(HL_ERR_STATE, "this hydralora was built without NCCL (needs CUDA and NCCL at build time: "
                   "cmake -DHL_NCCL=ON)");
}
hl_status comm_nccl_allreduce_f32(hl_comm *c, float *dev_buf, size_t n, void *stream) {
    (void)dev_buf, (void)n, (void)stream;
    return comm_nccl_open(c, 0);
}
void comm_nccl_close(hl_comm *c) { (void)c; }

#endif
