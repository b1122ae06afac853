/* Screen 3, Config: every run-config field as a form row, generated from the engine's
 * field table (core/train/config.h): typed text inputs, choices, switches and target toggles,
 * inline help and range, validation messages on the field, and the trainable-parameter
 * count and memory plan recomputed as you edit (including the value being typed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend.h"
#include "tui/app.h"
#include "tui/paths.h"

/* One form row: a group header (field == NULL) or a field. */
typedef struct {
    const hl_config_field *field;
    const char *group;
} row;

typedef struct {
    tui_app *app;
    row rows[128];
    int n_rows;
    tui_list list;
    int view_h;
    int editing;
    tui_edit edit;
    int flag_cur;        /* targets: which flag the cursor is on */
    int err_row;         /* row showing a validation error (-1: none) */
    char err[512];
    /* estimate (for the committed config, or the value being typed) */
    uint64_t est_cfg, est_model;
    char est_key[4096];
    int est_ok;
    hl_mem_plan plan;
    int plan_holds_weights; /* a GPU's plan counts its copy of the weights */
    char plan_device[32];
    int64_t plan_free; /* bytes free on that device when planned (-1 unknown; GPUs only) */
    size_t n_trainable;
    char est_err[512];
    char valid_msg[512];
    int valid_ok;
    uint64_t valid_cfg;
    char saved_path[4096];
} config_scr;

static const char *group_title(const char *g) {
    if (!strcmp(g, "run"))
        return "Run";
    if (!strcmp(g, "data"))
        return "Data";
    if (!strcmp(g, "adapter"))
        return "Adapter (HydraLoRA)";
    if (!strcmp(g, "optim"))
        return "Optimisation";
    if (!strcmp(g, "log"))
        return "Evaluation and checkpoints";
    return g;
}

static void build_rows(config_scr *s) {
    s->n_rows = 0;
    const char *last = "";
    for (int i = 0; i < hl_config_n_fields && s->n_rows < 126; i++) {
        const hl_config_field *f = &hl_config_fields[i];
        if (strcmp(f->group, last)) {
            s->rows[s->n_rows++] = (row){NULL, f->group};
            last = f->group;
        }
        s->rows[s->n_rows++] = (row){f, f->group};
    }
    list_set_n(&s->list, s->n_rows);
    s->list.sel = 1;
}

static const hl_config_field *cur_field(config_scr *s) {
    return s->list.n ? s->rows[s->list.sel].field : NULL;
}

/* Skip group headers when moving. */
static void settle(config_scr *s, int dir) {
    if (!s->n_rows)
        return;
    while (s->list.sel >= 0 && s->list.sel < s->n_rows && !s->rows[s->list.sel].field)
        s->list.sel += dir;
    if (s->list.sel < 0 || s->list.sel >= s->n_rows) {
        s->list.sel = s->list.sel < 0 ? 0 : s->n_rows - 1;
        while (s->list.sel < s->n_rows - 1 && !s->rows[s->list.sel].field)
            s->list.sel++;
        while (s->list.sel > 0 && !s->rows[s->list.sel].field)
            s->list.sel--;
    }
}

/* ---- applying values ---------------------------------------------------------------------- */

/* Set a field through the engine's parser; on error keep the message on the row. */
static int set_field(config_scr *s, const hl_config_field *f, const char *text) {
    hl_run_config tmp = s->app->cfg;
    if (hl_config_set_field(&tmp, f, text) != HL_OK) {
        snprintf(s->err, sizeof s->err, "%s", hl_last_error());
        s->err_row = s->list.sel;
        return -1;
    }
    s->app->cfg = tmp;
    s->err_row = -1;
    s->err[0] = 0;
    app_config_changed(s->app);
    /* an error about an earlier value must not stay on the status line once it is fixed */
    if (s->app->msg_level == MSG_ERROR && !s->app->msg_from_engine) {
        char v[256];
        hl_config_get_field(&s->app->cfg, f, v, sizeof v);
        app_msg(s->app, MSG_OK, "%s = %s", f->name, v);
    }
    return 0;
}

