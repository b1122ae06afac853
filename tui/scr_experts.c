/* Screen 5, Experts: the routers of the running job. A layer × expert heat map of the
 * mean router weight (or top-1 share) for one adapted module, router entropy and top-1
 * share per layer, a warning when routing collapses onto one head, and a drill-down into
 * one layer's routing history; plus a t-SNE scatter of the exported adapter's matrices and the
 * "by source" view (tui/experts_sources.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/analysis/cluster.h"
#include "tui/app.h"
#include "tui/experts_sources.h"
#include "tui/job.h"
#include "tui/paths.h"
#include "tui/plot.h"

enum { METRIC_WEIGHT = 0, METRIC_TOP1, METRIC_COUNT };

typedef struct {
    char dir[4096];
    hl_tsne_report rep;
} tsne_arg;

typedef struct {
    tui_app *app;
    int module; /* index into the snapshot's modules */
    int metric;
    tui_list layers;
    int expert; /* selected column */
    int drill;  /* show the selected layer's history */
    int view_h;
    /* t-SNE */
    tui_job tj;
    tsne_arg ta;
    hl_tsne_report tsne;
    int tsne_ok, show_tsne, tsne_group;
    src_view *sources; /* the "by source" view */
} experts_scr;

static const hl_snapshot_routing *routing(experts_scr *s) { return &s->app->snap->routing; }

static double entropy_max(int n) { return n > 1 ? log((double)n) : 1.0; }

/* Collapse check for one (layer, module): the largest top-1 share, and which head. */
static double top1_max(const hl_snapshot_routing *r, int layer, int module, int *head) {
    double best = 0;
    *head = 0;
    for (int e = 0; e < r->n_experts; e++) {
        double v = r->top1_share[hl_routing_index(r, layer, module, e)];
        if (v > best) {
            best = v;
            *head = e;
        }
    }
    return best;
}

#define COLLAPSE_SHARE 0.90

/* ---- heat map ----------------------------------------------------------------------------- */

