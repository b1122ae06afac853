/* hl_train_run: one training job from loading to the exported adapter (see train.h). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base/jsonout.h"
#include "core/comm/comm.h"
#include "core/comm/shard.h"
#include "core/train/checkpoint.h"
#include "core/train/export.h"
#include "core/adapter/optim.h"
#include "core/train/private.h"
#include "core/train/routing.h"

typedef struct {
    hl_trainer *t;
    const hl_train_hooks *hooks;
    hl_snapshot *s; /* working status, published through hooks->publish */
    char run_dir[HL_CONFIG_PATH_MAX];
    FILE *metrics;
    char metrics_path[HL_CONFIG_PATH_MAX + 32];

    /* routing statistics in snapshot layout */
    int n_modules, module_target[HL_TARGET_COUNT];
    int L, N;
    float *rw, *rt, *re;      /* current: [L*M*N], [L*M*N], [L*M] */
    int64_t *h_step;          /* [HL_ROUTING_HIST] */
    float *h_w, *h_e;         /* [HIST*L*M*N], [HIST*L*M] */
    int h_len;
    hl_routing_stats eval_rs; /* eval-pass accumulator */
    hl_routing_stats train_rs; /* the last step's statistics, copied from the session */
    int eval_rs_ok, train_rs_ok;
    int has_router;
    /* probe sets (run config probe_data): per-file routing statistics at every eval */
    hl_routing_report probe_rep;
    int probe_ok, n_probe_shown;
    int *probe_group;          /* [probe.n]: file of each probe example */
    float *h_probe;            /* [HIST][n_probe_shown][n_modules][N]: layer-mean load per probe */
    hl_adapters host;          /* host copies of params and moments, only while a checkpoint or the
                                  export is written or a checkpoint is read (host_open/host_close) */
    int host_ok;

    hl_data_cursor cur;
    int cur_ok;
    hl_optim_config ocfg;
    double step_time_ema, tps_ema;
    unsigned pending;
    hl_faults faults; /* injected by tests (zero: none) */
    int64_t last_save_step, last_eval_step;
    double t_start, elapsed_before;
    double paused_s;   /* time spent waiting in the poll hook (paused) since t_start: not training */
    int woke_paused;   /* the last poll returned HL_TRAIN_CMD_PAUSED */
    int stop_in_loading;
    int64_t *ckpt_steps; /* complete checkpoints found at the start (ascending) */
    int n_ckpt;
    char aside[HL_CONFIG_PATH_MAX + 32]; /* the run being replaced, until the new one starts */

    /* data parallel (hooks->comm): rank of K; rank 0 alone writes the run directory */
    hl_comm *comm;
    int rank, K;
    float *agree_buf;  /* [n_params] host copy of the parameters for the checksum (K > 1 only) */
    double *red;       /* [red_n] one step's values summed over ranks (losses, tokens, routing) */
    size_t red_n;
    int nccl_said;     /* the event saying GPU gradients go through NCCL was written */
} job;

static int is_root(const job *j) { return j->rank == 0; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return 0;
    long long size = 0, res = 0;
    int k = fscanf(f, "%lld %lld", &size, &res);
    fclose(f);
    return k == 2 ? res * (int64_t)sysconf(_SC_PAGESIZE) : 0;
}

static void publish(job *j) {
    j->s->mem_bytes = rss_bytes();
    j->s->version++;
    if (j->hooks && j->hooks->publish)
        j->hooks->publish(j->hooks->ctx, j->s);
}

static unsigned poll_cmds(job *j) {
    j->woke_paused = 0;
    if (j->hooks && j->hooks->poll) {
        double t0 = now_s();
        unsigned c = j->hooks->poll(j->hooks->ctx, j->s);
        j->paused_s += now_s() - t0; /* a pause must not count as step time (ETA, tokens/s) */
        j->woke_paused = (c & HL_TRAIN_CMD_PAUSED) != 0;
        j->pending |= c & ~(unsigned)HL_TRAIN_CMD_PAUSED;
    }
    return j->pending;
}

static void job_event(job *j, int is_error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void job_event(job *j, int is_error, const char *fmt, ...) {
    hl_snapshot *s = j->s;
    hl_engine_event *ev = &s->events[s->last_event_seq % HL_ENGINE_EVENTS];
    ev->seq = ++s->last_event_seq;
    ev->step = s->step;
    ev->is_error = is_error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->text, sizeof ev->text, fmt, ap);
    va_end(ap);
}

/* A poll where no checkpoint can be written (loading, between the micro-batches of a step):
 * a "checkpoint now" that woke a paused job stays pending for the end of the step, the user
 * is told so, and the job goes back to waiting. */
static unsigned poll_cmds_no_save(job *j) {
    unsigned cmd = poll_cmds(j);
    while (j->woke_paused && !(cmd & HL_TRAIN_CMD_STOP)) {
        job_event(j, 0, "paused %s: the checkpoint is written %s (p resumes)",
                  j->s->state == HL_JOB_LOADING ? "while loading" : "in the middle of a step",
                  j->s->state == HL_JOB_LOADING ? "after the first step" : "when this step completes");
        publish(j);
        cmd = poll_cmds(j);
    }
    return cmd;
}

/* ---- data parallel: what the ranks agree on ---- */

/* After a phase that may fail on some ranks only (loading, a checkpoint written by rank 0, the
 * export): every rank learns whether all succeeded. A rank that failed keeps its own error; the
 * others fail with the first failing rank's message, marked as coming from elsewhere (that
 * rank reports it), so that no rank waits for a collective the failed one never calls. */
static hl_status agree_phase(job *j, hl_status mine) {
    if (j->K <= 1)
        return mine;
    struct {
        int32_t code;
        char msg[476];
    } me, *all = calloc((size_t)j->K, sizeof *all);
    if (!all)
        return mine ? mine : hl_fail(HL_ERR_NOMEM, "out of memory");
    memset(&me, 0, sizeof me);
    me.code = (int32_t)mine;
    if (mine)
        snprintf(me.msg, sizeof me.msg, "%s", hl_last_error()[0] ? hl_last_error() : hl_status_message(mine));
    char keep[sizeof me.msg];
    snprintf(keep, sizeof keep, "%s", me.msg);
    hl_status st = hl_comm_allgather(j->comm, &me, sizeof me, all);
    if (st) {
        free(all);
        return mine ? hl_fail(mine, "%s", keep) : st;
    }
    int bad = -1;
    for (int r = 0; r < j->K && bad < 0; r++)
        if (all[r].code)
            bad = r;
    if (bad < 0 || mine) {
        free(all);
        return mine ? hl_fail(mine, "%s", keep) : HL_OK;
    }
    j->s->error_elsewhere = 1;
    st = hl_fail((hl_status)all[bad].code, "rank %d: %s", bad, all[bad].msg);
    free(all);
    return st;
}

/* Stop/checkpoint requests: any rank's request applies to all (each rank's signal handler or
 * a launcher's signal reaches the ranks at different moments). */
static hl_status agree_cmds(job *j) {
    if (j->K <= 1)
        return HL_OK;
    int64_t v[2] = {(j->pending & HL_TRAIN_CMD_STOP) != 0, (j->pending & HL_TRAIN_CMD_SAVE) != 0};
    HL_TRY(hl_comm_allreduce_max_i64(j->comm, v, 2));
    j->pending = (v[0] ? HL_TRAIN_CMD_STOP : 0u) | (v[1] ? HL_TRAIN_CMD_SAVE : 0u);
    return HL_OK;
}

/* The ranks must hold the same adapter (they take the same steps from the same sums): compare
 * a checksum of the parameters (and the step) and stop with a clear error if they differ. */
static hl_status agree_check(job *j) {
    if (j->K <= 1)
        return HL_OK;
    const hl_adapters *lay = hl_session_layout(j->t->sess);
    HL_TRY(hl_session_read_slab(j->t->sess, HL_SLAB_PARAMS, 0, lay->n_params, j->agree_buf));
    char what[96];
    snprintf(what, sizeof what, "the step count (run directory as each rank sees it)");
    hl_status st = hl_comm_check_agree(j->comm, (uint64_t)j->s->step, what);
    if (st)
        return hl_fail(st, "%s. Every rank reads the checkpoint to resume from the run directory: keep it on a "
                       "file system that all ranks see (the same path on every host)", hl_last_error());
    snprintf(what, sizeof what, "the adapter checksum at step %lld", (long long)j->s->step);
    return hl_comm_check_agree(j->comm, hl_checksum64(j->agree_buf, lay->n_params * sizeof(float)), what);
}

