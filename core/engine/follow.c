/* The run follower (see follow.h): metrics.jsonl lines into an hl_snapshot. */
#include "core/engine/follow.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/adapter/adapter.h"
#include "core/train/checkpoint.h"
#include "core/engine/version_wait.h"

#define PREFIX_BYTES 96             /* start of the file, to notice a file restarted in place */
#define READ_MAX ((size_t)64 << 20) /* bytes read per poll (a huge file is taken in a few polls) */
#define STALE_MIN_S 300.0           /* quiet this long (and 20 steps' time): say so once */

struct hl_follow {
    char run_dir[4096];
    char metrics_path[4200];
    int interval_ms;

    pthread_mutex_t mu;      /* guards cur, version, stop */
    pthread_cond_t changed;  /* version changed */
    pthread_cond_t wake;     /* close() wakes the thread */
    pthread_t thread;
    int thread_live, stop;
    const hl_snapshot *cur;
    uint64_t version;

    pthread_mutex_t poll_mu; /* one poll at a time (thread or hl_follow_poll_now) */
    hl_snapshot *s;          /* working snapshot (arrays below) */
    int dirty;
    /* file position */
    off_t offset;
    ino_t ino;
    dev_t dev;
    int have_file;
    char prefix[PREFIX_BYTES];
    size_t prefix_len;
    char *buf;
    size_t cap;
    double last_growth;      /* monotonic time the file last grew */
    int stale_said;
    double step_s_ema;
    double tps_ema;
    /* routing arrays in snapshot layout */
    int L, M, N;
    float *rw, *rt, *re;
    int64_t *h_step;
    float *h_w, *h_e;
    int h_len;
};

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the working snapshot --------------------------------------------------------------- */

static void snapshot_reset(hl_follow *f) {
    hl_snapshot *s = f->s;
    hl_run_config cfg = s->cfg;
    uint64_t seq = s->last_event_seq;
    hl_engine_event ev[HL_ENGINE_EVENTS];
    memcpy(ev, s->events, sizeof ev);
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    /* events survive a re-read (the reader tracks sequence numbers) */
    memcpy(s->events, ev, sizeof ev);
    s->last_event_seq = seq;
    snprintf(s->run_dir, sizeof s->run_dir, "%s", f->run_dir);
    s->state = HL_JOB_LOADING;
    s->loss = s->loss_smooth = s->eval_loss = s->eval_loss_first = s->lr = s->grad_norm = NAN;
    s->tokens_per_s = s->eta_s = NAN;
    s->eval_step = -1;
    s->last_checkpoint_step = -1;
    hl_series_init(&s->loss_hist);
    hl_series_init(&s->eval_hist);
    hl_series_init(&s->lr_hist);
    hl_series_init(&s->grad_norm_hist);
    hl_series_init(&s->tokens_per_s_hist);
    f->h_len = 0;
    f->step_s_ema = 0;
    f->tps_ema = 0;
    f->stale_said = 0;
    if (f->L) {
        s->routing.n_layers = f->L;
        s->routing.n_modules = f->M;
        s->routing.n_experts = f->N;
        s->routing.weight_mean = f->rw;
        s->routing.top1_share = f->rt;
        s->routing.entropy = f->re;
        s->routing.hist_step = f->h_step;
        s->routing.hist_weight_mean = f->h_w;
        s->routing.hist_entropy = f->h_e;
        s->routing.step = -1;
    }
    f->dirty = 1;
}

static void event_add(hl_follow *f, int64_t step, int is_error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void event_add(hl_follow *f, int64_t step, int is_error, const char *fmt, ...) {
    hl_snapshot *s = f->s;
    hl_engine_event *ev = &s->events[s->last_event_seq % HL_ENGINE_EVENTS];
    ev->seq = ++s->last_event_seq;
    ev->step = step;
    ev->is_error = is_error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->text, sizeof ev->text, fmt, ap);
    va_end(ap);
    f->dirty = 1;
}

