/* Screen 6, Eval: BIG-Bench Hard. A task checklist, prompt mode, scoring rule and limits;
 * run / stop with progress; a per-task table of the base model against the adapter (and
 * the difference) with the three averages; a sample browser showing the prompt, the
 * generation, the extracted answer and the target. The engine (core/eval/bbh/bbh.h) does the work
 * in a worker thread and writes resumable result folders. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/eval/bbh/bbh.h"
#include "core/train/export.h"
#include "core/base/fileio.h"
#include "tui/app.h"
#include "tui/job.h"
#include "tui/paths.h"

#define MAX_SAMPLES 4096

typedef struct {
    int task, idx, correct, which; /* which: 0 base, 1 adapter */
    char *generation, *extracted, *target, *stop;
    int prompt_tokens, generated_tokens, truncated;
} sample;

typedef struct eval_scr eval_scr;

typedef struct {
    eval_scr *self;
    char device[32];
    int threads;
    const hl_model *model;
    const hl_tokenizer *tok;
    char bbh_dir[4096];
    char out_base[4096];
    char adapter_dir[4096];
    int with_adapter;
    hl_bbh_eval_opts opts;
    /* results */
    hl_bbh_set set;
    int set_ok;
    hl_bbh_summary sum[2];
    int have[2];
    char out_dir[2][4400];
    int phase; /* 0 base, 1 adapter (for progress) */
    long done, total;
    /* prompts cut on the left to fit the context, per phase (a different benchmark: shown) */
    long truncated[2], trunc_of[2];
    int context;
    /* samples collected from progress callbacks (under the job lock) */
    sample *samples;
    int n_samples;
    pthread_mutex_t mu;
} eval_arg;

struct eval_scr {
    tui_app *app;
    unsigned char sel[HL_BBH_N_TASKS];
    tui_list tasks;
    int focus; /* 0 tasks, 1 results/samples */
    hl_bbh_mode mode;
    hl_bbh_rule rule;
    int limit_i, tokens_i;
    int with_adapter;
    int view_samples;
    tui_job job;
    eval_arg *ea;      /* the arg of the running or last job */
    int results_ok;
    tui_list samples;
    int sample_scroll;
    int view_h;
    char *prompt_cache;
    int prompt_for;
};

static const int limits[] = {3, 10, 50, 0};
static const int tokens[] = {0, 16, 64, 256};
#define N_LIMITS 4
#define N_TOKENS 4

/* ---- worker ---------------------------------------------------------------------------- */

static char *dupz(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s ? s : "", n);
        d[n] = 0;
    }
    return d;
}

