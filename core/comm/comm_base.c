/* What the communicator's halves share (comm.c dispatches to comm_mpi.c / comm_nccl.c, and
 * both of them use these): the clock, the reduction scratch, the rank tables' host names, the
 * lost-rank report and the timeout failure that names lost ranks. */
#include "core/comm/comm_private.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

double comm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *hl_comm_host(const hl_comm *c, int rank) {
    if (!c || !c->hosts || rank < 0 || rank >= c->size)
        return "";
    return c->hosts[rank];
}

hl_status comm_scratch(hl_comm *c, size_t bytes, void **out) {
    if (c->scratch_bytes < bytes) {
        void *p = realloc(c->scratch, bytes);
        if (!p)
            return hl_fail(HL_ERR_NOMEM, "out of memory for %zu bytes of reduction buffer", bytes);
        c->scratch = p;
        c->scratch_bytes = bytes;
    }
    *out = c->scratch;
    return HL_OK;
}

/* ---- lost ranks (async-signal-safe) ------------------------------------------------------ */

static size_t put_str(char *buf, size_t n, size_t k, const char *s) {
    while (*s && k + 1 < n)
        buf[k++] = *s++;
    if (n)
        buf[k < n ? k : n - 1] = 0;
    return k;
}

static size_t put_int(char *buf, size_t n, size_t k, long v) {
    char tmp[24];
    int t = 0;
    if (v < 0) {
        k = put_str(buf, n, k, "-");
        v = -v;
    }
    do {
        tmp[t++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && t < 23);
    while (t > 0 && k + 1 < n)
        buf[k++] = tmp[--t];
    if (n)
        buf[k < n ? k : n - 1] = 0;
    return k;
}

int hl_comm_lost_ranks(const hl_comm *c, char *buf, size_t n) {
    if (n)
        buf[0] = 0;
    if (!c || !c->pids || !c->same_host)
        return 0;
    int lost = 0;
    size_t k = 0;
    for (int r = 0; r < c->size; r++) {
        if (r == c->rank || !c->same_host[r] || c->pids[r] <= 0)
            continue;
        int saved = errno;
        int gone = kill(c->pids[r], 0) != 0 && errno == ESRCH;
        errno = saved;
        if (!gone)
            continue;
        if (lost)
            k = put_str(buf, n, k, ", ");
        k = put_str(buf, n, k, "rank ");
        k = put_int(buf, n, k, r);
        k = put_str(buf, n, k, " (pid ");
        k = put_int(buf, n, k, (long)c->pids[r]);
        if (c->hosts && c->hosts[r][0]) {
            k = put_str(buf, n, k, " on ");
            k = put_str(buf, n, k, c->hosts[r]);
        }
        k = put_str(buf, n, k, ")");
        lost++;
    }
    return lost;
}

hl_status comm_fail_timeout(hl_comm *c, const char *what, double waited) {
    c->failed = 1;
    char lost[512];
    int n = hl_comm_lost_ranks(c, lost, sizeof lost);
    if (n > 0)
        return hl_fail(HL_ERR_IO, "rank %d: %s: %s %s gone (no answer for %.0f s)", c->rank, what, lost,
                       n == 1 ? "is" : "are", waited);
    return hl_fail(HL_ERR_IO,
                   "rank %d: %s: the other ranks did not take part for %.0f s (a rank died, hangs, or runs "
                   "on a host that cannot be reached; HL_COMM_TIMEOUT_S sets this limit)",
                   c->rank, what, waited);
}
