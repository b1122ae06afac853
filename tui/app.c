/* The workbench main loop: frame, screens, input dispatch, signals and clean shutdown.
 *
 * One thread draws. Every frame: absorb the engine's newest snapshot, let each screen
 * poll its workers, redraw everything (curses sends only the difference), then wait at
 * most 50 ms for a key. Long work never runs here. */
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui/app.h"
#include "tui/paths.h"
#include "tui/tui.h"

#define MIN_COLS 60
#define MIN_LINES 16
#define FRAME_MS 50

static volatile sig_atomic_t g_sigint, g_sigterm, g_sigwinch;

static void on_signal(int sig) {
    if (sig == SIGINT)
        g_sigint++;
    else if (sig == SIGWINCH)
        g_sigwinch = 1;
    else
        g_sigterm++;
}

/* ---- shared helpers ------------------------------------------------------------------- */

void app_msg(tui_app *app, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(app->msg, sizeof app->msg, fmt, ap);
    va_end(ap);
    /* one line: newlines in library messages become spaces */
    for (char *p = app->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    app->msg_level = level;
    app->msg_time = ui_now();
    app->msg_from_engine = 0;
    app->msg_transient = 0;
}

void app_msg_pending(tui_app *app, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    app_msg(app, MSG_INFO, "%s", line);
    app->msg_transient = 1;
}

static int g_started; /* the screens exist: notes become dialogs at once */

void app_note(tui_app *app, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (g_started) {
        dialog_msg(app, "Please note", line, MSG_WARN);
        app_msg(app, MSG_WARN, "%s", line);
        return;
    }
    size_t n = strlen(app->notes);
    snprintf(app->notes + n, sizeof app->notes - n, "%s%s", n ? "\n\n" : "", line);
}

void app_switch(tui_app *app, int screen) {
    if (screen >= 0 && screen < SCR_COUNT)
        app->cur = screen;
}

void app_config_changed(tui_app *app) {
    app->cfg_dirty = 1;
    app->cfg_version++;
}

void app_save_settings(tui_app *app) {
    if (settings_save(&app->settings) != 0)
        app_msg(app, MSG_WARN, "could not save settings.json (config dir not writable?)");
}

hl_backend *app_backend(tui_app *app) {
    const char *name = app->cfg.device[0] ? app->cfg.device : "auto";
    if (app->be && !strcmp(app->be_device, name) && app->be_threads == app->cfg.threads)
        return app->be;
    hl_backend_close(app->be);
    app->be = NULL;
    snprintf(app->be_device, sizeof app->be_device, "%s", name);
    app->be_threads = app->cfg.threads;
    if (app_worker_device(name, app->cfg.threads, &app->be) != HL_OK) {
        snprintf(app->be_error, sizeof app->be_error, "%s", hl_last_error());
        return NULL;
    }
    app->be_error[0] = '\0';
    return app->be;
}

hl_status app_worker_device(const char *name, int threads, hl_backend **out) {
    *out = NULL;
    hl_backend *be = NULL;
    hl_status st = hl_backend_open(&be, name && *name ? name : "auto");
    if (st == HL_OK)
        st = hl_backend_set_threads(be, threads);
    if (st != HL_OK) {
        hl_backend_close(be);
        return st;
    }
    *out = be;
    return HL_OK;
}

int app_set_model(tui_app *app, hl_model *model, hl_tokenizer *tok, const char *path) {
    if (app->model_users > 0)
        return -1;
    if (app->model) {
        hl_model_free(app->model);
        free(app->model);
    }
    if (app->tok)
        hl_tokenizer_free(app->tok);
    app->model = model;
    app->tok = tok;
    snprintf(app->model_path, sizeof app->model_path, "%s", path ? path : "");
    app->model_version++;
    return 0;
}

/* ---- frame ---------------------------------------------------------------------------- */

static int tab_label(tui_app *app, int i, int pad, char *out, size_t n) {
    const char *badge = app->ops[i]->badge ? app->ops[i]->badge(app->scr[i], app) : NULL;
    snprintf(out, n, "%s%d %s%s%s%s", pad ? " " : "", i + 1, app->ops[i]->name, badge ? " " : "", badge ? badge : "",
             pad ? " " : "");
    return ui_width(out);
}

static void draw_tabs(tui_app *app) {
    int bar = ui_style(TK_MAIN_FG, TK_BAR_BG, 0);
    ui_fill((tui_rect){0, 0, 1, COLS}, bar);
    /* the widest form that fits: logo + padded tabs, short logo, no padding, numbers only */
    static const char *const logos[] = {" hydralora ", " hl ", "", ""};
    int form = 0;
    for (; form < 3; form++) {
        int need = ui_width(logos[form]) + SCR_COUNT - 1;
        for (int i = 0; i < SCR_COUNT; i++) {
            char l[64];
            need += tab_label(app, i, form < 2, l, sizeof l);
        }
        if (need <= COLS)
            break;
    }
    int x = 0;
    for (int i = 0; i < SCR_COUNT; i++)
        app->tab_x0[i] = app->tab_x1[i] = -1;
    x += ui_text(0, x, COLS, ui_style(TK_HI_FG, TK_BAR_BG, S_BOLD), logos[form]);
    for (int i = 0; i < SCR_COUNT; i++) {
        char label[64];
        int w;
        if (form < 3) {
            w = tab_label(app, i, form < 2, label, sizeof label);
        } else {
            snprintf(label, sizeof label, " %d ", i + 1);
            w = 3;
        }
        if (x + w > COLS)
            break;
        app->tab_x0[i] = x;
        int st = i == app->cur ? ui_style(TK_SELECTED_FG, TK_SELECTED_BG, S_BOLD)
                               : ui_style(TK_MAIN_FG, TK_BAR_BG, 0);
        ui_text(0, x, w, st, label);
        if (i != app->cur) /* the number is the key: show it as one */
            ui_text(0, x + (label[0] == ' '), 1, ui_style(TK_HI_FG, TK_BAR_BG, S_BOLD), label + (label[0] == ' '));
        x += w;
        app->tab_x1[i] = x;
        if (x < COLS && i + 1 < SCR_COUNT) {
            ui_glyph(0, x, ui_style(TK_DIV_LINE, TK_BAR_BG, 0), "\u2502", "|");
            x++;
        }
    }
    /* right: the training job at a glance */
    const hl_snapshot *s = app->snap;
    if (s && s->state != HL_JOB_IDLE) {
        char right[160];
        char lossb[24] = "-";
        if (s->loss == s->loss)
            fmt_float(lossb, sizeof lossb, s->loss);
        if (s->total_steps > 0)
            snprintf(right, sizeof right, " %s %lld/%lld loss %s ", hl_job_state_name(s->state),
                     (long long)s->step, (long long)s->total_steps, lossb);
        else
            snprintf(right, sizeof right, " %s ", hl_job_state_name(s->state));
        int w = ui_width(right);
        if (COLS - w > x + 1) {
            int st = s->state == HL_JOB_FAILED    ? ui_style(TK_ERROR, TK_BAR_BG, S_BOLD)
                     : s->state == HL_JOB_RUNNING ? ui_style(TK_OK, TK_BAR_BG, S_BOLD)
                                                  : ui_style(TK_WARN, TK_BAR_BG, S_BOLD);
            ui_text(0, COLS - w, w, st, right);
        }
    }
}

static void draw_status(tui_app *app) {
    int y = LINES - 2;
    ui_fill((tui_rect){y, 0, 1, COLS}, ST_MAIN);
    /* right side: what is loaded */
    char right[512];
    char mshort[64] = "no model", dshort[64] = "no data";
    if (app->model_path[0]) {
        const char *b = strrchr(app->model_path, '/');
        snprintf(mshort, sizeof mshort, "%.60s", b && b[1] ? b + 1 : app->model_path);
    }
    if (app->cfg.data[0]) {
        const char *b = strrchr(app->cfg.data, '/');
        snprintf(dshort, sizeof dshort, "%.60s", b && b[1] ? b + 1 : app->cfg.data);
    }
    snprintf(right, sizeof right, " model %s %s data %s ", mshort, ui_utf8 ? "\u00b7" : "|", dshort);
    int rw = ui_width(right);
    int avail = COLS - 1;
    if (rw < COLS / 2) {
        ui_text(y, COLS - rw, rw, ST_DIM, right);
        avail = COLS - rw - 1;
    }
    if (app->msg[0]) {
        int st = app->msg_level == MSG_ERROR ? ST_ERR
                 : app->msg_level == MSG_WARN ? ST_WARN
                 : app->msg_level == MSG_OK   ? ST_OK
                                              : ST_MAIN;
        const char *icon = app->msg_level == MSG_ERROR ? (ui_utf8 ? "\u2716 " : "! ")
                           : app->msg_level == MSG_WARN ? (ui_utf8 ? "\u26a0 " : "! ")
                           : app->msg_level == MSG_OK   ? (ui_utf8 ? "\u2714 " : "* ")
                                                        : "";
        char line[1100];
        snprintf(line, sizeof line, " %s%s", icon, app->msg);
        ui_text(y, 0, avail, st, line);
    }
}

static void draw_fbar(tui_app *app) {
    int y = LINES - 1;
    int bar = ui_style(TK_MAIN_FG, TK_BAR_BG, 0);
    int keyst = ui_style(TK_SELECTED_FG, TK_SELECTED_BG, S_BOLD);
    ui_fill((tui_rect){y, 0, 1, COLS}, bar);
    app->fbar_n = 0;
    unsigned scope = app->ops[app->cur]->scope;
    int x = 0;
    /* screen actions first, then Help and Quit at the ends like htop */
    const tui_binding *rows[40];
    int nr = 0;
    for (int i = 0; i < tui_n_bindings && nr < 38; i++)
        if (tui_bindings[i].label[0] && (tui_bindings[i].scope & scope))
            rows[nr++] = &tui_bindings[i];
    const tui_binding *help = NULL, *quit = NULL;
    for (int i = 0; i < tui_n_bindings; i++) {
        if (tui_bindings[i].action == ACT_HELP)
            help = &tui_bindings[i];
        if (tui_bindings[i].action == ACT_QUIT)
            quit = &tui_bindings[i];
    }
    const tui_binding *all[42];
    int na = 0;
    all[na++] = help;
    for (int i = 0; i < nr; i++)
        all[na++] = rows[i];
    all[na++] = quit;
    int quit_w = 6;
    for (int i = 0; i < na; i++) {
        const tui_binding *b = all[i];
        char kn[16];
        const char *k = keys_name(b->keys[0], kn, sizeof kn);
        if (b->action == ACT_HELP)
            k = "?";
        int w = ui_width(k) + ui_width(b->label) + 2;
        int reserve = b == quit ? 0 : quit_w;
        if (x + w > COLS - reserve)
            continue;
        int x0 = x;
        x += ui_text(y, x, w, keyst, k);
        x += ui_text(y, x, 1, bar, " ");
        x += ui_text(y, x, COLS - x, bar, b->label);
        if (app->fbar_n < 32) {
            app->fbar_x0[app->fbar_n] = x0;
            app->fbar_x1[app->fbar_n] = x;
            app->fbar_act[app->fbar_n] = b->action;
            app->fbar_n++;
        }
        x += 1;
    }
}

static void draw_too_small(void) {
    erase();
    char t[96];
    snprintf(t, sizeof t, "terminal %dx%d is too small: need %dx%d", COLS, LINES, MIN_COLS, MIN_LINES);
    ui_text(LINES / 2, 0, COLS, ST_WARN, t);
}

static void draw_all(tui_app *app) {
    curs_set(0);
    if (COLS < MIN_COLS || LINES < MIN_LINES) {
        draw_too_small();
        return;
    }
    ui_fill((tui_rect){0, 0, LINES, COLS}, ST_MAIN);
    draw_tabs(app);
    tui_rect body = {1, 0, LINES - 3, COLS};
    app->ops[app->cur]->draw(app->scr[app->cur], app, body);
    draw_status(app);
    draw_fbar(app);
    if (app->stopping) {
        tui_rect r = app_center(5, 64);
        ui_fill(r, ST_MAIN);
        ui_box(r, ST_WARN, "Quitting", ST_TITLE);
        ui_text(r.y + 1, r.x + 2, r.w - 4, ST_MAIN, "Stopping training: finishing the step and");
        ui_text(r.y + 2, r.x + 2, r.w - 4, ST_MAIN, "writing a checkpoint before exit...");
        ui_text(r.y + 3, r.x + 2, r.w - 4, ST_DIM, "(Ctrl-C twice more quits without waiting)");
        curs_set(0);
    }
    if (dialog_active())
        dialog_draw(app);
}

/* ---- quitting ------------------------------------------------------------------------- */

static int any_busy(tui_app *app) {
    for (int i = 0; i < SCR_COUNT; i++)
        if (app->ops[i]->busy && app->ops[i]->busy(app->scr[i], app))
            return 1;
    return 0;
}

static int engine_active(tui_app *app) {
    const hl_snapshot *s = app->snap;
    return s && s->state != HL_JOB_IDLE && !hl_job_state_is_final(s->state);
}

static void begin_quit(tui_app *app) {
    for (int i = 0; i < SCR_COUNT; i++)
        if (app->ops[i]->shutdown)
            app->ops[i]->shutdown(app->scr[i], app);
    if (app->engine && engine_active(app)) {
        hl_engine_stop(app->engine); /* checkpoint, then STOPPED */
        app->stopping = 1;
        return;
    }
    app->running = 0;
}

static void quit_confirmed(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)ctx;
    (void)text;
    (void)choice;
    if (ok)
        begin_quit(app);
}