static void cycle_enum(config_scr *s, const hl_config_field *f, int dir) {
    int n = 0;
    while (f->choices[n])
        n++;
    char cur[128];
    hl_config_get_field(&s->app->cfg, f, cur, sizeof cur);
    int i = 0;
    while (i < n && strcmp(f->choices[i], cur))
        i++;
    i = ((i + dir) % n + n) % n;
    set_field(s, f, f->choices[i]);
}

static void toggle_flag(config_scr *s, const hl_config_field *f) {
    unsigned v = *(const unsigned *)((const char *)&s->app->cfg + f->offset);
    v ^= 1u << s->flag_cur;
    char buf[256] = "";
    for (int i = 0; f->choices[i]; i++)
        if (v >> i & 1) {
            if (buf[0])
                strcat(buf, ",");
            strcat(buf, f->choices[i]);
        }
    set_field(s, f, buf);
}

/* ---- estimate ------------------------------------------------------------------------------- */

static void estimate(config_scr *s) {
    tui_app *app = s->app;
    hl_run_config cfg = app->cfg;
    char key[4096] = "";
    /* the value being typed counts, if it parses */
    if (s->editing && cur_field(s)) {
        hl_run_config tmp = cfg;
        if (hl_config_set_field(&tmp, cur_field(s), s->edit.buf) == HL_OK) {
            cfg = tmp;
            snprintf(key, sizeof key, "%s", s->edit.buf);
        }
        hl_clear_error();
    }
    if (s->est_cfg == app->cfg_version && s->est_model == app->model_version && !strcmp(key, s->est_key))
        return;
    s->est_cfg = app->cfg_version;
    s->est_model = app->model_version;
    snprintf(s->est_key, sizeof s->est_key, "%s", key);
    s->est_ok = 0;
    if (!app->model)
        return;
    const hl_llama_config *mc = &app->model->cfg;
    hl_adapter_config ac = hl_config_adapter(&cfg);
    if (hl_adapter_config_check(&ac) != HL_OK) {
        snprintf(s->est_err, sizeof s->est_err, "%s", hl_last_error());
        return;
    }
    s->n_trainable = hl_adapter_param_count(mc, &ac);
    hl_backend *be = app_backend(app);
    if (!be) {
        snprintf(s->est_err, sizeof s->est_err, "%s", app->be_error);
        return;
    }
    hl_backend_info bi;
    unsigned flags = HL_SESSION_TRAIN | (cfg.grad_checkpoint ? HL_SESSION_CHECKPOINT : 0);
    int T = mc->max_seq_len > 0 && cfg.max_len > mc->max_seq_len ? mc->max_seq_len : cfg.max_len; /* as training */
    if (hl_backend_get_info(be, &bi) != HL_OK ||
        hl_backend_plan(be, mc, app->model->dtype, &ac, cfg.micro_batch, T, flags, &s->plan) != HL_OK) {
        snprintf(s->est_err, sizeof s->est_err, "%s", hl_last_error());
        return;
    }
    s->plan_holds_weights = bi.is_gpu;
    s->plan_free = bi.is_gpu ? bi.mem_free : -1;
    snprintf(s->plan_device, sizeof s->plan_device, "%s", bi.name);
    s->est_ok = 1;
}

static void revalidate(config_scr *s) {
    if (s->valid_cfg == s->app->cfg_version && s->valid_cfg)
        return;
    s->valid_cfg = s->app->cfg_version;
    s->valid_ok = hl_config_validate(&s->app->cfg) == HL_OK;
    const char *e = s->valid_ok ? "" : hl_last_error();
    /* the engine's message says what is missing; here is how to give it in the workbench */
    const char *hint = !strcmp(e, "model: no base model given") ? ": open one on 2 Model (o), or type its path in "
                                                                  "the model field"
                       : !strcmp(e, "data: no training data given") ? ": pick a data set on 1 Data (u uses it), or "
                                                                      "type its path in the data field"
                                                                    : "";
    snprintf(s->valid_msg, sizeof s->valid_msg, "%s%s", e, hint);
}

/* ---- drawing ------------------------------------------------------------------------------- */

static void value_text(config_scr *s, const hl_config_field *f, char *buf, size_t n) {
    hl_config_get_field(&s->app->cfg, f, buf, n);
}

