/* Screen 2, Model: open a model (typed path or file browser), its configuration,
 * parameter count, the engine's memory plan for inference and for training with the
 * current run config, and a prompt box that generates with or without the adapter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/backend.h"
#include "tui/app.h"
#include "tui/job.h"
#include "tui/model_gen.h"
#include "tui/paths.h"

typedef struct {
    char path[4096];
    char tok_path[4096];
    hl_model *model;
    hl_tokenizer *tok;
    char tok_warning[1024];
} load_arg;

typedef struct {
    tui_app *app;
    tui_job load;
    load_arg la;
    int pending; /* loaded, waiting for workers to release the old model */
    char error[1024];

    /* memory estimates (recomputed when the model or the config changes) */
    uint64_t est_model, est_cfg;
    int est_ok_inf, est_ok_train;
    hl_mem_plan plan_inf, plan_train;
    int plan_holds_weights; /* a GPU's plans count its copy of the weights */
    char est_err[512];
    size_t weight_bytes;
    size_t adapter_params;
    char matmuls[128]; /* what the config's `compute` runs here ("bf16: oneDNN ... (avx512_core_amx)") */

    /* generation */
    tui_edit prompt;
    int editing;
    int use_adapter;
    tui_model_gen gen;
    int out_scroll;
} model_scr;


/* ---- loading (worker) ---------------------------------------------------------------- */

static hl_status load_main(tui_job *j, void *arg) {
    load_arg *la = arg;
    job_progress(j, "opening the model", 0, -1);
    hl_model *m = calloc(1, sizeof *m);
    if (!m)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = hl_model_load(m, la->path);
    if (st != HL_OK) {
        free(m);
        return st;
    }
    la->model = m;
    job_progress(j, "loading the tokenizer", 0, -1);
    hl_status ts = la->tok_path[0] ? hl_tokenizer_load(&la->tok, la->tok_path)
                                   : hl_tokenizer_load_for_model(la->path, &la->tok);
    if (ts == HL_OK && hl_tokenizer_check_vocab(la->tok, m->cfg.vocab_size) != HL_OK) {
        snprintf(la->tok_warning, sizeof la->tok_warning, "%s", hl_last_error());
        hl_tokenizer_free(la->tok);
        la->tok = NULL;
    } else if (ts != HL_OK) {
        if (ts == HL_ERR_NOT_FOUND) /* what to do first: the status line is one line */
            snprintf(la->tok_warning, sizeof la->tok_warning, "name one in the tokenizer field on 3 Config (%s)",
                     hl_last_error());
        else
            snprintf(la->tok_warning, sizeof la->tok_warning, "%s", hl_last_error());
        la->tok = NULL;
    }
    return HL_OK;
}

static int model_loading(model_scr *s) { return job_running(&s->load) || s->pending; }

static void open_model(model_scr *s, tui_app *app, const char *path) {
    if (!path || !*path)
        return;
    if (job_running(&s->load) || s->pending) {
        app_msg(app, MSG_WARN, "a model is still loading");
        return;
    }
    memset(&s->la, 0, sizeof s->la);
    paths_expand_home(path, s->la.path, sizeof s->la.path);
    /* the config may name a tokenizer for this model */
    if (app->cfg.tokenizer[0] && !strcmp(app->cfg.model, path))
        snprintf(s->la.tok_path, sizeof s->la.tok_path, "%s", app->cfg.tokenizer);
    s->error[0] = 0;
    if (job_start(&s->load, load_main, &s->la) != 0) {
        app_msg(app, MSG_ERROR, "cannot start the loader thread");
        return;
    }
    app_msg(app, MSG_INFO, "opening %s ...", s->la.path);
}