static void request_quit(tui_app *app) {
    if (any_busy(app) || engine_active(app)) {
        dialog_confirm(app, "Quit?",
                       engine_active(app)
                           ? "Training is running. Quit now? The run is stopped after the current step and a "
                             "checkpoint is written first, so it can be resumed (R on the Train screen)."
                           : "A job is running (download, evaluation, generation or export). Quit and cancel it?",
                       quit_confirmed, NULL);
    } else {
        begin_quit(app);
    }
}

/* ---- input ---------------------------------------------------------------------------- */

static void do_action(tui_app *app, tui_action a, int key) {
    switch (a) {
    case ACT_HELP: dialog_help(app); return;
    case ACT_QUIT: request_quit(app); return;
    case ACT_SCREEN: app_switch(app, key - '1'); return;
    case ACT_NEXT_SCREEN: app_switch(app, (app->cur + 1) % SCR_COUNT); return;
    case ACT_PREV_SCREEN: app_switch(app, (app->cur + SCR_COUNT - 1) % SCR_COUNT); return;
    case ACT_REDRAW: clearok(curscr, TRUE); return;
    case ACT_THEME: {
        tui_theme_list *list = malloc(sizeof *list);
        if (!list)
            return;
        theme_list_all(list);
        int idx = -1;
        for (int i = 0; i < list->n; i++)
            if (!strcmp(list->name[i], app->theme.name))
                idx = i;
        if (list->n == 0)
            app_msg(app, MSG_WARN, "no theme files found (built-in theme in use)");
        /* the next one that loads; a broken file is reported and skipped */
        char skipped[160] = "";
        for (int k = 1; k <= list->n; k++) {
            int next = (idx + k) % list->n;
            if (theme_load_file(&app->theme, list->path[next]) == 0) {
                ui_setup(&app->theme);
                snprintf(app->settings.theme, sizeof app->settings.theme, "%s", app->theme.name);
                app_save_settings(app);
                app_msg(app, skipped[0] ? MSG_WARN : MSG_INFO, "theme: %s (%s)%s%s", app->theme.name,
                        ui_colors ? (ui_colors == 256 ? "256 colours" : ui_colors == 16 ? "16 colours" : "8 colours")
                                  : "monochrome",
                        skipped[0] ? "; skipped " : "", skipped);
                break;
            }
            snprintf(skipped, sizeof skipped, "%.60s: not a theme file", list->name[next]);
        }
        free(list);
        return;
    }
    default: break;
    }
    const tui_screen_ops *ops = app->ops[app->cur];
    if (ops->action)
        ops->action(app->scr[app->cur], app, a);
}

