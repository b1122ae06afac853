/* The Experts screen's "by source" view (see experts_sources.h). */
#include "tui/experts_sources.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/train/routing.h"
#include "tui/job.h"
#include "tui/paths.h"
#include "tui/plot.h"

#define MAX_FILES 16

enum { SHOW_LOAD = 0, SHOW_DIFF, SHOW_COUNT };

/* What the worker computes with: copies, so the UI may change its lists meanwhile. */
typedef struct {
    char model[4096], tokenizer[4096], adapter[4096], device[32], field[64];
    char files[MAX_FILES][4096];
    const char *file_ptr[MAX_FILES];
    int n_files, threads, max_len;
    hl_routing_report rep;
} work_arg;

struct src_view {
    tui_app *app;
    int shown;
    char files[MAX_FILES][4096];
    int n_files;
    tui_list list;     /* selection in the file list (before results) / the source list (after) */
    char field[64];    /* source field ("" = one source per file) */
    char adapter[4096];
    tui_job job;
    work_arg arg;
    hl_routing_report rep;
    int rep_ok;
    int module, show;
};

static void free_report(src_view *v) {
    if (v->rep_ok)
        hl_routing_report_free(&v->rep);
    v->rep_ok = 0;
}

src_view *srcview_create(tui_app *app) {
    src_view *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->app = app;
    job_init(&v->job);
    return v;
}

void srcview_destroy(src_view *v) {
    if (!v)
        return;
    job_free(&v->job);
    free_report(v);
    free(v);
}

void srcview_show(src_view *v, int on) { v->shown = on; }
int srcview_shown(const src_view *v) { return v && v->shown; }
int srcview_busy(const src_view *v) { return v && job_running(&v->job); }

/* The adapter to measure: the one chosen with 'a', else the run's (finished or exported). */
static int adapter_dir(src_view *v, char *out, size_t n) {
    if (v->adapter[0]) {
        snprintf(out, n, "%s", v->adapter);
        return 1;
    }
    const hl_snapshot *sn = v->app->snap;
    char rd[4096];
    if (sn->run_dir[0])
        snprintf(rd, sizeof rd, "%s", sn->run_dir);
    else
        hl_config_run_dir(&v->app->cfg, rd, sizeof rd);
    return paths_run_adapter(rd, out, n);
}

/* ---- the worker -------------------------------------------------------------------------------- */

static int work_progress(void *user, const char *stage, double done, double total) {
    tui_job *j = user;
    job_progress(j, stage, done, total);
    return job_cancelled(j);
}

static hl_status work_main(tui_job *j, void *arg) {
    work_arg *w = arg;
    for (int i = 0; i < w->n_files; i++)
        w->file_ptr[i] = w->files[i];
    hl_routing_request rq = {.model = w->model, .adapter = w->adapter, .tokenizer = w->tokenizer[0] ? w->tokenizer : NULL,
                             .device = w->device[0] ? w->device : NULL, .threads = w->threads, .max_len = w->max_len,
                             .files = w->file_ptr, .n_files = w->n_files, .source_field = w->field[0] ? w->field : NULL};
    return hl_routing_by_source(&rq, &w->rep, work_progress, j);
}

static void start(src_view *v) {
    tui_app *app = v->app;
    if (job_running(&v->job))
        return;
    if (v->n_files < 2 && !(v->n_files == 1 && v->field[0])) {
        app_msg(app, MSG_WARN, "add two or more data files (o: by path, b: browse, p: the run's probe sets), or one "
                               "file and a source field (f)");
        return;
    }
    if (!app->cfg.model[0]) {
        app_msg(app, MSG_WARN, "no model in the run config: open one on 2 Model or set it on 3 Config");
        return;
    }
    work_arg *w = &v->arg;
    memset(w, 0, sizeof *w);
    if (!adapter_dir(v, w->adapter, sizeof w->adapter)) {
        app_msg(app, MSG_WARN, "no adapter in %s yet: finish a run, export one (7 Export), or choose one with a",
                w->adapter);
        return;
    }
    snprintf(w->model, sizeof w->model, "%s", app->cfg.model);
    snprintf(w->tokenizer, sizeof w->tokenizer, "%s", app->cfg.tokenizer);
    snprintf(w->device, sizeof w->device, "%s", app->cfg.device);
    snprintf(w->field, sizeof w->field, "%s", v->field);
    w->threads = app->cfg.threads;
    w->max_len = app->cfg.max_len;
    w->n_files = v->n_files;
    for (int i = 0; i < v->n_files; i++)
        memcpy(w->files[i], v->files[i], sizeof w->files[i]);
    if (job_start(&v->job, work_main, w) == 0)
        app_msg(app, MSG_INFO, "routing statistics of %d file%s ...", v->n_files, v->n_files == 1 ? "" : "s");
}