static void install_loaded(model_scr *s) {
    tui_app *app = s->app;
    if (app_set_model(app, s->la.model, s->la.tok, s->la.path) != 0) {
        s->pending = 1; /* a worker still reads the old model: swap when it is done */
        return;
    }
    s->pending = 0;
    s->la.model = NULL;
    s->la.tok = NULL;
    if (strcmp(app->cfg.model, app->model_path)) {
        snprintf(app->cfg.model, sizeof app->cfg.model, "%s", app->model_path);
        app->cfg.tokenizer[0] = 0;
        app_config_changed(app);
    }
    snprintf(app->settings.last_model, sizeof app->settings.last_model, "%s", app->model_path);
    app_save_settings(app);
    const hl_llama_config *c = &app->model->cfg;
    char pc[32];
    fmt_si(pc, sizeof pc, (double)hl_model_param_count(c));
    if (s->la.tok_warning[0])
        app_msg(app, MSG_WARN, "model loaded (%s params) but no tokenizer: %s", pc, s->la.tok_warning);
    else
        app_msg(app, MSG_OK, "model %s: %s parameters, %d layers, dim %d", app->model_path, pc, c->n_layers, c->dim);
}

/* ---- estimates ----------------------------------------------------------------------------- */

static void update_estimates(model_scr *s) {
    tui_app *app = s->app;
    if (!app->model) {
        s->est_ok_inf = s->est_ok_train = 0;
        return;
    }
    if (s->est_model == app->model_version && s->est_cfg == app->cfg_version)
        return;
    s->est_model = app->model_version;
    s->est_cfg = app->cfg_version;
    const hl_llama_config *mc = &app->model->cfg;
    s->weight_bytes = hl_model_weight_bytes(app->model);
    int seq = app->cfg.max_len > 0 && app->cfg.max_len < mc->max_seq_len ? app->cfg.max_len : mc->max_seq_len;
    hl_backend *be = app_backend(app);
    hl_backend_info bi;
    if (!be || hl_backend_get_info(be, &bi) != HL_OK) {
        s->est_ok_inf = s->est_ok_train = 0;
        snprintf(s->est_err, sizeof s->est_err, "%s", be ? hl_last_error() : app->be_error);
        return;
    }
    s->plan_holds_weights = bi.is_gpu;
    char path[96];
    if (hl_backend_compute_path(be, app->cfg.compute, mc, app->model->dtype, path, sizeof path) == HL_OK)
        snprintf(s->matmuls, sizeof s->matmuls, "%s: %s", hl_compute_name(app->cfg.compute), path);
    else
        snprintf(s->matmuls, sizeof s->matmuls, "%s", hl_last_error());
    s->est_ok_inf = hl_backend_plan(be, mc, app->model->dtype, NULL, 1, seq, 0, &s->plan_inf) == HL_OK;
    hl_adapter_config ac = hl_config_adapter(&app->cfg);
    s->adapter_params = hl_adapter_config_check(&ac) == HL_OK ? hl_adapter_param_count(mc, &ac) : 0;
    unsigned flags = HL_SESSION_TRAIN | (app->cfg.grad_checkpoint ? HL_SESSION_CHECKPOINT : 0);
    int tseq = app->cfg.max_len > 0 ? app->cfg.max_len : seq;
    s->est_ok_train =
        hl_backend_plan(be, mc, app->model->dtype, &ac, app->cfg.micro_batch, tseq, flags, &s->plan_train) == HL_OK;
    if (!s->est_ok_train)
        snprintf(s->est_err, sizeof s->est_err, "%s", hl_last_error());
}

/* ---- drawing -------------------------------------------------------------------------------- */

static void kv(int y, int x, int w, const char *k, const char *v) {
    ui_text(y, x, 16, ST_DIM, k);
    ui_text(y, x + 16, w - 16, ST_TITLE, v);
}