static void handle_mouse(tui_app *app) {
    MEVENT ev;
    if (getmouse(&ev) != OK)
        return;
    int wheel = 0;
    if (ev.bstate & BUTTON4_PRESSED)
        wheel = -1;
#ifdef BUTTON5_PRESSED
    else if (ev.bstate & BUTTON5_PRESSED)
        wheel = 1;
#endif
    int click = (ev.bstate & (BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON1_DOUBLE_CLICKED)) != 0;
    if (dialog_active()) {
        if (wheel)
            dialog_wheel(app, wheel);
        else if (click)
            dialog_click(app, ev.y, ev.x);
        return;
    }
    if (app->stopping)
        return;
    const tui_screen_ops *ops = app->ops[app->cur];
    if (wheel) {
        if (!(ops->wheel && ops->wheel(app->scr[app->cur], app, ev.y, ev.x, wheel)))
            if (ops->action)
                for (int i = 0; i < 3; i++)
                    ops->action(app->scr[app->cur], app, wheel < 0 ? ACT_UP : ACT_DOWN);
        return;
    }
    if (!click)
        return;
    if (ev.y == 0) {
        for (int i = 0; i < SCR_COUNT; i++)
            if (ev.x >= app->tab_x0[i] && ev.x < app->tab_x1[i])
                app_switch(app, i);
        return;
    }
    if (ev.y == LINES - 1) {
        for (int i = 0; i < app->fbar_n; i++)
            if (ev.x >= app->fbar_x0[i] && ev.x < app->fbar_x1[i])
                do_action(app, app->fbar_act[i], 0);
        return;
    }
    if (ops->click)
        ops->click(app->scr[app->cur], app, ev.y, ev.x);
}