void srcview_tick(src_view *v) {
    if (!job_poll(&v->job))
        return;
    if (v->job.result == HL_OK) {
        free_report(v);
        v->rep = v->arg.rep;
        memset(&v->arg.rep, 0, sizeof v->arg.rep);
        v->rep_ok = 1;
        v->list.sel = 0;
        v->list.top = 0;
        if (v->module >= v->rep.n_modules)
            v->module = 0;
        app_msg(v->app, MSG_OK, "routing statistics of %d source%s", v->rep.n_sources, v->rep.n_sources == 1 ? "" : "s");
    } else {
        app_msg(v->app, MSG_ERROR, "by source: %s", v->job.error);
    }
}

void srcview_shutdown(src_view *v) {
    job_cancel(&v->job);
    job_stop(&v->job);
    srcview_tick(v);
}

/* ---- the source list ---------------------------------------------------------------------------- */

static void add_file(src_view *v, const char *path) {
    if (!path || !*path)
        return;
    char abs[4096];
    paths_absolute(path, abs, sizeof abs);
    if (!paths_exists(abs) || paths_is_dir(abs)) {
        app_msg(v->app, MSG_ERROR, "%s: no such data file", abs);
        return;
    }
    for (int i = 0; i < v->n_files; i++)
        if (!strcmp(v->files[i], abs)) {
            app_msg(v->app, MSG_WARN, "%s is already in the list", abs);
            return;
        }
    if (v->n_files >= MAX_FILES) {
        app_msg(v->app, MSG_WARN, "at most %d files", MAX_FILES);
        return;
    }
    snprintf(v->files[v->n_files++], sizeof v->files[0], "%s", abs);
    free_report(v); /* the table no longer matches the list */
}

static void file_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)app, (void)choice;
    if (ok)
        add_file(ctx, text);
}

static void field_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    src_view *v = ctx;
    if (!ok)
        return;
    snprintf(v->field, sizeof v->field, "%s", text);
    free_report(v);
    app_msg(app, MSG_INFO, v->field[0] ? "one source per value of '%s' in each file" : "one source per file%s",
            v->field);
}

static void adapter_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    src_view *v = ctx;
    if (!ok)
        return;
    paths_absolute(text, v->adapter, sizeof v->adapter);
    free_report(v);
    app_msg(app, MSG_INFO, v->adapter[0] ? "adapter %s" : "the run's adapter%s", v->adapter);
}

static void csv_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    src_view *v = ctx;
    if (!ok || !*text || !v->rep_ok)
        return;
    char path[4096];
    paths_absolute(text, path, sizeof path);
    char *csv = hl_routing_report_csv(&v->rep);
    if (!csv) {
        app_msg(app, MSG_ERROR, "CSV: out of memory");
        return;
    }
    if (paths_write_atomic(path, csv, strlen(csv)) == 0)
        app_msg(app, MSG_OK, "wrote %s", path);
    else
        app_msg(app, MSG_ERROR, "cannot write %s", path);
    free(csv);
}

/* The run config's probe sets (comma list). */
static void add_probes(src_view *v) {
    const char *p = v->app->cfg.probe_data;
    if (!*p) {
        app_msg(v->app, MSG_WARN, "the run config has no probe_data (3 Config)");
        return;
    }
    while (*p) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        char one[4096];
        snprintf(one, sizeof one, "%.*s", (int)(n < sizeof one ? n : sizeof one - 1), p);
        add_file(v, one);
        if (!q)
            break;
        p = q + 1;
    }
}

