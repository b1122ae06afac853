/* The communicator: launcher detection, the one-process communicator, dispatch to the MPI and
 * NCCL halves and the agreement check (see comm.h). What the halves share is in comm_base.c. */
#include "core/comm/comm_private.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int hl_comm_have_mpi(void) {
#ifdef HL_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int hl_comm_have_nccl(void) {
#ifdef HL_HAVE_NCCL
    return 1;
#else
    return 0;
#endif
}

/* ---- launcher detection ------------------------------------------------------------------ */

static int env_int(const char *name, int *out) {
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1000000)
        return 0;
    *out = (int)x;
    return 1;
}

void hl_comm_detect_launch(hl_launch_env *env) {
    memset(env, 0, sizeof *env);
    env->size = 1;
    int size = 0, rank = 0;
    if (env_int("OMPI_COMM_WORLD_SIZE", &size)) {
        env_int("OMPI_COMM_WORLD_RANK", &rank);
        snprintf(env->launcher, sizeof env->launcher, "mpirun (Open MPI)");
    } else if (env_int("PMI_SIZE", &size)) {
        env_int("PMI_RANK", &rank);
        snprintf(env->launcher, sizeof env->launcher, "%s", getenv("SLURM_JOB_ID") ? "srun (Slurm, PMI)" : "mpiexec (PMI)");
    } else if (env_int("PMIX_RANK", &rank)) {
        /* PMIx announces the rank; the size comes from MPI. */
        size = env_int("SLURM_STEP_NUM_TASKS", &size) ? size : 0;
        snprintf(env->launcher, sizeof env->launcher, "%s", getenv("SLURM_JOB_ID") ? "srun (Slurm, PMIx)" : "PMIx");
    } else if (env_int("SLURM_STEP_NUM_TASKS", &size) && size > 1) {
        /* srun without an MPI plugin: MPI may not see the other tasks (checked at open). */
        env_int("SLURM_PROCID", &rank);
        snprintf(env->launcher, sizeof env->launcher, "srun (Slurm)");
    } else {
        return;
    }
    env->launched = 1;
    env->size = size; /* 0: unknown until MPI says */
    env->rank = rank;
}

/* ---- open / close ---------------------------------------------------------------------- */

static double default_timeout(void) {
    const char *v = getenv("HL_COMM_TIMEOUT_S");
    if (v && *v) {
        double t = strtod(v, NULL);
        if (t > 0)
            return t;
    }
    return 600.0;
}

static hl_status alloc_rank_tables(hl_comm *c) {
    c->pids = calloc((size_t)c->size, sizeof *c->pids);
    c->same_host = calloc((size_t)c->size, 1);
    c->hosts = calloc((size_t)c->size, sizeof *c->hosts);
    if (!c->pids || !c->same_host || !c->hosts)
        return hl_fail(HL_ERR_NOMEM, "out of memory for the rank tables of %d processes", c->size);
    return HL_OK;
}

static hl_comm *comm_new(void) {
    hl_comm *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->timeout = default_timeout();
    c->size = c->local_size = 1;
    return c;
}

hl_status hl_comm_open_single(hl_comm **out) {
    *out = NULL;
    hl_comm *c = comm_new();
    if (!c)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    c->kind = COMM_SINGLE;
    hl_status st = alloc_rank_tables(c);
    if (st) {
        hl_comm_close(c);
        return st;
    }
    c->pids[0] = getpid();
    c->same_host[0] = 1;
    if (gethostname(c->hosts[0], HL_COMM_HOST_MAX - 1) != 0)
        c->hosts[0][0] = 0;
    *out = c;
    return HL_OK;
}

hl_status hl_comm_open(hl_comm **out) {
    *out = NULL;
    hl_launch_env env;
    hl_comm_detect_launch(&env);
    if (!env.launched)
        return hl_comm_open_single(out);
#ifndef HL_HAVE_MPI
    if (env.size != 1) {
        char of[32] = "several";
        if (env.size > 1)
            snprintf(of, sizeof of, "%d", env.size);
        return hl_fail(HL_ERR_STATE,
                       "started by %s as task %d of %s, but this hydralora was built without MPI: every task would "
                       "train the whole run on its own. Rebuild with MPI (install Debian's libopenmpi-dev, then "
                       "cmake -DHL_MPI=ON), or start one process without the launcher",
                       env.launcher, env.rank, of);
    }
    return hl_comm_open_single(out);
#else
    hl_comm *c = comm_new();
    if (!c)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    c->kind = COMM_MPI;
    hl_status st = comm_mpi_open(c, &env);
    if (st) {
        hl_comm_close(c);
        return st;
    }
    *out = c;
    return HL_OK;
#endif
}