static void draw_heatmap(experts_scr *s, tui_rect r) {
    const hl_snapshot_routing *ro = routing(s);
    const char *mname = hl_target_name(ro->module_target[s->module]);
    char title[160];
    snprintf(title, sizeof title, "%s %s", s->metric == METRIC_WEIGHT ? "Router weight" : "Top-1 share", mname);
    ui_box(r, ST_HI, title, ST_TITLE);
    char note[96];
    snprintf(note, sizeof note, "step %lld %s", (long long)ro->step, ro->source ? "val" : "train");
    ui_box_note(r, ST_DIM, note);
    tui_rect in = ui_inset(r, 1);
    int N = ro->n_experts, L = ro->n_layers;
    /* columns: label | N cells | entropy bar | top-1 */
    int labw = 5, tailw = 24;
    int cellw = (in.w - labw - tailw - 1) / (N > 0 ? N : 1);
    if (cellw > 8)
        cellw = 8;
    if (cellw < 2)
        cellw = 2;
    int y = in.y;
    /* header */
    for (int e = 0; e < N; e++) {
        char h[16];
        snprintf(h, sizeof h, cellw >= 4 ? "E%d" : "%d", e);
        int hw = ui_width(h);
        ui_text(y, in.x + labw + e * cellw + (cellw - hw) / 2, cellw, e == s->expert ? ST_HI : ST_DIM, h);
    }
    int tx = in.x + labw + N * cellw + 1;
    ui_text(y, tx, 12, ST_DIM, "entropy");
    ui_text(y, tx + 13, 10, ST_DIM, "top-1 max");
    y++;
    int rows = in.h - 3;
    s->view_h = rows;
    list_set_n(&s->layers, L);
    list_clamp(&s->layers, rows);
    double emax = entropy_max(N);
    int collapsed = 0, worst_layer = -1, worst_head = 0;
    double worst = 0;
    for (int l = 0; l < L; l++) {
        int h;
        double t = top1_max(ro, l, s->module, &h);
        if (t >= COLLAPSE_SHARE)
            collapsed++;
        if (t > worst) {
            worst = t;
            worst_layer = l;
            worst_head = h;
        }
    }
    for (int i = 0; i < rows; i++) {
        int l = s->layers.top + i;
        if (l >= L)
            break;
        int sel = l == s->layers.sel;
        char lab[16];
        snprintf(lab, sizeof lab, "L%-3d", l);
        ui_text(y + i, in.x, labw, sel ? ST_SEL : ST_DIM, lab);
        for (int e = 0; e < N; e++) {
            int idx = hl_routing_index(ro, l, s->module, e);
            double v = s->metric == METRIC_WEIGHT ? ro->weight_mean[idx] : ro->top1_share[idx];
            /* uniform routing (1/N) sits in the middle of the colour scale, 2/N and up at the top */
            double t = v * N / 2.0;
            char txt[16];
            if (cellw >= 5)
                snprintf(txt, sizeof txt, "%.2f", v);
            else if (cellw >= 3)
                snprintf(txt, sizeof txt, "%02d", (int)(v * 100 + 0.5) > 99 ? 99 : (int)(v * 100 + 0.5));
            else
                txt[0] = 0;
            heat_cell(y + i, in.x + labw + e * cellw, cellw - (cellw >= 4 ? 1 : 0), t, txt[0] ? txt : NULL,
                      sel && e == s->expert);
        }
        double H = ro->entropy[l * ro->n_modules + s->module];
        ui_bar(y + i, tx, 6, H / emax, ui_style(TK_PLOT_AUX, TK_MAIN_BG, 0), ST_DIM);
        ui_textf(y + i, tx + 7, 6, ST_MAIN, "%.2f", H);
        int h;
        double t1 = top1_max(ro, l, s->module, &h);
        ui_textf(y + i, tx + 13, 11, t1 >= COLLAPSE_SHARE ? ST_ERR : ST_MAIN, "%3.0f%% E%d", 100 * t1, h);
    }
    list_scrollbar(&s->layers, y, in.x + in.w - 1, rows);
    /* legend and the collapse verdict */
    int ly = in.y + in.h - 2;
    int lx = in.x;
    lx += ui_text(ly, lx, in.w, ST_DIM, "0 ");
    for (int k = 0; k <= 10 && lx < in.x + in.w - 20; k++)
        heat_cell(ly, lx++, 1, k / 10.0, NULL, 0);
    ui_textf(ly, lx, in.x + in.w - lx, ST_DIM, " 2/N   middle = uniform 1/%d   entropy max ln %d = %.2f", N, N, emax);
    ly++;
    if (collapsed) {
        ui_textf(ly, in.x, in.w, ST_ERR, "%s routing collapse: %d of %d layers send >= %.0f%% of tokens to one head "
                 "(worst L%d: %.0f%% to E%d)", ui_utf8 ? "\u26a0" : "!", collapsed, L, 100 * COLLAPSE_SHARE,
                 worst_layer, 100 * worst, worst_head);
    } else {
        ui_textf(ly, in.x, in.w, ST_OK, "%s no collapse: the largest top-1 share is %.0f%% (L%d, E%d)",
                 ui_utf8 ? "\u2714" : "*", 100 * worst, worst_layer, worst_head);
    }
}

/* ---- drill-down: one layer's history ----------------------------------------------------- */

static int expert_style(int e, int n) {
    return ui_style_rgb(ui_heat_rgb(n > 1 ? 0.15 + 0.85 * e / (n - 1) : 0.8), ui_rgb(TK_MAIN_BG), S_BOLD);
}

