/* Plot histories and state names of a job's status (see train_status.h). */
#include "core/train/status.h"

#include <math.h>
#include <string.h>

void hl_series_init(hl_series *s) {
    s->n = 0;
    s->width = 1;
}

static void bucket_merge(hl_series_bucket *a, const hl_series_bucket *b) {
    double n = (double)a->count + (double)b->count;
    a->mean = (float)(((double)a->mean * a->count + (double)b->mean * b->count) / n);
    a->min = a->min < b->min ? a->min : b->min;
    a->max = a->max > b->max ? a->max : b->max;
    a->last = b->last;
    a->step_last = b->step_last;
    a->count += b->count;
}

void hl_series_add(hl_series *s, int64_t step, float v) {
    if (!isfinite(v))
        return;
    if (s->width < 1)
        s->width = 1;
    if (s->n > 0 && s->b[s->n - 1].count < s->width) {
        hl_series_bucket one = {step, step, v, v, v, v, 1};
        bucket_merge(&s->b[s->n - 1], &one);
        return;
    }
    if (s->n == HL_SERIES_MAX) {
        /* Full: merge neighbours pairwise and double the width. */
        for (int i = 0; i < HL_SERIES_MAX / 2; i++) {
            hl_series_bucket m = s->b[2 * i];
            bucket_merge(&m, &s->b[2 * i + 1]);
            s->b[i] = m;
        }
        s->n = HL_SERIES_MAX / 2;
        s->width *= 2;
        if (s->b[s->n - 1].count < s->width) {
            hl_series_bucket one = {step, step, v, v, v, v, 1};
            bucket_merge(&s->b[s->n - 1], &one);
            return;
        }
    }
    s->b[s->n++] = (hl_series_bucket){step, step, v, v, v, v, 1};
}

const char *hl_job_state_name(hl_job_state s) {
    static const char *const names[] = {"idle", "loading", "running", "paused", "saving", "stopped", "finished",
                                        "failed"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}
