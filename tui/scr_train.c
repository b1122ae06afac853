/* Screen 4, Train: start / pause / resume / stop / save-now, and the engine's snapshot:
 * progress, loss (raw band, smoothed line, eval points), learning rate, gradient norm,
 * tokens/s, ETA, memory, events. Plots come from the engine's bucketed histories, so a
 * 10-step run and a 100,000-step run cost the same to draw and both stay readable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/app.h"
#include "tui/paths.h"
#include "tui/plot.h"

enum { ZOOM_ALL = 0, ZOOM_QUARTER, ZOOM_LAST100, ZOOM_COUNT };
enum { AUX_LR = 0, AUX_GRAD, AUX_TPS, AUX_COUNT };

typedef struct {
    tui_app *app;
    int logy, zoom, aux;
    int ev_scroll;
    /* the config's device when it is a GPU: name, memory, utilisation (read at most once a second) */
    hl_backend_info gpu;
    int gpu_ok;
    double gpu_at;
} train_scr;

/* ---- helpers --------------------------------------------------------------------------- */

typedef struct {
    double x[HL_SERIES_MAX], mean[HL_SERIES_MAX], lo[HL_SERIES_MAX], hi[HL_SERIES_MAX], last[HL_SERIES_MAX];
    int n;
} series_xy;

static void series_unpack(const hl_series *s, series_xy *o) {
    o->n = 0;
    for (int i = 0; i < s->n && i < HL_SERIES_MAX; i++) {
        const hl_series_bucket *b = &s->b[i];
        if (b->count <= 0)
            continue;
        o->x[o->n] = 0.5 * ((double)b->step_first + (double)b->step_last);
        o->mean[o->n] = b->mean;
        o->lo[o->n] = b->min;
        o->hi[o->n] = b->max;
        o->last[o->n] = b->last;
        o->n++;
    }
}

static int state_style(hl_job_state st) {
    switch (st) {
    case HL_JOB_RUNNING: return ST_OK;
    case HL_JOB_FAILED: return ST_ERR;
    case HL_JOB_FINISHED: return ST_OK;
    case HL_JOB_IDLE: return ST_DIM;
    default: return ST_WARN;
    }
}

static const char *nan_or(char *buf, size_t n, double v) {
    if (v != v)
        return "-";
    return fmt_float(buf, n, v);
}

/* The device line: only for GPUs, refreshed once a second (memory and utilisation move). */
static void gpu_refresh(train_scr *s) {
    double now = ui_now();
    if (now - s->gpu_at < 1.0)
        return;
    s->gpu_at = now;
    hl_backend *be = app_backend(s->app);
    s->gpu_ok = be && hl_backend_get_info(be, &s->gpu) == HL_OK && s->gpu.is_gpu;
}

/* ---- drawing ------------------------------------------------------------------------------- */

static void draw_gpu(train_scr *s, int y, int x, int w) {
    char a[32], b[32];
    int xx = x;
    xx += ui_text(y, xx, w, ST_DIM, "gpu ");
    xx += ui_textf(y, xx, x + w - xx, ST_TITLE, "%s ", s->gpu.name);
    xx += ui_textf(y, xx, x + w - xx, ST_MAIN, "%s  ", s->gpu.device);
    xx += ui_text(y, xx, x + w - xx, ST_DIM, "memory ");
    xx += ui_textf(y, xx, x + w - xx, ST_TITLE, "%s", fmt_bytes(a, sizeof a, (double)(s->gpu.mem_total - s->gpu.mem_free)));
    xx += ui_textf(y, xx, x + w - xx, ST_DIM, " / %s", fmt_bytes(b, sizeof b, (double)s->gpu.mem_total));
    if (s->gpu.util_percent >= 0) {
        xx += ui_text(y, xx, x + w - xx, ST_DIM, "  utilisation ");
        ui_textf(y, xx, x + w - xx, ST_TITLE, "%d%%", s->gpu.util_percent);
    }
}