/* ---- metrics.jsonl ---- */

/* Write a finite double or null. */
static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void metrics_event(job *j, const char *event, const char *text) {
    if (!j->metrics)
        return;
    fprintf(j->metrics, "{\"event\":\"%s\",\"step\":%lld,\"time\":%lld,\"text\":", event, (long long)j->s->step,
            (long long)time(NULL));
    hl_json_write_string(j->metrics, text);
    fputs("}\n", j->metrics);
    fflush(j->metrics);
}

/* Parse the "step" value of a metrics line (-1 if absent); and the "event". */
static int64_t line_step(const char *line, char *event, size_t esize) {
    const char *e = strstr(line, "\"event\":\"");
    event[0] = 0;
    if (e) {
        e += 9;
        size_t k = 0;
        while (e[k] && e[k] != '"' && k + 1 < esize) {
            event[k] = e[k];
            k++;
        }
        event[k] = 0;
    }
    const char *p = strstr(line, "\"step\":");
    return p ? strtoll(p + 7, NULL, 10) : -1;
}

static double line_num(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    p += strlen(pat);
    if (!strncmp(p, "null", 4))
        return NAN;
    return strtod(p, NULL);
}

/* On resume: keep the lines of steps <= keep_step (complete lines only), rebuild the
 * plot history from them, rewrite the file atomically, and open it for appending. */
