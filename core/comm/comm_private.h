/* PRIVATE to core/comm/: the communicator's fields and the MPI / NCCL halves that comm.c
 * dispatches to. Without HL_HAVE_MPI / HL_HAVE_NCCL, comm_mpi.c and comm_nccl.c
 * keep their entry points, which refuse with a "built without ..." error. */
#ifndef HL_COMM_PRIVATE_H
#define HL_COMM_PRIVATE_H

#include <sys/types.h>

#include "core/comm/comm.h"

#define HL_COMM_HOST_MAX 64

enum { COMM_SINGLE = 0, COMM_MPI = 1 };

struct hl_comm {
    int kind;
    int rank, size, local_rank, local_size;
    int owns_mpi;       /* hl_comm_open initialised MPI: hl_comm_close finalizes it */
    int failed;         /* a collective failed: only hl_comm_abort is left */
    double timeout;     /* seconds */
    /* per rank, gathered when the communicator opens (for messages and hl_comm_lost_ranks) */
    pid_t *pids;                       /* [size] */
    unsigned char *same_host;          /* [size] 1: shares this host (shared-memory node) */
    char (*hosts)[HL_COMM_HOST_MAX];   /* [size] */
    /* deterministic-reduction scratch, grown on first use (no allocation per step after) */
    void *scratch;
    size_t scratch_bytes;
    /* statistics */
    double stat_seconds;
    uint64_t stat_bytes, stat_calls;
    void *mpi_comm;     /* MPI_Comm * (COMM_MPI) */
    void *nccl;         /* comm_nccl state (after hl_comm_device_open) */
};

double comm_now(void);
hl_status comm_scratch(hl_comm *c, size_t bytes, void **out);
/* HL_ERR_IO "rank r: <what>: ..." naming lost ranks; marks the communicator failed. */
hl_status comm_fail_timeout(hl_comm *c, const char *what, double waited);

/* MPI half (comm_mpi.c). */
hl_status comm_mpi_open(hl_comm *c, const hl_launch_env *env);
void comm_mpi_close(hl_comm *c);
void comm_mpi_abort(hl_comm *c, int code);
hl_status comm_mpi_reduce_det(hl_comm *c, void *buf, size_t n, int is_f64);
hl_status comm_mpi_allreduce_i64(hl_comm *c, int64_t *buf, size_t n, int is_max);
hl_status comm_mpi_allgather(hl_comm *c, const void *mine, size_t bytes, void *all);
hl_status comm_mpi_bcast(hl_comm *c, void *buf, size_t bytes, int root);
hl_status comm_mpi_barrier(hl_comm *c);

/* NCCL half (comm_nccl.c). */
hl_status comm_nccl_open(hl_comm *c, int device);
hl_status comm_nccl_allreduce_f32(hl_comm *c, float *dev_buf, size_t n, void *stream);
void comm_nccl_close(hl_comm *c);

#endif