static void draw_value(config_scr *s, const hl_config_field *f, int y, int x, int w, int sel) {
    char v[4096];
    value_text(s, f, v, sizeof v);
    int base = sel ? ST_SEL : ST_TITLE;
    switch (f->type) {
    case HL_FIELD_BOOL: {
        int on = *(const int *)((const char *)&s->app->cfg + f->offset);
        ui_text(y, x, w, sel ? base : on ? ST_OK : ST_DIM, on ? (ui_utf8 ? "[\u2714] on" : "[x] on") : "[ ] off");
        return;
    }
    case HL_FIELD_ENUM: {
        /* every choice when it fits ("◉ hydra  ○ lora"), then closer ("◉ hydra ○ lora"), else
         * the chosen one and how to change it: never a choice cut in half */
        int xx = x, n = 0, need[2] = {0, 0};
        for (int i = 0; f->choices[i]; i++, n++) {
            need[0] += (ui_utf8 ? 2 : 4) + ui_width(f->choices[i]) + 2;
            need[1] += (ui_utf8 ? 2 : 4) + ui_width(f->choices[i]) + 1;
        }
        int tight = need[0] - 2 > w;
        if (need[1] - 1 > w) {
            char one[160];
            snprintf(one, sizeof one, "%s%.64s  (%d choices: h l)", ui_utf8 ? "\u25c9 " : "(*) ", v, n);
            ui_text(y, x, w, (sel ? base : ST_HI) | S_BOLD, one);
            return;
        }
        for (int i = 0; f->choices[i] && xx < x + w; i++) {
            int on = !strcmp(f->choices[i], v);
            const char *mark = on ? (ui_utf8 ? "\u25c9 " : "(*) ") : (ui_utf8 ? "\u25cb " : "( ) ");
            xx += ui_text(y, xx, x + w - xx, on ? (sel ? base : ST_HI) | S_BOLD : (sel ? base : ST_DIM), mark);
            xx += ui_text(y, xx, x + w - xx, on ? (sel ? base : ST_HI) | S_BOLD : (sel ? base : ST_DIM),
                          f->choices[i]);
            xx += tight ? 1 : 2;
        }
        return;
    }
    case HL_FIELD_FLAGS: {
        unsigned bits = *(const unsigned *)((const char *)&s->app->cfg + f->offset);
        /* every choice must stay visible (a narrow terminal cut "up" and "down" off): the
         * widest of three forms that fits: "■ gate", "■gate", then names alone (on = bold) */
        int form = 0;
        for (; form < 2; form++) {
            int need = 0;
            for (int i = 0; f->choices[i]; i++)
                need += (form == 0 ? (ui_utf8 ? 2 : 3) : form == 1 ? (ui_utf8 ? 1 : 3) : 0) + ui_width(f->choices[i]) + 1;
            if (need - 1 <= w)
                break;
        }
        int xx = x;
        for (int i = 0; f->choices[i] && xx < x + w; i++) {
            int on = bits >> i & 1;
            int cur = sel && i == s->flag_cur;
            int st = cur ? ui_style(TK_SELECTED_FG, TK_SELECTED_BG, S_BOLD | S_UNDER) : sel ? base : on ? ST_HI : ST_DIM;
            if (form == 2 && on && !cur)
                st |= S_BOLD;
            char item[64];
            const char *box = form == 2 ? "" : on ? (ui_utf8 ? (form ? "\u25a0" : "\u25a0 ") : "[x]")
                                                  : (ui_utf8 ? (form ? "\u25a1" : "\u25a1 ") : "[ ]");
            snprintf(item, sizeof item, "%s%s", box, f->choices[i]);
            xx += ui_text(y, xx, x + w - xx, st, item);
            xx += 1;
        }
        return;
    }
    default: break;
    }
    if (!v[0]) {
        const char *ph = !strcmp(f->name, "out_dir")     ? "(runs/<name>)"
                         : !strcmp(f->name, "tokenizer") ? "(found next to the model)"
                         : !strcmp(f->name, "val_data")  ? "(split off the training data)"
                         : !strncmp(f->name, "field_", 6) ? "(detected)"
                         : (!strcmp(f->name, "model") || !strcmp(f->name, "data")) ? "(required: not set)"
                                                                                   : "(empty)";
        int req = ph[1] == 'r';
        ui_text(y, x, w, sel ? base : req ? ST_WARN : ST_DIM, ph);
        return;
    }
    if (f->type == HL_FIELD_PATH) {
        char shown[4096];
        paths_display(v, shown, sizeof shown, (size_t)w, ui_utf8);
        ui_text(y, x, w, base, shown);
        return;
    }
    ui_text(y, x, w, base, v);
}