static void draw_history(experts_scr *s, tui_rect r) {
    const hl_snapshot_routing *ro = routing(s);
    int l = s->layers.sel;
    char title[96];
    snprintf(title, sizeof title, "L%d %s over time", l, hl_target_name(ro->module_target[s->module]));
    ui_box(r, ST_BOX, title, ST_TITLE);
    ui_box_note(r, ST_DIM, "Esc closes");
    int n = ro->hist_len, N = ro->n_experts;
    if (n <= 0) {
        ui_text(r.y + 2, r.x + 2, r.w - 4, ST_DIM, "no history yet");
        return;
    }
    static double xs[HL_ROUTING_HIST], ys[16][HL_ROUTING_HIST], hs[HL_ROUTING_HIST];
    int nE = N > 16 ? 16 : N;
    for (int t = 0; t < n && t < HL_ROUTING_HIST; t++) {
        xs[t] = (double)ro->hist_step[t];
        for (int e = 0; e < nE; e++)
            ys[e][t] = ro->hist_weight_mean[(size_t)t * ro->n_layers * ro->n_modules * N +
                                            (size_t)hl_routing_index(ro, l, s->module, e)];
        hs[t] = ro->hist_entropy[(size_t)t * ro->n_layers * ro->n_modules + (size_t)l * ro->n_modules + s->module];
    }
    tui_rect in = ui_inset(r, 1);
    int ph = (in.h - 1) * 2 / 3;
    plot_series ser[16];
    char names[16][8];
    for (int e = 0; e < nE; e++) {
        snprintf(names[e], sizeof names[e], "E%d", e);
        ser[e] = (plot_series){.x = xs, .y = ys[e], .n = n, .kind = n > 1 ? PLOT_LINE : PLOT_POINTS,
                               .style = expert_style(e, nE), .name = nE <= 8 ? names[e] : ""};
    }
    plot_opts po = {.integer_x = 1, .y_from_zero = 1, .empty_text = "no history yet"};
    ui_text(in.y, in.x, in.w, ST_DIM, "mean router weight per head");
    plot_draw((tui_rect){in.y + 1, in.x, ph, in.w}, ser, nE, &po);
    int ey = in.y + 1 + ph;
    ui_text(ey, in.x, in.w, ST_DIM, "router entropy (nats)");
    plot_series es = {.x = xs, .y = hs, .n = n, .kind = n > 1 ? PLOT_LINE : PLOT_POINTS,
                      .style = ui_style(TK_PLOT_AUX, TK_MAIN_BG, S_BOLD), .name = ""};
    plot_opts po2 = {.integer_x = 1, .ymin = 0, .ymax = entropy_max(N) * 1.02};
    plot_draw((tui_rect){ey + 1, in.x, in.y + in.h - ey - 1, in.w}, &es, 1, &po2);
}

/* ---- summary of all modules (right column when not drilling) ----------------------------- */

static void draw_modules(experts_scr *s, tui_rect r) {
    const hl_snapshot_routing *ro = routing(s);
    ui_box(r, ST_BOX, "Modules", ST_TITLE);
    int y = r.y + 1, x = r.x + 2, w = r.w - 4;
    ui_text(y++, x, w, ST_DIM, "module      H/lnN        top1 collapsed");
    double emax = entropy_max(ro->n_experts);
    for (int m = 0; m < ro->n_modules && y < r.y + r.h - 1; m++) {
        double H = 0, worst = 0;
        int coll = 0;
        for (int l = 0; l < ro->n_layers; l++) {
            H += ro->entropy[l * ro->n_modules + m];
            int h;
            double t = top1_max(ro, l, m, &h);
            if (t > worst)
                worst = t;
            coll += t >= COLLAPSE_SHARE;
        }
        H /= ro->n_layers > 0 ? ro->n_layers : 1;
        int sel = m == s->module;
        ui_textf(y, x, 12, sel ? ST_SEL : ST_MAIN, "%-11s", hl_target_name(ro->module_target[m]));
        ui_bar(y, x + 12, 6, H / emax, ui_style(TK_PLOT_AUX, TK_MAIN_BG, 0), ST_DIM);
        ui_textf(y, x + 19, w - 19, coll ? ST_ERR : ST_MAIN, "%4.2f %5.0f%% %4d/%d", H / emax, 100 * worst, coll,
                 ro->n_layers);
        y++;
    }
    y++;
    if (y < r.y + r.h - 1) {
        const hl_snapshot *sn = s->app->snap;
        ui_textf(y++, x, w, ST_DIM, "%s, N = %d heads, r = %d", hl_config_variant_name(sn->cfg.variant), ro->n_experts,
                 sn->cfg.r);
    }
    if (y + 1 < r.y + r.h - 1) {
        ui_text(y++, x, w, ST_DIM, "Enter: a layer's history  t: t-SNE");
    }
}

