/* The MPI half of the communicator: start-up, the deterministic reduction (alltoallv of
 * slices, rank-order sum in double, allgatherv), and the other collectives. Every collective is
 * started non-blocking and completed by polling, so that a rank that never arrives turns into
 * an error after the timeout instead of a hang. Built without MPI (no HL_HAVE_MPI),
 * every entry refuses with "this hydralora was built without MPI" (hl_comm_open never gets there). */
#include "core/comm/comm_private.h"

#ifdef HL_HAVE_MPI

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORLD(c) (*(MPI_Comm *)(c)->mpi_comm)

/* Elements per segment of the deterministic reduction: bounds the scratch memory (one segment
 * of received slices plus a double accumulator for this rank's slice). */
#define SEGMENT_ELEMS ((size_t)1 << 22)

static hl_status mpi_error(hl_comm *c, int rc, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", rc);
    c->failed = 1;
    return hl_fail(HL_ERR_IO, "rank %d: %s failed: %s", c->rank, what, s);
}

/* Complete a request by polling: spin for the first 2 ms (short waits cost nothing), then give
 * the CPU away between polls (an oversubscribed host runs other ranks on this core). */
static hl_status wait_req(hl_comm *c, MPI_Request *req, const char *what) {
    double t0 = comm_now(), next_check = t0 + 0.002;
    int spinning = 1;
    for (unsigned long it = 0;; it++) {
        int flag = 0;
        int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_error(c, rc, what);
        if (flag)
            return HL_OK;
        if ((it & 63) == 0) {
            double t = comm_now();
            if (t >= next_check) {
                spinning = 0;
                next_check = t + 0.05;
                if (t - t0 > c->timeout)
                    return comm_fail_timeout(c, what, t - t0);
            }
        }
        if (!spinning) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
}

hl_status comm_mpi_open(hl_comm *c, const hl_launch_env *env) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS)
            return hl_fail(HL_ERR_IO, "MPI could not start (MPI_Init_thread returned %d) under %s", rc, env->launcher);
        c->owns_mpi = 1;
        if (provided < MPI_THREAD_SERIALIZED)
            return hl_fail(HL_ERR_STATE, "this MPI library offers thread level %d; hydralora needs "
                           "MPI_THREAD_SERIALIZED (training runs in its own thread)", provided);
    }
    c->mpi_comm = malloc(sizeof(MPI_Comm));
    if (!c->mpi_comm)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    /* Our own copy of the world, returning errors instead of aborting inside MPI. */
    if (MPI_Comm_dup(MPI_COMM_WORLD, (MPI_Comm *)c->mpi_comm) != MPI_SUCCESS) {
        free(c->mpi_comm);
        c->mpi_comm = NULL;
        return hl_fail(HL_ERR_IO, "MPI_Comm_dup failed");
    }
    MPI_Comm_set_errhandler(WORLD(c), MPI_ERRORS_RETURN);
    MPI_Comm_rank(WORLD(c), &c->rank);
    MPI_Comm_size(WORLD(c), &c->size);
    if (env->size > 1 && env->size != c->size)
        return hl_fail(HL_ERR_STATE,
                       "%s started %d tasks but MPI sees %d process%s: the tasks do not know each other. Under "
                       "Slurm start with srun --mpi=pmix (srun --mpi=list shows the choices); with Open MPI use its "
                       "mpirun",
                       env->launcher, env->size, c->size, c->size == 1 ? "" : "es");
    /* Ranks sharing this host (shared-memory node): local rank and size. */
    MPI_Comm node;
    if (MPI_Comm_split_type(WORLD(c), MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return hl_fail(HL_ERR_IO, "MPI_Comm_split_type failed");
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    int leader = c->rank;
    MPI_Bcast(&leader, 1, MPI_INT, 0, node); /* world rank of this host's local rank 0 */
    MPI_Comm_free(&node);

    /* Everyone's pid, host name and host leader (for messages and the lost-rank report). */
    c->pids = calloc((size_t)c->size, sizeof *c->pids);
    c->same_host = calloc((size_t)c->size, 1);
    c->hosts = calloc((size_t)c->size, sizeof *c->hosts);
    struct {
        int64_t pid;
        int32_t leader;
        char host[HL_COMM_HOST_MAX];
    } me, *all = calloc((size_t)c->size, sizeof me);
    if (!c->pids || !c->same_host || !c->hosts || !all) {
        free(all);
        return hl_fail(HL_ERR_NOMEM, "out of memory for the rank tables of %d processes", c->size);
    }
    memset(&me, 0, sizeof me);
    me.pid = getpid();
    me.leader = leader;
    int hl = 0;
    char pname[MPI_MAX_PROCESSOR_NAME];
    if (MPI_Get_processor_name(pname, &hl) == MPI_SUCCESS)
        snprintf(me.host, sizeof me.host, "%.*s", (int)sizeof me.host - 1, pname);
    hl_status st = comm_mpi_allgather(c, &me, sizeof me, all);
    if (st) {
        free(all);
        return st;
    }
    for (int r = 0; r < c->size; r++) {
        c->pids[r] = (pid_t)all[r].pid;
        c->same_host[r] = all[r].leader == leader;
        memcpy(c->hosts[r], all[r].host, HL_COMM_HOST_MAX);
        c->hosts[r][HL_COMM_HOST_MAX - 1] = 0;
    }
    free(all);
    return HL_OK;
}

void comm_mpi_close(hl_comm *c) {
    if (c->mpi_comm) {
        if (!c->failed)
            MPI_Comm_free((MPI_Comm *)c->mpi_comm);
        free(c->mpi_comm);
        c->mpi_comm = NULL;
    }
    int fin = 0;
    MPI_Finalized(&fin);
    if (c->owns_mpi && !fin && !c->failed)
        MPI_Finalize();
}

void comm_mpi_abort(hl_comm *c, int code) {
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

/* Slice j of m elements split over K ranks: [m*j/K, m*(j+1)/K). */
static size_t slice_lo(size_t m, int j, int K) { return m * (size_t)j / (size_t)K; }

hl_status comm_mpi_reduce_det(hl_comm *c, void *buf, size_t n, int is_f64) {
    int K = c->size, me = c->rank;
    size_t esz = is_f64 ? sizeof(double) : sizeof(float);
    MPI_Datatype type = is_f64 ? MPI_DOUBLE : MPI_FLOAT;
    size_t seg = n < SEGMENT_ELEMS ? n : SEGMENT_ELEMS;
    /* scratch: K received copies of this rank's slice + a double accumulator for it; a slice
     * holds at most ceil(seg / K) elements */
    size_t max_slice = (seg + (size_t)K - 1) / (size_t)K;
    size_t recv_bytes = (size_t)K * max_slice * esz;
    void *scratch;
    HL_TRY(comm_scratch(c, recv_bytes + max_slice * sizeof(double) + 64, &scratch));
    char *recv = scratch;
    double *acc = (double *)(((uintptr_t)(recv + recv_bytes) + 63) & ~(uintptr_t)63);
    int *counts = malloc((size_t)K * 4 * sizeof(int));
    if (!counts)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    int *sdispl = counts + K, *rcounts = counts + 2 * K, *rdispl = counts + 3 * K;
    hl_status st = HL_OK;
    for (size_t off = 0; off < n && st == HL_OK; off += seg) {
        size_t m = n - off < seg ? n - off : seg;
        char *base = (char *)buf + off * esz;
        size_t lo = slice_lo(m, me, K), mine = slice_lo(m, me + 1, K) - lo;
        for (int j = 0; j < K; j++) {
            counts[j] = (int)(slice_lo(m, j + 1, K) - slice_lo(m, j, K));
            sdispl[j] = (int)slice_lo(m, j, K);
            rcounts[j] = (int)mine;
            rdispl[j] = (int)(mine * (size_t)j);
        }
        MPI_Request req;
        int rc = MPI_Ialltoallv(base, counts, sdispl, type, recv, rcounts, rdispl, type, WORLD(c), &req);
        if (rc != MPI_SUCCESS) {
            st = mpi_error(c, rc, "gradient exchange (MPI_Ialltoallv)");
            break;
        }
        if ((st = wait_req(c, &req, "summing over the ranks")) != HL_OK)
            break;
        /* Rank order 0..K-1, in double, rounded once. */
        if (is_f64) {
            const double *r = (const double *)recv;
            for (size_t i = 0; i < mine; i++)
                acc[i] = r[i];
            for (int j = 1; j < K; j++)
                for (size_t i = 0; i < mine; i++)
                    acc[i] += r[(size_t)j * mine + i];
            memcpy(base + lo * esz, acc, mine * sizeof(double));
        } else {
            const float *r = (const float *)recv;
            for (size_t i = 0; i < mine; i++)
                acc[i] = (double)r[i];
            for (int j = 1; j < K; j++)
                for (size_t i = 0; i < mine; i++)
                    acc[i] += (double)r[(size_t)j * mine + i];
            float *out = (float *)(base + lo * esz);
            for (size_t i = 0; i < mine; i++)
                out[i] = (float)acc[i];
        }
        rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, type, base, counts, sdispl, type, WORLD(c), &req);
        if (rc != MPI_SUCCESS) {
            st = mpi_error(c, rc, "gradient exchange (MPI_Iallgatherv)");
            break;
        }
        st = wait_req(c, &req, "summing over the ranks");
    }
    free(counts);
    return st;
}

hl_status comm_mpi_allreduce_i64(hl_comm *c, int64_t *buf, size_t n, int is_max) {
    if (n > INT_MAX)
        return hl_fail(HL_ERR_RANGE, "integer reduction of %zu values is too large", n);
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, is_max ? MPI_MAX : MPI_SUM, WORLD(c), &req);
    if (rc != MPI_SUCCESS)
        return mpi_error(c, rc, "MPI_Iallreduce");
    return wait_req(c, &req, is_max ? "agreeing with the other ranks" : "summing counts");
}