static void handle_key(tui_app *app, int ch, int is_code) {
    if (is_code && ch == KEY_MOUSE) {
        handle_mouse(app);
        return;
    }
    if (is_code && ch == KEY_RESIZE)
        return; /* the next frame lays out for the new size */
    if (dialog_key(app, ch, is_code))
        return;
    if (app->stopping)
        return;
    const tui_screen_ops *ops = app->ops[app->cur];
    void *self = app->scr[app->cur];
    if (ops->capturing && ops->capturing(self) && ops->text_key && ops->text_key(self, app, ch, is_code))
        return;
    const tui_binding *b = NULL;
    tui_action a = keys_lookup(ops->scope | SC_GLOBAL | SC_MOVE, ch, is_code, &b);
    if (a != ACT_NONE)
        do_action(app, a, ch);
}

/* ---- engine snapshot -------------------------------------------------------------------- */

/* What a job state means for the user, for the status line when it changes without an
 * event of its own (pause, resume). */
static void state_news(const hl_snapshot *s, char *out, size_t n) {
    switch (s->state) {
    case HL_JOB_LOADING: snprintf(out, n, "loading model and data ..."); break;
    case HL_JOB_RUNNING:
        snprintf(out, n, "training: step %lld/%lld", (long long)s->step, (long long)s->total_steps);
        break;
    case HL_JOB_PAUSED:
        snprintf(out, n, "paused at step %lld: p resumes, w writes a checkpoint now, x stops", (long long)s->step);
        break;
    case HL_JOB_SAVING: snprintf(out, n, "writing a checkpoint ..."); break;
    case HL_JOB_STOPPED: snprintf(out, n, "stopped at step %lld", (long long)s->step); break;
    case HL_JOB_FINISHED: snprintf(out, n, "finished: %lld steps", (long long)s->step); break;
    case HL_JOB_FAILED: snprintf(out, n, "failed: %s", s->error); break;
    default: out[0] = 0; break;
    }
}