static void draw_form(config_scr *s, tui_rect r) {
    tui_app *app = s->app;
    char rd[4096], title[256];
    hl_config_run_dir(&app->cfg, rd, sizeof rd);
    snprintf(title, sizeof title, "Run config");
    ui_box(r, ST_HI, title, ST_TITLE);
    char note[300];
    snprintf(note, sizeof note, "%s%s", app->cfg_dirty ? "modified " : "", s->saved_path[0] ? "" : "");
    if (app->cfg_dirty)
        ui_box_note(r, ST_WARN, "unsaved (s saves)");
    else if (s->saved_path[0])
        ui_box_note(r, ST_DIM, "saved");
    tui_rect in = ui_inset(r, 1);
    s->view_h = in.h;
    list_clamp(&s->list, in.h);
    int namew = 18;
    for (int i = 0; i < in.h; i++) {
        int ri = s->list.top + i;
        if (ri >= s->n_rows)
            break;
        int y = in.y + i;
        const row *rw = &s->rows[ri];
        if (!rw->field) {
            ui_text(y, in.x + 1, in.w - 2, ST_HI, group_title(rw->group));
            int tw = ui_width(group_title(rw->group));
            ui_hline(y, in.x + 2 + tw, in.w - 4 - tw, ST_DIM);
            continue;
        }
        const hl_config_field *f = rw->field;
        int sel = ri == s->list.sel;
        if (sel)
            ui_fill((tui_rect){y, in.x, 1, in.w - 1}, ST_SEL);
        /* a dot marks values that differ from the default */
        char v[4096];
        value_text(s, f, v, sizeof v);
        int changed = strcmp(v, f->def) != 0;
        if (f->type == HL_FIELD_DOUBLE && changed)
            changed = fabs(strtod(v, NULL) - strtod(f->def, NULL)) > 1e-15 * fabs(strtod(f->def, NULL));
        if (changed)
            ui_glyph(y, in.x + 1, sel ? ST_SEL : ST_WARN, "\u2022", "*");
        ui_text(y, in.x + 3, namew, sel ? ST_SEL : ST_MAIN, f->name);
        int vx = in.x + 3 + namew, vw = in.w - 5 - namew;
        if (sel && s->editing)
            edit_draw(&s->edit, y, vx, vw, ui_style(TK_TITLE, TK_BAR_BG, 0), 1);
        else
            draw_value(s, f, y, vx, vw, sel);
    }
    list_scrollbar(&s->list, in.y, in.x + in.w - 1, in.h);
}