static void draw_info(model_scr *s, tui_rect r) {
    tui_app *app = s->app;
    ui_box(r, ST_BOX, "Model", ST_TITLE);
    int y = r.y + 1, x = r.x + 2, w = r.w - 4, bottom = r.y + r.h - 1;
    if (job_running(&s->load)) {
        char stage[160];
        job_get_progress(&s->load, stage, sizeof stage, NULL, NULL);
        ui_text(y++, x, w, ST_MAIN, s->la.path);
        ui_textf(y++, x, w, ST_HI, "%s ...", stage);
        return;
    }
    if (!app->model) {
        ui_text(y++, x, w, ST_TITLE, "No model open.");
        y++;
        ui_text(y++, x, w, ST_MAIN, "o  type a path (Tab completes)");
        ui_text(y++, x, w, ST_MAIN, "b  browse for a file or directory");
        ui_text(y++, x, w, ST_MAIN, "S  on 1 Data: the stories260K quick start");
        y++;
        ui_text(y++, x, w, ST_DIM, "HF directory (config.json + safetensors),");
        ui_text(y++, x, w, ST_DIM, "llama2.c .bin, or GGUF.");
        if (s->error[0]) {
            y++;
            ui_text(y++, x, w, ST_ERR, "Last error:");
            /* the library's message, wrapped */
            int len = (int)strlen(s->error), off = 0;
            while (off < len && y < bottom) {
                size_t n = ui_fit_bytes(s->error + off, (size_t)(len - off), w);
                if (!n)
                    break;
                ui_textn(y++, x, w, ST_ERR, s->error + off, n);
                off += (int)n;
            }
        }
        return;
    }
    update_estimates(s); /* the matmul path row below comes from there too */
    const hl_model *m = app->model;
    const hl_llama_config *c = &m->cfg;
    char b[128], shown[4096];
    paths_display(app->model_path, shown, sizeof shown, (size_t)w, ui_utf8);
    ui_text(y++, x, w, ST_HI, shown);
    snprintf(b, sizeof b, "%s, %s", hl_model_format_name(m->format), hl_dtype_name(m->dtype));
    kv(y++, x, w, "format", b);
    char pc[32], pc2[32];
    snprintf(b, sizeof b, "%s (%s)", fmt_count(pc, sizeof pc, hl_model_param_count(c)),
             fmt_si(pc2, sizeof pc2, (double)hl_model_param_count(c)));
    kv(y++, x, w, "parameters", b);
    fmt_bytes(b, sizeof b, (double)s->weight_bytes);
    kv(y++, x, w, "weights", b);
    if (s->matmuls[0])
        kv(y++, x, w, "matmuls", s->matmuls);
    struct {
        const char *k;
        long v;
    } ints[] = {{"hidden (dim)", c->dim},       {"ffn hidden", c->hidden_dim}, {"layers", c->n_layers},
                {"heads", c->n_heads},          {"kv heads", c->n_kv_heads},   {"head dim", c->head_dim},
                {"vocab", c->vocab_size},       {"max seq", c->max_seq_len}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && y < bottom; i++) {
        snprintf(b, sizeof b, "%ld", ints[i].v);
        kv(y++, x, w, ints[i].k, b);
    }
    if (y < bottom) {
        snprintf(b, sizeof b, "%g / %g", c->rope_theta, c->rms_norm_eps);
        kv(y++, x, w, "rope / rms eps", b);
    }
    if (y < bottom)
        kv(y++, x, w, "tied head", c->tie_word_embeddings ? "yes" : "no");
    if (y < bottom) {
        if (app->tok) {
            snprintf(b, sizeof b, "%s, %d pieces", hl_tokenizer_format(app->tok), hl_tokenizer_vocab_size(app->tok));
            kv(y++, x, w, "tokenizer", b);
        } else
        {
            ui_text(y, x, 16, ST_DIM, "tokenizer");
            ui_text(y++, x + 16, w - 16, ST_WARN, "none found");
        }
    }
}