/* The engine's news on the status line. Routine news (an eval every few steps on a small
 * model) must not wipe the answer to the key the user just pressed before it can be read,
 * so it waits until the answer is 3 s old (it is kept, not dropped); errors always show,
 * and an answer that only announces engine work ("pausing ...") gives way at once. */
static void engine_news(tui_app *app) {
    const hl_snapshot *s = app->snap;
    if (!s)
        return;
    uint64_t best = 0;
    int bi = -1;
    for (int i = 0; i < HL_ENGINE_EVENTS; i++)
        if (s->events[i].seq > app->snap_version && s->events[i].seq > best) {
            best = s->events[i].seq;
            bi = i;
        }
    int state_changed = (int)s->state != app->news_state;
    int answer_fresh = !app->msg_from_engine && app->msg[0] && ui_now() - app->msg_time < 3.0;
    int may_replace = !answer_fresh || app->msg_transient;
    if (bi >= 0 && (s->events[bi].is_error || may_replace)) {
        app_msg(app, s->events[bi].is_error ? MSG_ERROR : MSG_INFO, "%s", s->events[bi].text);
        app->msg_from_engine = 1;
        app->snap_version = best;
        app->news_state = (int)s->state;
    } else if (state_changed && may_replace) {
        char news[700];
        state_news(s, news, sizeof news);
        if (news[0]) {
            app_msg(app, s->state == HL_JOB_FAILED ? MSG_ERROR : MSG_INFO, "%s", news);
            app->msg_from_engine = 1;
        }
        app->news_state = (int)s->state;
    }
}