static void draw_header(train_scr *s, tui_rect r) {
    const hl_snapshot *sn = s->app->snap;
    char title[128];
    snprintf(title, sizeof title, "Training");
    ui_box(r, ST_BOX, title, ST_TITLE);
    char st[64];
    snprintf(st, sizeof st, " %s ", hl_job_state_name(sn->state));
    for (char *p = st; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 32);
    int stw = ui_width(st);
    ui_text(r.y, r.x + 12, stw, state_style(sn->state) | S_REV | S_BOLD, st);
    char rd[4096], shown[4096];
    if (sn->run_dir[0])
        snprintf(rd, sizeof rd, "%s", sn->run_dir);
    else
        hl_config_run_dir(&s->app->cfg, rd, sizeof rd);
    paths_display(rd, shown, sizeof shown, (size_t)(r.w > 40 ? r.w - 30 : 10), ui_utf8);
    ui_box_note(r, ST_DIM, shown);

    int y = r.y + 1, x = r.x + 2, w = r.w - 4;
    char a[32], b[32], c[32], d[32], e[32];
    if (sn->state == HL_JOB_IDLE) {
        const hl_run_config *cfg = &s->app->cfg;
        ui_textf(y++, x, w, ST_MAIN, "Ready: r starts a new run, R resumes the run directory from its last checkpoint.");
        char m[4096], dd[4096];
        paths_display(cfg->model[0] ? cfg->model : "(no model)", m, sizeof m, 40, ui_utf8);
        paths_display(cfg->data[0] ? cfg->data : "(no data)", dd, sizeof dd, 40, ui_utf8);
        ui_textf(y++, x, w, ST_DIM, "model %s   data %s   %s r=%d N=%d lr %g", m, dd,
                 hl_config_variant_name(cfg->variant), cfg->r, cfg->n_heads, cfg->lr);
        if (s->gpu_ok && r.h >= 6)
            draw_gpu(s, y + 1, x, w);
        return;
    }
    double f = sn->total_steps > 0 ? (double)sn->step / (double)sn->total_steps : 0;
    int lw = ui_textf(y, x, w, ST_TITLE, "step %lld/%lld ", (long long)sn->step, (long long)sn->total_steps);
    int bw = w / 3;
    ui_bar_gradient(y, x + lw, bw, f);
    int xx = x + lw + bw + 1;
    xx += ui_textf(y, xx, x + w - xx, ST_TITLE, "%5.1f%%", 100 * f);
    ui_textf(y, xx, x + w - xx, ST_MAIN, "  epoch %.2f  elapsed %s  ETA %s", sn->epoch,
             fmt_duration(a, sizeof a, sn->elapsed_s), sn->eta_s == sn->eta_s ? fmt_duration(b, sizeof b, sn->eta_s) : "--");
    y++;
    /* the numbers, dense */
    xx = x;
    xx += ui_text(y, xx, w, ST_DIM, "loss ");
    xx += ui_text(y, xx, x + w - xx, ui_style(TK_PLOT_SMOOTH, TK_MAIN_BG, S_BOLD), nan_or(a, sizeof a, sn->loss));
    xx += ui_textf(y, xx, x + w - xx, ST_DIM, " (ema %s)  ", nan_or(b, sizeof b, sn->loss_smooth));
    xx += ui_text(y, xx, x + w - xx, ST_DIM, "eval ");
    if (sn->eval_step >= 0)
        xx += ui_textf(y, xx, x + w - xx, ui_style(TK_PLOT_EVAL, TK_MAIN_BG, S_BOLD), "%s@%lld",
                       nan_or(c, sizeof c, sn->eval_loss), (long long)sn->eval_step);
    else
        xx += ui_text(y, xx, x + w - xx, ST_DIM, "-");
    if (sn->eval_loss_first == sn->eval_loss_first)
        xx += ui_textf(y, xx, x + w - xx, ST_DIM, " (start %s)", nan_or(d, sizeof d, sn->eval_loss_first));
    xx += ui_textf(y, xx, x + w - xx, ST_DIM, "  lr ");
    xx += ui_text(y, xx, x + w - xx, ST_TITLE, sn->lr == sn->lr ? (snprintf(e, sizeof e, "%.2e", sn->lr), e) : "-");
    xx += ui_text(y, xx, x + w - xx, ST_DIM, "  |g| ");
    xx += ui_text(y, xx, x + w - xx, ST_TITLE, nan_or(a, sizeof a, sn->grad_norm));
    y++;
    xx = x;
    xx += ui_textf(y, xx, w, ST_TITLE, "%s", sn->tokens_per_s == sn->tokens_per_s ? fmt_si(a, sizeof a, sn->tokens_per_s) : "-");
    xx += ui_text(y, xx, x + w - xx, ST_DIM, " tok/s  ");
    /* tokens the last step computed that were padding (packing keeps this small) */
    xx += ui_text(y, xx, x + w - xx, ST_DIM, "padding ");
    if (sn->padding_share == sn->padding_share)
        xx += ui_textf(y, xx, x + w - xx, ST_TITLE, "%.1f%%", 100.0 * sn->padding_share);
    else
        xx += ui_text(y, xx, x + w - xx, ST_DIM, "-");
    xx += ui_text(y, xx, x + w - xx, ST_DIM, "  ");
    xx += ui_textf(y, xx, x + w - xx, ST_MAIN, "%s tokens  ", fmt_si(b, sizeof b, (double)sn->tokens_seen));
    xx += ui_textf(y, xx, x + w - xx, ST_DIM, "mem ");
    xx += ui_textf(y, xx, x + w - xx, ST_TITLE, "%s", fmt_bytes(c, sizeof c, (double)sn->mem_bytes));
    if (sn->mem_planned > 0)
        xx += ui_textf(y, xx, x + w - xx, ST_DIM, " (plan %s)", fmt_bytes(d, sizeof d, (double)sn->mem_planned));
    xx += ui_textf(y, xx, x + w - xx, ST_DIM, "  train/val %lld/%lld  trainable %s", (long long)sn->n_train,
                   (long long)sn->n_val, fmt_si(e, sizeof e, (double)sn->trainable_params));
    if (sn->last_checkpoint_step >= 0)
        ui_textf(y, xx, x + w - xx, ST_DIM, "  ckpt @%lld", (long long)sn->last_checkpoint_step);
    if (s->gpu_ok && r.h >= 6)
        draw_gpu(s, y + 1, x, w);
}