/* ---- t-SNE ---------------------------------------------------------------------------------- */

static int tsne_progress(void *user, const char *stage, double done, double total) {
    tui_job *j = user;
    job_progress(j, stage, done, total);
    return job_cancelled(j);
}

static hl_status tsne_main(tui_job *j, void *arg) {
    tsne_arg *ta = arg;
    const char *dirs[1] = {ta->dir};
    hl_tsne_options opt = hl_tsne_defaults();
    return hl_tsne_adapters(dirs, 1, HL_TSNE_WHAT_ALL, &opt, &ta->rep, tsne_progress, j);
}

static void start_tsne(experts_scr *s) {
    if (job_running(&s->tj))
        return;
    memset(&s->ta, 0, sizeof s->ta);
    const hl_snapshot *sn = s->app->snap;
    char rd[4096];
    if (sn->run_dir[0])
        snprintf(rd, sizeof rd, "%s", sn->run_dir);
    else
        hl_config_run_dir(&s->app->cfg, rd, sizeof rd);
    if (!paths_run_adapter(rd, s->ta.dir, sizeof s->ta.dir)) {
        app_msg(s->app, MSG_WARN, "no adapter in %s or its export/ yet: finish the run, or export a checkpoint (7 Export)",
                s->ta.dir);
        return;
    }
    if (job_start(&s->tj, tsne_main, &s->ta) == 0) {
        s->show_tsne = 1;
        app_msg(s->app, MSG_INFO, "t-SNE of %s ...", s->ta.dir);
    }
}

static void draw_tsne(experts_scr *s, tui_rect r) {
    ui_box(r, ST_BOX, "t-SNE of the adapter matrices", ST_TITLE);
    ui_box_note(r, ST_DIM, "g: next group  Esc closes");
    tui_rect in = ui_inset(r, 1);
    if (job_running(&s->tj)) {
        char st[160];
        double d, t;
        job_get_progress(&s->tj, st, sizeof st, &d, &t);
        progress_draw(in.y + 1, in.x + 1, in.w - 2, st, d, t, NULL);
        return;
    }
    if (!s->tsne_ok) {
        ui_text(in.y + 1, in.x + 1, in.w - 2, ST_DIM, "t runs t-SNE on the run's exported adapter");
        return;
    }
    const hl_tsne_report *rep = &s->tsne;
    if (rep->n_groups == 0) {
        ui_text(in.y + 1, in.x + 1, in.w - 2, ST_DIM, "nothing to embed (groups need 3+ matrices)");
        return;
    }
    int g = s->tsne_group % rep->n_groups;
    const hl_tsne_group *gr = &rep->groups[g];
    ui_textf(in.y, in.x + 1, in.w - 2, ST_TITLE, "group %d/%d: %s, %lld points, KL %.3f  (colour: %s)", g + 1,
             rep->n_groups, gr->name, (long long)gr->n_points, gr->kl, gr->kind == 'B' ? "head" : "layer");
    /* one series per colour class */
    static double xs[16][2048], ys[16][2048];
    int cnt[16] = {0};
    int max_class = 0;
    for (int i = 0; i < rep->n_points; i++) {
        const hl_tsne_point *p = &rep->points[i];
        if (p->group != g)
            continue;
        int c = gr->kind == 'B' ? (p->head < 0 ? 0 : p->head) : p->layer;
        c %= 16;
        if (c > max_class)
            max_class = c;
        if (cnt[c] < 2048) {
            xs[c][cnt[c]] = p->x;
            ys[c][cnt[c]] = p->y;
            cnt[c]++;
        }
    }
    plot_series ser[16];
    char names[16][12];
    int ns = 0;
    for (int c = 0; c <= max_class; c++) {
        if (!cnt[c])
            continue;
        snprintf(names[c], sizeof names[c], "%s%d", gr->kind == 'B' ? "E" : "L", c);
        /* points sorted by x for the plot's contract */
        for (int a = 1; a < cnt[c]; a++)
            for (int b = a; b > 0 && xs[c][b] < xs[c][b - 1]; b--) {
                double t = xs[c][b];
                xs[c][b] = xs[c][b - 1];
                xs[c][b - 1] = t;
                t = ys[c][b];
                ys[c][b] = ys[c][b - 1];
                ys[c][b - 1] = t;
            }
        ser[ns++] = (plot_series){.x = xs[c], .y = ys[c], .n = cnt[c], .kind = PLOT_POINTS,
                                  .style = expert_style(c, max_class + 1), .name = max_class < 8 ? names[c] : ""};
    }
    plot_opts po = {0};
    plot_draw((tui_rect){in.y + 1, in.x, in.h - 1, in.w}, ser, ns, &po);
}