static void draw_side(config_scr *s, tui_rect r) {
    tui_app *app = s->app;
    const hl_config_field *f = cur_field(s);
    int help_h = r.h / 2;
    if (help_h < 9)
        help_h = 9;
    tui_rect hr = {r.y, r.x, help_h, r.w};
    ui_box(hr, ST_BOX, f ? f->name : "Field", ST_TITLE);
    int y = hr.y + 1, x = hr.x + 2, w = hr.w - 4, bottom = hr.y + hr.h - 1;
    if (f) {
        /* help, wrapped */
        const char *h = f->help;
        int len = (int)strlen(h), off = 0;
        while (off < len && y < bottom - 2) {
            size_t n = ui_fit_bytes(h + off, (size_t)(len - off), w);
            size_t cut = n;
            if (off + (int)n < len) {
                while (cut > 0 && h[off + cut] != ' ')
                    cut--;
                if (!cut)
                    cut = n;
            }
            ui_textn(y++, x, w, ST_MAIN, h + off, cut);
            off += (int)cut;
            while (h[off] == ' ')
                off++;
        }
        static const char *const tn[] = {"text", "path", "integer", "integer", "number", "switch", "choice", "set"};
        char range[160] = "";
        if ((f->type == HL_FIELD_INT || f->type == HL_FIELD_INT64 || f->type == HL_FIELD_DOUBLE) && f->min <= f->max)
            snprintf(range, sizeof range, "  %s%g, %g%s", f->min_open ? "(" : "[", f->min, f->max, f->max_open ? ")" : "]");
        if (y < bottom)
            ui_textf(y++, x, w, ST_DIM, "%s%s   default: %s", tn[f->type], range, f->def[0] ? f->def : "\"\"");
        if (y < bottom && s->err_row == s->list.sel && s->err[0]) {
            /* the validation message stays with the field until fixed */
            int len2 = (int)strlen(s->err), o2 = 0;
            while (o2 < len2 && y < bottom) {
                size_t n = ui_fit_bytes(s->err + o2, (size_t)(len2 - o2), w - 2);
                if (!n)
                    break;
                ui_textn(y++, x, w, ST_ERR, s->err + o2, n);
                o2 += (int)n;
            }
        } else if (y < bottom) {
            const char *how = f->type == HL_FIELD_BOOL    ? "Space toggles"
                              : f->type == HL_FIELD_ENUM  ? "Space / h l choose"
                              : f->type == HL_FIELD_FLAGS ? "h l move, Space toggles, Enter types a list"
                              : f->type == HL_FIELD_PATH  ? "Enter edits (Tab completes paths)"
                                                          : "Enter edits";
            ui_text(y++, x, w, ST_DIM, how);
        }
    }

    tui_rect er = {r.y + help_h, r.x, r.h - help_h, r.w};
    ui_box(er, ST_BOX, "Estimate", ST_TITLE);
    y = er.y + 1;
    bottom = er.y + er.h - 1;
    estimate(s);
    revalidate(s);
    /* Training clamps max_len to the open model's context (and says so): not "valid" as typed. */
    int ctx = app->model ? app->model->cfg.max_seq_len : 0;
    if (y < bottom) {
        if (s->valid_ok && ctx > 0 && app->cfg.max_len > ctx) {
            ui_textf(y++, x, w, ST_WARN, "max_len %d > the model's context %d:", app->cfg.max_len, ctx);
            if (y < bottom)
                ui_textf(y++, x, w, ST_WARN, "training will use max_len %d", ctx);
        }
        else if (s->valid_ok)
            ui_text(y++, x, w, ST_OK, ui_utf8 ? "\u2714 config is valid" : "* config is valid");
        else {
            int len2 = (int)strlen(s->valid_msg), o2 = 0;
            while (o2 < len2 && y < bottom && y < er.y + 4) {
                size_t n = ui_fit_bytes(s->valid_msg + o2, (size_t)(len2 - o2), w);
                if (!n)
                    break;
                ui_textn(y++, x, w, ST_WARN, s->valid_msg + o2, n);
                o2 += (int)n;
            }
        }
    }
    if (!app->model) {
        if (y < bottom)
            ui_text(y++, x, w, ST_DIM, "open the model (2 Model) for sizes");
        return;
    }
    if (!s->est_ok) {
        if (y < bottom)
            ui_text(y++, x, w, ST_ERR, s->est_err);
        return;
    }
    char a[32], b[32];
    double pct = 100.0 * (double)s->n_trainable / (double)hl_model_param_count(&app->model->cfg);
    if (y < bottom)
        ui_textf(y++, x, w, ST_TITLE, "trainable %s  (%.3f%%)", fmt_count(a, sizeof a, (int64_t)s->n_trainable), pct);
    double wb = (double)hl_model_weight_bytes(app->model);
    double total = (s->plan_holds_weights ? 0.0 : wb) + (double)s->plan.total;
    if (y < bottom)
        ui_textf(y++, x, w, ST_TITLE, "memory    %s on %s", fmt_bytes(a, sizeof a, total), s->plan_device);
    /* a GPU session refuses to start unless plan + headroom are free: say so before r is pressed */
    if (s->plan_free >= 0 && y < bottom) {
        int fits = (double)s->plan.total + (double)s->plan.headroom <= (double)s->plan_free;
        ui_textf(y++, x, w, fits ? ST_DIM : ST_ERR, "  %s free on the GPU%s", fmt_bytes(a, sizeof a, (double)s->plan_free),
                 fits ? "" : ": does not fit, lower micro_batch or max_len, or turn on grad_checkpoint");
    }
    if (y < bottom)
        ui_textf(y++, x, w, ST_DIM, "  weights %s, activations %s", fmt_bytes(a, sizeof a, wb),
                 fmt_bytes(b, sizeof b, (double)s->plan.activations));
    if (y < bottom)
        ui_textf(y++, x, w, ST_DIM, "  adapter+grads+Adam %s", fmt_bytes(a, sizeof a, (double)(s->plan.params + s->plan.grads + s->plan.moments)));
    const hl_run_config *c = &app->cfg;
    if (y < bottom)
        ui_textf(y++, x, w, ST_DIM, "  %d tokens/step (%d x %d x accum %d)",
                 c->micro_batch * (ctx > 0 && c->max_len > ctx ? ctx : c->max_len) * c->grad_accum, c->micro_batch,
                 ctx > 0 && c->max_len > ctx ? ctx : c->max_len, c->grad_accum);
    if (s->editing && s->est_key[0] && y < bottom)
        ui_text(y++, x, w, ST_HI, "(with the value being typed)");
}