/* ---- JSON helpers ------------------------------------------------------------------------ */

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int64_t jint(const cJSON *o, const char *key, int64_t def) {
    double v = jnum(o, key);
    if (!isfinite(v) || v < -9e18 || v > 9e18)
        return def; /* out of int64 range: not a value we wrote */
    return (int64_t)v;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* ---- routing ------------------------------------------------------------------------------ */

static int routing_alloc(hl_follow *f, int L, int M, int N) {
    if (f->L == L && f->M == M && f->N == N)
        return 0;
    size_t lmn = (size_t)L * M * N, lm = (size_t)L * M;
    float *rw = calloc(lmn, sizeof(float)), *rt = calloc(lmn, sizeof(float)), *re = calloc(lm, sizeof(float));
    int64_t *hs = calloc(HL_ROUTING_HIST, sizeof(int64_t));
    float *hw = calloc(lmn * HL_ROUTING_HIST, sizeof(float)), *he = calloc(lm * HL_ROUTING_HIST, sizeof(float));
    if (!rw || !rt || !re || !hs || !hw || !he) {
        free(rw), free(rt), free(re), free(hs), free(hw), free(he);
        return -1;
    }
    free(f->rw), free(f->rt), free(f->re), free(f->h_step), free(f->h_w), free(f->h_e);
    f->rw = rw, f->rt = rt, f->re = re, f->h_step = hs, f->h_w = hw, f->h_e = he;
    f->L = L, f->M = M, f->N = N;
    f->h_len = 0;
    hl_snapshot_routing *r = &f->s->routing;
    memset(r, 0, sizeof *r);
    r->n_layers = L, r->n_modules = M, r->n_experts = N;
    r->weight_mean = rw, r->top1_share = rt, r->entropy = re;
    r->hist_step = hs, r->hist_weight_mean = hw, r->hist_entropy = he;
    r->step = -1;
    return 0;
}

static int target_index(const char *name) {
    for (int t = 0; t < HL_TARGET_COUNT; t++)
        if (!strcmp(hl_target_name(t), name))
            return t;
    return -1;
}

/* arr[L][M][N] (or [L][M] when N == 0) into out; 0 if the shape is as expected. */
static int read_nested(const cJSON *arr, int L, int M, int N, float *out) {
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != L)
        return -1;
    size_t k = 0;
    for (const cJSON *l = arr->child; l; l = l->next) {
        if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) != M)
            return -1;
        for (const cJSON *m = l->child; m; m = m->next) {
            if (N == 0) {
                if (!cJSON_IsNumber(m))
                    return -1;
                out[k++] = (float)m->valuedouble;
                continue;
            }
            if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != N)
                return -1;
            for (const cJSON *e = m->child; e; e = e->next) {
                if (!cJSON_IsNumber(e))
                    return -1;
                out[k++] = (float)e->valuedouble;
            }
        }
    }
    return 0;
}