static void mem_row(int y, int x, int w, const char *name, double bytes, double total, int style) {
    char b[32];
    fmt_bytes(b, sizeof b, bytes);
    ui_text(y, x, 18, ST_MAIN, name);
    ui_text_right(y, x + 18, 10, ST_TITLE, b);
    int bw = w - 30;
    if (bw > 3)
        ui_bar(y, x + 30, bw, total > 0 ? bytes / total : 0, style, ST_DIM);
}

static void draw_memory(model_scr *s, tui_rect r) {
    tui_app *app = s->app;
    ui_box(r, ST_BOX, "Memory estimate (engine plan)", ST_TITLE);
    int y = r.y + 1, x = r.x + 2, w = r.w - 4, bottom = r.y + r.h - 1;
    if (!app->model) {
        ui_text(y, x, w, ST_DIM, "open a model to see its memory plan");
        return;
    }
    update_estimates(s);
    const hl_run_config *c = &app->cfg;
    double wb = (double)s->weight_bytes;
    char a[32], b[32], d[32];
    if (s->est_ok_inf && y < bottom) {
        int seq = c->max_len > 0 && c->max_len < app->model->cfg.max_seq_len ? c->max_len : app->model->cfg.max_seq_len;
        double tot = (s->plan_holds_weights ? 0.0 : wb) + (double)s->plan_inf.total;
        int xx = x;
        xx += ui_textf(y, xx, w, ST_HI, "inference 1 x %d  ", seq);
        xx += ui_textf(y, xx, x + w - xx, ST_TITLE, "%s", fmt_bytes(a, sizeof a, tot));
        ui_textf(y++, xx, x + w - xx, ST_DIM, "  (weights %s + activations %s)", fmt_bytes(b, sizeof b, wb),
                 fmt_bytes(d, sizeof d, (double)(s->plan_inf.activations + s->plan_inf.scratch)));
    }
    if (!s->est_ok_train) {
        if (y < bottom)
            ui_text(y++, x, w, ST_WARN, "training plan:");
        if (y < bottom)
            ui_text(y++, x, w, ST_WARN, s->est_err);
        return;
    }
    const hl_mem_plan *p = &s->plan_train;
    double tot = (s->plan_holds_weights ? 0.0 : wb) + (double)p->total;
    char pc[32];
    fmt_count(pc, sizeof pc, (int64_t)s->adapter_params);
    double pct = 100.0 * (double)s->adapter_params / (double)hl_model_param_count(&app->model->cfg);
    if (y < bottom)
        ui_textf(y++, x, w, ST_HI, "training %d x %d%s, trainable %s (%.2f%%)", c->micro_batch, c->max_len,
                 c->grad_checkpoint ? " ckpt" : "", pc, pct);
    const struct {
        const char *n;
        size_t v;
        int k;
    } rows[] = {{"weights", s->weight_bytes, TK_PLOT_RAW},
                {"adapter+grad+Adam", p->params + p->grads + p->moments, TK_PLOT_AUX},
                {"activations", p->activations, TK_PLOT_SMOOTH},
                {"scratch", p->scratch, TK_PLOT_EVAL}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && y < bottom; i++)
        mem_row(y++, x, w, rows[i].n, (double)rows[i].v, tot, ui_style(rows[i].k, TK_MAIN_BG, 0));
    if (y < bottom)
        mem_row(y++, x, w, "total", tot, tot, ST_HI);
    if (c->max_len > app->model->cfg.max_seq_len && y < bottom)
        ui_textf(y++, x, w, ST_WARN, "max_len %d exceeds the model's context %d", c->max_len,
                 app->model->cfg.max_seq_len);
}

typedef struct {
    int y, x, w, top, max;
} gen_ctx;

static void gen_line(void *user, int line, const char *s, size_t len) {
    gen_ctx *c = user;
    int row = line - c->top;
    if (row >= 0 && row < c->max)
        ui_textn(c->y + row, c->x, c->w, ST_MAIN, s, len);
}