static void draw_loss(train_scr *s, tui_rect r) {
    const hl_snapshot *sn = s->app->snap;
    static const char *const zn[ZOOM_COUNT] = {"all steps", "last 25%", "last 100 steps"};
    char title[96];
    snprintf(title, sizeof title, "Loss%s", s->logy ? " (log)" : "");
    ui_box(r, ST_BOX, title, ST_TITLE);
    char note[64];
    snprintf(note, sizeof note, "%s (z)", zn[s->zoom]);
    ui_box_note(r, ST_DIM, note);
    static series_xy loss, ev;
    series_unpack(&sn->loss_hist, &loss);
    series_unpack(&sn->eval_hist, &ev);
    /* display smoothing of the bucket means (EMA weighted by steps per bucket) */
    static double smooth[HL_SERIES_MAX];
    double acc = NAN;
    for (int i = 0; i < loss.n; i++) {
        double cnt = sn->loss_hist.b[i].count > 0 ? sn->loss_hist.b[i].count : 1;
        double alpha = 1 - pow(0.9, cnt);
        acc = acc != acc ? loss.mean[i] : acc + alpha * (loss.mean[i] - acc);
        smooth[i] = acc;
    }
    plot_opts po = {.integer_x = 1, .logy = s->logy};
    int64_t last = sn->step > 0 ? sn->step : 1;
    if (s->zoom == ZOOM_QUARTER && last > 8) {
        po.xmin = (double)last * 0.75;
        po.xmax = (double)last;
    } else if (s->zoom == ZOOM_LAST100 && last > 100) {
        po.xmin = (double)(last - 100);
        po.xmax = (double)last;
    }
    if (sn->total_steps > 0 && s->zoom == ZOOM_ALL) {
        po.xmin = 0;
        po.xmax = (double)sn->total_steps;
    }
    po.empty_text = sn->state == HL_JOB_IDLE ? "no run yet: r starts one" : "waiting for the first step ...";
    /* with one step per bucket the band is just the points: the raw line shows them */
    int bucketed = sn->loss_hist.width > 1;
    plot_series ser[4];
    int ns = 0;
    if (bucketed)
        ser[ns++] = (plot_series){.x = loss.x, .lo = loss.lo, .hi = loss.hi, .n = loss.n, .kind = PLOT_BAND,
                                  .style = ui_style(TK_PLOT_RAW, TK_MAIN_BG, 0), .name = "raw min-max"};
    else
        ser[ns++] = (plot_series){.x = loss.x, .y = loss.mean, .n = loss.n, .kind = PLOT_LINE,
                                  .style = ui_style(TK_PLOT_RAW, TK_MAIN_BG, 0), .name = "raw"};
    ser[ns++] = (plot_series){.x = loss.x, .y = smooth, .n = loss.n, .kind = PLOT_LINE,
                              .style = ui_style(TK_PLOT_SMOOTH, TK_MAIN_BG, S_BOLD), .name = "smoothed"};
    ser[ns++] = (plot_series){.x = ev.x, .y = ev.mean, .n = ev.n, .kind = PLOT_LINE,
                              .style = ui_style(TK_PLOT_EVAL, TK_MAIN_BG, 0), .name = ""};
    ser[ns++] = (plot_series){.x = ev.x, .y = ev.mean, .n = ev.n, .kind = PLOT_POINTS,
                              .style = ui_style(TK_PLOT_EVAL, TK_MAIN_BG, S_BOLD), .name = "eval"};
    plot_draw(ui_inset(r, 1), ser, ns, &po);
}