hl_status comm_mpi_allgather(hl_comm *c, const void *mine, size_t bytes, void *all) {
    if (bytes > INT_MAX)
        return hl_fail(HL_ERR_RANGE, "allgather of %zu bytes per rank is too large", bytes);
    MPI_Request req;
    int rc = MPI_Iallgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, WORLD(c), &req);
    if (rc != MPI_SUCCESS)
        return mpi_error(c, rc, "MPI_Iallgather");
    return wait_req(c, &req, "gathering from all ranks");
}

hl_status comm_mpi_bcast(hl_comm *c, void *buf, size_t bytes, int root) {
    char *p = buf;
    while (bytes > 0) {
        int part = bytes > (size_t)1 << 30 ? 1 << 30 : (int)bytes;
        MPI_Request req;
        int rc = MPI_Ibcast(p, part, MPI_BYTE, root, WORLD(c), &req);
        if (rc != MPI_SUCCESS)
            return mpi_error(c, rc, "MPI_Ibcast");
        HL_TRY(wait_req(c, &req, "broadcast"));
        p += part;
        bytes -= (size_t)part;
    }
    return HL_OK;
}

hl_status comm_mpi_barrier(hl_comm *c) {
    MPI_Request req;
    int rc = MPI_Ibarrier(WORLD(c), &req);
    if (rc != MPI_SUCCESS)
        return mpi_error(c, rc, "MPI_Ibarrier");
    return wait_req(c, &req, "waiting for all ranks");
}