static void draw_generate(model_scr *s, tui_rect r) {
    tui_app *app = s->app;
    ui_box(r, s->editing ? ST_HI : ST_BOX, "Generate", ST_TITLE);
    int y = r.y + 1, x = r.x + 2, w = r.w - 4;
    char note[96];
    snprintf(note, sizeof note, "%s (a)", s->use_adapter ? "with adapter" : "base model");
    ui_box_note(r, s->use_adapter ? ST_OK : ST_DIM, note);
    ui_text(y, x, 8, ST_DIM, "prompt");
    edit_draw(&s->prompt, y, x + 8, w - 8, ui_style(TK_TITLE, TK_BAR_BG, 0), s->editing);
    y++;
    char info[256];
    /* while the prompt is edited, keys are text: say which ones still act */
    if (s->editing)
        snprintf(info, sizeof info, "editing the prompt: Enter generates, Esc leaves the editor");
    else
        tui_model_gen_status(&s->gen, info, sizeof info);
    ui_text(y++, x, w, s->editing ? ST_HI : ST_DIM, info);
    if (!app->model) {
        ui_text(y, x, w, ST_DIM, "open a model first");
        return;
    }
    static char text[32768];
    size_t n = tui_model_gen_text(&s->gen, text, sizeof text);
    tui_rect out = {y, x, r.y + r.h - 1 - y, w};
    int lines = wrap_text(text, n, out.w, NULL, NULL);
    int top = lines > out.h ? lines - out.h : 0; /* follow the stream */
    gen_ctx c = {out.y, out.x, out.w, top, out.h};
    wrap_text(text, n, out.w, gen_line, &c);
}

static void draw(void *self, tui_app *app, tui_rect r) {
    model_scr *s = self;
    (void)app;
    if (s->pending)
        install_loaded(s);
    int lw = r.w * 42 / 100;
    if (lw < 36)
        lw = 36;
    draw_info(s, (tui_rect){r.y, r.x, r.h, lw});
    int mh = 11;
    if (mh > r.h / 2 + 1)
        mh = r.h / 2 + 1;
    draw_memory(s, (tui_rect){r.y, r.x + lw, mh, r.w - lw});
    draw_generate(s, (tui_rect){r.y + mh, r.x + lw, r.h - mh, r.w - lw});
}

/* ---- input ------------------------------------------------------------------------------------ */

static void open_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)ctx;
    (void)choice;
    if (ok && *text)
        app_open_model(app, text);
}

static void generate(model_scr *s) {
    tui_app *app = s->app;
    if (!app->model || !app->tok || model_loading(s)) {
        app_msg(app, MSG_WARN, model_loading(s) ? "the model is still loading"
                               : app->model          ? "this model has no tokenizer: cannot generate"
                                                     : "open a model first");
        return;
    }
    if (tui_model_gen_start(&s->gen, app, s->prompt.buf, s->use_adapter) != 0)
        return;
    app_msg(app, MSG_INFO, "generating ...");
}

static int action(void *self, tui_app *app, tui_action a) {
    model_scr *s = self;
    switch (a) {
    case ACT_OPEN:
        dialog_input(app, "Open model", "HF model directory, llama2.c .bin or .gguf file:",
                     app->model_path[0] ? app->model_path : app->settings.last_model, 1, open_done, s);
        return 1;
    case ACT_BROWSE: {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", app->model_path[0] ? app->model_path : app->data_dir);
        if (!paths_is_dir(dir)) {
            char *sl = strrchr(dir, '/');
            if (sl)
                *sl = 0;
        }
        dialog_files(app, "Choose a model (directory with config.json, .bin or .gguf)", dir, 1, open_done, s);
        return 1;
    }
    case ACT_PROMPT: s->editing = 1; return 1;
    case ACT_RUN: generate(s); return 1;
    case ACT_STOP: tui_model_gen_stop(&s->gen); return 1;
    case ACT_ADAPTER:
        s->use_adapter = !s->use_adapter;
        app_msg(app, MSG_INFO, "generation %s", s->use_adapter ? "with the adapter" : "with the base model only");
        return 1;
    case ACT_ENTER: s->editing = 1; return 1;
    default: return 0;
    }
}