int srcview_action(src_view *v, tui_action a) {
    tui_app *app = v->app;
    int nm = v->rep_ok && v->rep.n_modules > 0 ? v->rep.n_modules : 1;
    switch (a) {
    case ACT_BACK:
        v->shown = 0;
        return 1;
    case ACT_OPEN:
        dialog_input(app, "Add a data file", "JSON / JSON lines file (a catalog data set, a BBH task file, ...):",
                     app->data_dir, 1, file_done, v);
        return 1;
    case ACT_BROWSE:
        dialog_files(app, "Add a data file", app->data_dir, 0, file_done, v);
        return 1;
    case ACT_ALL: add_probes(v); return 1;
    case ACT_FORMAT:
        dialog_input(app, "Source field", "one source per value of this record field (source, task, category; "
                     "empty: one source per file):", v->field, 0, field_done, v);
        return 1;
    case ACT_ADAPTER: {
        char cur[4096];
        adapter_dir(v, cur, sizeof cur);
        dialog_input(app, "Adapter", "exported adapter directory (empty: the run's):", cur, 1, adapter_done, v);
        return 1;
    }
    case ACT_DELETE:
        if (job_running(&v->job) || v->n_files == 0 || v->rep_ok)
            return 1;
        memmove(v->files[v->list.sel], v->files[v->list.sel + 1],
                (size_t)(v->n_files - v->list.sel - 1) * sizeof v->files[0]);
        v->n_files--;
        return 1;
    case ACT_RUN: start(v); return 1;
    case ACT_CANCEL:
        if (job_running(&v->job)) {
            job_cancel(&v->job);
            app_msg(app, MSG_INFO, "cancelling ...");
        } else if (v->rep_ok) {
            free_report(v); /* back to the list of files */
        }
        return 1;
    case ACT_SAVE: {
        if (!v->rep_ok) {
            app_msg(app, MSG_WARN, "nothing to export yet (r computes)");
            return 1;
        }
        char rd[4096], def[4200];
        if (app->snap->run_dir[0])
            snprintf(rd, sizeof rd, "%s", app->snap->run_dir);
        else
            hl_config_run_dir(&app->cfg, rd, sizeof rd);
        snprintf(def, sizeof def, "%s/routing_by_source.csv", paths_is_dir(rd) ? rd : ".");
        dialog_input(app, "Export CSV", "write the statistics to:", def, 1, csv_done, v);
        return 1;
    }
    case ACT_MODULE: v->module = (v->module + 1) % nm; return 1;
    case ACT_MODULE_BACK: v->module = (v->module + nm - 1) % nm; return 1;
    case ACT_METRIC: v->show = (v->show + 1) % SHOW_COUNT; return 1;
    default: break;
    }
    int n = v->rep_ok ? v->rep.n_sources : v->n_files;
    list_set_n(&v->list, n);
    return list_move(&v->list, a, 8);
}

/* ---- drawing ------------------------------------------------------------------------------------- */

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void source_name(const hl_routing_source *s, char *out, size_t n) {
    snprintf(out, n, "%.250s", s->value[0] ? s->value : base_name(s->file));
}