static void absorb_snapshot(tui_app *app) {
    if (!app->engine)
        return;
    const hl_snapshot *s = hl_engine_snapshot(app->engine);
    if (app->snap && s->version == app->snap->version) {
        hl_snapshot_release(s);
    } else {
        if (app->snap)
            hl_snapshot_release(app->snap);
        app->snap = s;
    }
    engine_news(app); /* every frame: news held back for a fresh answer shows when it is read */
    s = app->snap;
    if (app->stopping && (hl_job_state_is_final(s->state) || s->state == HL_JOB_IDLE))
        app->running = 0;
}

/* ---- setup ------------------------------------------------------------------------------ */

static void usage_error(const char *msg) { fprintf(stderr, "hydralora: %s\n", msg); }

void app_open_model(tui_app *app, const char *path) {
    const tui_screen_ops *o = app->ops[SCR_MODEL];
    if (o && o->request && app->scr[SCR_MODEL])
        o->request(app->scr[SCR_MODEL], app, APP_REQ_OPEN_MODEL, path);
}

int app_model_loading(tui_app *app) {
    const tui_screen_ops *o = app->ops[SCR_MODEL];
    return o && o->request && app->scr[SCR_MODEL] ? o->request(app->scr[SCR_MODEL], app, APP_REQ_MODEL_LOADING, NULL)
                                                  : 0;
}

void app_open_data(tui_app *app, const char *path) {
    const tui_screen_ops *o = app->ops[SCR_DATA];
    if (o && o->request && app->scr[SCR_DATA])
        o->request(app->scr[SCR_DATA], app, APP_REQ_OPEN_DATA, path);
}