static int capturing(void *self) { return ((model_scr *)self)->editing; }

static int text_key(void *self, tui_app *app, int ch, int is_code) {
    model_scr *s = self;
    (void)app;
    int r = edit_key(&s->prompt, ch, is_code);
    if (r == EDIT_ENTER) {
        s->editing = 0;
        generate(s);
    } else if (r == EDIT_ESCAPE) {
        s->editing = 0;
    }
    return 1;
}

static void tick(void *self, tui_app *app) {
    model_scr *s = self;
    if (job_poll(&s->load)) {
        if (s->load.result == HL_OK) {
            install_loaded(s);
        } else {
            snprintf(s->error, sizeof s->error, "%s", s->load.error);
            app_msg(app, MSG_ERROR, "%s", s->load.error);
            dialog_msg(app, "Cannot open the model", s->load.error, MSG_ERROR);
        }
    }
    if (s->pending)
        install_loaded(s);
    tui_model_gen_tick(&s->gen, app);
}

static const char *badge(void *self, tui_app *app) {
    model_scr *s = self;
    (void)app;
    if (job_running(&s->load))
        return "...";
    if (tui_model_gen_running(&s->gen))
        return ui_utf8 ? "\u25cf" : "*";
    return NULL;
}

static int busy(void *self, tui_app *app) {
    (void)app;
    return tui_model_gen_running(&((model_scr *)self)->gen);
}

static void shutdown_jobs(void *self, tui_app *app) {
    model_scr *s = self;
    tui_model_gen_stop(&s->gen);
    tui_model_gen_tick(&s->gen, app);
    job_stop(&s->load);
    if (job_poll(&s->load) && s->load.result == HL_OK) {
        /* loaded while quitting: free it here, nobody will use it */
        if (s->la.model) {
            hl_model_free(s->la.model);
            free(s->la.model);
        }
        if (s->la.tok)
            hl_tokenizer_free(s->la.tok);
        s->la.model = NULL;
        s->la.tok = NULL;
    }
}

static void *create(tui_app *app) {
    model_scr *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->app = app;
    job_init(&s->load);
    tui_model_gen_init(&s->gen);
    edit_set(&s->prompt, "Once upon a time");
    s->use_adapter = 0;
    /* the config's model is opened even if it looks missing, so that the engine's message
     * says what is wrong; a remembered one only when it is still there */
    if (app->cfg.model[0])
        open_model(s, app, app->cfg.model);
    else if (app->settings.last_model[0] && paths_exists(app->settings.last_model))
        open_model(s, app, app->settings.last_model);
    else if (app->settings.last_model[0])
        app_note(app, "The model of the last session, %s, is gone.", app->settings.last_model);
    return s;
}

static void destroy(void *self) {
    model_scr *s = self;
    if (!s)
        return;
    tui_model_gen_free(&s->gen);
    job_free(&s->load);
    if (s->pending && s->la.model) {
        hl_model_free(s->la.model);
        free(s->la.model);
    }
    free(s);
}

static int request(void *self, tui_app *app, int what, const char *arg) {
    model_scr *s = self;
    if (what == APP_REQ_OPEN_MODEL)
        open_model(s, app, arg);
    return what == APP_REQ_MODEL_LOADING ? model_loading(s) : 0;
}

const tui_screen_ops scr_model_ops = {
    .name = "Model",
    .scope = SC_MODEL,
    .create = create,
    .destroy = destroy,
    .tick = tick,
    .draw = draw,
    .action = action,
    .capturing = capturing,
    .text_key = text_key,
    .badge = badge,
    .busy = busy,
    .shutdown = shutdown_jobs,
    .request = request,
};