/* ---- screen ---------------------------------------------------------------------------------- */

static void draw(void *self, tui_app *app, tui_rect r) {
    experts_scr *s = self;
    const hl_snapshot_routing *ro = &app->snap->routing;
    if (srcview_shown(s->sources)) {
        srcview_draw(s->sources, r);
        return;
    }
    if (s->show_tsne) {
        draw_tsne(s, r);
        return;
    }
    if (ro->n_layers <= 0 || ro->n_experts <= 0 || ro->n_modules <= 0) {
        ui_box(r, ST_BOX, "Experts", ST_TITLE);
        int y = r.y + 2, x = r.x + 3, w = r.w - 6;
        ui_text(y++, x, w, ST_TITLE, "No routing statistics yet.");
        y++;
        ui_text(y++, x, w, ST_MAIN, "They appear after the first training step of a run with a router");
        ui_text(y++, x, w, ST_MAIN, "(variant hydra or lora-split): 4 Train, then r.");
        ui_text(y++, x, w, ST_DIM, "Per layer x module x head: mean router weight, top-1 share, entropy.");
        if (app->snap->state != HL_JOB_IDLE)
            ui_textf(y + 1, x, w, ST_DIM, "job: %s", hl_job_state_name(app->snap->state));
        y += 2;
        ui_text(y++, x, w, ST_DIM, "t: t-SNE of an exported adapter's A and B matrices");
        ui_text(y, x, w, ST_DIM, "s: by source - which heads fire on each data file (GSM8K, a BBH task, ...)");
        return;
    }
    if (s->module >= ro->n_modules)
        s->module = 0;
    if (s->expert >= ro->n_experts)
        s->expert = ro->n_experts - 1;
    int rw = r.w * 2 / 5;
    if (rw < 34)
        rw = 34;
    int needed = 5 + 1 + ro->n_experts * 4 + 24 + 3;
    if (r.w - rw < needed)
        rw = r.w - needed;
    if (rw < 26)
        rw = 0;
    draw_heatmap(s, (tui_rect){r.y, r.x, r.h, r.w - rw});
    if (rw) {
        if (s->drill)
            draw_history(s, (tui_rect){r.y, r.x + r.w - rw, r.h, rw});
        else
            draw_modules(s, (tui_rect){r.y, r.x + r.w - rw, r.h, rw});
    }
}