int app_run(int argc, char **argv, const tui_screen_ops *const screens[SCR_COUNT]) {
    double t_start = ui_now();
    setlocale(LC_ALL, "");
    const char *arg_theme = NULL, *arg_model = NULL, *arg_data = NULL, *arg_config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "workbench"))
            continue;
        if (i + 1 < argc && !strcmp(a, "--theme"))
            arg_theme = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--model"))
            arg_model = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--data"))
            arg_data = argv[++i];
        else if (i + 1 < argc && !strcmp(a, "--config"))
            arg_config = argv[++i];
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: hydralora [workbench] [--model PATH] [--data FILE] [--config FILE] [--theme NAME]\n"
                   "Opens the curses workbench. Keys: ? help, 1-7 screens, q quit.\n"
                   "Themes: $HYDRALORA_THEMES, $XDG_CONFIG_HOME/hydralora/themes, <prefix>/share/hydralora/themes.\n");
            return 0;
        } else {
            char m[300];
            snprintf(m, sizeof m, "workbench: unknown argument '%.200s' (try --help)", a);
            usage_error(m);
            return 2;
        }
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        usage_error("the workbench needs a terminal (use a subcommand for headless work; see hydralora --help)");
        return 1;
    }

    tui_app *app = calloc(1, sizeof *app);
    if (!app)
        return 1;
    settings_load(&app->settings);
    /* The theme: --theme, else $HYDRALORA_THEME, else the remembered one. A name that is not
     * there is an error on the command line and a warning otherwise (never silent). */
    const char *env_theme = getenv("HYDRALORA_THEME");
    const char *theme = arg_theme ? arg_theme : env_theme && *env_theme ? env_theme : app->settings.theme;
    const char *theme_from = arg_theme ? "--theme" : env_theme && *env_theme ? "HYDRALORA_THEME" : "settings.json";
    if (theme_load_named(&app->theme, theme) != 0 && strcmp(theme, "builtin") && strcmp(theme, "default")) {
        char names[1024] = "";
        tui_theme_list *list = malloc(sizeof *list);
        int found = 0;
        if (list) {
            theme_list_all(list);
            for (int i = 0; i < list->n; i++) {
                size_t n = strlen(names);
                snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", list->name[i]);
                found |= !strcmp(list->name[i], theme);
            }
            free(list);
        }
        char why[1400];
        snprintf(why, sizeof why, "theme '%.60s' (%s) %s; themes: %s%sbuiltin", theme, theme_from,
                 found ? "is not a theme file" : "is not installed", names, names[0] ? ", " : "");
        if (arg_theme) {
            fprintf(stderr, "hydralora: workbench: %s\n", why);
            free(app);
            return 2;
        }
        app_note(app, "%s. Using the %s theme.", why, strcmp(theme, app->settings.theme) ? "remembered" : "built-in");
        if (strcmp(theme, app->settings.theme))
            theme_load_named(&app->theme, app->settings.theme);
    } else if (theme != app->settings.theme) {
        snprintf(app->settings.theme, sizeof app->settings.theme, "%s", theme);
    }
    paths_data_dir(app->data_dir, sizeof app->data_dir);

    hl_config_defaults(&app->cfg);
    if (arg_config || app->settings.last_config[0]) {
        const char *p = arg_config ? arg_config : app->settings.last_config;
        hl_run_config tmp = app->cfg;
        if (hl_config_load_file(&tmp, p) == HL_OK)
            app->cfg = tmp;
        else if (arg_config)
            app_note(app, "config %s: %s", p, hl_last_error());
        else if (!paths_exists(p))
            app_note(app, "The config of the last session, %s, is gone: starting from the defaults.", p);
        else
            app_note(app, "The config of the last session, %s, cannot be read (%s): starting from the defaults.", p,
                     hl_last_error());
    }
    if (arg_model)
        snprintf(app->cfg.model, sizeof app->cfg.model, "%s", arg_model);
    if (arg_data)
        snprintf(app->cfg.data, sizeof app->cfg.data, "%s", arg_data);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        usage_error("cannot initialise the terminal (is TERM set?)");
        free(app);
        return 1;
    }
    set_term(scr);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    set_escdelay(25);
    curs_set(0);
    timeout(FRAME_MS);
    mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED
#ifdef BUTTON5_PRESSED
                  | BUTTON5_PRESSED