static void draw_aux(train_scr *s, tui_rect r) {
    const hl_snapshot *sn = s->app->snap;
    static const char *const names[AUX_COUNT] = {"Learning rate", "Gradient norm (before clipping)", "Tokens per second"};
    ui_box(r, ST_BOX, names[s->aux], ST_TITLE);
    ui_box_note(r, ST_DIM, "m");
    const hl_series *h = s->aux == AUX_LR ? &sn->lr_hist : s->aux == AUX_GRAD ? &sn->grad_norm_hist : &sn->tokens_per_s_hist;
    static series_xy d;
    series_unpack(h, &d);
    plot_opts po = {.integer_x = 1, .y_from_zero = s->aux != AUX_GRAD};
    if (sn->total_steps > 0) {
        po.xmin = 0;
        po.xmax = (double)sn->total_steps;
    }
    po.empty_text = "no data yet";
    plot_series ser[3]; /* min-max band, mean line, clipping threshold */
    int ns = 0;
    if (h->width > 1)
        ser[ns++] = (plot_series){.x = d.x, .lo = d.lo, .hi = d.hi, .n = d.n, .kind = PLOT_BAND,
                                  .style = ui_style(TK_PLOT_RAW, TK_MAIN_BG, 0), .name = ""};
    ser[ns++] = (plot_series){.x = d.x, .y = d.mean, .n = d.n, .kind = PLOT_LINE,
                              .style = ui_style(TK_PLOT_AUX, TK_MAIN_BG, S_BOLD), .name = ""};
    if (s->aux == AUX_GRAD && s->app->snap->cfg.clip_norm > 0) {
        /* the clipping threshold as a reference line */
        static double cx[2], cy[2];
        cx[0] = po.xmin;
        cx[1] = po.xmax > po.xmin ? po.xmax : (d.n ? d.x[d.n - 1] : 1);
        cy[0] = cy[1] = s->app->snap->cfg.clip_norm;
        ser[ns++] = (plot_series){.x = cx, .y = cy, .n = 2, .kind = PLOT_LINE,
                                  .style = ui_style(TK_WARN, TK_MAIN_BG, 0), .name = "clip"};
    }
    plot_draw(ui_inset(r, 1), ser, ns, &po);
}