static void take_routing(hl_follow *f, const cJSON *ro, int64_t step) {
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(ro, "modules");
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(ro, "weight_mean");
    int N = (int)jint(ro, "n_experts", 0);
    int M = cJSON_IsArray(mods) ? cJSON_GetArraySize(mods) : 0;
    int L = cJSON_IsArray(wm) ? cJSON_GetArraySize(wm) : 0;
    if (N < 1 || N > 64 || M < 1 || M > HL_TARGET_COUNT || L < 1 || L > 4096)
        return;
    int targets[HL_TARGET_COUNT];
    int m = 0;
    for (const cJSON *x = mods->child; x; x = x->next, m++) {
        targets[m] = cJSON_IsString(x) ? target_index(x->valuestring) : -1;
        if (targets[m] < 0)
            return;
    }
    if (routing_alloc(f, L, M, N))
        return;
    size_t lmn = (size_t)L * M * N, lm = (size_t)L * M;
    float *w = malloc((2 * lmn + lm) * sizeof(float));
    if (!w)
        return;
    if (read_nested(wm, L, M, N, w) || read_nested(cJSON_GetObjectItemCaseSensitive(ro, "top1_share"), L, M, N, w + lmn) ||
        read_nested(cJSON_GetObjectItemCaseSensitive(ro, "entropy"), L, M, 0, w + 2 * lmn)) {
        free(w);
        return;
    }
    memcpy(f->rw, w, lmn * sizeof(float));
    memcpy(f->rt, w + lmn, lmn * sizeof(float));
    memcpy(f->re, w + 2 * lmn, lm * sizeof(float));
    free(w);
    hl_snapshot_routing *r = &f->s->routing;
    memcpy(r->module_target, targets, sizeof(int) * (size_t)M);
    r->step = step;
    r->source = strcmp(jstr(ro, "source"), "train") ? 1 : 0;
    if (f->h_len == HL_ROUTING_HIST) {
        memmove(f->h_step, f->h_step + 1, (HL_ROUTING_HIST - 1) * sizeof *f->h_step);
        memmove(f->h_w, f->h_w + lmn, (HL_ROUTING_HIST - 1) * lmn * sizeof(float));
        memmove(f->h_e, f->h_e + lm, (HL_ROUTING_HIST - 1) * lm * sizeof(float));
        f->h_len--;
    }
    f->h_step[f->h_len] = step;
    memcpy(f->h_w + (size_t)f->h_len * lmn, f->rw, lmn * sizeof(float));
    memcpy(f->h_e + (size_t)f->h_len * lm, f->re, lm * sizeof(float));
    f->h_len++;
    r->hist_len = f->h_len;
}

/* ---- one line ------------------------------------------------------------------------------ */