static void draw(void *self, tui_app *app, tui_rect r) {
    config_scr *s = self;
    (void)app;
    int rw = r.w * 36 / 100;
    if (rw < 28) /* at 80 columns the form keeps room for every target ("■gate ■up ■down") */
        rw = 28;
    draw_form(s, (tui_rect){r.y, r.x, r.h, r.w - rw});
    draw_side(s, (tui_rect){r.y, r.x + r.w - rw, r.h, rw});
}

/* ---- input ------------------------------------------------------------------------------------ */

static void begin_edit(config_scr *s) {
    const hl_config_field *f = cur_field(s);
    if (!f)
        return;
    if (f->type == HL_FIELD_BOOL) {
        int on = *(const int *)((const char *)&s->app->cfg + f->offset);
        set_field(s, f, on ? "false" : "true");
        return;
    }
    if (f->type == HL_FIELD_ENUM) {
        cycle_enum(s, f, 1);
        return;
    }
    char v[4096];
    value_text(s, f, v, sizeof v);
    edit_set(&s->edit, v);
    s->edit.complete_paths = f->type == HL_FIELD_PATH;
    s->editing = 1;
}

static void save_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    config_scr *s = ctx;
    if (!ok || !*text)
        return;
    char path[4096];
    paths_expand_home(text, path, sizeof path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = 0;
        if (*dir)
            paths_mkdirs(dir);
    }
    if (hl_config_save_file(&app->cfg, path) != HL_OK) {
        app_msg(app, MSG_ERROR, "save: %s", hl_last_error());
        return;
    }
    app->cfg_dirty = 0;
    snprintf(s->saved_path, sizeof s->saved_path, "%s", path);
    snprintf(app->settings.last_config, sizeof app->settings.last_config, "%s", path);
    app_save_settings(app);
    app_msg(app, MSG_OK, "config saved to %s", path);
}

static void load_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    config_scr *s = ctx;
    if (!ok || !*text)
        return;
    char path[4096];
    paths_expand_home(text, path, sizeof path);
    hl_run_config tmp;
    hl_status st;
    if (paths_is_dir(path)) {
        st = hl_engine_load_run_config(path, &tmp); /* a run directory: resume its config */
    } else {
        hl_config_defaults(&tmp);
        st = hl_config_load_file(&tmp, path);
    }
    if (st != HL_OK) {
        app_msg(app, MSG_ERROR, "load: %s", hl_last_error());
        dialog_msg(app, "Cannot load the config", hl_last_error(), MSG_ERROR);
        return;
    }
    app->cfg = tmp;
    app_config_changed(app);
    app->cfg_dirty = 0;
    snprintf(s->saved_path, sizeof s->saved_path, "%s", path);
    snprintf(app->settings.last_config, sizeof app->settings.last_config, "%s", path);
    app_save_settings(app);
    app_msg(app, MSG_OK, "config loaded from %s", path);
    if (app->cfg.model[0] && strcmp(app->cfg.model, app->model_path))
        app_open_model(app, app->cfg.model);
}