static void draw_events(train_scr *s, tui_rect r) {
    const hl_snapshot *sn = s->app->snap;
    ui_box(r, ST_BOX, "Events", ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    int idx[HL_ENGINE_EVENTS], n = 0;
    for (int i = 0; i < HL_ENGINE_EVENTS; i++)
        if (sn->events[i].seq)
            idx[n++] = i;
    /* newest first */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && sn->events[idx[j]].seq > sn->events[idx[j - 1]].seq; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    int y = in.y;
    if (sn->state == HL_JOB_FAILED && sn->error[0]) {
        int len = (int)strlen(sn->error), off = 0;
        while (off < len && y < in.y + in.h) {
            size_t k = ui_fit_bytes(sn->error + off, (size_t)(len - off), in.w - 2);
            if (!k)
                break;
            ui_textn(y++, in.x + 1, in.w - 2, ST_ERR, sn->error + off, k);
            off += (int)k;
        }
    }
    for (int i = 0; i < n && y < in.y + in.h; i++) {
        const hl_engine_event *e = &sn->events[idx[i]];
        char st[24];
        snprintf(st, sizeof st, "%6lld", (long long)e->step);
        ui_text(y, in.x + 1, 7, ST_DIM, st);
        ui_text(y, in.x + 8, in.w - 9, e->is_error ? ST_ERR : ST_MAIN, e->text);
        y++;
    }
    if (!n && sn->state == HL_JOB_IDLE)
        ui_text(in.y, in.x + 1, in.w - 2, ST_DIM, "checkpoints, evals and errors appear here");
}

static void draw(void *self, tui_app *app, tui_rect r) {
    train_scr *s = self;
    (void)app;
    gpu_refresh(s);
    int hh = s->gpu_ok ? 6 : 5;
    draw_header(s, (tui_rect){r.y, r.x, hh, r.w});
    int rest = r.h - hh;
    int lossh = rest * 3 / 5;
    if (lossh < 7)
        lossh = 7;
    draw_loss(s, (tui_rect){r.y + hh, r.x, lossh, r.w});
    int bh = rest - lossh;
    if (bh >= 5) {
        int aw = r.w / 2;
        draw_aux(s, (tui_rect){r.y + hh + lossh, r.x, bh, aw});
        draw_events(s, (tui_rect){r.y + hh + lossh, r.x + aw, bh, r.w - aw});
    }
}

/* ---- actions -------------------------------------------------------------------------------- */

static void report(tui_app *app, hl_status st, const char *what) {
    if (st == HL_OK)
        return;
    app_msg(app, MSG_ERROR, "%s: %s", what, hl_last_error());
}

static void start_mode(tui_app *app, hl_start_mode mode) {
    if (!app->engine) {
        app_msg(app, MSG_ERROR, "the engine could not be created");
        return;
    }
    hl_status st = hl_engine_start(app->engine, &app->cfg, mode);
    if (st != HL_OK) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", hl_last_error());
        app_msg(app, MSG_ERROR, "start: %s", msg);
        dialog_msg(app, "Cannot start training", msg, MSG_ERROR);
        return;
    }
    app_msg_pending(app, "%s: loading model and data ...", mode == HL_START_RESUME ? "resuming" : "starting");
}

static void exists_choice(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)ctx;
    (void)text;
    if (!ok)
        return;
    if (choice == 0)
        start_mode(app, HL_START_RESUME);
    else if (choice == 1)
        start_mode(app, HL_START_OVERWRITE);
}

static int run_has_checkpoints(tui_app *app) {
    char rd[4096], ck[4200];
    hl_config_run_dir(&app->cfg, rd, sizeof rd);
    snprintf(ck, sizeof ck, "%s/checkpoints", rd);
    return paths_is_dir(ck);
}