void hl_comm_close(hl_comm *c) {
    if (!c)
        return;
    comm_nccl_close(c);
    if (c->kind == COMM_MPI)
        comm_mpi_close(c);
    free(c->pids);
    free(c->same_host);
    free(c->hosts);
    free(c->scratch);
    free(c);
}

void hl_comm_abort(hl_comm *c, int code) {
    if (c && c->kind == COMM_MPI)
        comm_mpi_abort(c, code);
    _exit(code);
}

int hl_comm_rank(const hl_comm *c) { return c ? c->rank : 0; }
int hl_comm_size(const hl_comm *c) { return c ? c->size : 1; }
int hl_comm_local_rank(const hl_comm *c) { return c ? c->local_rank : 0; }
int hl_comm_local_size(const hl_comm *c) { return c ? c->local_size : 1; }
const char *hl_comm_kind(const hl_comm *c) { return c && c->kind == COMM_MPI ? "mpi" : "single"; }

void hl_comm_set_timeout(hl_comm *c, double seconds) { c->timeout = seconds > 0 ? seconds : default_timeout(); }
double hl_comm_timeout(const hl_comm *c) { return c->timeout; }

void hl_comm_get_stats(const hl_comm *c, hl_comm_stats *st) {
    st->seconds = c->stat_seconds;
    st->bytes = c->stat_bytes;
    st->calls = c->stat_calls;
}

/* ---- collectives: one process does nothing; MPI goes to comm_mpi.c ---------------------- */

static hl_status usable(hl_comm *c) {
    if (!c)
        return hl_fail(HL_ERR_ARG, "no communicator");
    if (c->failed)
        return hl_fail(HL_ERR_STATE, "rank %d: an earlier collective operation failed; the run cannot go on", c->rank);
    return HL_OK;
}

#define TIMED(c, bytes, call)                                  \
    do {                                                       \
        double t0_ = comm_now();                               \
        hl_status st_ = (call);                                \
        (c)->stat_seconds += comm_now() - t0_;                 \
        (c)->stat_bytes += (uint64_t)(bytes);                  \
        (c)->stat_calls++;                                     \
        return st_;                                            \
    } while (0)

hl_status hl_comm_allreduce_f32(hl_comm *c, float *buf, size_t n) {
    HL_TRY(usable(c));
    if (c->size == 1 || n == 0)
        return HL_OK;
    TIMED(c, n * sizeof(float), comm_mpi_reduce_det(c, buf, n, 0));
}

hl_status hl_comm_allreduce_f64(hl_comm *c, double *buf, size_t n) {
    HL_TRY(usable(c));
    if (c->size == 1 || n == 0)
        return HL_OK;
    TIMED(c, n * sizeof(double), comm_mpi_reduce_det(c, buf, n, 1));
}

hl_status hl_comm_allreduce_i64(hl_comm *c, int64_t *buf, size_t n) {
    HL_TRY(usable(c));
    if (c->size == 1 || n == 0)
        return HL_OK;
    TIMED(c, n * sizeof(int64_t), comm_mpi_allreduce_i64(c, buf, n, 0));
}

hl_status hl_comm_allreduce_max_i64(hl_comm *c, int64_t *buf, size_t n) {
    HL_TRY(usable(c));
    if (c->size == 1 || n == 0)
        return HL_OK;
    TIMED(c, n * sizeof(int64_t), comm_mpi_allreduce_i64(c, buf, n, 1));
}

hl_status hl_comm_allgather(hl_comm *c, const void *mine, size_t bytes, void *all) {
    HL_TRY(usable(c));
    if (c->size == 1) {
        if (bytes && all != mine)
            memmove(all, mine, bytes);
        return HL_OK;
    }
    TIMED(c, bytes * (size_t)c->size, comm_mpi_allgather(c, mine, bytes, all));
}