static void on_progress(const hl_bbh_progress *p, void *user) {
    eval_arg *ea = user;
    tui_job *j = &ea->self->job;
    char stage[160];
    snprintf(stage, sizeof stage, "%s: %ld/%ld examples, %ld tokens generated", ea->phase ? "adapter" : "base",
             p->done, p->total, p->generated_tokens);
    double total = (double)p->total * (ea->with_adapter ? 2 : 1);
    job_progress(j, stage, (double)(p->done + (ea->phase ? p->total : 0)), total);
    pthread_mutex_lock(&ea->mu);
    ea->truncated[ea->phase] = p->prompts_truncated;
    ea->trunc_of[ea->phase] = p->total;
    ea->context = p->context;
    pthread_mutex_unlock(&ea->mu);
    if (p->last) {
        pthread_mutex_lock(&ea->mu);
        if (ea->n_samples < MAX_SAMPLES) {
            sample *s = &ea->samples[ea->n_samples];
            const hl_bbh_sample *l = p->last;
            s->task = l->task;
            s->idx = l->idx;
            s->correct = l->correct;
            s->which = ea->phase;
            s->generation = dupz(l->generation, l->generation_len);
            s->extracted = dupz(l->extracted, l->extracted ? strlen(l->extracted) : 0);
            s->target = dupz(l->target, l->target ? strlen(l->target) : 0);
            s->stop = dupz(l->stop, l->stop ? strlen(l->stop) : 0);
            s->prompt_tokens = l->prompt_tokens;
            s->generated_tokens = l->generated_tokens;
            s->truncated = l->prompt_truncated;
            ea->n_samples++;
        }
        pthread_mutex_unlock(&ea->mu);
    }
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static int json_int(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9 ? (int)v->valuedouble : 0;
}

/* The examples an earlier (or interrupted) run already wrote to <dir>/samples.jsonl: the
 * evaluation skips them, so they never come through the progress callback, but the sample
 * browser lists them too. Only those of the selected tasks and limit; unreadable lines are
 * skipped (the evaluation itself reports a damaged file). */
static void load_disk_samples(eval_arg *ea, const char *dir, int which) {
    char path[4500];
    snprintf(path, sizeof path, "%s/samples.jsonl", dir);
    char *buf = NULL;
    size_t len = 0;
    if (hl_file_read_all(path, 0, &buf, &len) != HL_OK) {
        hl_clear_error(); /* no earlier run */
        return;
    }
    pthread_mutex_lock(&ea->mu);
    for (size_t pos = 0; pos < len && ea->n_samples < MAX_SAMPLES;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + 1;
        cJSON *o = cJSON_ParseWithLength(line, n);
        int t = o ? hl_bbh_task_index(json_str(o, "task")) : -1;
        const cJSON *ji = o ? cJSON_GetObjectItemCaseSensitive(o, "idx") : NULL;
        int idx = cJSON_IsNumber(ji) && ji->valuedouble >= 0 && ji->valuedouble < 1e7 ? (int)ji->valuedouble : -1;
        if (t >= 0 && idx >= 0 && ea->opts.tasks[t] && (ea->opts.limit <= 0 || idx < ea->opts.limit) &&
            ea->set.tasks[t].loaded && idx < ea->set.tasks[t].n_examples) {
            sample *s = &ea->samples[ea->n_samples];
            const char *g = json_str(o, "generation");
            s->task = t;
            s->idx = idx;
            s->correct = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "correct"));
            s->which = which;
            s->generation = dupz(g, strlen(g));
            s->extracted = dupz(json_str(o, "extracted"), strlen(json_str(o, "extracted")));
            s->target = dupz(json_str(o, "target"), strlen(json_str(o, "target")));
            s->stop = dupz(json_str(o, "stop"), strlen(json_str(o, "stop")));
            s->prompt_tokens = json_int(o, "prompt_tokens");
            s->generated_tokens = json_int(o, "generated_tokens");
            s->truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "prompt_truncated"));
            ea->n_samples++;
        }
        cJSON_Delete(o);
    }
    pthread_mutex_unlock(&ea->mu);
    free(buf);
}
static hl_status eval_target(tui_job *j, eval_arg *ea, hl_backend *be);

static hl_status eval_main(tui_job *j, void *arg) {
    eval_arg *ea = arg;
    job_progress(j, "loading BIG-Bench Hard", 0, -1);
    hl_status ls = hl_bbh_load(&ea->set, ea->bbh_dir, ea->opts.tasks);
    if (ls == HL_ERR_NOT_FOUND) /* what to do first: the screen shows one line */
        return hl_fail(ls, "BBH is not downloaded: get it on 1 Data (select bbh, press d); looked in %s", ea->bbh_dir);
    HL_TRY(ls);
    ea->set_ok = 1;
    hl_backend *be = NULL;
    HL_TRY(app_worker_device(ea->device, ea->threads, &be));
    hl_status st = eval_target(j, ea, be);
    hl_backend_close(be);
    return st;
}

/* The base model, then (when asked) the adapter, on backend `be`. */
static hl_status eval_target(tui_job *j, eval_arg *ea, hl_backend *be) {
    hl_bbh_eval_target t;
    memset(&t, 0, sizeof t);
    t.backend = be;
    t.model = ea->model;
    t.tok = ea->tok;
    HL_TRY(hl_bbh_model_fingerprint(ea->model, t.model_fingerprint));
    snprintf(t.model_label, sizeof t.model_label, "%.500s", ea->self->app->model_path);
    char fp8[9];
    snprintf(fp8, sizeof fp8, "%.8s", t.model_fingerprint);
    char tag[128];
    snprintf(tag, sizeof tag, "%s-%s-t%d", hl_bbh_mode_name(ea->opts.mode), hl_bbh_rule_name(ea->opts.rule),
             ea->opts.max_new_tokens);
    /* base model */
    ea->phase = 0;
    snprintf(ea->out_dir[0], sizeof ea->out_dir[0], "%.4000s/bbh-%.120s-base-%s", ea->out_base, tag, fp8);
    load_disk_samples(ea, ea->out_dir[0], 0);
    hl_status st = hl_bbh_eval_run(ea->out_dir[0], &ea->set, &t, &ea->opts, on_progress, ea, (volatile int *)&j->cancel,
                                   &ea->sum[0]);
    if (st != HL_OK)
        return st;
    ea->have[0] = 1;
    if (!ea->with_adapter)
        return HL_OK;
    /* the adapter */
    ea->phase = 1;
    job_progress(j, "loading the adapter", 0, -1);
    hl_adapters ad;
    memset(&ad, 0, sizeof ad);
    HL_TRY(hl_export_load(ea->adapter_dir, &ea->model->cfg, 41, &ad));
    t.adapters = &ad;
    st = hl_bbh_path_fingerprint(ea->adapter_dir, t.adapter_fingerprint);
    if (st == HL_OK) {
        snprintf(t.adapter_label, sizeof t.adapter_label, "%.500s", ea->adapter_dir);
        snprintf(ea->out_dir[1], sizeof ea->out_dir[1], "%.4000s/bbh-%.120s-adapter-%.8s", ea->out_base, tag,
                 t.adapter_fingerprint);
        load_disk_samples(ea, ea->out_dir[1], 1);
        st = hl_bbh_eval_run(ea->out_dir[1], &ea->set, &t, &ea->opts, on_progress, ea, (volatile int *)&j->cancel,
                             &ea->sum[1]);
        if (st == HL_OK)
            ea->have[1] = 1;
    }
    hl_adapters_free(&ad);
    return st;
}

