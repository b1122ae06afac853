/* Waiting for a published version number to move: the engine and the run follower both publish
 * snapshots under a mutex, bump a version and broadcast a condition variable (created with
 * CLOCK_MONOTONIC). */
#ifndef HL_VERSION_WAIT_H
#define HL_VERSION_WAIT_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Blocks until *version != since or timeout_ms passes (< 0: no timeout); returns the version
 * then. Takes and releases mu. */
static inline uint64_t hl_wait_version_change(pthread_mutex_t *mu, pthread_cond_t *changed, const uint64_t *version,
                                              uint64_t since, int timeout_ms) {
    pthread_mutex_lock(mu);
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    while (*version == since) {
        if (timeout_ms < 0)
            pthread_cond_wait(changed, mu);
        else if (pthread_cond_timedwait(changed, mu, &dl) == ETIMEDOUT)
            break;
    }
    uint64_t v = *version;
    pthread_mutex_unlock(mu);
    return v;
}

#endif