static void take_line(hl_follow *f, const char *line, size_t len) {
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!o)
        return; /* not JSON (a foreign line): skip, as the trainer's own reader does */
    hl_snapshot *s = f->s;
    const char *ev = jstr(o, "event");
    int64_t step = jint(o, "step", s->step);
    if (!strcmp(ev, "step")) {
        s->state = HL_JOB_RUNNING;
        s->step = step;
        s->epoch = jnum(o, "epoch");
        s->loss = jnum(o, "loss");
        s->loss_smooth = jnum(o, "loss_smooth");
        s->lr = jnum(o, "lr");
        s->grad_norm = jnum(o, "grad_norm");
        s->tokens_seen = jint(o, "tokens_seen", s->tokens_seen);
        double tps = jnum(o, "tokens_per_s"), dt = jnum(o, "step_s");
        if (isfinite(tps)) {
            f->tps_ema = f->tps_ema > 0 ? 0.9 * f->tps_ema + 0.1 * tps : tps;
            s->tokens_per_s = f->tps_ema;
        }
        if (isfinite(dt))
            f->step_s_ema = f->step_s_ema > 0 ? 0.9 * f->step_s_ema + 0.1 * dt : dt;
        s->elapsed_s = jnum(o, "elapsed_s");
        s->eta_s = jnum(o, "eta_s");
        s->mem_bytes = jint(o, "mem_bytes", s->mem_bytes);
        s->ranks = (int)jint(o, "ranks", 1); /* data parallel: ranks and time in reductions */
        s->comm_s = s->ranks > 1 ? jnum(o, "comm_s") : 0;
        hl_series_add(&s->loss_hist, step, (float)s->loss);
        hl_series_add(&s->lr_hist, step, (float)s->lr);
        hl_series_add(&s->grad_norm_hist, step, (float)s->grad_norm);
        hl_series_add(&s->tokens_per_s_hist, step, (float)tps);
    } else if (!strcmp(ev, "eval")) {
        double el = jnum(o, "eval_loss");
        if (isfinite(el)) {
            s->eval_loss = el;
            s->eval_step = step;
            if (step == 0)
                s->eval_loss_first = el;
            hl_series_add(&s->eval_hist, step, (float)el);
        }
        const cJSON *ro = cJSON_GetObjectItemCaseSensitive(o, "routing");
        if (cJSON_IsObject(ro))
            take_routing(f, ro, step);
        /* consecutive evals update one event, as the engine does */
        hl_engine_event *last = &s->events[(s->last_event_seq ? s->last_event_seq - 1 : 0) % HL_ENGINE_EVENTS];
        if (s->last_event_seq && !strncmp(last->text, "eval loss ", 10)) {
            last->step = step;
            snprintf(last->text, sizeof last->text, "eval loss %.4f at step %lld", el, (long long)step);
        } else {
            event_add(f, step, 0, "eval loss %.4f at step %lld", el, (long long)step);
        }
    } else if (!strcmp(ev, "start")) {
        s->state = HL_JOB_RUNNING;
        s->error[0] = 0;
        s->step = step;
        s->total_steps = jint(o, "total_steps", s->total_steps);
        s->n_train = jint(o, "n_train", s->n_train);
        s->n_val = jint(o, "n_val", s->n_val);
        s->trainable_params = jint(o, "trainable_params", s->trainable_params);
        s->mem_planned = jint(o, "mem_planned", s->mem_planned);
        int64_t ranks = jint(o, "ranks", 1);
        if (ranks > 1)
            event_add(f, step, 0, "training on %lld ranks from step %lld", (long long)ranks, (long long)step);
        else
            event_add(f, step, 0, "training from step %lld (%lld training, %lld validation examples)", (long long)step,
                      (long long)s->n_train, (long long)s->n_val);
    } else if (!strcmp(ev, "checkpoint")) {
        s->last_checkpoint_step = step;
        event_add(f, step, 0, "checkpoint step-%lld saved", (long long)step);
    } else if (!strcmp(ev, "resume")) {
        s->state = HL_JOB_RUNNING;
        s->last_checkpoint_step = step;
        event_add(f, step, 0, "resumed from checkpoint step-%lld", (long long)step);
    } else if (!strcmp(ev, "stop")) {
        s->state = HL_JOB_STOPPED;
        s->eta_s = NAN;
        event_add(f, step, 0, "stopped at step %lld (%s)", (long long)step, jstr(o, "text"));
    } else if (!strcmp(ev, "finish")) {
        s->state = HL_JOB_FINISHED;
        s->eta_s = 0;
        event_add(f, step, 0, "finished: %lld steps, adapter exported to %s", (long long)step, jstr(o, "text"));
    } else if (!strcmp(ev, "error")) {
        s->state = HL_JOB_FAILED;
        snprintf(s->error, sizeof s->error, "%s", jstr(o, "text"));
        event_add(f, step, 1, "%s", s->error);
    }
    cJSON_Delete(o);
    f->dirty = 1;
}

/* ---- reading the files ------------------------------------------------------------------------ */

static void load_config(hl_follow *f) {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", f->run_dir);
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    if (hl_config_load_file(&cfg, p) == HL_OK) {
        snprintf(cfg.out_dir, sizeof cfg.out_dir, "%s", f->run_dir);
        f->s->cfg = cfg;
    }
}

/* Start over: the file is new (renamed over), shorter than what we read, or restarted in place. */
static void restart(hl_follow *f, const struct stat *st) {
    f->offset = 0;
    f->ino = st->st_ino;
    f->dev = st->st_dev;
    f->prefix_len = 0;
    snapshot_reset(f);
    load_config(f);
}

