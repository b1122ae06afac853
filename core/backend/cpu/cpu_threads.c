/* The CPU backend's thread count, applied per calling thread (see cpu.h). */
#include <omp.h>
#include <stdlib.h>

#include "core/backend/cpu/cpu.h"
#include "core/backend/cpu/gemm.h"

int cpu_threads(const hl_backend *be) {
    if (be->threads > 0)
        return be->threads;
    const char *e = getenv("OMP_NUM_THREADS"); /* the usual way to pin a process's threads */
    int n = e && *e ? atoi(e) : 0;
    return n > 0 ? n : omp_get_num_procs();
}

void cpu_enter(const hl_backend *be) {
    hl_set_threads(cpu_threads(be)); /* cheap: a pthread_once and an OpenMP ICV store */
}