hl_status hl_comm_bcast(hl_comm *c, void *buf, size_t bytes, int root) {
    HL_TRY(usable(c));
    if (root < 0 || root >= c->size)
        return hl_fail(HL_ERR_ARG, "broadcast from rank %d of %d", root, c->size);
    if (c->size == 1 || bytes == 0)
        return HL_OK;
    TIMED(c, bytes, comm_mpi_bcast(c, buf, bytes, root));
}

hl_status hl_comm_barrier(hl_comm *c) {
    HL_TRY(usable(c));
    if (c->size == 1)
        return HL_OK;
    TIMED(c, 0, comm_mpi_barrier(c));
}

/* ---- agreement ------------------------------------------------------------------------- */

hl_status hl_comm_check_agree(hl_comm *c, uint64_t value, const char *what) {
    HL_TRY(usable(c));
    if (c->size == 1)
        return HL_OK;
    uint64_t *all = malloc((size_t)c->size * sizeof *all);
    if (!all)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = hl_comm_allgather(c, &value, sizeof value, all);
    if (st) {
        free(all);
        return st;
    }
    int same = 1;
    for (int r = 1; r < c->size; r++)
        same &= all[r] == all[0];
    if (same) {
        free(all);
        return HL_OK;
    }
    /* Group the ranks by value, in order of first appearance: "ranks 0,2 have 0x..; rank 1 has 0x..". */
    char msg[900];
    size_t k = (size_t)snprintf(msg, sizeof msg, "%s differs between ranks:", what);
    unsigned char *done = calloc((size_t)c->size, 1);
    int groups = 0;
    for (int r = 0; r < c->size && k < sizeof msg - 80 && done; r++) {
        if (done[r])
            continue;
        int count = 0;
        for (int q = r; q < c->size; q++)
            count += all[q] == all[r];
        k += (size_t)snprintf(msg + k, sizeof msg - k, "%s rank%s ", groups ? ";" : "", count > 1 ? "s" : "");
        int listed = 0;
        for (int q = r; q < c->size; q++) {
            if (all[q] != all[r])
                continue;
            done[q] = 1;
            if (listed < 16 && k < sizeof msg - 60)
                k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%d", listed ? "," : "", q);
            else if (listed == 16 && k < sizeof msg - 60)
                k += (size_t)snprintf(msg + k, sizeof msg - k, ",...");
            listed++;
        }
        k += (size_t)snprintf(msg + k, sizeof msg - k, " %s %016llx", count > 1 ? "have" : "has",
                              (unsigned long long)all[r]);
        groups++;
    }
    free(done);
    free(all);
    return hl_fail(HL_ERR_NUMERIC,
                   "%s. The ranks no longer hold the same adapter, so their results would not be one run; "
                   "stopped (the last checkpoint is intact). Ranks must run the same hydralora build and "
                   "libraries on the same kind of CPU/GPU",
                   msg);
}

uint64_t hl_checksum64(const void *data, size_t bytes) {
    /* Word-at-a-time multiply-xorshift mixing (splitmix64 finaliser per word). */
    const unsigned char *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= w;
        h *= 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    uint64_t tail = 0;
    for (size_t s = 0; i < bytes; i++, s += 8)
        tail |= (uint64_t)p[i] << s;
    h ^= tail;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

/* ---- GPU ------------------------------------------------------------------------------- */

hl_status hl_comm_device_open(hl_comm *c, int device) {
    HL_TRY(usable(c));
    if (c->nccl)
        return HL_OK;
    return comm_nccl_open(c, device);
}

int hl_comm_device_ready(const hl_comm *c) { return c && c->nccl != NULL; }

hl_status hl_comm_device_allreduce_f32(hl_comm *c, float *dev_buf, size_t n, void *stream) {
    HL_TRY(usable(c));
    if (!c->nccl)
        return hl_fail(HL_ERR_STATE, "the GPU communicator is not open (hl_comm_device_open first)");
    if (n == 0)
        return HL_OK;
    TIMED(c, n * sizeof(float), comm_nccl_allreduce_f32(c, dev_buf, n, stream));
}