static int action(void *self, tui_app *app, tui_action a) {
    config_scr *s = self;
    const hl_config_field *f = cur_field(s);
    switch (a) {
    case ACT_ENTER:
        if (f && f->type == HL_FIELD_FLAGS) {
            char v[256];
            value_text(s, f, v, sizeof v);
            edit_set(&s->edit, v);
            s->edit.complete_paths = 0;
            s->editing = 1;
        } else {
            begin_edit(s);
        }
        return 1;
    case ACT_TOGGLE:
        if (!f)
            return 1;
        if (f->type == HL_FIELD_FLAGS)
            toggle_flag(s, f);
        else if (f->type == HL_FIELD_BOOL || f->type == HL_FIELD_ENUM)
            begin_edit(s);
        else
            begin_edit(s);
        return 1;
    case ACT_LEFT:
    case ACT_RIGHT:
        if (f && f->type == HL_FIELD_ENUM)
            cycle_enum(s, f, a == ACT_RIGHT ? 1 : -1);
        else if (f && f->type == HL_FIELD_FLAGS) {
            int n = 0;
            while (f->choices[n])
                n++;
            s->flag_cur = ((s->flag_cur + (a == ACT_RIGHT ? 1 : -1)) % n + n) % n;
        } else if (f && f->type == HL_FIELD_BOOL)
            begin_edit(s);
        return 1;
    case ACT_RESET:
        if (f)
            set_field(s, f, f->def);
        return 1;
    case ACT_SAVE: {
        char def[4096];
        if (app->settings.last_config[0])
            snprintf(def, sizeof def, "%s", app->settings.last_config);
        else
            snprintf(def, sizeof def, "%s.json", app->cfg.name[0] ? app->cfg.name : "run");
        dialog_input(app, "Save config", "Write the run config (JSON) to:", def, 1, save_done, s);
        return 1;
    }
    case ACT_LOAD:
        dialog_input(app, "Load config", "A config JSON file, or a run directory (its config.json):",
                     app->settings.last_config, 1, load_done, s);
        return 1;
    default: break;
    }
    int before = s->list.sel;
    if (list_move(&s->list, a, s->view_h)) {
        settle(s, s->list.sel >= before ? 1 : -1);
        list_clamp(&s->list, s->view_h);
        return 1;
    }
    return 0;
}

static int capturing(void *self) { return ((config_scr *)self)->editing; }

static int text_key(void *self, tui_app *app, int ch, int is_code) {
    config_scr *s = self;
    (void)app;
    int r = edit_key(&s->edit, ch, is_code);
    if (r == EDIT_ENTER) {
        if (set_field(s, cur_field(s), s->edit.buf) == 0)
            s->editing = 0; /* stays open with the message when invalid */
        else
            app_msg(app, MSG_ERROR, "%s", s->err);
    } else if (r == EDIT_ESCAPE) {
        s->editing = 0;
        if (s->err_row >= 0 && app->msg_level == MSG_ERROR && !app->msg_from_engine)
            app_msg(app, MSG_INFO, "%s unchanged", cur_field(s) ? cur_field(s)->name : "value");
        s->err_row = -1;
    } else if (r == EDIT_NONE && is_code && (ch == KEY_UP || ch == KEY_DOWN)) {
        /* moving away commits like Enter would */
        if (set_field(s, cur_field(s), s->edit.buf) == 0) {
            s->editing = 0;
            action(s, app, ch == KEY_UP ? ACT_UP : ACT_DOWN);
        }
    }
    return 1;
}

static int click(void *self, tui_app *app, int y, int x) {
    config_scr *s = self;
    (void)app;
    (void)x;
    int row = s->list.top + (y - 2);
    if (y >= 2 && row >= 0 && row < s->n_rows && s->rows[row].field && !s->editing) {
        if (row == s->list.sel)
            begin_edit(s);
        s->list.sel = row;
    }
    return 1;
}

static const char *badge(void *self, tui_app *app) {
    (void)self;
    return app->cfg_dirty ? "*" : NULL;
}

static void *create(tui_app *app) {
    config_scr *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->app = app;
    s->err_row = -1;
    build_rows(s);
    if (app->settings.last_config[0] && paths_exists(app->settings.last_config))
        snprintf(s->saved_path, sizeof s->saved_path, "%s", app->settings.last_config);
    return s;
}

static void destroy(void *self) { free(self); }

const tui_screen_ops scr_config_ops = {
    .name = "Config",
    .scope = SC_CONFIG,
    .create = create,
    .destroy = destroy,
    .draw = draw,
    .action = action,
    .capturing = capturing,
    .text_key = text_key,
    .click = click,
    .badge = badge,
};