#else /* !HL_HAVE_MPI: never reached (hl_comm_open makes one-process communicators only) */

static hl_status no_mpi(void) { return hl_fail(HL_ERR_STATE, "this hydralora was built without MPI"); }
hl_status comm_mpi_open(hl_comm *c, const hl_launch_env *env) {
    (void)c;
    (void)env;
    return no_mpi();
}
void comm_mpi_close(hl_comm *c) { (void)c; }
void comm_mpi_abort(hl_comm *c, int code) {
    (void)c;
    (void)code;
}
hl_status comm_mpi_reduce_det(hl_comm *c, void *buf, size_t n, int is_f64) {
    (void)c, (void)buf, (void)n, (void)is_f64;
    return no_mpi();
}
hl_status comm_mpi_allreduce_i64(hl_comm *c, int64_t *buf, size_t n, int is_max) {
    (void)c, (void)buf, (void)n, (void)is_max;
    return no_mpi();
}
hl_status comm_mpi_allgather(hl_comm *c, const void *mine, size_t bytes, void *all) {
    (void)c, (void)mine, (void)bytes, (void)all;
    return no_mpi();
}
hl_status comm_mpi_bcast(hl_comm *c, void *buf, size_t bytes, int root) {
    (void)c, (void)buf, (void)bytes, (void)root;
    return no_mpi();
}
hl_status comm_mpi_barrier(hl_comm *c) {
    (void)c;
    return no_mpi();
}

#endif