static int action(void *self, tui_app *app, tui_action a) {
    experts_scr *s = self;
    const hl_snapshot_routing *ro = &app->snap->routing;
    int nm = ro->n_modules > 0 ? ro->n_modules : 1;
    if (srcview_shown(s->sources))
        return srcview_action(s->sources, a);
    if (a == ACT_MODE && s->sources) {
        srcview_show(s->sources, 1);
        return 1;
    }
    if (s->show_tsne) {
        if (a == ACT_BACK || a == ACT_ENTER) {
            s->show_tsne = 0;
            return 1;
        }
        if (a == ACT_TOP || a == ACT_RIGHT || a == ACT_DOWN) {
            s->tsne_group++;
            return 1;
        }
        return 0;
    }
    switch (a) {
    case ACT_MODULE: s->module = (s->module + 1) % nm; return 1;
    case ACT_MODULE_BACK: s->module = (s->module + nm - 1) % nm; return 1;
    case ACT_METRIC: s->metric = (s->metric + 1) % METRIC_COUNT; return 1;
    case ACT_ENTER: s->drill = !s->drill; return 1;
    case ACT_BACK: s->drill = 0; return 1;
    case ACT_LEFT:
        if (s->expert > 0)
            s->expert--;
        return 1;
    case ACT_RIGHT:
        if (s->expert + 1 < ro->n_experts)
            s->expert++;
        return 1;
    case ACT_VIEW:
        start_tsne(s);
        return 1;
    default: break;
    }
    return list_move(&s->layers, a, s->view_h > 0 ? s->view_h : 1);
}

static int click(void *self, tui_app *app, int y, int x) {
    experts_scr *s = self;
    (void)x;
    int row = s->layers.top + (y - 3);
    if (y >= 3 && row >= 0 && row < app->snap->routing.n_layers) {
        if (row == s->layers.sel)
            s->drill = !s->drill;
        s->layers.sel = row;
    }
    return 1;
}

static void tick(void *self, tui_app *app) {
    experts_scr *s = self;
    if (s->sources)
        srcview_tick(s->sources);
    if (job_poll(&s->tj)) {
        if (s->tj.result == HL_OK) {
            if (s->tsne_ok)
                hl_tsne_report_free(&s->tsne);
            s->tsne = s->ta.rep;
            s->tsne_ok = 1;
            s->tsne_group = 0;
            app_msg(app, MSG_OK, "t-SNE: %d points in %d groups", s->tsne.n_points, s->tsne.n_groups);
        } else {
            app_msg(app, MSG_ERROR, "t-SNE: %s", s->tj.error);
        }
    }
}

static int busy(void *self, tui_app *app) {
    experts_scr *s = self;
    (void)app;
    return srcview_busy(s->sources);
}

static const char *badge(void *self, tui_app *app) {
    experts_scr *s = self;
    const hl_snapshot_routing *ro = &app->snap->routing;
    for (int m = 0; m < ro->n_modules; m++)
        for (int l = 0; l < ro->n_layers; l++) {
            int h;
            if (top1_max(ro, l, m, &h) >= COLLAPSE_SHARE)
                return "!";
        }
    (void)s;
    return NULL;
}

static void shutdown_jobs(void *self, tui_app *app) {
    experts_scr *s = self;
    if (s->sources)
        srcview_shutdown(s->sources);
    job_cancel(&s->tj);
    job_stop(&s->tj);
    tick(s, app);
}

static void *create(tui_app *app) {
    experts_scr *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->app = app;
    job_init(&s->tj);
    s->sources = srcview_create(app);
    if (!s->sources) {
        free(s);
        return NULL;
    }
    return s;
}

static void destroy(void *self) {
    experts_scr *s = self;
    if (!s)
        return;
    job_free(&s->tj);
    srcview_destroy(s->sources);
    if (s->tsne_ok)
        hl_tsne_report_free(&s->tsne);
    free(s);
}

const tui_screen_ops scr_experts_ops = {
    .name = "Experts",
    .scope = SC_EXPERTS,
    .create = create,
    .destroy = destroy,
    .tick = tick,
    .draw = draw,
    .action = action,
    .click = click,
    .badge = badge,
    .busy = busy,
    .shutdown = shutdown_jobs,
};