static hl_status metrics_reopen(job *j, int64_t keep_step, int fresh) {
    hl_snapshot *s = j->s;
    if (!is_root(j))
        return HL_OK; /* rank 0 alone writes the run directory */
    snprintf(j->metrics_path, sizeof j->metrics_path, "%s/metrics.jsonl", j->run_dir);
    if (fresh) {
        j->metrics = fopen(j->metrics_path, "w");
        if (!j->metrics)
            return hl_fail(HL_ERR_IO, "cannot create %s: %s", j->metrics_path, strerror(errno));
        return HL_OK;
    }
    char tmp[HL_CONFIG_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp", j->metrics_path);
    FILE *in = fopen(j->metrics_path, "r");
    FILE *out = fopen(tmp, "w");
    if (!out) {
        if (in)
            fclose(in);
        return hl_fail(HL_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (in && (n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] != '\n')
            break; /* a torn last line (killed mid-write) */
        char ev[32];
        int64_t st = line_step(line, ev, sizeof ev);
        if (st > keep_step)
            continue;
        if (!strcmp(ev, "step")) {
            hl_series_add(&s->loss_hist, st, (float)line_num(line, "loss"));
            hl_series_add(&s->lr_hist, st, (float)line_num(line, "lr"));
            hl_series_add(&s->grad_norm_hist, st, (float)line_num(line, "grad_norm"));
            hl_series_add(&s->tokens_per_s_hist, st, (float)line_num(line, "tokens_per_s"));
        } else if (!strcmp(ev, "eval")) {
            double el = line_num(line, "eval_loss");
            hl_series_add(&s->eval_hist, st, (float)el);
            if (st == 0 && isfinite(el))
                s->eval_loss_first = el;
            if (isfinite(el)) {
                s->eval_loss = el;
                s->eval_step = st;
            }
        }
        fputs(line, out);
    }
    free(line);
    if (in)
        fclose(in);
    int bad = fflush(out) != 0 || fsync(fileno(out)) != 0;
    bad |= fclose(out) != 0;
    if (bad || rename(tmp, j->metrics_path) != 0) {
        unlink(tmp);
        return hl_fail(HL_ERR_IO, "cannot rewrite %s: %s", j->metrics_path, strerror(errno));
    }
    j->metrics = fopen(j->metrics_path, "a");
    if (!j->metrics)
        return hl_fail(HL_ERR_IO, "cannot open %s: %s", j->metrics_path, strerror(errno));
    return HL_OK;
}

/* ---- routing statistics in snapshot layout ---- */

static hl_status routing_setup(job *j) {
    hl_trainer *t = j->t;
    j->n_modules = 0;
    for (int tg = 0; tg < HL_TARGET_COUNT; tg++)
        if (t->cfg.targets & (1u << tg))
            j->module_target[j->n_modules++] = tg;
    const hl_adapters *lay = hl_session_layout(t->sess);
    j->L = t->model.cfg.n_layers;
    j->N = lay->N;
    j->has_router = lay->has_router;
    size_t lmn = (size_t)j->L * j->n_modules * j->N, lm = (size_t)j->L * j->n_modules;
    j->rw = calloc(lmn, sizeof(float));
    j->rt = calloc(lmn, sizeof(float));
    j->re = calloc(lm, sizeof(float));
    j->h_step = calloc(HL_ROUTING_HIST, sizeof(int64_t));
    j->h_w = calloc(lmn * HL_ROUTING_HIST, sizeof(float));
    j->h_e = calloc(lm * HL_ROUTING_HIST, sizeof(float));
    if (!j->rw || !j->rt || !j->re || !j->h_step || !j->h_w || !j->h_e)
        return hl_fail(HL_ERR_NOMEM, "out of memory for routing statistics");
    if (j->has_router) {
        HL_TRY(hl_routing_stats_init(&j->eval_rs, j->L, j->N));
        j->eval_rs_ok = 1;
        HL_TRY(hl_routing_stats_init(&j->train_rs, j->L, j->N));
        j->train_rs_ok = 1;
    }
    hl_snapshot_routing *r = &j->s->routing;
    r->n_layers = j->L;
    r->n_modules = j->n_modules;
    r->n_experts = j->N;
    memcpy(r->module_target, j->module_target, sizeof r->module_target);
    r->weight_mean = j->rw;
    r->top1_share = j->rt;
    r->entropy = j->re;
    r->hist_step = j->h_step;
    r->hist_weight_mean = j->h_w;
    r->hist_entropy = j->h_e;
    r->hist_len = 0;
    r->step = -1;
    if (j->has_router && t->probe_count > 0 && t->probe.n > 0) {
        HL_TRY(hl_routing_report_init(&j->probe_rep, lay, t->probe_count));
        j->probe_ok = 1;
        for (int p = 0; p < t->probe_count; p++)
            snprintf(j->probe_rep.src[p].file, sizeof j->probe_rep.src[p].file, "%s",
                     t->data.files[t->probe_first + p].path);
        j->probe_group = malloc((size_t)t->probe.n * sizeof *j->probe_group);
        j->n_probe_shown = t->probe_count < HL_ROUTING_PROBES ? t->probe_count : HL_ROUTING_PROBES;
        size_t pmn = (size_t)j->n_probe_shown * j->n_modules * j->N;
        j->h_probe = malloc(pmn * HL_ROUTING_HIST * sizeof(float));
        if (!j->probe_group || !j->h_probe)
            return hl_fail(HL_ERR_NOMEM, "out of memory for the probe statistics");
        for (size_t i = 0; i < pmn * HL_ROUTING_HIST; i++)
            j->h_probe[i] = NAN;
        for (int64_t i = 0; i < t->probe.n; i++)
            j->probe_group[i] = (int)(t->probe_rec[i] >> 32) - t->probe_first;
        r->probe_n = j->n_probe_shown;
        for (int p = 0; p < j->n_probe_shown; p++) {
            const char *path = j->probe_rep.src[p].file, *base = strrchr(path, '/');
            snprintf(r->probe_name[p], sizeof r->probe_name[p], "%.63s", base ? base + 1 : path);
        }
        r->probe_load = j->h_probe;
    }
    /* Without a router every token mixes the heads equally (uniform) or has one head (LoRA). */
    for (size_t i = 0; i < lmn; i++)
        j->rw[i] = 1.0f / (float)j->N;
    for (size_t i = 0; i < lm; i++)
        j->re[i] = (float)log((double)j->N);
    return HL_OK;
}

static void routing_free(job *j) {
    free(j->rw);
    free(j->rt);
    free(j->re);
    free(j->h_step);
    free(j->h_w);
    free(j->h_e);
    if (j->eval_rs_ok)
        hl_routing_stats_free(&j->eval_rs);
    if (j->train_rs_ok)
        hl_routing_stats_free(&j->train_rs);
    if (j->probe_ok)
        hl_routing_report_free(&j->probe_rep);
    free(j->probe_group);
    free(j->h_probe);
}

/* Copy statistics into the snapshot arrays (no-op without a router). */
static void routing_take(job *j, const hl_routing_stats *st, int source) {
    if (!st || !j->has_router)
        return;
    for (int l = 0; l < j->L; l++)
        for (int m = 0; m < j->n_modules; m++) {
            int tg = j->module_target[m];
            for (int e = 0; e < j->N; e++) {
                size_t k = ((size_t)l * j->n_modules + m) * j->N + e;
                j->rw[k] = (float)hl_routing_mean_weight(st, l, tg, e);
                j->rt[k] = (float)hl_routing_top1_share(st, l, tg, e);
            }
            j->re[(size_t)l * j->n_modules + m] = (float)hl_routing_mean_entropy(st, l, tg);
        }
    j->s->routing.step = j->s->step;
    j->s->routing.source = source;
}

static void routing_push_hist(job *j) {
    size_t lmn = (size_t)j->L * j->n_modules * j->N, lm = (size_t)j->L * j->n_modules;
    if (j->h_len == HL_ROUTING_HIST) {
        if (j->h_probe) {
            size_t pmn = (size_t)j->n_probe_shown * j->n_modules * j->N;
            memmove(j->h_probe, j->h_probe + pmn, (HL_ROUTING_HIST - 1) * pmn * sizeof(float));
        }
        memmove(j->h_step, j->h_step + 1, (HL_ROUTING_HIST - 1) * sizeof *j->h_step);
        memmove(j->h_w, j->h_w + lmn, (HL_ROUTING_HIST - 1) * lmn * sizeof(float));
        memmove(j->h_e, j->h_e + lm, (HL_ROUTING_HIST - 1) * lm * sizeof(float));
        j->h_len--;
    }
    j->h_step[j->h_len] = j->s->step;
    memcpy(j->h_w + (size_t)j->h_len * lmn, j->rw, lmn * sizeof(float));
    memcpy(j->h_e + (size_t)j->h_len * lm, j->re, lm * sizeof(float));
    j->h_len++;
    j->s->routing.hist_len = j->h_len;
}

static void routing_json(job *j, FILE *f) {
    fprintf(f, ",\"routing\":{\"source\":\"%s\",\"modules\":[", j->s->routing.source ? "val" : "train");
    for (int m = 0; m < j->n_modules; m++)
        fprintf(f, "%s\"%s\"", m ? "," : "", hl_target_name(j->module_target[m]));
    fprintf(f, "],\"n_experts\":%d", j->N);
    const char *names[2] = {"weight_mean", "top1_share"};
    const float *arrs[2] = {j->rw, j->rt};
    for (int a = 0; a < 2; a++) {
        fprintf(f, ",\"%s\":[", names[a]);
        for (int l = 0; l < j->L; l++) {
            fputs(l ? ",[" : "[", f);
            for (int m = 0; m < j->n_modules; m++) {
                fputs(m ? ",[" : "[", f);
                for (int e = 0; e < j->N; e++)
                    fprintf(f, "%s%.6g", e ? "," : "", arrs[a][((size_t)l * j->n_modules + m) * j->N + e]);
                fputc(']', f);
            }
            fputc(']', f);
        }
        fputc(']', f);
    }
    fputs(",\"entropy\":[", f);
    for (int l = 0; l < j->L; l++) {
        fputs(l ? ",[" : "[", f);
        for (int m = 0; m < j->n_modules; m++)
            fprintf(f, "%s%.6g", m ? "," : "", j->re[(size_t)l * j->n_modules + m]);
        fputc(']', f);
    }
    fputs("]}", f);
}

/* ---- eval and save ---- */

/* The probe sets, source by source, on the training session (no dropout, no gradients): the
 * newest history entry gets their layer-mean loads, metrics.jsonl a "probe" event in full. */
static hl_status do_probe(job *j) {
    hl_trainer *t = j->t;
    hl_routing_report *rep = &j->probe_rep;
    double t0 = now_s();
    HL_TRY(hl_routing_eval_groups(t->sess, &t->mb, t->packing ? &t->pk : NULL, &t->probe, j->probe_group, rep->n_sources, rep->src, NULL, NULL));
    if (j->h_len > 0) {
        size_t pmn = (size_t)j->n_probe_shown * j->n_modules * j->N;
        float *row = j->h_probe + (size_t)(j->h_len - 1) * pmn;
        for (int p = 0; p < j->n_probe_shown; p++)
            for (int m = 0; m < j->n_modules; m++)
                for (int e = 0; e < j->N; e++)
                    row[((size_t)p * j->n_modules + m) * j->N + e] =
                        (float)hl_routing_layer_mean(rep, &rep->src[p].stats, m, e);
    }
    if (j->metrics) {
        fprintf(j->metrics, "{\"event\":\"probe\",\"step\":%lld,\"seconds\":%.3f,\"sources\":[",
                (long long)j->s->step, now_s() - t0);
        for (int p = 0; p < rep->n_sources; p++) {
            char *js = hl_routing_source_json(rep, &rep->src[p]);
            if (!js)
                return hl_fail(HL_ERR_NOMEM, "out of memory");
            fprintf(j->metrics, "%s%s", p ? "," : "", js);
            free(js);
        }
        fputs("]}\n", j->metrics);
        fflush(j->metrics);
    }
    return HL_OK;
}

static hl_status do_eval(job *j) {
    hl_trainer *t = j->t;
    hl_snapshot *s = j->s;
    if (t->val.n == 0) {
        if (!j->probe_ok)
            return HL_OK;
        routing_push_hist(j); /* no validation set: the probes still get their history entry */
        return do_probe(j);
    }
    if (j->eval_rs_ok)
        hl_routing_stats_reset(&j->eval_rs);
    double loss = NAN;
    double t0 = now_s();
    HL_TRY(hl_trainer_eval(t, &loss, NULL, j->eval_rs_ok ? &j->eval_rs : NULL));
    j->last_eval_step = s->step;
    s->eval_loss = loss;
    s->eval_step = s->step;
    if (s->step == 0)
        s->eval_loss_first = loss;
    hl_series_add(&s->eval_hist, s->step, (float)loss);
    if (j->eval_rs_ok) {
        routing_take(j, &j->eval_rs, 1);
        routing_push_hist(j);
    }
    if (j->probe_ok)
        HL_TRY(do_probe(j));
    if (j->metrics) {
        fprintf(j->metrics, "{\"event\":\"eval\",\"step\":%lld,\"eval_loss\":", (long long)s->step);
        json_num(j->metrics, loss);
        fprintf(j->metrics, ",\"n_val\":%lld,\"targets\":%lld,\"seconds\":%.3f", (long long)t->val.n,
                (long long)t->val.n_targets, now_s() - t0);
        if (j->eval_rs_ok)
            routing_json(j, j->metrics);
        fputs("}\n", j->metrics);
        fflush(j->metrics);
    }
    /* Consecutive evals update one event in place, so that on a small model evaluating every
     * few steps they do not push checkpoints and warnings out of the short event ring. */
    hl_engine_event *last = &s->events[(s->last_event_seq ? s->last_event_seq - 1 : 0) % HL_ENGINE_EVENTS];
    if (s->last_event_seq && !strncmp(last->text, "eval loss ", 10)) {
        last->step = s->step;
        snprintf(last->text, sizeof last->text, "eval loss %.4f at step %lld", loss, (long long)s->step);
    } else {
        job_event(j, 0, "eval loss %.4f at step %lld", loss, (long long)s->step);
    }
    return HL_OK;
}

static void fill_ckpt_state(job *j, hl_ckpt_state *cs) {
    memset(cs, 0, sizeof *cs);
    cs->step = j->s->step;
    cs->total_steps = j->s->total_steps;
    cs->epoch = j->cur.epoch;
    cs->pos = j->cur.pos;
    cs->consumed = j->cur.consumed;
    cs->data_rng = j->cur.epoch_rng;
    const hl_adapters *lay = hl_session_layout(j->t->sess);
    cs->seed = (uint64_t)j->t->cfg.seed;
    cs->dropout_key = lay->dropout_key;
    cs->dropout_step = hl_session_dropout_step(j->t->sess);
    cs->n_params = (int64_t)lay->n_params;
    cs->tokens_seen = j->s->tokens_seen;
    cs->loss = j->s->loss;
    cs->elapsed_s = j->s->elapsed_s;
}

/* Host slabs in the session's layout, for the time a checkpoint or the export is written or a
 * checkpoint read (they would double the adapter memory if kept). */
static hl_status host_open(job *j) {
    hl_trainer *t = j->t;
    HL_TRY(hl_adapters_create(&j->host, &t->model.cfg, &t->acfg, (uint64_t)t->cfg.seed));
    j->host_ok = 1;
    hl_adapters_release(&j->host, HL_ADAPTER_GRADS);
    return HL_OK;
}

static void host_close(job *j) {
    if (j->host_ok)
        hl_adapters_free(&j->host);
    j->host_ok = 0;
}

/* Host copies of the session's parameters (and moments) into j->host, for a checkpoint or
 * the export: nothing outside the backend reads its memory. */
static hl_status host_take(job *j, int moments) {
    hl_session *s = j->t->sess;
    if (!j->host_ok)
        HL_TRY(host_open(j));
    size_t n = j->host.n_params;
    HL_TRY(hl_session_read_slab(s, HL_SLAB_PARAMS, 0, n, j->host.params));
    if (moments) {
        HL_TRY(hl_session_read_slab(s, HL_SLAB_ADAM_M, 0, n, j->host.m));
        HL_TRY(hl_session_read_slab(s, HL_SLAB_ADAM_V, 0, n, j->host.v));
    }
    return HL_OK;
}

/* The other way, on resume. */
static hl_status host_give(job *j) {
    hl_session *s = j->t->sess;
    size_t n = j->host.n_params;
    HL_TRY(hl_session_write_slab(s, HL_SLAB_PARAMS, 0, n, j->host.params));
    HL_TRY(hl_session_write_slab(s, HL_SLAB_ADAM_M, 0, n, j->host.m));
    HL_TRY(hl_session_write_slab(s, HL_SLAB_ADAM_V, 0, n, j->host.v));
    hl_session_set_dropout_step(s, j->host.dropout_step);
    return HL_OK;
}

static hl_status do_save(job *j) {
    hl_snapshot *s = j->s;
    if (j->last_save_step == s->step)
        return HL_OK;
    hl_job_state prev = s->state;
    s->state = HL_JOB_SAVING;
    publish(j);
    hl_ckpt_state cs;
    fill_ckpt_state(j, &cs);
    char path[HL_CONFIG_PATH_MAX + 64] = "";
    hl_status st = HL_OK;
    if (is_root(j)) { /* the other ranks hold the same adapter and state */
        st = host_take(j, 1);
        if (st == HL_OK)
            st = hl_checkpoint_save_faults(j->run_dir, &j->host, &cs, &j->t->cfg, &j->faults, path, sizeof path);
        host_close(j);
    }
    st = agree_phase(j, st); /* every rank learns whether rank 0 wrote it */
    s->state = prev;
    if (st) {
        char msg[700];
        if (s->last_checkpoint_step >= 0)
            snprintf(msg, sizeof msg, "checkpoint at step %lld not written (%s); the previous checkpoint step-%lld is "
                     "intact", (long long)s->step, hl_last_error(), (long long)s->last_checkpoint_step);
        else
            snprintf(msg, sizeof msg, "checkpoint at step %lld not written (%s); there is no earlier checkpoint",
                     (long long)s->step, hl_last_error());
        return hl_fail(st, "%s", msg);
    }
    /* The metrics up to here must survive as long as the checkpoint does. */
    if (j->metrics) {
        fflush(j->metrics);
        fsync(fileno(j->metrics));
    }
    j->last_save_step = s->step;
    s->last_checkpoint_step = s->step;
    metrics_event(j, "checkpoint", path);
    job_event(j, 0, "checkpoint step-%lld saved", (long long)s->step);
    hl_status pr = is_root(j) ? hl_checkpoint_prune(j->run_dir, j->t->cfg.keep_last, s->step) : HL_OK;
    if (pr)
        job_event(j, 1, "could not prune old checkpoints: %s", hl_last_error());
    publish(j);
    return HL_OK;
}

/* ---- one optimizer step ---- */

/* Learning rate of the update with 0-based index `step`: linear warmup, then the schedule
 * (transformers' get_{cosine,linear,constant}_schedule_with_warmup). */
static float lr_at(const job *j, int64_t step) {
    const hl_optim_config *o = &j->ocfg;
    switch (j->t->cfg.schedule) {
    case HL_SCHED_COSINE:
        return hl_lr_at(o, step);
    case HL_SCHED_LINEAR:
        if (step < o->warmup_steps)
            return (float)((double)o->lr * (double)step / (double)(o->warmup_steps > 1 ? o->warmup_steps : 1));
        {
            double rest = (double)(o->total_steps - step);
            double span = (double)(o->total_steps - o->warmup_steps);
            double f = rest / (span > 1 ? span : 1);
            return (float)((double)o->lr * (f > 0 ? f : 0));
        }
    case HL_SCHED_CONSTANT:
        if (step < o->warmup_steps)
            return (float)((double)o->lr * (double)step / (double)(o->warmup_steps > 1 ? o->warmup_steps : 1));
        return o->lr;
    }
    return o->lr;
}

static hl_status do_step(job *j) {
    hl_trainer *t = j->t;
    hl_snapshot *s = j->s;
    const hl_run_config *cfg = &t->cfg;
    double t0 = now_s(), paused0 = j->paused_s;
    HL_TRY(hl_session_zero_grad(t->sess));
    if (j->has_router)
        HL_TRY(hl_session_routing_reset(t->sess, HL_STATS_TRAIN));
    int64_t which[4096];
    int B = cfg->micro_batch, G = cfg->grad_accum;
    /* This rank's block of the step's micro-batches (all of them when alone): every rank walks
     * the cursor over the whole step (packing included: it places every micro-batch's examples
     * to know where the cursor stops) and sets the dropout counter as one process would. */
    int first = 0, count = G;
    hl_shard_microbatches(G, j->K, j->rank, &first, &count);
    uint64_t d0 = hl_session_dropout_step(t->sess);
    hl_comm_stats c0 = {0};
    if (j->comm)
        hl_comm_get_stats(j->comm, &c0);
    /* red: [G] micro-batch losses (0 where another rank computes), real tokens, tokens computed
     * (rows x columns, padding included), then routing */
    memset(j->red, 0, j->red_n * sizeof *j->red);
    for (int a = 0; a < G; a++) {
        int mine = a >= first && a < first + count;
        if (t->packing) { /* whole examples in the cursor's order; the cursor stops after the last one placed */
            HL_TRY(hl_packed_next(&t->pk, &t->train, &j->cur));
        } else {
            for (int b = 0; b < B; b++)
                which[b] = hl_cursor_next(&j->cur);
            if (mine)
                HL_TRY(hl_microbatch_fill(&t->mb, &t->train, which, B));
        }
        if (!mine)
            continue;
        if (a == first)
            hl_session_set_dropout_step(t->sess, d0 + (uint64_t)first);
        float l = 0;
        int64_t nt = 0;
        hl_batch batch = trainer_batch(t);
        HL_TRY(hl_session_train_microbatch(t->sess, &batch, 1.0f / (float)G, &l, &nt));
        j->red[a] = l;
        j->red[G] += (double)(t->packing ? t->pk.n_tokens : t->mb.n_tokens);
        j->red[G + 1] += (double)batch.B * batch.T;
        if (a + 1 < first + count)
            poll_cmds_no_save(j); /* may block while paused */
    }
    hl_session_set_dropout_step(t->sess, d0 + (uint64_t)G);
    /* Gradients summed over the ranks through the backend's hook (no-op alone); the losses,
     * token counts and routing statistics in one more reduction. */
    HL_TRY(hl_session_reduce_grads(t->sess, j->comm));
    if (!j->nccl_said && j->comm && hl_comm_device_ready(j->comm)) {
        j->nccl_said = 1;
        job_event(j, 0, "GPU gradients are summed through NCCL over %d rank%s", j->K, j->K == 1 ? "" : "s");
    }
    if (j->train_rs_ok)
        HL_TRY(hl_session_routing(t->sess, HL_STATS_TRAIN, &j->train_rs));
    if (j->K > 1) {
        size_t np = (size_t)j->L * HL_TARGET_COUNT, nn = np * (size_t)j->N;
        double *r = j->red + G + 2;
        if (j->train_rs_ok) { /* (counts travel as doubles: exact below 2^53) */
            for (size_t i = 0; i < np; i++)
                r[i] = (double)j->train_rs.tokens[i], r[np + i] = j->train_rs.entropy_sum[i];
            for (size_t i = 0; i < nn; i++)
                r[2 * np + i] = j->train_rs.weight_sum[i], r[2 * np + nn + i] = (double)j->train_rs.top1[i];
        }
        HL_TRY(hl_comm_allreduce_f64(j->comm, j->red, j->red_n));
        if (j->train_rs_ok) {
            for (size_t i = 0; i < np; i++)
                j->train_rs.tokens[i] = (int64_t)r[i], j->train_rs.entropy_sum[i] = r[np + i];
            for (size_t i = 0; i < nn; i++)
                j->train_rs.weight_sum[i] = r[2 * np + i], j->train_rs.top1[i] = (int64_t)r[2 * np + nn + i];
        }
    }
    /* the step loss as one process adds it: micro-batch losses in order a = 0..G-1 */
    double loss_sum = 0;
    for (int a = 0; a < G; a++)
        loss_sum += (double)(float)j->red[a];
    int64_t tokens = (int64_t)j->red[G], computed = (int64_t)j->red[G + 1];
    double loss = loss_sum / G;
    if (j->comm) {
        hl_comm_stats c1;
        hl_comm_get_stats(j->comm, &c1);
        s->comm_s = c1.seconds - c0.seconds;
    }
    int64_t k = s->step + 1; /* the step being taken, 1-based */
    if (j->faults.nan_loss_step > 0 && j->faults.nan_loss_step == k)
        loss = NAN;
    if (!isfinite(loss)) {
        if (s->last_checkpoint_step >= 0)
            return hl_fail(HL_ERR_NUMERIC, "loss is %s at step %lld; training stopped. The last good checkpoint "
                           "is step-%lld (resume from it with a lower lr)", isnan(loss) ? "nan" : "inf",
                           (long long)k, (long long)s->last_checkpoint_step);
        return hl_fail(HL_ERR_NUMERIC, "loss is %s at step %lld; training stopped (no checkpoint was written "
                       "yet; lower the lr and start again)", isnan(loss) ? "nan" : "inf", (long long)k);
    }
    float lr = lr_at(j, s->step);
    double gnorm = 0;
    hl_status st = hl_session_optim_step(t->sess, k, lr, &j->ocfg, &gnorm);
    if (st)
        return hl_fail(st, "step %lld: %s; training stopped. The last good checkpoint is step-%lld", (long long)k,
                       hl_last_error(), (long long)s->last_checkpoint_step);
    double dt = now_s() - t0 - (j->paused_s - paused0);
    s->step = k;
    s->loss = loss;
    s->loss_smooth = isfinite(s->loss_smooth) ? 0.9 * s->loss_smooth + 0.1 * loss : loss;
    s->lr = lr;
    s->grad_norm = gnorm;
    s->padding_share = computed > 0 ? (double)(computed - tokens) / (double)computed : 0.0;
    s->tokens_seen += tokens;
    s->epoch = (double)j->cur.consumed / (double)t->train.n;
    double tps = dt > 0 ? (double)tokens / dt : 0;
    j->step_time_ema = j->step_time_ema > 0 ? 0.9 * j->step_time_ema + 0.1 * dt : dt;
    j->tps_ema = j->tps_ema > 0 ? 0.9 * j->tps_ema + 0.1 * tps : tps;
    s->tokens_per_s = j->tps_ema;
    s->elapsed_s = j->elapsed_before + (now_s() - j->t_start - j->paused_s);
    s->eta_s = (double)(s->total_steps - s->step) * j->step_time_ema;
    hl_series_add(&s->loss_hist, k, (float)loss);
    hl_series_add(&s->lr_hist, k, lr);
    hl_series_add(&s->grad_norm_hist, k, (float)gnorm);
    hl_series_add(&s->tokens_per_s_hist, k, (float)tps);
    if (j->train_rs_ok)
        routing_take(j, &j->train_rs, 0); /* over the global batch (summed over the ranks above) */
    if (j->metrics) {
        FILE *f = j->metrics;
        fprintf(f, "{\"event\":\"step\",\"step\":%lld,\"epoch\":%.6f,\"loss\":%.9g,\"loss_hex\":\"%a\",\"lr\":%.9g,"
                "\"grad_norm\":",
                (long long)k, s->epoch, loss, loss, (double)lr);
        json_num(f, gnorm);
        fputs(",\"loss_smooth\":", f);
        json_num(f, s->loss_smooth);
        fputs(",\"eval_loss\":", f);
        json_num(f, s->eval_loss);
        fprintf(f, ",\"tokens\":%lld,\"tokens_computed\":%lld,\"padding_share\":%.6f,\"tokens_seen\":%lld,"
                "\"tokens_per_s\":%.1f,\"step_s\":%.4f,\"elapsed_s\":%.3f,\"eta_s\":%.1f,\"mem_bytes\":%lld",
                (long long)tokens, (long long)computed, s->padding_share, (long long)s->tokens_seen, tps, dt,
                s->elapsed_s, s->eta_s, (long long)rss_bytes());
        if (j->K > 1) /* time in reductions across ranks (waiting for the slowest included) */
            fprintf(f, ",\"ranks\":%d,\"comm_s\":%.5f", j->K, s->comm_s);
        fputs("}\n", f);
        fflush(f);
    }
    return HL_OK;
}

/* ---- setup ---- */

/* Fields whose change would alter the math of a resumed run. */
static const char *const resume_fixed[] = {
    "model", "data", "field_instruction", "field_input", "field_output", "val_data", "val_split", "variant",
    "targets", "r", "alpha", "n_heads", "dropout", "lr", "schedule", "warmup_ratio", "epochs", "max_steps",
    "micro_batch", "grad_accum", "max_len", "packing", "clip_norm", "weight_decay", "beta1", "beta2", "eps", "seed", NULL};

static hl_status check_resume_config(const hl_run_config *saved, const hl_run_config *now) {
    for (int i = 0; resume_fixed[i]; i++) {
        const hl_config_field *f = hl_config_field_find(resume_fixed[i]);
        char a[HL_CONFIG_PATH_MAX], b[HL_CONFIG_PATH_MAX];
        hl_config_get_field(saved, f, a, sizeof a);
        hl_config_get_field(now, f, b, sizeof b);
        if (strcmp(a, b))
            return hl_fail(HL_ERR_ARG, "%s: the run was started with %s=%s; resuming with %s would not continue "
                           "the same run (start a new run instead)", f->name, f->name, a, b);
    }
    return HL_OK;
}

static void load_progress(void *ctx, size_t done, size_t total) {
    job *j = ctx;
    hl_engine_event *ev = &j->s->events[(j->s->last_event_seq ? j->s->last_event_seq - 1 : 0) % HL_ENGINE_EVENTS];
    if (j->s->last_event_seq && !strncmp(ev->text, "tokenizing", 10))
        snprintf(ev->text, sizeof ev->text, "tokenizing %zu/%zu records", done, total);
    else
        job_event(j, 0, "tokenizing %zu/%zu records", done, total);
    publish(j);
    if (poll_cmds_no_save(j) & HL_TRAIN_CMD_STOP)
        j->stop_in_loading = 1;
}

/* ---- the run directory ----
 * Nothing in it changes until the new job has loaded and checked everything (model,
 * tokenizer, data, adapters, the checkpoint to resume): a typo in the data path must not
 * cost the previous run. Then a new run (NEW/OVERWRITE) moves the previous run's entries
 * aside into <run>/.replaced-XXXXXX, writes its config.json and metrics.jsonl, and deletes
 * the set-aside run only once it has started; if it fails before that, the previous run is
 * moved back. So no folder ever mixes two runs' checkpoints, adapter, export or eval. */

static const char *const run_entries[] = {"config.json", "metrics.jsonl", "checkpoints", "adapter", "export", "eval",
                                          NULL};

/* Checks that change nothing on disk: a NEW run must not meet checkpoints; a RESUME must
 * agree with the saved config. *steps (ascending, malloc'd) lists the complete checkpoints. */
static hl_status check_run_dir(job *j, const hl_run_config *cfg, hl_start_mode mode, int64_t **steps, int *n) {
    *steps = NULL;
    *n = 0;
    HL_TRY(hl_checkpoint_list(j->run_dir, steps, n));
    int64_t newest = *n ? (*steps)[*n - 1] : -1;
    if (mode == HL_START_NEW && newest >= 0)
        return hl_fail(HL_ERR_STATE, "%s already holds a run (checkpoint step-%lld): resume it with --resume, or "
                       "start over with --overwrite, or choose another name", j->run_dir, (long long)newest);
    if (mode == HL_START_RESUME) {
        char cpath[HL_CONFIG_PATH_MAX + 32];
        snprintf(cpath, sizeof cpath, "%s/config.json", j->run_dir);
        hl_run_config saved;
        hl_config_defaults(&saved);
        saved.packing = 0; /* a run saved before the packing field existed trained padded */
        hl_status st = hl_config_load_file(&saved, cpath);
        if (st)
            return hl_fail_context(st, "resuming %s", j->run_dir);
        HL_TRY(check_resume_config(&saved, cfg));
    }
    return HL_OK;
}

static void remove_stale_aside(const char *run_dir) {
    DIR *d = opendir(run_dir);
    if (!d)
        return;
    struct dirent *de;
    char names[8][64];
    int n = 0;
    while ((de = readdir(d)) && n < 8)
        if (!strncmp(de->d_name, ".replaced-", 10) && strlen(de->d_name) < sizeof names[0])
            snprintf(names[n++], sizeof names[0], "%s", de->d_name);
    closedir(d);
    for (int i = 0; i < n; i++) {
        char p[HL_CONFIG_PATH_MAX + 80];
        snprintf(p, sizeof p, "%.4000s/%.63s", run_dir, names[i]);
        hl_remove_tree(p); /* left by a job killed while replacing a run */
    }
}

/* Move the previous run's entries into j->aside (created here). */
static hl_status set_aside_old_run(job *j) {
    remove_stale_aside(j->run_dir);
    int any = 0;
    for (int i = 0; run_entries[i]; i++) {
        char p[HL_CONFIG_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/%s", j->run_dir, run_entries[i]);
        any |= access(p, F_OK) == 0;
    }
    if (!any)
        return HL_OK;
    snprintf(j->aside, sizeof j->aside, "%s/.replaced-XXXXXX", j->run_dir);
    if (!mkdtemp(j->aside)) {
        j->aside[0] = 0;
        return hl_fail(HL_ERR_IO, "cannot make room for the new run in %s: %s", j->run_dir, strerror(errno));
    }
    for (int i = 0; run_entries[i]; i++) {
        char from[HL_CONFIG_PATH_MAX + 32], to[HL_CONFIG_PATH_MAX + 64];
        snprintf(from, sizeof from, "%s/%s", j->run_dir, run_entries[i]);
        snprintf(to, sizeof to, "%s/%s", j->aside, run_entries[i]);
        if (access(from, F_OK) == 0 && rename(from, to) != 0)
            return hl_fail(HL_ERR_IO, "cannot move the previous run's %s aside: %s", from, strerror(errno));
    }
    hl_fsync_dir(j->run_dir);
    return HL_OK;
}

/* The new run failed before it started: put the previous one back as it was. */
static void restore_old_run(job *j) {
    if (!j->aside[0])
        return;
    for (int i = 0; run_entries[i]; i++) {
        char from[HL_CONFIG_PATH_MAX + 64], to[HL_CONFIG_PATH_MAX + 32];
        snprintf(from, sizeof from, "%s/%s", j->aside, run_entries[i]);
        snprintf(to, sizeof to, "%s/%s", j->run_dir, run_entries[i]);
        if (access(from, F_OK) != 0)
            continue;
        hl_remove_tree(to); /* what the new run wrote */
        rename(from, to);
    }
    hl_remove_tree(j->aside);
    j->aside[0] = 0;
    hl_fsync_dir(j->run_dir);
}

/* The new run has started: the previous one goes. */
static void discard_old_run(job *j) {
    if (!j->aside[0])
        return;
    hl_remove_tree(j->aside);
    j->aside[0] = 0;
}

/* After everything is loaded: take the directory and write the run's config.json. */
static hl_status claim_run_dir(job *j, const hl_run_config *cfg, hl_start_mode mode) {
    HL_TRY(hl_mkdir_p(j->run_dir));
    if (mode == HL_START_OVERWRITE || mode == HL_START_NEW) {
        HL_TRY(set_aside_old_run(j));
    } else {
        int removed = 0;
        HL_TRY(hl_checkpoint_clean_tmp(j->run_dir, &removed));
        if (removed)
            job_event(j, 0, "removed %d incomplete checkpoint director%s", removed, removed == 1 ? "y" : "ies");
    }
    char cpath[HL_CONFIG_PATH_MAX + 32];
    snprintf(cpath, sizeof cpath, "%s/config.json", j->run_dir);
    return hl_config_save_file(cfg, cpath);
}

/* Resume from the newest checkpoint that loads; a damaged newer one (truncated by a full
 * disk or a copy, edited by hand) is skipped with a warning and left in place. Fails only
 * when none loads (with the newest one's reason). *cs_out->step = -1 when there is none. */
static hl_status load_newest_intact(job *j, const int64_t *steps, int n, hl_ckpt_state *cs_out, char *cdir,
                                    size_t cdir_size) {
    char first_err[600] = "";
    cs_out->step = -1;
    HL_TRY(host_open(j)); /* host copies: read here, then written into the session */
    for (int i = n - 1; i >= 0; i--) {
        hl_checkpoint_path(j->run_dir, steps[i], cdir, cdir_size);
        hl_status st = hl_checkpoint_load(cdir, &j->host, cs_out, 1);
        if (st == HL_OK) {
            if (i < n - 1)
                job_event(j, 1, "resuming from step-%lld, the newest intact checkpoint (the newer one%s left as it "
                          "is)", (long long)steps[i], i < n - 2 ? "s are" : " is");
            st = host_give(j);
            host_close(j);
            return st;
        }
        if (st == HL_ERR_NOMEM) {
            host_close(j);
            return st;
        }
        if (!first_err[0])
            snprintf(first_err, sizeof first_err, "%s", hl_last_error());
        job_event(j, 1, "checkpoint step-%lld cannot be read: %.150s", (long long)steps[i], hl_last_error());
    }
    cs_out->step = -1;
    host_close(j);
    return hl_fail(HL_ERR_FORMAT, "no checkpoint of %s can be read; the newest: %s", j->run_dir, first_err);
}

/* Everything before the run directory changes: model, data, session, schedule, and the
 * checkpoint to resume (into *cs; cs->step = -1 when there is none). */
static hl_status load_all(job *j, const hl_run_config *cfg_in, hl_start_mode mode, hl_ckpt_state *cs, char *cdir,
                          size_t cdir_size) {
    hl_snapshot *s = j->s;
    hl_trainer *t = j->t;
    HL_TRY(check_run_dir(j, cfg_in, mode, &j->ckpt_steps, &j->n_ckpt));

    job_event(j, 0, "loading model %s", cfg_in->model);
    publish(j);
    HL_TRY(trainer_open_base(t, cfg_in));
    const hl_run_config *cfg = &t->cfg; /* with max_len clamped to the model's context */
    if (t->max_len_requested > 0) {
        job_event(j, 1, "max_len %d exceeds the model's context of %d positions: training with max_len %d",
                  t->max_len_requested, cfg->max_len, cfg->max_len);
        s->cfg.max_len = cfg->max_len;
    }
    job_event(j, 0, "loading data %s", cfg->data);
    publish(j);
    HL_TRY(trainer_load_examples(t, HL_TRAINER_TRAIN_DATA | HL_TRAINER_VAL_DATA, load_progress, j));
    if (j->stop_in_loading)
        return HL_OK;
    char note[200];
    snprintf(note, sizeof note, "%lld training and %lld validation examples (%lld records loaded, %lld malformed "
             "lines skipped, %lld truncated, %lld without targets skipped)",
             (long long)t->train.n, (long long)t->val.n, (long long)t->n_loaded, (long long)t->n_malformed,
             (long long)t->n_truncated, (long long)t->n_skipped);
    job_event(j, 0, "%s", note);
    if (t->n_malformed > 0)
        job_event(j, 1, "%lld malformed record%s skipped in the data (the first are listed below)",
                  (long long)t->n_malformed, t->n_malformed == 1 ? "" : "s");
    for (int f = 0; f < t->data.n_files; f++) {
        const hl_dataset *ds = &t->data.files[f];
        for (size_t i = 0; i < ds->n_issues && i < 3; i++)
            job_event(j, 1, "%s line %u: %s", ds->path, ds->issues[i].line, ds->issues[i].reason);
    }
    s->n_train = t->train.n;
    s->n_val = t->val.n;
    HL_TRY(trainer_create_adapters(t));
    int router = t->acfg.variant == HL_VARIANT_HYDRA || t->acfg.variant == HL_VARIANT_LORA_SPLIT;
    unsigned flags = HL_SESSION_TRAIN | (cfg->grad_checkpoint ? HL_SESSION_CHECKPOINT : 0) |
                     (router ? HL_SESSION_STATS : 0);
    HL_TRY(trainer_build_session(t, flags));
    const hl_adapters *lay = hl_session_layout(t->sess);
    s->trainable_params = (int64_t)lay->n_params;
    hl_backend_info bi;
    HL_TRY(hl_backend_get_info(t->be, &bi));
    const hl_mem_plan *mp = hl_session_mem_plan(t->sess);
    s->mem_planned = (int64_t)mp->total;
    char products[96];
    HL_TRY(hl_backend_compute_path(t->be, cfg->compute, &t->model.cfg, t->model.dtype, products, sizeof products));
    job_event(j, 0, "device %s: %s; compute %s: %s", bi.name, bi.device, hl_compute_name(cfg->compute), products);
    job_event(j, 0, "memory plan: %.1f MiB (adapter params+grads+moments %.1f, activations %.1f, scratch %.1f; base "
              "weights %.1f MiB%s); %lld trainable parameters",
              mp->total / 1048576.0, (mp->params + mp->grads + mp->moments) / 1048576.0, mp->activations / 1048576.0,
              mp->scratch / 1048576.0, mp->weights / 1048576.0, bi.is_gpu ? "" : " mapped", (long long)lay->n_params);
    HL_TRY(routing_setup(j));
    /* one step's values summed over the ranks: [G] losses, tokens, tokens computed, then routing */
    size_t np = (size_t)j->L * HL_TARGET_COUNT;
    j->red_n = (size_t)cfg->grad_accum + 2 + (j->train_rs_ok ? 2 * np + 2 * np * (size_t)j->N : 0);
    j->red = calloc(j->red_n, sizeof *j->red);
    if (j->K > 1)
        j->agree_buf = malloc(lay->n_params * sizeof *j->agree_buf);
    if (!j->red || (j->K > 1 && !j->agree_buf))
        return hl_fail(HL_ERR_NOMEM, "out of memory for the step's reduction buffers");

    /* Steps and schedule. */
    int64_t per_step = (int64_t)cfg->micro_batch * cfg->grad_accum;
    int64_t total = cfg->max_steps > 0 ? cfg->max_steps : ((int64_t)cfg->epochs * t->train.n + per_step - 1) / per_step;
    if (cfg->max_steps <= 0 && t->packing) { /* from the lengths and the seeded order: known before step 1 */
        int64_t n_mb = 0;
        HL_TRY(hl_packed_count_steps(&t->train, (uint64_t)cfg->seed, t->pk.cap_rows, t->pk.row_len, t->pk.max_len,
                                     (int64_t)cfg->epochs * t->train.n, cfg->grad_accum, &n_mb, &total));
    }
    if (total < 1)
        total = 1;
    s->total_steps = total;
    j->ocfg = hl_optim_defaults();
    j->ocfg.lr = (float)cfg->lr;
    j->ocfg.beta1 = (float)cfg->beta1;
    j->ocfg.beta2 = (float)cfg->beta2;
    j->ocfg.eps = (float)cfg->eps;
    j->ocfg.weight_decay = (float)cfg->weight_decay;
    j->ocfg.clip_norm = (float)cfg->clip_norm;
    j->ocfg.total_steps = total;
    j->ocfg.warmup_steps = (int64_t)ceil(cfg->warmup_ratio * (double)total);

    /* Data cursor and state: fresh or from the checkpoint (all loaded before the run
     * directory changes). */
    if (mode == HL_START_RESUME && j->n_ckpt > 0) {
        HL_TRY(load_newest_intact(j, j->ckpt_steps, j->n_ckpt, cs, cdir, cdir_size));
        if (cs->total_steps != total)
            return hl_fail(HL_ERR_ARG, "%s was saved for %lld total steps, this config gives %lld", cdir,
                           (long long)cs->total_steps, (long long)total);
    }
    return HL_OK;
}

static hl_status run_job(job *j, const hl_run_config *cfg_in, hl_start_mode mode) {
    hl_snapshot *s = j->s;
    hl_trainer *t = j->t;
    hl_ckpt_state cs;
    char cdir[HL_CONFIG_PATH_MAX + 64];
    cs.step = -1;
    /* With several ranks: nobody touches the run directory unless every rank has loaded. */
    HL_TRY(agree_phase(j, load_all(j, cfg_in, mode, &cs, cdir, sizeof cdir)));
    if (j->K > 1) {
        int64_t stop = j->stop_in_loading;
        HL_TRY(hl_comm_allreduce_max_i64(j->comm, &stop, 1));
        j->stop_in_loading = (int)stop;
    }
    if (j->stop_in_loading)
        return HL_OK;
    const hl_run_config *cfg = &t->cfg; /* with max_len clamped to the model's context */
    int64_t total = s->total_steps;
    hl_backend_info bi;
    HL_TRY(hl_backend_get_info(t->be, &bi));
    /* Rank 0 alone writes the run directory; the others learn whether it could. */
    hl_status cst = is_root(j) ? claim_run_dir(j, cfg, mode) : HL_OK;
    if (cst == HL_OK)
        cst = metrics_reopen(j, cs.step >= 0 ? cs.step : 0, cs.step < 0);
    HL_TRY(agree_phase(j, cst));
    if (cs.step >= 0) {
        HL_TRY(hl_cursor_restore(&j->cur, t->train.n, 1, cs.epoch, cs.pos, cs.consumed, &cs.data_rng));
        j->cur_ok = 1;
        s->step = cs.step;
        s->loss = cs.loss;
        s->tokens_seen = cs.tokens_seen;
        j->elapsed_before = cs.elapsed_s;
        s->elapsed_s = cs.elapsed_s;
        s->epoch = (double)cs.consumed / (double)t->train.n;
        s->last_checkpoint_step = cs.step;
        j->last_save_step = cs.step;
        metrics_event(j, "resume", cdir);
        job_event(j, 0, "resumed from checkpoint step-%lld%s", (long long)cs.step,
                  cs.step >= total ? " (the run had already finished)" : "");
    } else {
        HL_TRY(hl_cursor_init(&j->cur, t->train.n, (uint64_t)cfg->seed, 1));
        j->cur_ok = 1;
        if (mode == HL_START_RESUME)
            job_event(j, 0, "no complete checkpoint yet: starting from step 0");
    }
    if (j->metrics) {
        fprintf(j->metrics, "{\"event\":\"start\",\"step\":%lld,\"time\":%lld,\"total_steps\":%lld,\"n_train\":%lld,"
                "\"n_val\":%lld,\"trainable_params\":%lld,\"mem_planned\":%lld,\"device\":\"%s\",\"threads\":%d,"
                "\"ranks\":%d,\"records_loaded\":%lld,"
                "\"malformed_skipped\":%lld,\"truncated\":%lld,\"no_target_skipped\":%lld}\n",
                (long long)s->step, (long long)time(NULL), (long long)total, (long long)t->train.n,
                (long long)t->val.n, (long long)s->trainable_params, (long long)s->mem_planned, bi.name, bi.threads,
                j->K, (long long)t->n_loaded, (long long)t->n_malformed, (long long)t->n_truncated,
                (long long)t->n_skipped);
        fflush(j->metrics);
    }
    trainer_data_free(&t->data); /* the examples hold all we need */

    j->t_start = now_s();
    j->paused_s = 0;

    /* Baseline eval before the first step of a new run. */
    discard_old_run(j); /* the new run has started: the one it replaces goes */
    HL_TRY(agree_check(j)); /* the ranks start from the same adapter (and the same checkpoint) */
    if (s->step == 0 && t->val.n > 0) {
        s->state = HL_JOB_RUNNING;
        HL_TRY(do_eval(j));
    }
    s->state = HL_JOB_RUNNING;
    publish(j);

    while (s->step < total) {
        unsigned top = poll_cmds(j);
        HL_TRY(agree_cmds(j)); /* (several ranks: any rank's request, for all) */
        top = j->pending | (top & HL_TRAIN_CMD_PAUSED);
        if (top & HL_TRAIN_CMD_STOP)
            break;
        if (j->woke_paused && (top & HL_TRAIN_CMD_SAVE)) {
            /* "checkpoint now" while paused between steps: written at once, then back to waiting */
            j->pending &= ~(unsigned)HL_TRAIN_CMD_SAVE;
            if (s->step == 0)
                job_event(j, 0, "no step trained yet: nothing to checkpoint");
            else if (j->last_save_step == s->step)
                job_event(j, 0, "checkpoint step-%lld is already written", (long long)s->step);
            else
                HL_TRY(do_save(j));
            publish(j);
            continue;
        }
        HL_TRY(do_step(j));
        int64_t k = s->step;
        if (cfg->eval_every > 0 && k % cfg->eval_every == 0 && k < total) {
            HL_TRY(do_eval(j));
            HL_TRY(agree_check(j));
        }
        publish(j);
        poll_cmds(j);
        HL_TRY(agree_cmds(j));
        unsigned cmd = j->pending;
        if ((cfg->save_every > 0 && k % cfg->save_every == 0 && k < total) || (cmd & HL_TRAIN_CMD_SAVE) ||
            (cmd & HL_TRAIN_CMD_STOP)) {
            j->pending &= ~(unsigned)HL_TRAIN_CMD_SAVE;
            if (cfg->eval_every <= 0)
                HL_TRY(agree_check(j)); /* no evals: the ranks compare at every checkpoint */
            HL_TRY(do_save(j));
        }
        if (j->faults.step_delay_ms > 0)
            usleep((useconds_t)j->faults.step_delay_ms * 1000);
    }
    if (s->step < total) {
        HL_TRY(do_save(j));
        s->state = HL_JOB_STOPPED;
        metrics_event(j, "stop", "stopped on request");
        job_event(j, 0, "stopped at step %lld (checkpoint step-%lld)", (long long)s->step,
                  (long long)s->last_checkpoint_step);
        return HL_OK;
    }
    if (j->last_eval_step != s->step)
        HL_TRY(do_eval(j));
    HL_TRY(agree_check(j));
    HL_TRY(do_save(j));
    char adir[HL_CONFIG_PATH_MAX + 32];
    snprintf(adir, sizeof adir, "%s/adapter", j->run_dir);
    hl_export_info info;
    hl_status est = HL_OK;
    if (is_root(j)) {
        est = host_take(j, 0);
        if (est == HL_OK)
            est = hl_export_adapters(&j->host, cfg, adir, HL_DTYPE_F32, &info);
        host_close(j);
    }
    HL_TRY(agree_phase(j, est));
    s->state = HL_JOB_FINISHED;
    metrics_event(j, "finish", adir);
    job_event(j, 0, "finished: %lld steps, adapter exported to %s", (long long)s->step, adir);
    return HL_OK;
}

/* Several ranks on GPUs: one GPU per rank, the one of its rank among the ranks of its host, unless
 * the config names a GPU itself ("cuda:N" is taken as given). */
static hl_status rank_device(const job *j, hl_run_config *cfg) {
    if (j->K <= 1)
        return HL_OK;
    char canon[32];
    HL_TRY(hl_backend_resolve(cfg->device[0] ? cfg->device : "auto", canon, sizeof canon));
    int named = !strncmp(cfg->device, "cuda:", 5);
    if (!strncmp(canon, "cuda", 4) && !named)
        snprintf(cfg->device, sizeof cfg->device, "cuda:%d", hl_comm_local_rank(j->comm));
    return HL_OK;
}

hl_status hl_train_run(const hl_run_config *cfg_given, hl_start_mode mode, const hl_train_hooks *hooks) {
    job j;
    memset(&j, 0, sizeof j);
    j.hooks = hooks;
    if (hooks && hooks->faults)
        j.faults = *hooks->faults;
    j.comm = hooks ? hooks->comm : NULL;
    j.rank = j.comm ? hl_comm_rank(j.comm) : 0;
    j.K = j.comm ? hl_comm_size(j.comm) : 1;
    j.s = calloc(1, sizeof *j.s);
    j.t = calloc(1, sizeof *j.t);
    if (!j.s || !j.t) {
        free(j.s);
        free(j.t);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    hl_snapshot *s = j.s;
    hl_run_config cfg_rank = *cfg_given;
    const hl_run_config *cfg = &cfg_rank;
    s->cfg = *cfg;
    s->rank = j.rank;
    s->ranks = j.K;
    hl_config_run_dir(cfg, j.run_dir, sizeof j.run_dir);
    snprintf(s->run_dir, sizeof s->run_dir, "%s", j.run_dir);
    s->state = HL_JOB_LOADING;
    s->loss = s->loss_smooth = s->eval_loss = s->eval_loss_first = s->lr = s->grad_norm = s->padding_share = NAN;
    s->eta_s = NAN;
    s->eval_step = -1;
    s->last_checkpoint_step = -1;
    j.last_save_step = -1;
    j.last_eval_step = -1;
    hl_series_init(&s->loss_hist);
    hl_series_init(&s->eval_hist);
    hl_series_init(&s->lr_hist);
    hl_series_init(&s->grad_norm_hist);
    hl_series_init(&s->tokens_per_s_hist);
    hl_examples_init(&j.t->train);
    hl_examples_init(&j.t->val);
    publish(&j);

    hl_status st = rank_device(&j, &cfg_rank);
    if (st == HL_OK)
        st = run_job(&j, cfg, mode);
    if (st == HL_OK && j.stop_in_loading) {
        s->state = HL_JOB_STOPPED;
        job_event(&j, 0, "stopped while loading (nothing trained)");
    }
    if (st) {
        snprintf(s->error, sizeof s->error, "%s", hl_last_error()[0] ? hl_last_error() : hl_status_message(st));
        s->state = HL_JOB_FAILED;
        if (j.metrics)
            metrics_event(&j, "error", s->error);
        job_event(&j, 1, "%s", s->error);
    }
    if (j.metrics) {
        fflush(j.metrics);
        fsync(fileno(j.metrics));
        fclose(j.metrics);
        j.metrics = NULL;
    }
    restore_old_run(&j); /* a no-op once the new run started (or when nothing was replaced) */
    free(j.ckpt_steps);
    s->elapsed_s = j.t_start > 0 ? j.elapsed_before + (now_s() - j.t_start - j.paused_s) : 0;
    s->eta_s = s->state == HL_JOB_FINISHED ? 0 : NAN;
    publish(&j);
    char err[600];
    snprintf(err, sizeof err, "%s", s->error);
    if (j.cur_ok)
        hl_cursor_free(&j.cur);
    routing_free(&j);
    free(j.red);
    free(j.agree_buf);
    host_close(&j);
    hl_trainer_close(j.t);
    free(j.s);
    if (st)
        hl_fail(st, "%s", err); /* restore the message after cleanup */
    return st;
}