static void resume_run(tui_app *app) {
    char rd[4096];
    hl_config_run_dir(&app->cfg, rd, sizeof rd);
    hl_run_config cfg;
    if (hl_engine_load_run_config(rd, &cfg) != HL_OK) {
        app_msg(app, MSG_ERROR, "resume: %s", hl_last_error());
        dialog_msg(app, "Cannot resume", hl_last_error(), MSG_ERROR);
        return;
    }
    /* keep what the user may change between sessions (thread count), take the rest */
    cfg.threads = app->cfg.threads;
    app->cfg = cfg;
    app_config_changed(app);
    start_mode(app, HL_START_RESUME);
}

static int action(void *self, tui_app *app, tui_action a) {
    train_scr *s = self;
    const hl_snapshot *sn = app->snap;
    int active = sn->state != HL_JOB_IDLE && !hl_job_state_is_final(sn->state);
    switch (a) {
    case ACT_RUN:
        if (active) {
            app_msg(app, MSG_WARN, "a run is active: p pauses, x stops");
            return 1;
        }
        if (run_has_checkpoints(app)) {
            static const char *const items[] = {"Resume from its newest checkpoint", "Overwrite: start again from step 0",
                                                "Cancel"};
            dialog_choice(app, "The run directory already has checkpoints", items, 3, 0, exists_choice, s);
            return 1;
        }
        start_mode(app, HL_START_NEW);
        return 1;
    case ACT_RESUME_RUN:
        if (active)
            app_msg(app, MSG_WARN, "a run is active");
        else
            resume_run(app);
        return 1;
    case ACT_PAUSE:
        if (sn->state == HL_JOB_PAUSED) {
            hl_status st = hl_engine_resume(app->engine);
            report(app, st, "resume");
            if (st == HL_OK)
                app_msg_pending(app, "resuming ...");
        } else if (active) {
            hl_status st = hl_engine_pause(app->engine);
            report(app, st, "pause");
            if (st == HL_OK)
                app_msg_pending(app, "pausing after the current micro-batch ...");
        } else {
            app_msg(app, MSG_WARN, "no run is active");
        }
        return 1;
    case ACT_STOP:
        if (active) {
            hl_status st = hl_engine_stop(app->engine);
            report(app, st, "stop");
            if (st == HL_OK)
                app_msg_pending(app, "stopping: finishing the step, then a checkpoint ...");
        }
        return 1;
    case ACT_SAVE_NOW:
        if (active) {
            hl_status st = hl_engine_save_now(app->engine);
            report(app, st, "save");
            if (st == HL_OK && sn->state == HL_JOB_PAUSED)
                app_msg_pending(app, "writing a checkpoint now ...");
            else if (st == HL_OK)
                app_msg(app, MSG_INFO, "a checkpoint will be written after the current step");
        }
        return 1;
    case ACT_LOGY: s->logy = !s->logy; return 1;
    case ACT_ZOOM: s->zoom = (s->zoom + 1) % ZOOM_COUNT; return 1;
    case ACT_METRIC: s->aux = (s->aux + 1) % AUX_COUNT; return 1;
    default: return 0;
    }
}

static const char *badge(void *self, tui_app *app) {
    (void)self;
    const hl_snapshot *sn = app->snap;
    static char b[24];
    if (sn->state == HL_JOB_RUNNING && sn->total_steps > 0) {
        snprintf(b, sizeof b, "%d%%", (int)(100 * sn->step / sn->total_steps));
        return b;
    }
    if (sn->state == HL_JOB_PAUSED)
        return ui_utf8 ? "\u2016" : "||";
    if (sn->state == HL_JOB_LOADING || sn->state == HL_JOB_SAVING)
        return "...";
    if (sn->state == HL_JOB_FAILED)
        return "!";
    return NULL;
}

static void *create(tui_app *app) {
    train_scr *s = calloc(1, sizeof *s);
    if (s)
        s->app = app;
    return s;
}

static void destroy(void *self) { free(self); }

const tui_screen_ops scr_train_ops = {
    .name = "Train",
    .scope = SC_TRAIN,
    .create = create,
    .destroy = destroy,
    .draw = draw,
    .action = action,
    .badge = badge,
};
