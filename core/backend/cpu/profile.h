/* Phase timers for tuning builds (compile with -DHL_ENGINE_PROFILE): a clock read at each phase
 * boundary adds the time since the previous boundary to that phase's total. Training
 * (core/backend/cpu/llama.c) and decoding (core/backend/cpu/llama_infer.c) keep their own tables,
 * which bench_train and bench_decode print. Off by default: the macros compile to nothing. PRIVATE
 * to the CPU backend. */
#ifndef HL_BACKEND_CPU_PROFILE_H
#define HL_BACKEND_CPU_PROFILE_H

#ifdef HL_ENGINE_PROFILE
#include <time.h>

static inline double hl_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* sec[k] += now - *last; *last = now */
#define HL_PROF_ADD(sec, last, k)                                                                                     \
    do {                                                                                                              \
        double hl_prof_t_ = hl_prof_now();                                                                            \
        (sec)[k] += hl_prof_t_ - (last);                                                                              \
        (last) = hl_prof_t_;                                                                                          \
    } while (0)
#endif

#endif