static hl_status poll_files(hl_follow *f) {
    struct stat st;
    if (stat(f->metrics_path, &st) != 0) {
        if (f->have_file) {
            /* removed (an overwrite starting again): wait for the new one */
            f->have_file = 0;
            f->offset = 0;
            f->prefix_len = 0;
        }
        return HL_OK;
    }
    FILE *in = fopen(f->metrics_path, "rb");
    if (!in)
        return HL_OK; /* raced with a rename: next poll */
    if (fstat(fileno(in), &st) != 0) {
        fclose(in);
        return HL_OK;
    }
    if (!f->have_file || st.st_ino != f->ino || st.st_dev != f->dev || st.st_size < f->offset) {
        if (f->have_file)
            event_add(f, f->s->step, 0, "metrics.jsonl was rewritten (the run resumed or restarted): read again");
        restart(f, &st);
        f->have_file = 1;
    } else if (f->prefix_len > 0) {
        char now[PREFIX_BYTES];
        size_t k = fread(now, 1, f->prefix_len, in);
        if (k != f->prefix_len || memcmp(now, f->prefix, k)) {
            event_add(f, f->s->step, 0, "metrics.jsonl was restarted: read again");
            restart(f, &st);
        }
    }
    if (st.st_size == f->offset) {
        fclose(in);
        return HL_OK;
    }
    size_t want = (size_t)(st.st_size - f->offset);
    if (want > READ_MAX)
        want = READ_MAX;
    if (want + 1 > f->cap) {
        char *nb = realloc(f->buf, want + 1);
        if (!nb) {
            fclose(in);
            return hl_fail(HL_ERR_NOMEM, "out of memory reading %s", f->metrics_path);
        }
        f->buf = nb;
        f->cap = want + 1;
    }
    size_t got = 0;
    if (fseeko(in, f->offset, SEEK_SET) == 0)
        got = fread(f->buf, 1, want, in);
    fclose(in);
    if (f->offset == 0 && got > 0) {
        f->prefix_len = got < PREFIX_BYTES ? got : PREFIX_BYTES;
        memcpy(f->prefix, f->buf, f->prefix_len);
    }
    /* complete lines only; a partly written last line waits for its newline */
    size_t start = 0;
    for (size_t i = 0; i < got; i++) {
        if (f->buf[i] != '\n')
            continue;
        if (i > start)
            take_line(f, f->buf + start, i - start);
        start = i + 1;
    }
    if (start > 0) {
        f->offset += (off_t)start;
        f->last_growth = mono_now();
        f->stale_said = 0;
    } else if (got == want && want == READ_MAX) {
        /* one line longer than READ_MAX: not ours to follow; skip it */
        f->offset += (off_t)got;
    }
    return HL_OK;
}

static void check_stale(hl_follow *f) {
    hl_snapshot *s = f->s;
    if (s->state != HL_JOB_RUNNING || f->stale_said || f->last_growth <= 0)
        return;
    double quiet = mono_now() - f->last_growth;
    double limit = 20 * f->step_s_ema > STALE_MIN_S ? 20 * f->step_s_ema : STALE_MIN_S;
    if (quiet > limit) {
        f->stale_said = 1;
        event_add(f, s->step, 1, "no new metrics for %.0f min: the run may have ended without a last line "
                  "(killed?) or its file system is not updating", quiet / 60);
    }
}

static void last_checkpoint_from_dir(hl_follow *f) {
    if (f->s->last_checkpoint_step >= 0)
        return;
    int64_t *steps = NULL;
    int n = 0;
    if (hl_checkpoint_list(f->run_dir, &steps, &n) == HL_OK && n > 0) {
        f->s->last_checkpoint_step = steps[n - 1];
        f->dirty = 1;
    }
    free(steps);
}

static void publish(hl_follow *f) {
    if (!f->dirty)
        return;
    const hl_snapshot *nb = hl_snapshot_dup(f->s);
    if (!nb)
        return; /* keep the previous one */
    f->dirty = 0;
    pthread_mutex_lock(&f->mu);
    const hl_snapshot *old = f->cur;
    f->version++;
    ((hl_snapshot *)nb)->version = f->version;
    f->cur = nb;
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->mu);
    hl_snapshot_release(old);
}

hl_status hl_follow_poll_now(hl_follow *f) {
    pthread_mutex_lock(&f->poll_mu);
    hl_status st = poll_files(f);
    last_checkpoint_from_dir(f);
    check_stale(f);
    publish(f);
    pthread_mutex_unlock(&f->poll_mu);
    return st;
}