static void free_arg(eval_arg *ea) {
    if (!ea)
        return;
    for (int i = 0; i < ea->n_samples; i++) {
        free(ea->samples[i].generation);
        free(ea->samples[i].extracted);
        free(ea->samples[i].target);
        free(ea->samples[i].stop);
    }
    free(ea->samples);
    if (ea->set_ok)
        hl_bbh_free(&ea->set);
    pthread_mutex_destroy(&ea->mu);
    free(ea);
}

/* The adapter of the current run: <run>/adapter or <run>/export (paths_run_adapter). */
static int adapter_dir(tui_app *app, char *out, size_t n) {
    char rd[4096];
    if (app->snap->run_dir[0])
        snprintf(rd, sizeof rd, "%s", app->snap->run_dir);
    else
        hl_config_run_dir(&app->cfg, rd, sizeof rd);
    return paths_run_adapter(rd, out, n);
}

static void start_eval(eval_scr *s) {
    tui_app *app = s->app;
    if (job_running(&s->job)) {
        app_msg(app, MSG_WARN, "an evaluation is running (x stops it)");
        return;
    }
    if (!app->model || !app->tok || app_model_loading(app)) {
        app_msg(app, MSG_WARN, "open a model with a tokenizer first (2 Model)");
        return;
    }
    int nsel = 0;
    for (int i = 0; i < HL_BBH_N_TASKS; i++)
        nsel += s->sel[i];
    if (!nsel) {
        app_msg(app, MSG_WARN, "select at least one task (Space)");
        return;
    }
    eval_arg *ea = calloc(1, sizeof *ea);
    if (!ea)
        return;
    ea->samples = calloc(MAX_SAMPLES, sizeof(sample));
    if (!ea->samples) {
        free(ea);
        return;
    }
    pthread_mutex_init(&ea->mu, NULL);
    ea->self = s;
    snprintf(ea->device, sizeof ea->device, "%s", app->cfg.device);
    ea->threads = app->cfg.threads;
    ea->model = app->model;
    ea->tok = app->tok;
    hl_bbh_eval_opts_default(&ea->opts);
    ea->opts.mode = s->mode;
    ea->opts.rule = s->rule;
    memcpy(ea->opts.tasks, s->sel, sizeof s->sel);
    ea->opts.limit = limits[s->limit_i];
    ea->opts.max_new_tokens = tokens[s->tokens_i];
    if (hl_bbh_default_dir(ea->bbh_dir, sizeof ea->bbh_dir) != HL_OK)
        snprintf(ea->bbh_dir, sizeof ea->bbh_dir, "%.4000s/bbh", app->data_dir);
    char rd[4096];
    if (app->snap->run_dir[0])
        snprintf(rd, sizeof rd, "%s", app->snap->run_dir);
    else
        hl_config_run_dir(&app->cfg, rd, sizeof rd);
    snprintf(ea->out_base, sizeof ea->out_base, "%.4000s/eval", rd);
    ea->with_adapter = s->with_adapter && adapter_dir(app, ea->adapter_dir, sizeof ea->adapter_dir);
    if (s->with_adapter && !ea->with_adapter)
        app_msg(app, MSG_WARN, "no adapter in the run's adapter/ or export/ yet: evaluating the base model only");
    if (job_running(&s->job))
        return;
    free_arg(s->ea);
    s->ea = ea;
    s->results_ok = 0;
    app->model_users++;
    if (job_start(&s->job, eval_main, ea) != 0) {
        app->model_users--;
        app_msg(app, MSG_ERROR, "cannot start the evaluation thread");
        return;
    }
    app_msg(app, MSG_INFO, "evaluating %d task(s), %s, %s rule ...", nsel, hl_bbh_mode_name(s->mode),
            hl_bbh_rule_name(s->rule));
}