static void draw_files(src_view *v, tui_rect r) {
    ui_box(r, ST_HI, "By source: data files", ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    int y = in.y;
    char ad[4096], shown[200];
    int have = adapter_dir(v, ad, sizeof ad);
    paths_display(ad, shown, sizeof shown, (size_t)(in.w > 30 ? in.w - 12 : 18), ui_utf8);
    ui_textf(y++, in.x + 1, in.w - 2, have ? ST_MAIN : ST_WARN, "adapter  %s%s", shown, have ? "" : " (none yet)");
    ui_textf(y++, in.x + 1, in.w - 2, ST_MAIN, "sources  %s%s%s", v->field[0] ? "each value of '" : "one per file",
             v->field, v->field[0] ? "'" : "");
    y++;
    list_set_n(&v->list, v->n_files);
    if (v->n_files == 0)
        ui_text(y++, in.x + 1, in.w - 2, ST_DIM, "no files yet");
    for (int i = 0; i < v->n_files && y < in.y + in.h - 3; i++, y++) {
        char d[300];
        paths_display(v->files[i], d, sizeof d, (size_t)(in.w > 8 ? in.w - 6 : 4), ui_utf8);
        ui_textf(y, in.x + 1, in.w - 2, i == v->list.sel ? ST_SEL : ST_MAIN, "%2d %s", i + 1, d);
    }
    int hy = in.y + in.h - 2;
    ui_text(hy, in.x + 1, in.w - 2, ST_DIM, "o add path  b browse  p probe sets  d remove  f source field");
    ui_text(hy + 1, in.x + 1, in.w - 2, ST_DIM, "a adapter  r compute  Esc back");
}

/* Source x head mean load of the chosen module (averaged over layers), dominant head marked;
 * or its difference from the pooled mean. */
static void draw_table(src_view *v, tui_rect r) {
    const hl_routing_report *rep = &v->rep;
    int tg = rep->module_target[v->module], N = rep->N;
    char title[160];
    snprintf(title, sizeof title, "%s %s by source (mean over layers)",
             v->show == SHOW_DIFF ? "Load - overall mean," : "Mean load,", hl_target_name(tg));
    ui_box(r, ST_HI, title, ST_TITLE);
    ui_box_note(r, ST_DIM, "* dominant  m module  v load/diff  e CSV");
    tui_rect in = ui_inset(r, 1);
    int namew = in.w - 2 - N * 8 - 9;
    namew = namew > 28 ? 28 : namew < 8 ? 8 : namew;
    int y = in.y;
    ui_textf(y, in.x + 1, namew, ST_DIM, "%-*s", namew, "source");
    for (int e = 0; e < N && in.x + 1 + namew + e * 8 + 8 <= in.x + in.w; e++)
        ui_textf(y, in.x + 1 + namew + e * 8, 8, ST_DIM, "%7s%d", "E", e);
    ui_text(y, in.x + 1 + namew + N * 8 + 1, 8, ST_DIM, "   loss");
    y++;
    int rows = in.h - 1;
    list_set_n(&v->list, rep->n_sources);
    list_clamp(&v->list, rows - 1 > 0 ? rows - 1 : 1);
    for (int i = 0; i <= rep->n_sources && y < in.y + in.h; i++) {
        int g = i < rep->n_sources ? i : -1;
        if (g >= 0 && (g < v->list.top || g >= v->list.top + rows - 1))
            continue;
        const hl_routing_stats *st = g >= 0 ? &rep->src[g].stats : &rep->all;
        char name[300];
        if (g >= 0)
            source_name(&rep->src[g], name, sizeof name);
        else
            snprintf(name, sizeof name, "all");
        int sel = g == v->list.sel;
        ui_textf(y, in.x + 1, namew, sel ? ST_SEL : g < 0 ? ST_TITLE : ST_MAIN, "%-*.*s", namew, namew, name);
        int best = 0;
        double val[HL_ADAPTER_MAX_HEADS];
        for (int e = 0; e < N; e++) {
            val[e] = hl_routing_layer_mean(rep, st, v->module, e);
            if (val[e] > val[best])
                best = e;
        }
        for (int e = 0; e < N && in.x + 1 + namew + e * 8 + 8 <= in.x + in.w; e++) {
            double all = hl_routing_layer_mean(rep, &rep->all, v->module, e);
            int x = in.x + 1 + namew + e * 8;
            if (v->show == SHOW_DIFF) {
                double d = val[e] - all;
                heat_cell(y, x + 1, 7, 0.5 + d * N * 2.0, NULL, 0);
                ui_textf(y, x + 1, 7, e == best ? ST_HI : ST_MAIN, "%+6.3f%c", d, e == best ? '*' : ' ');
            } else {
                heat_cell(y, x + 1, 7, val[e] * N / 2.0, NULL, 0);
                ui_textf(y, x + 1, 7, e == best ? ST_HI : ST_MAIN, "%6.3f%c", val[e], e == best ? '*' : ' ');
            }
        }
        if (g >= 0)
            ui_textf(y, in.x + 1 + namew + N * 8 + 1, 8, ST_MAIN, "%7.3f", rep->src[g].loss);
        y++;
    }
}

/* Layer x head heat map of the selected source for the chosen module (or its difference from all). */
static void draw_heat(src_view *v, tui_rect r) {
    const hl_routing_report *rep = &v->rep;
    int g = v->list.sel < rep->n_sources ? v->list.sel : 0;
    int tg = rep->module_target[v->module], N = rep->N;
    char name[300], title[400];
    source_name(&rep->src[g], name, sizeof name);
    snprintf(title, sizeof title, "%s: %s", name, hl_target_name(tg));
    ui_box(r, ST_BOX, title, ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    ui_textf(in.y + in.h - 1, in.x, in.w, ST_DIM, "%lld records, %lld positions (every non-padding token)",
             (long long)rep->src[g].records, (long long)rep->src[g].positions);
    in.h--;
    int cellw = (in.w - 6 - 18) / (N > 0 ? N : 1);
    cellw = cellw > 7 ? 7 : cellw < 3 ? 3 : cellw;
    int y = in.y;
    for (int e = 0; e < N; e++)
        ui_textf(y, in.x + 5 + e * cellw, cellw, ST_DIM, "%*s%d", cellw - 2, "E", e);
    ui_text(y, in.x + 5 + N * cellw + 1, 17, ST_DIM, "entropy  load CV");
    y++;
    const hl_routing_stats *st = &rep->src[g].stats;
    for (int l = 0; l < rep->n_layers && y < in.y + in.h; l++, y++) {
        ui_textf(y, in.x, 5, ST_DIM, "L%-3d", l);
        for (int e = 0; e < N; e++) {
            double w = hl_routing_mean_weight(st, l, tg, e);
            char txt[16];
            if (v->show == SHOW_DIFF) {
                double d = w - hl_routing_mean_weight(&rep->all, l, tg, e);
                snprintf(txt, sizeof txt, cellw >= 7 ? "%+.3f" : "%+.2f", d);
                heat_cell(y, in.x + 5 + e * cellw, cellw - 1, 0.5 + d * N * 2.0, cellw >= 5 ? txt : NULL, 0);
            } else {
                snprintf(txt, sizeof txt, "%.*f", cellw >= 6 ? 3 : 2, w);
                heat_cell(y, in.x + 5 + e * cellw, cellw - 1, w * N / 2.0, cellw >= 4 ? txt : NULL, 0);
            }
        }
        ui_textf(y, in.x + 5 + N * cellw + 1, 17, ST_MAIN, "%7.3f  %7.3f", hl_routing_mean_entropy(st, l, tg),
                 hl_routing_load_cv(st, l, tg));
    }
}

/* The run's probe sets: the dominant head of the chosen module and its load, eval after eval. */
static void draw_probes(src_view *v, tui_rect r) {
    const hl_snapshot_routing *ro = &v->app->snap->routing;
    ui_box(r, ST_BOX, "Probe sets: dominant head", ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    if (ro->probe_n <= 0 || !ro->probe_load || ro->hist_len <= 0 || ro->n_modules <= 0) {
        ui_text(in.y, in.x + 1, in.w - 2, ST_DIM, "none: set probe_data (3 Config) to see the heads specialise over");
        ui_text(in.y + 1, in.x + 1, in.w - 2, ST_DIM, "steps; each file is scored at every eval of a run");
        return;
    }
    int m = v->module < ro->n_modules ? v->module : 0, N = ro->n_experts;
    int namew = 20, colw = 9, ncol = (in.w - namew - 2) / colw;
    ncol = ncol < 1 ? 1 : ncol > ro->hist_len ? ro->hist_len : ncol;
    int first = ro->hist_len - ncol, y = in.y;
    ui_textf(y, in.x + 1, namew, ST_DIM, "%-*s", namew, hl_target_name(ro->module_target[m]));
    for (int c = 0; c < ncol; c++)
        ui_textf(y, in.x + 1 + namew + c * colw, colw, ST_DIM, "%8lld", (long long)ro->hist_step[first + c]);
    y++;
    for (int p = 0; p < ro->probe_n && y < in.y + in.h; p++, y++) {
        ui_textf(y, in.x + 1, namew, ST_MAIN, "%-*.*s", namew - 1, namew - 1, ro->probe_name[p]);
        for (int c = 0; c < ncol; c++) {
            const float *w = ro->probe_load + (((size_t)(first + c) * ro->probe_n + p) * ro->n_modules + m) * N;
            if (!isfinite(w[0]))
                continue;
            int best = 0;
            for (int e = 1; e < N; e++)
                if (w[e] > w[best])
                    best = e;
            ui_textf(y, in.x + 1 + namew + c * colw, colw, ST_MAIN, "  E%d %.2f", best, w[best]);
        }
    }
}

void srcview_draw(src_view *v, tui_rect r) {
    int lw = r.w * 2 / 5;
    lw = lw < 40 ? 40 : lw;
    lw = lw > r.w - 30 ? r.w - 30 : lw;
    int top_h = r.h / 2;
    top_h = top_h < 10 ? 10 : top_h;
    if (job_running(&v->job) || !v->rep_ok) {
        int fh = r.h - 8 > 10 ? r.h - 8 : r.h;
        draw_files(v, (tui_rect){r.y, r.x, fh, r.w});
        tui_rect rest = {r.y + fh, r.x, r.h - fh, r.w};
        if (rest.h < 3)
            return;
        if (job_running(&v->job)) {
            ui_box(rest, ST_BOX, "Computing", ST_TITLE);
            ui_box_note(rest, ST_DIM, "x cancels");
            char st[160];
            double d, t;
            job_get_progress(&v->job, st, sizeof st, &d, &t);
            progress_draw(rest.y + 1, rest.x + 2, rest.w - 4, st, d, t, NULL);
        } else {
            draw_probes(v, rest);
        }
        return;
    }
    draw_table(v, (tui_rect){r.y, r.x, top_h, r.w});
    tui_rect bot = {r.y + top_h, r.x, r.h - top_h, r.w};
    int hw = bot.w - lw > 40 ? bot.w - lw : bot.w;
    draw_heat(v, (tui_rect){bot.y, bot.x, bot.h, hw});
    if (hw < bot.w)
        draw_probes(v, (tui_rect){bot.y, bot.x + hw, bot.h, bot.w - hw});
}