static void *follow_main(void *arg) {
    hl_follow *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        pthread_mutex_unlock(&f->mu);
        hl_follow_poll_now(f);
        pthread_mutex_lock(&f->mu);
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += f->interval_ms / 1000;
        dl.tv_nsec += (long)(f->interval_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        while (!f->stop && pthread_cond_timedwait(&f->wake, &f->mu, &dl) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ---- public -------------------------------------------------------------------------------------- */

hl_status hl_follow_open(hl_follow **out, const char *run_dir, int interval_ms) {
    *out = NULL;
    if (!run_dir || !*run_dir)
        return hl_fail(HL_ERR_ARG, "no run directory given");
    if (strlen(run_dir) >= sizeof((hl_follow *)0)->run_dir)
        return hl_fail(HL_ERR_RANGE, "run directory path too long");
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", run_dir);
    struct stat sb;
    if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return hl_fail(HL_ERR_NOT_FOUND, "%s: no such directory (give the run directory that hydralora train "
                       "writes, e.g. runs/NAME)", run_dir);
    if (stat(cpath, &sb) != 0)
        return hl_fail(HL_ERR_NOT_FOUND, "%s is not a run directory: it has no config.json (a run writes it when "
                       "it starts; give the directory of hydralora train's --out or runs/NAME)", run_dir);
    hl_follow *f = calloc(1, sizeof *f);
    if (!f || !(f->s = calloc(1, sizeof *f->s))) {
        free(f);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    snprintf(f->run_dir, sizeof f->run_dir, "%s", run_dir);
    size_t L = strlen(f->run_dir);
    while (L > 1 && f->run_dir[L - 1] == '/')
        f->run_dir[--L] = 0;
    snprintf(f->metrics_path, sizeof f->metrics_path, "%s/metrics.jsonl", f->run_dir);
    const char *env = getenv("HL_FOLLOW_INTERVAL_MS");
    if (env && atoi(env) > 0)
        interval_ms = atoi(env);
    f->interval_ms = interval_ms > 0 ? interval_ms : 500;
    pthread_mutex_init(&f->mu, NULL);
    pthread_mutex_init(&f->poll_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->changed, &ca);
    pthread_cond_init(&f->wake, &ca);
    pthread_condattr_destroy(&ca);
    hl_config_defaults(&f->s->cfg);
    snapshot_reset(f);
    load_config(f);
    event_add(f, 0, 0, "following %s (read-only)", f->run_dir);
    hl_status st = hl_follow_poll_now(f);
    if (st == HL_OK && !f->cur)
        st = hl_fail(HL_ERR_NOMEM, "out of memory");
    if (st == HL_OK && pthread_create(&f->thread, NULL, follow_main, f) != 0)
        st = hl_fail(HL_ERR_INTERNAL, "cannot start the follower thread");
    if (st) {
        hl_follow_close(f);
        return st;
    }
    f->thread_live = 1;
    *out = f;
    return HL_OK;
}

void hl_follow_close(hl_follow *f) {
    if (!f)
        return;
    if (f->thread_live) {
        pthread_mutex_lock(&f->mu);
        f->stop = 1;
        pthread_cond_broadcast(&f->wake);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    hl_snapshot_release(f->cur);
    pthread_cond_destroy(&f->changed);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->mu);
    pthread_mutex_destroy(&f->poll_mu);
    free(f->rw), free(f->rt), free(f->re), free(f->h_step), free(f->h_w), free(f->h_e);
    free(f->buf);
    free(f->s);
    free(f);
}

const char *hl_follow_run_dir(const hl_follow *f) { return f->run_dir; }

const hl_snapshot *hl_follow_snapshot(hl_follow *f) {
    pthread_mutex_lock(&f->mu);
    const hl_snapshot *s = hl_snapshot_ref(f->cur);
    pthread_mutex_unlock(&f->mu);
    return s;
}

uint64_t hl_follow_wait_change(hl_follow *f, uint64_t since, int timeout_ms) {
    return hl_wait_version_change(&f->mu, &f->changed, &f->version, since, timeout_ms);
}
