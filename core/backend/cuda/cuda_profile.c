/* Phase timers of a CUDA session (cuda_profile.h): an event on the stream at every change of
 * phase, summed per phase after each synchronising call. Off unless asked for. */
#include <stdlib.h>
#include <string.h>

#include "core/backend/cuda/cuda_profile.h"
#include "core/backend/cuda/cuda_session.h"

void cu_prof_mark(cu_session *cs, int cat) {
    cu_prof *p = cs->prof;
    if (!p || p->cur == cat || p->n >= CU_PROF_EVENTS)
        return;
    if (cudaEventRecord(p->ev[p->n], cs->st) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    p->cat[p->n++] = cat;
    p->cur = cat;
}

void cu_prof_flush(cu_session *cs) {
    cu_prof *p = cs->prof;
    if (!p || p->n < 1)
        return;
    if (cudaEventRecord(p->ev[p->n], cs->st) != cudaSuccess || cudaEventSynchronize(p->ev[p->n]) != cudaSuccess) {
        cudaGetLastError();
        p->n = 0;
        p->cur = -1;
        return;
    }
    for (int i = 0; i < p->n; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]) == cudaSuccess)
            p->ms[p->cat[i]] += ms;
    }
    cudaGetLastError();
    p->n = 0;
    p->cur = -1;
}

static void prof_free(cu_prof *p) {
    if (!p)
        return;
    for (int i = 0; i <= CU_PROF_EVENTS; i++)
        if (p->ev[i])
            cudaEventDestroy(p->ev[i]);
    free(p);
}

static void prof_create(cu_session *cs) {
    if (cs->prof)
        return;
    cu_prof *p = calloc(1, sizeof *p);
    if (!p)
        return;
    for (int i = 0; i <= CU_PROF_EVENTS; i++)
        if (cudaEventCreate(&p->ev[i]) != cudaSuccess) {
            cudaGetLastError();
            prof_free(p);
            return;
        }
    p->cur = -1;
    cs->prof = p;
}

const char *const hl_cuda_phase_names[CU_P_COUNT] = {"base matmuls fwd", "base matmuls bwd", "attention fwd",
                                                     "attention bwd",    "adapters fwd",     "adapters bwd",
                                                     "norms/rope/swiglu/embed", "lm_head + loss", "optimizer"};

int hl_cuda_profile_enable(struct hl_session *s, int on) {
    cu_session *cs = s->impl;
    if (!cs)
        return 0;
    if (on) {
        prof_create(cs);
        return cs->prof != NULL;
    }
    prof_free(cs->prof);
    cs->prof = NULL;
    return 1;
}

int hl_cuda_profile(const hl_session *s, const char *const **names, double *ms, int reset) {
    cu_session *cs = s->impl;
    if (!cs || !cs->prof)
        return 0;
    *names = hl_cuda_phase_names;
    for (int i = 0; i < CU_P_COUNT; i++) {
        ms[i] = cs->prof->ms[i];
        if (reset)
            cs->prof->ms[i] = 0;
    }
    return CU_P_COUNT;
}

void cu_prof_from_env(cu_session *cs) {
    const char *e = getenv("HL_CUDA_PROFILE");
    if (e && *e && strcmp(e, "0"))
        prof_create(cs);
}

void cu_prof_free(cu_session *cs) {
    prof_free(cs->prof);
    cs->prof = NULL;
}