#endif
              ,
              NULL);
    mouseinterval(0);
    ui_setup(&app->theme);

    if (hl_engine_create(&app->engine) != HL_OK) {
        app->engine = NULL;
        app_msg(app, MSG_ERROR, "engine: %s", hl_last_error());
    }
    absorb_snapshot(app);

    for (int i = 0; i < SCR_COUNT; i++) /* all ops first: a screen's create may ask another screen */
        app->ops[i] = screens[i];
    for (int i = 0; i < SCR_COUNT; i++)
        app->scr[i] = screens[i]->create(app);
    app->running = 1;
    g_started = 1;
    if (app->notes[0]) {
        dialog_msg(app, "Please note", app->notes, MSG_WARN);
        app_msg(app, MSG_WARN, "%s", app->notes);
    }
    if (!app->msg[0])
        app_msg(app, MSG_INFO, "Welcome. ? shows every key; 1-7 switch screens; q quits.");

    /* timing figures for HYDRALORA_TUI_STATS=FILE (how responsive the UI thread is) */
    double st_frame_sum = 0, st_frame_max = 0, st_key_sum = 0, st_key_max = 0, st_first = -1;
    long st_frames = 0, st_keys = 0;
    double key_at = -1;
    int sigint_seen = 0;
    while (app->running) {
        double f0 = ui_now();
        if (g_sigint != sigint_seen || g_sigterm) {
            int n = g_sigint;
            if (app->stopping && n - sigint_seen >= 1 && n >= 3) {
                break; /* third Ctrl-C: the user really wants out */
            }
            sigint_seen = n;
            if (!app->stopping) {
                dialog_close();
                begin_quit(app); /* Ctrl-C: a clean stop, no questions */
            }
            g_sigterm = 0;
        }
        absorb_snapshot(app);
        for (int i = 0; i < SCR_COUNT; i++)
            if (app->ops[i]->tick)
                app->ops[i]->tick(app->scr[i], app);
        if (!app->running)
            break;
        draw_all(app);
        refresh();
        double f1 = ui_now();
        if (st_first < 0)
            st_first = f1 - t_start;
        st_frames++;
        st_frame_sum += f1 - f0;
        if (f1 - f0 > st_frame_max)
            st_frame_max = f1 - f0;
        if (key_at >= 0) {
            st_keys++;
            st_key_sum += f1 - key_at;
            if (f1 - key_at > st_key_max)
                st_key_max = f1 - key_at;
            key_at = -1;
        }
        wint_t wch;
        int r = get_wch(&wch);
        if (r != ERR)
            key_at = ui_now();
        while (r != ERR) {
            handle_key(app, (int)wch, r == KEY_CODE_YES);
            if (!app->running)
                break;
            /* drain what is already typed before the next frame (fast typing, pastes) */
            timeout(0);
            r = get_wch(&wch);
        }
        timeout(FRAME_MS);
    }

    const char *stats = getenv("HYDRALORA_TUI_STATS");
    if (stats && *stats) {
        FILE *f = fopen(stats, "w");
        if (f) {
            fprintf(f, "first frame %.1f ms after start\n", st_first * 1e3);
            fprintf(f, "frames %ld: work per frame mean %.2f ms, max %.2f ms\n", st_frames,
                    st_frames ? st_frame_sum / st_frames * 1e3 : 0, st_frame_max * 1e3);
            fprintf(f, "keys %ld: key to updated screen mean %.2f ms, max %.2f ms\n", st_keys,
                    st_keys ? st_key_sum / st_keys * 1e3 : 0, st_key_max * 1e3);
            fclose(f);
        }
    }
    for (int i = 0; i < SCR_COUNT; i++)
        if (app->ops[i]->shutdown)
            app->ops[i]->shutdown(app->scr[i], app);
    for (int i = 0; i < SCR_COUNT; i++)
        if (app->scr[i] && app->ops[i]->destroy)
            app->ops[i]->destroy(app->scr[i]);
    dialog_close();
    endwin();
    delscreen(scr);
    if (app->snap)
        hl_snapshot_release(app->snap);
    if (app->engine)
        hl_engine_free(app->engine); /* waits for the stop checkpoint */
    app_set_model(app, NULL, NULL, NULL);
    hl_backend_close(app->be);
    app_save_settings(app);
    free(app);
    return 0;
}
