/* Phase timers of a CUDA session, for benchmarks (private to the backend and bench/).
 * Active when HL_CUDA_PROFILE=1 was in the environment when the session was created, or after
 * hl_cuda_profile_enable: then an event is recorded on the stream at every change of phase (a small cost) and the times are
 * summed per phase after each call. */
#ifndef HL_CUDA_PROFILE_H
#define HL_CUDA_PROFILE_H

struct hl_session;

/* Start (on = 1: events from now on) or stop the timers of a session; returns 1 on success. */
int hl_cuda_profile_enable(struct hl_session *s, int on);

/* Milliseconds per phase since the last reset (ms[] holds at least 16); returns the number of
 * phases and their names, or 0 when the session is not profiled. */
int hl_cuda_profile(const struct hl_session *s, const char *const **names, double *ms, int reset);

/* The same for a CUDA decoder (its weights' session; HL_CUDA_PROFILE=1 when it was created).
 * Profiled decoders launch eagerly (no decode-step graphs). */
struct hl_decoder;
int hl_cuda_decoder_profile(const struct hl_decoder *d, const char *const **names, double *ms, int reset);

#endif
