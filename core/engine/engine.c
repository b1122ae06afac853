/* The engine: a training job in its own thread, a command queue, published snapshots
 * (see engine.h). The job itself is hl_train_run (core/train/loop.c). */
#include "core/engine/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/train/train.h"
#include "core/engine/version_wait.h"

/* ---- snapshots: one allocation holding the struct and the routing arrays ---- */

typedef struct {
    atomic_int refs;
    hl_snapshot snap;
    /* routing arrays follow */
} snap_block;

static snap_block *snap_from(const hl_snapshot *s) {
    return (snap_block *)((char *)s - offsetof(snap_block, snap));
}

void hl_snapshot_release(const hl_snapshot *s) {
    if (!s)
        return;
    snap_block *b = snap_from(s);
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* Deep copy of a status into a new block (refs = 1). NULL on out-of-memory. */
static snap_block *snap_copy(const hl_snapshot *src) {
    const hl_snapshot_routing *r = &src->routing;
    size_t lmn = (size_t)r->n_layers * r->n_modules * r->n_experts, lm = (size_t)r->n_layers * r->n_modules;
    int H = r->hist_len;
    size_t probe = (size_t)H * r->probe_n * r->n_modules * r->n_experts;
    size_t floats = r->n_layers ? 2 * lmn + lm + (size_t)H * (lmn + lm) + probe : 0;
    size_t bytes = sizeof(snap_block) + (size_t)H * sizeof(int64_t) + floats * sizeof(float);
    snap_block *b = malloc(bytes);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->snap = *src;
    hl_snapshot_routing *d = &b->snap.routing;
    if (r->n_layers && r->weight_mean) {
        int64_t *hs = (int64_t *)(b + 1);
        float *f = (float *)(hs + H);
        memcpy(hs, r->hist_step, (size_t)H * sizeof(int64_t));
        d->hist_step = hs;
        memcpy(f, r->weight_mean, lmn * sizeof(float));
        d->weight_mean = f;
        f += lmn;
        memcpy(f, r->top1_share, lmn * sizeof(float));
        d->top1_share = f;
        f += lmn;
        memcpy(f, r->entropy, lm * sizeof(float));
        d->entropy = f;
        f += lm;
        memcpy(f, r->hist_weight_mean, (size_t)H * lmn * sizeof(float));
        d->hist_weight_mean = f;
        f += (size_t)H * lmn;
        memcpy(f, r->hist_entropy, (size_t)H * lm * sizeof(float));
        d->hist_entropy = f;
        f += (size_t)H * lm;
        if (probe && r->probe_load)
            memcpy(f, r->probe_load, probe * sizeof(float));
        d->probe_load = probe && r->probe_load ? f : NULL;
        if (!d->probe_load)
            d->probe_n = 0;
    } else {
        memset(d, 0, sizeof *d);
    }
    return b;
}

const hl_snapshot *hl_snapshot_dup(const hl_snapshot *src) {
    snap_block *b = snap_copy(src);
    return b ? &b->snap : NULL;
}

const hl_snapshot *hl_snapshot_ref(const hl_snapshot *s) {
    if (s)
        atomic_fetch_add(&snap_from(s)->refs, 1);
    return s;
}

/* ---- the engine ---- */

struct hl_engine {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* version changed or the job ended */
    pthread_cond_t wake;    /* commands for the (paused) job */
    pthread_t thread;
    int thread_live;        /* a thread was started and not yet joined */
    int running;            /* the job has not ended */
    snap_block *cur;        /* published snapshot */
    uint64_t version;
    /* command state */
    int paused;
    unsigned pending;       /* HL_TRAIN_CMD_* */
    /* job parameters */
    hl_run_config cfg;
    hl_start_mode mode;
    hl_faults faults; /* tests only (hl_engine_set_faults) */
    struct hl_comm *comm; /* data-parallel processes (hl_engine_set_comm), or NULL */
    hl_status result;
    char result_msg[512];
};

static void publish_locked(hl_engine *e, snap_block *nb) {
    snap_block *old = e->cur;
    e->version++;
    nb->snap.version = e->version;
    e->cur = nb;
    pthread_cond_broadcast(&e->changed);
    if (old)
        hl_snapshot_release(&old->snap);
}

static void hook_publish(void *ctx, const hl_snapshot *st) {
    hl_engine *e = ctx;
    snap_block *nb = snap_copy(st);
    if (!nb)
        return; /* keep showing the previous snapshot */
    pthread_mutex_lock(&e->mu);
    if (e->paused && nb->snap.state == HL_JOB_RUNNING)
        nb->snap.state = HL_JOB_PAUSED;
    publish_locked(e, nb);
    pthread_mutex_unlock(&e->mu);
}

/* Re-publish the current snapshot with another state (pause/resume feedback). */
static void republish_state_locked(hl_engine *e, hl_job_state state) {
    if (!e->cur)
        return;
    snap_block *nb = snap_copy(&e->cur->snap);
    if (!nb)
        return;
    nb->snap.state = state;
    publish_locked(e, nb);
}

static unsigned hook_poll(void *ctx, const hl_snapshot *st) {
    hl_engine *e = ctx;
    (void)st;
    pthread_mutex_lock(&e->mu);
    unsigned still_paused = 0;
    if (e->paused && !(e->pending & HL_TRAIN_CMD_STOP)) {
        republish_state_locked(e, HL_JOB_PAUSED);
        /* "checkpoint now" wakes a paused job too: it is written at once, not at resume */
        while (e->paused && !(e->pending & (HL_TRAIN_CMD_STOP | HL_TRAIN_CMD_SAVE)))
            pthread_cond_wait(&e->wake, &e->mu);
        if (e->paused && !(e->pending & HL_TRAIN_CMD_STOP))
            still_paused = HL_TRAIN_CMD_PAUSED;
        else
            republish_state_locked(e, HL_JOB_RUNNING);
    }
    unsigned cmds = e->pending | still_paused;
    e->pending = 0;
    pthread_mutex_unlock(&e->mu);
    return cmds;
}

static void *job_main(void *arg) {
    hl_engine *e = arg;
    hl_train_hooks hooks = {.ctx = e, .poll = hook_poll, .publish = hook_publish, .faults = &e->faults,
                            .comm = e->comm};
    hl_status st = hl_train_run(&e->cfg, e->mode, &hooks);
    pthread_mutex_lock(&e->mu);
    e->result = st;
    snprintf(e->result_msg, sizeof e->result_msg, "%s", st ? hl_last_error() : "");
    e->running = 0;
    e->paused = 0;
    pthread_cond_broadcast(&e->changed);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

hl_status hl_engine_create(hl_engine **out) {
    *out = NULL;
    hl_engine *e = calloc(1, sizeof *e);
    if (!e)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->changed, &ca);
    pthread_cond_init(&e->wake, &ca);
    pthread_condattr_destroy(&ca);
    hl_snapshot idle;
    memset(&idle, 0, sizeof idle);
    idle.state = HL_JOB_IDLE;
    idle.loss = idle.loss_smooth = idle.eval_loss = idle.eval_loss_first = idle.lr = idle.grad_norm = idle.padding_share = NAN;
    idle.eta_s = NAN;
    idle.eval_step = -1;
    idle.last_checkpoint_step = -1;
    hl_series_init(&idle.loss_hist);
    hl_series_init(&idle.eval_hist);
    hl_series_init(&idle.lr_hist);
    hl_series_init(&idle.grad_norm_hist);
    hl_series_init(&idle.tokens_per_s_hist);
    e->cur = snap_copy(&idle);
    if (!e->cur) {
        free(e);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    *out = e;
    return HL_OK;
}

int hl_engine_join(hl_engine *e, int timeout_ms) {
    pthread_mutex_lock(&e->mu);
    if (e->running) {
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
        while (e->running) {
            if (timeout_ms < 0)
                pthread_cond_wait(&e->changed, &e->mu);
            else if (pthread_cond_timedwait(&e->changed, &e->mu, &dl) == ETIMEDOUT)
                break;
        }
    }
    int done = !e->running;
    int join = done && e->thread_live;
    if (join)
        e->thread_live = 0;
    pthread_mutex_unlock(&e->mu);
    if (join)
        pthread_join(e->thread, NULL);
    return done;
}

void hl_engine_free(hl_engine *e) {
    if (!e)
        return;
    hl_engine_stop(e);
    hl_engine_join(e, -1);
    if (e->cur)
        hl_snapshot_release(&e->cur->snap);
    pthread_cond_destroy(&e->changed);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

hl_status hl_engine_load_run_config(const char *run_dir, hl_run_config *cfg) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    hl_config_defaults(cfg);
    cfg->packing = 0; /* a run's config.json holds every field; one without packing predates it: padded */
    hl_status st = hl_config_load_file(cfg, path);
    if (st)
        return hl_fail_context(st, "%s is not a run directory", run_dir);
    if (strlen(run_dir) >= sizeof cfg->out_dir)
        return hl_fail(HL_ERR_RANGE, "run directory path too long");
    snprintf(cfg->out_dir, sizeof cfg->out_dir, "%s", run_dir);
    return HL_OK;
}

void hl_engine_set_comm(hl_engine *e, struct hl_comm *comm) {
    pthread_mutex_lock(&e->mu);
    e->comm = comm;
    pthread_mutex_unlock(&e->mu);
}

void hl_engine_set_faults(hl_engine *e, const hl_faults *faults) {
    pthread_mutex_lock(&e->mu);
    if (faults)
        e->faults = *faults;
    else
        memset(&e->faults, 0, sizeof e->faults);
    pthread_mutex_unlock(&e->mu);
}

hl_status hl_engine_start(hl_engine *e, const hl_run_config *cfg, hl_start_mode mode) {
    HL_TRY(hl_config_validate(cfg));
    hl_engine_join(e, 0); /* reap a finished thread */
    pthread_mutex_lock(&e->mu);
    if (e->running || e->thread_live) {
        pthread_mutex_unlock(&e->mu);
        return hl_fail(HL_ERR_STATE, "a job is already running; stop it first");
    }
    e->cfg = *cfg;
    e->mode = mode;
    e->paused = 0;
    e->pending = 0;
    e->result = HL_OK;
    e->result_msg[0] = 0;
    e->running = 1;
    /* The first snapshot of the job says "loading" at once. */
    snap_block *nb = snap_copy(&e->cur->snap);
    if (nb) {
        nb->snap.state = HL_JOB_LOADING;
        nb->snap.cfg = *cfg;
        nb->snap.error[0] = 0;
        publish_locked(e, nb);
    }
    int rc = pthread_create(&e->thread, NULL, job_main, e);
    if (rc) {
        e->running = 0;
        pthread_mutex_unlock(&e->mu);
        return hl_fail(HL_ERR_INTERNAL, "cannot start the job thread: %s", strerror(rc));
    }
    e->thread_live = 1;
    pthread_mutex_unlock(&e->mu);
    return HL_OK;
}

static hl_status command(hl_engine *e, int pause, int resume, unsigned bits) {
    pthread_mutex_lock(&e->mu);
    if (!e->running) {
        pthread_mutex_unlock(&e->mu);
        return hl_fail(HL_ERR_STATE, "no job is running");
    }
    if (pause)
        e->paused = 1;
    if (resume)
        e->paused = 0;
    /* Stop ends a pause: the job finishes the step and checkpoints (a stop consumed by one
     * poll must not leave the next poll waiting for a resume that will not come) */
    if (bits & HL_TRAIN_CMD_STOP)
        e->paused = 0;
    e->pending |= bits;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->mu);
    return HL_OK;
}

hl_status hl_engine_pause(hl_engine *e) { return command(e, 1, 0, 0); }
hl_status hl_engine_resume(hl_engine *e) { return command(e, 0, 1, 0); }
hl_status hl_engine_stop(hl_engine *e) { return command(e, 0, 0, HL_TRAIN_CMD_STOP); }
hl_status hl_engine_save_now(hl_engine *e) { return command(e, 0, 0, HL_TRAIN_CMD_SAVE); }

const hl_snapshot *hl_engine_snapshot(hl_engine *e) {
    pthread_mutex_lock(&e->mu);
    snap_block *b = e->cur;
    atomic_fetch_add(&b->refs, 1);
    pthread_mutex_unlock(&e->mu);
    return &b->snap;
}

uint64_t hl_engine_wait_change(hl_engine *e, uint64_t since, int timeout_ms) {
    return hl_wait_version_change(&e->mu, &e->changed, &e->version, since, timeout_ms);
}

hl_status hl_engine_result(hl_engine *e) {
    pthread_mutex_lock(&e->mu);
    hl_status st = e->result;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", e->result_msg);
    pthread_mutex_unlock(&e->mu);
    if (st)
        hl_fail(st, "%s", msg);
    return st;
}