/* ---- drawing -------------------------------------------------------------------------------- */

static void draw_tasks(eval_scr *s, tui_rect r) {
    int nsel = 0;
    for (int i = 0; i < HL_BBH_N_TASKS; i++)
        nsel += s->sel[i];
    char title[64];
    snprintf(title, sizeof title, "BBH tasks %d/%d", nsel, HL_BBH_N_TASKS);
    ui_box(r, s->focus == 0 ? ST_HI : ST_BOX, title, ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    list_set_n(&s->tasks, HL_BBH_N_TASKS);
    list_clamp(&s->tasks, in.h);
    for (int i = 0; i < in.h; i++) {
        int t = s->tasks.top + i;
        if (t >= HL_BBH_N_TASKS)
            break;
        int sel = t == s->tasks.sel;
        int st = sel ? (s->focus == 0 ? ST_SEL : ui_style(TK_MAIN_FG, TK_METER_BG, 0)) : ST_MAIN;
        if (sel)
            ui_fill((tui_rect){in.y + i, in.x, 1, in.w - 1}, st);
        const char *box = s->sel[t] ? (ui_utf8 ? "\u25a0" : "x") : (ui_utf8 ? "\u25a1" : " ");
        if (ui_utf8)
            ui_text(in.y + i, in.x + 1, 1, sel ? st : s->sel[t] ? ST_HI : ST_DIM, box);
        else
            ui_textf(in.y + i, in.x, 3, sel ? st : s->sel[t] ? ST_HI : ST_DIM, "[%s]", box);
        ui_text(in.y + i, in.x + 3, in.w - 9, st, hl_bbh_task_name(t));
        ui_textf(in.y + i, in.x + in.w - 5, 4, sel ? st : ST_DIM, "%4d", hl_bbh_task_expected_count(t));
    }
    list_scrollbar(&s->tasks, in.y, in.x + in.w - 1, in.h);
}

typedef struct {
    int y, x, w, max;
} err_lines;

static void err_line(void *u, int line, const char *s, size_t len) {
    err_lines *c = u;
    if (line < c->max)
        ui_textn(c->y + line, c->x, c->w, ST_ERR, s, len);
}

static double acc_or_nan(const hl_bbh_summary *sm, int t) { return sm->n[t] > 0 ? sm->acc[t] : NAN; }

static void draw_table(eval_scr *s, tui_rect r) {
    eval_arg *ea = s->ea;
    char title[160];
    snprintf(title, sizeof title, "Results");
    ui_box(r, s->focus == 1 ? ST_HI : ST_BOX, title, ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    int y = in.y, x = in.x + 1, w = in.w - 2;
    if (job_running(&s->job)) {
        char stage[160];
        double d, t;
        job_get_progress(&s->job, stage, sizeof stage, &d, &t);
        progress_draw(y++, x, w, NULL, d, t, stage);
        y++;
    }
    if (!ea || (!s->results_ok && !job_running(&s->job))) {
        ui_text(y++, x, w, ST_DIM, "Space selects tasks, r runs. Results appear here per task:");
        ui_text(y++, x, w, ST_DIM, "accuracy of the base model, with the adapter, and the difference.");
        y++;
        ui_text(y++, x, w, ST_DIM, "Result folders (resumable) go to <run dir>/eval/.");
        if (ea && s->job.started && s->job.result != HL_OK) {
            /* all of it, wrapped: it names the folder and the command that fills it */
            err_lines el = {y + 1, x, w, in.y + in.h - (y + 1)};
            wrap_text(s->job.error, strlen(s->job.error), w, err_line, &el);
        }
        return;
    }
    /* live scores while running come from the collected samples */
    int n[2][HL_BBH_N_TASKS] = {{0}}, c[2][HL_BBH_N_TASKS] = {{0}};
    pthread_mutex_lock(&ea->mu);
    long cut = ea->truncated[0] > ea->truncated[1] ? ea->truncated[0] : ea->truncated[1];
    long cut_of = ea->trunc_of[0] > ea->trunc_of[1] ? ea->trunc_of[0] : ea->trunc_of[1];
    int cut_ctx = ea->context;
    pthread_mutex_unlock(&ea->mu);
    if (cut > 0 && y < in.y + in.h) /* a cut few-shot prompt is not the published benchmark */
        ui_textf(y++, x, w, ST_WARN, "! %ld of %ld prompts cut on the left to fit the %d-token context", cut, cut_of,
                 cut_ctx);
    pthread_mutex_lock(&ea->mu);
    for (int i = 0; i < ea->n_samples; i++) {
        n[ea->samples[i].which][ea->samples[i].task]++;
        c[ea->samples[i].which][ea->samples[i].task] += ea->samples[i].correct;
    }
    pthread_mutex_unlock(&ea->mu);
    int show_ad = ea->with_adapter;
    int tw = w - 4 * 8;
    if (tw > 34)
        tw = 34;
    if (tw < 12)
        tw = 12;
    ui_text(y, x, tw, ST_DIM, "task");
    ui_text_right(y, x + tw, 8, ST_DIM, "base");
    if (show_ad) {
        ui_text_right(y, x + tw + 8, 8, ST_DIM, "adapter");
        ui_text_right(y, x + tw + 16, 8, ST_DIM, "diff");
    }
    ui_text_right(y, x + tw + 24, 7, ST_DIM, "n");
    y++;
    double sum[2] = {0, 0};
    int cnt[2] = {0, 0};
    for (int t = 0; t < HL_BBH_N_TASKS && y < in.y + in.h - 2; t++) {
        if (!ea->opts.tasks[t])
            continue;
        double a0 = s->results_ok && ea->have[0] ? acc_or_nan(&ea->sum[0], t) : (n[0][t] ? 100.0 * c[0][t] / n[0][t] : NAN);
        double a1 = s->results_ok && ea->have[1] ? acc_or_nan(&ea->sum[1], t) : (n[1][t] ? 100.0 * c[1][t] / n[1][t] : NAN);
        int nn = s->results_ok && ea->have[0] ? ea->sum[0].n[t] : n[0][t];
        char b0[16] = "-", b1[16] = "", bd[16] = "";
        if (a0 == a0) {
            snprintf(b0, sizeof b0, "%.1f", a0);
            sum[0] += a0;
            cnt[0]++;
        }
        if (show_ad) {
            snprintf(b1, sizeof b1, "-");
            if (a1 == a1) {
                snprintf(b1, sizeof b1, "%.1f", a1);
                sum[1] += a1;
                cnt[1]++;
            }
            if (a0 == a0 && a1 == a1)
                snprintf(bd, sizeof bd, "%+.1f", a1 - a0);
        }
        double dd = (a0 == a0 && a1 == a1) ? a1 - a0 : 0;
        ui_text(y, x, tw - 1, ST_MAIN, hl_bbh_task_name(t));
        ui_text_right(y, x + tw, 8, ST_TITLE, b0);
        ui_text_right(y, x + tw + 8, 8, ST_TITLE, b1);
        ui_text_right(y, x + tw + 16, 8, dd > 0 ? ST_OK : dd < 0 ? ST_ERR : ST_DIM, bd);
        char nb[16];
        snprintf(nb, sizeof nb, "%d", nn);
        ui_text_right(y, x + tw + 24, 7, ST_DIM, nb);
        y++;
    }
    if (y < in.y + in.h) {
        ui_hline(y++, x, w, ST_DIM);
    }
    if (y < in.y + in.h) {
        if (s->results_ok && ea->have[0]) {
            const hl_bbh_summary *b = &ea->sum[0];
            /* macro(n): the mean over the n paper tasks that were scored, not always 23 */
            ui_textf(y++, x, w, ST_TITLE, "base     mean %5.1f  macro(%d) %5.1f  micro %5.1f  (%ld examples)",
                     b->mean_subtasks, b->n_groups, b->macro_tasks, b->micro, b->n_total);
            if (ea->have[1] && y < in.y + in.h) {
                const hl_bbh_summary *a = &ea->sum[1];
                ui_textf(y++, x, w, ST_TITLE, "adapter  mean %5.1f  macro(%d) %5.1f  micro %5.1f  diff %+5.1f",
                         a->mean_subtasks, a->n_groups, a->macro_tasks, a->micro, a->mean_subtasks - b->mean_subtasks);
            }
        } else if (cnt[0]) {
            ui_textf(y++, x, w, ST_DIM, "so far: base mean %.1f%s", sum[0] / cnt[0], "");
        }
    }
}

static const sample *sample_at(eval_scr *s, int i) {
    if (!s->ea || i < 0 || i >= s->ea->n_samples)
        return NULL;
    return &s->ea->samples[i];
}

typedef struct {
    int y, x, w, top, max, style;
} wctx;

static void wline(void *u, int line, const char *s, size_t len) {
    wctx *c = u;
    int row = line - c->top;
    if (row >= 0 && row < c->max)
        ui_textn(c->y + row, c->x, c->w, c->style, s, len);
}

static int wblock(int *ln, tui_rect in, int top, const char *label, const char *text, int style) {
    int row = *ln - top;
    if (row >= 0 && row < in.h)
        ui_text(in.y + row, in.x, in.w, ST_HI, label);
    (*ln)++;
    wctx c = {in.y, in.x + 2, in.w - 2, top - *ln, in.h, style};
    int n = wrap_text(text, strlen(text), in.w - 2, wline, &c);
    *ln += n;
    return n;
}

static void draw_samples(eval_scr *s, tui_rect r) {
    eval_arg *ea = s->ea;
    int n = ea ? ea->n_samples : 0;
    int lh = r.h / 3;
    if (lh < 5)
        lh = 5;
    tui_rect lr = {r.y, r.x, lh, r.w};
    char title[64];
    snprintf(title, sizeof title, "Samples %d", n);
    ui_box(lr, s->focus == 1 ? ST_HI : ST_BOX, title, ST_TITLE);
    tui_rect in = ui_inset(lr, 1);
    s->view_h = in.h;
    if (!ea) {
        ui_text(in.y, in.x + 1, in.w - 2, ST_DIM, "run an evaluation first");
        return;
    }
    pthread_mutex_lock(&ea->mu);
    list_set_n(&s->samples, n);
    list_clamp(&s->samples, in.h);
    for (int i = 0; i < in.h; i++) {
        const sample *sm = sample_at(s, s->samples.top + i);
        if (!sm)
            break;
        int sel = s->samples.top + i == s->samples.sel;
        int st = sel ? ST_SEL : ST_MAIN;
        if (sel)
            ui_fill((tui_rect){in.y + i, in.x, 1, in.w - 1}, st);
        ui_text(in.y + i, in.x + 1, 1, sel ? st : sm->correct ? ST_OK : ST_ERR,
                sm->correct ? (ui_utf8 ? "\u2714" : "+") : (ui_utf8 ? "\u2716" : "-"));
        ui_textf(in.y + i, in.x + 3, in.w - 4, st, "%-7s %-26.26s #%-4d  answer %-12.12s target %s",
                 sm->which ? "adapter" : "base", hl_bbh_task_name(sm->task), sm->idx, sm->extracted, sm->target);
    }
    list_scrollbar(&s->samples, in.y, in.x + in.w - 1, in.h);
    const sample *sm = sample_at(s, s->samples.sel);
    tui_rect dr = {r.y + lh, r.x, r.h - lh, r.w};
    ui_box(dr, ST_BOX, "Sample", ST_TITLE);
    if (sm) {
        char note[160];
        snprintf(note, sizeof note, "%d prompt tok%s, %d generated, stop: %s", sm->prompt_tokens,
                 sm->truncated ? " (cut on the left)" : "", sm->generated_tokens, sm->stop);
        ui_box_note(dr, ST_DIM, note);
        tui_rect din = {dr.y + 1, dr.x + 2, dr.h - 2, dr.w - 4};
        /* the exact prompt, rebuilt by the engine */
        if (s->prompt_for != s->samples.sel) {
            free(s->prompt_cache);
            s->prompt_cache = NULL;
            size_t plen;
            if (ea->set_ok)
                hl_bbh_build_prompt(&ea->set, sm->task, sm->idx, ea->opts.mode, ea->opts.rule, &s->prompt_cache, &plen);
            s->prompt_for = s->samples.sel;
        }
        int ln = 0, top = s->sample_scroll;
        char verdict[256];
        snprintf(verdict, sizeof verdict, "%s  extracted \"%s\"  target \"%s\"", sm->correct ? "CORRECT" : "WRONG",
                 sm->extracted, sm->target);
        int row = ln - top;
        if (row >= 0 && row < din.h)
            ui_text(din.y + row, din.x, din.w, sm->correct ? ST_OK : ST_ERR, verdict);
        ln++;
        wblock(&ln, din, top, "generation", sm->generation, ST_TITLE);
        if (s->prompt_cache) {
            /* the prompt is long (3-shot): show its end, which holds the question */
            const char *p = s->prompt_cache;
            size_t pl = strlen(p);
            const char *tail = pl > 1500 ? p + pl - 1500 : p;
            wblock(&ln, din, top, pl > 1500 ? "prompt (last 1500 bytes)" : "prompt", tail, ST_DIM);
        }
    }
    pthread_mutex_unlock(&ea->mu);
}

static void draw(void *self, tui_app *app, tui_rect r) {
    eval_scr *s = self;
    int lw = 38;
    if (lw > r.w / 2)
        lw = r.w / 2;
    draw_tasks(s, (tui_rect){r.y, r.x, r.h - 3, lw});
    tui_rect rr = {r.y, r.x + lw, r.h - 3, r.w - lw};
    if (s->view_samples)
        draw_samples(s, rr);
    else
        draw_table(s, rr);
    /* the exact settings, always visible */
    tui_rect sr = {r.y + r.h - 3, r.x, 3, r.w};
    ui_box(sr, ST_BOX, "Settings", ST_TITLE);
    char ad[4096];
    int have_ad = adapter_dir(app, ad, sizeof ad);
    hl_bbh_gen_settings gs;
    hl_bbh_rule_gen_settings(s->rule, s->mode, &gs);
    char lim[16], tok[32];
    if (limits[s->limit_i])
        snprintf(lim, sizeof lim, "%d", limits[s->limit_i]);
    else
        snprintf(lim, sizeof lim, "all");
    if (tokens[s->tokens_i])
        snprintf(tok, sizeof tok, "%d", tokens[s->tokens_i]);
    else if (app->model && app->model->cfg.max_seq_len > 0 && gs.max_new_tokens > app->model->cfg.max_seq_len / 2)
        snprintf(tok, sizeof tok, "%d (half the context)", app->model->cfg.max_seq_len / 2); /* as the engine */
    else
        snprintf(tok, sizeof tok, "%d (rule)", gs.max_new_tokens);
    const char *dot = ui_utf8 ? " \u00b7 " : " | ";
    ui_textf(sr.y + 1, sr.x + 2, sr.w - 4, ST_MAIN, "%s (m)%s%s rule (s)%s%s/task (n)%s%s new tokens (t)%sgreedy%s%s (b)",
             hl_bbh_mode_name(s->mode), dot, hl_bbh_rule_name(s->rule), dot, lim, dot, tok, dot, dot,
             s->with_adapter ? (have_ad ? "base + adapter" : "base (no adapter yet)") : "base only");
}

/* ---- input ------------------------------------------------------------------------------------ */

static int action(void *self, tui_app *app, tui_action a) {
    eval_scr *s = self;
    switch (a) {
    case ACT_TOGGLE:
        s->sel[s->tasks.sel] = !s->sel[s->tasks.sel];
        return 1;
    case ACT_ALL: {
        int any = 0;
        for (int i = 0; i < HL_BBH_N_TASKS; i++)
            any |= s->sel[i];
        memset(s->sel, any ? 0 : 1, sizeof s->sel);
        return 1;
    }
    case ACT_MODE: s->mode = (hl_bbh_mode)((s->mode + 1) % HL_BBH_MODE_COUNT); return 1;
    case ACT_RULE: s->rule = (hl_bbh_rule)((s->rule + 1) % HL_BBH_RULE_COUNT); return 1;
    case ACT_LIMIT: s->limit_i = (s->limit_i + 1) % N_LIMITS; return 1;
    case ACT_MORE: s->tokens_i = (s->tokens_i + 1) % N_TOKENS; return 1;
    case ACT_ADAPTER: s->with_adapter = !s->with_adapter; return 1;
    case ACT_RUN: start_eval(s); return 1;
    case ACT_STOP:
        if (job_running(&s->job)) {
            job_cancel(&s->job);
            app_msg(app, MSG_WARN, "stopping the evaluation (finished examples are kept) ...");
        }
        return 1;
    case ACT_VIEW:
        s->view_samples = !s->view_samples;
        s->focus = s->view_samples ? 1 : s->focus;
        return 1;
    case ACT_FOCUS:
    case ACT_FOCUS_BACK: s->focus = !s->focus; return 1;
    case ACT_LEFT: s->focus = 0; return 1;
    case ACT_RIGHT: s->focus = 1; return 1;
    case ACT_ENTER:
        if (s->focus == 0)
            s->sel[s->tasks.sel] = !s->sel[s->tasks.sel];
        return 1;
    default: break;
    }
    if (s->focus == 0)
        return list_move(&s->tasks, a, HL_BBH_N_TASKS);
    if (s->view_samples && s->ea) {
        int old = s->samples.sel;
        int r = list_move(&s->samples, a, s->view_h > 0 ? s->view_h : 1);
        if (s->samples.sel != old)
            s->sample_scroll = 0;
        return r;
    }
    return 0;
}

static int wheel(void *self, tui_app *app, int y, int x, int dy) {
    eval_scr *s = self;
    (void)app;
    (void)x;
    if (s->view_samples && y > LINES / 3 + 2) {
        s->sample_scroll += dy * 2;
        if (s->sample_scroll < 0)
            s->sample_scroll = 0;
        return 1;
    }
    return 0;
}

static int click(void *self, tui_app *app, int y, int x) {
    eval_scr *s = self;
    (void)app;
    int lw = COLS / 2 < 38 ? COLS / 2 : 38;
    if (x < lw) {
        s->focus = 0;
        int t = s->tasks.top + (y - 2);
        if (y >= 2 && t >= 0 && t < HL_BBH_N_TASKS) {
            if (t == s->tasks.sel)
                s->sel[t] = !s->sel[t];
            s->tasks.sel = t;
        }
    } else {
        s->focus = 1;
    }
    return 1;
}

static void tick(void *self, tui_app *app) {
    eval_scr *s = self;
    if (job_poll(&s->job)) {
        app->model_users--;
        eval_arg *ea = s->ea;
        if (s->job.result == HL_OK) {
            s->results_ok = 1;
            if (ea->have[0])
                app_msg(app, MSG_OK, "BBH: base mean %.1f%s; results in %s", ea->sum[0].mean_subtasks,
                        ea->have[1] ? "" : "", ea->out_base);
            if (ea->have[1])
                app_msg(app, MSG_OK, "BBH: base %.1f, adapter %.1f (%+.1f); results in %s", ea->sum[0].mean_subtasks,
                        ea->sum[1].mean_subtasks, ea->sum[1].mean_subtasks - ea->sum[0].mean_subtasks, ea->out_base);
        } else {
            s->results_ok = ea->have[0];
            app_msg(app, s->job.result == HL_ERR_CANCELLED ? MSG_WARN : MSG_ERROR, "evaluation: %s", s->job.error);
        }
    }
}

static const char *badge(void *self, tui_app *app) {
    eval_scr *s = self;
    (void)app;
    static char b[16];
    if (!job_running(&s->job))
        return NULL;
    double d, t;
    job_get_progress(&s->job, NULL, 0, &d, &t);
    if (t > 0) {
        snprintf(b, sizeof b, "%d%%", (int)(100 * d / t));
        return b;
    }
    return "...";
}

static int busy(void *self, tui_app *app) {
    (void)app;
    return job_running(&((eval_scr *)self)->job);
}

static void shutdown_jobs(void *self, tui_app *app) {
    eval_scr *s = self;
    job_cancel(&s->job);
    job_stop(&s->job);
    tick(s, app);
}

static void *create(tui_app *app) {
    eval_scr *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->app = app;
    job_init(&s->job);
    s->mode = HL_BBH_MODE_COT;
    s->rule = HL_BBH_RULE_PAPER;
    s->with_adapter = 1;
    s->prompt_for = -1;
    /* a small default selection: one short task of each answer style */
    int t = hl_bbh_task_index("boolean_expressions");
    if (t >= 0)
        s->sel[t] = 1;
    t = hl_bbh_task_index("sports_understanding");
    if (t >= 0)
        s->sel[t] = 1;
    return s;
}

static void destroy(void *self) {
    eval_scr *s = self;
    if (!s)
        return;
    job_free(&s->job);
    free_arg(s->ea);
    free(s->prompt_cache);
    free(s);
}

const tui_screen_ops scr_eval_ops = {
    .name = "Eval",
    .scope = SC_EVAL,
    .create = create,
    .destroy = destroy,
    .tick = tick,
    .draw = draw,
    .action = action,
    .click = click,
    .wheel = wheel,
    .badge = badge,
    .busy = busy,
    .shutdown = shutdown_jobs,
};
