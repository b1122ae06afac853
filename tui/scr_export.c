/* Screen 7, Export: write the run's adapter in the form PyTorch / PEFT and the reference
 * HydraLoRA code load (adapter_model.safetensors + adapter_model.bin + adapter_config.json),
 * or the approximate plain LoRA (router weights fixed at their validation mean). Shows the
 * format, destination, progress, and the manifest of written keys and shapes read back
 * from the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/train/collapse.h"
#include "core/train/export.h"
#include "core/formats/safetensors.h"
#include "tui/app.h"
#include "tui/job.h"
#include "tui/paths.h"

/* The first is the default, the same as `hydralora export`'s --dtype default: f32, exact. */
enum { FMT_HYDRA_F32 = 0, FMT_HYDRA_BF16, FMT_HYDRA_F16, FMT_COLLAPSE_BF16, FMT_COUNT };
static const char *const fmt_names[FMT_COUNT] = {
    "HydraLoRA, f32 (exact)", "HydraLoRA, bf16 (as the reference code stores it)", "HydraLoRA, f16",
    "plain LoRA, bf16: routers fixed at their mean weight (approximate, mergeable)"};

typedef struct {
    int fmt;
    char run_dir[4096];
    char out[4096];
    hl_run_config cfg;
    hl_export_info info;
    hl_collapse_report rep;
} export_arg;

typedef struct {
    char name[160];
    char shape[48];
    char dtype[8];
} key_row;

typedef struct {
    tui_app *app;
    int fmt;
    char dest[4096];
    int dest_custom;
    tui_job job;
    export_arg ea;
    double started;
    int done_ok;
    export_arg last;
    key_row *keys;
    int n_keys;
    int64_t total_params;
    tui_list kl;
    int view_h;
} export_scr;

static hl_dtype fmt_dtype(int f) {
    return f == FMT_HYDRA_F32 ? HL_DTYPE_F32 : f == FMT_HYDRA_F16 ? HL_DTYPE_F16 : HL_DTYPE_BF16;
}

static void run_dir_of(tui_app *app, char *out, size_t n) {
    if (app->snap->run_dir[0])
        snprintf(out, n, "%s", app->snap->run_dir);
    else
        hl_config_run_dir(&app->cfg, out, n);
}

static void default_dest(export_scr *s) {
    if (s->dest_custom)
        return;
    char rd[4096];
    run_dir_of(s->app, rd, sizeof rd);
    snprintf(s->dest, sizeof s->dest, "%.4000s/%s", rd, s->fmt == FMT_COLLAPSE_BF16 ? "export-lora" : "export");
}

/* ---- worker ---------------------------------------------------------------------------- */

static hl_status export_main(tui_job *j, void *arg) {
    export_arg *ea = arg;
    job_progress(j, "writing", 0, -1);
    if (ea->fmt == FMT_COLLAPSE_BF16)
        return hl_export_collapse(ea->run_dir, -1, &ea->cfg, ea->out, HL_DTYPE_BF16, &ea->rep);
    return hl_export_checkpoint(ea->run_dir, -1, ea->out, fmt_dtype(ea->fmt), &ea->info);
}

/* The manifest comes from the written file itself: what a loader will see. */
static void read_manifest(export_scr *s, const char *dir) {
    free(s->keys);
    s->keys = NULL;
    s->n_keys = 0;
    s->total_params = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    hl_safetensors *st;
    if (hl_st_open(&st, path) != HL_OK) {
        app_msg(s->app, MSG_ERROR, "reading back %s: %s", path, hl_last_error());
        return;
    }
    int n = hl_st_count(st);
    s->keys = calloc((size_t)(n > 0 ? n : 1), sizeof *s->keys);
    for (int i = 0; s->keys && i < n; i++) {
        const hl_st_tensor *t = hl_st_at(st, i);
        key_row *k = &s->keys[s->n_keys++];
        snprintf(k->name, sizeof k->name, "%s", t->name);
        char sh[48] = "[";
        for (int d = 0; d < t->ndim; d++) {
            char tmp[24];
            snprintf(tmp, sizeof tmp, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            strncat(sh, tmp, sizeof sh - strlen(sh) - 2);
        }
        strcat(sh, "]");
        snprintf(k->shape, sizeof k->shape, "%s", sh);
        snprintf(k->dtype, sizeof k->dtype, "%s", hl_st_dtype_name(t->dtype));
        s->total_params += t->numel;
    }
    hl_st_close(st);
    /* natural key order (layers.2 before layers.10), as the .bin stores them */
    for (int i = 1; i < s->n_keys; i++)
        for (int j = i; j > 0 && hl_export_key_cmp(s->keys[j - 1].name, s->keys[j].name) > 0; j--) {
            key_row t = s->keys[j];
            s->keys[j] = s->keys[j - 1];
            s->keys[j - 1] = t;
        }
    memset(&s->kl, 0, sizeof s->kl);
    list_set_n(&s->kl, s->n_keys);
}

static void start_export(export_scr *s) {
    tui_app *app = s->app;
    if (job_running(&s->job))
        return;
    const hl_snapshot *sn = app->snap;
    if (sn->state != HL_JOB_IDLE && !hl_job_state_is_final(sn->state)) {
        app_msg(app, MSG_WARN, "training is running: export after it stops (or w writes a checkpoint first)");
    }
    default_dest(s);
    memset(&s->ea, 0, sizeof s->ea);
    s->ea.fmt = s->fmt;
    run_dir_of(app, s->ea.run_dir, sizeof s->ea.run_dir);
    paths_expand_home(s->dest, s->ea.out, sizeof s->ea.out);
    s->ea.cfg = sn->state != HL_JOB_IDLE ? sn->cfg : app->cfg;
    if (job_start(&s->job, export_main, &s->ea) != 0)
        return;
    s->started = ui_now();
    s->done_ok = 0;
    app_msg(app, MSG_INFO, "exporting %s ...", s->ea.run_dir);
}

/* ---- drawing ------------------------------------------------------------------------------- */

static void draw(void *self, tui_app *app, tui_rect r) {
    export_scr *s = self;
    default_dest(s);
    int top_h = 10;
    tui_rect tr = {r.y, r.x, top_h, r.w};
    ui_box(tr, ST_BOX, "Export adapter", ST_TITLE);
    int y = tr.y + 1, x = tr.x + 2, w = tr.w - 4;
    char rd[4096], shown[4096];
    run_dir_of(app, rd, sizeof rd);
    paths_display(rd, shown, sizeof shown, (size_t)(w - 16), ui_utf8);
    ui_text(y, x, 16, ST_DIM, "source (c)");
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/checkpoints", rd);
    int have = paths_is_dir(ck);
    ui_textf(y++, x + 16, w - 16, have ? ST_TITLE : ST_WARN, "%s%s", shown,
             have ? "  (newest checkpoint)" : "  (no checkpoints yet: train first)");
    ui_text(y, x, 16, ST_DIM, "format (f)");
    ui_text(y++, x + 16, w - 16, ST_TITLE, fmt_names[s->fmt]);
    ui_text(y, x, 16, ST_DIM, "destination (o)");
    paths_display(s->dest, shown, sizeof shown, (size_t)(w - 16), ui_utf8);
    ui_text(y++, x + 16, w - 16, ST_TITLE, shown);
    ui_text(y, x, 16, ST_DIM, "files");
    ui_text(y++, x + 16, w - 16, ST_MAIN,
            "adapter_model.safetensors, adapter_model.bin (torch zip), adapter_config.json");
    y++;
    if (job_running(&s->job)) {
        char el[32];
        fmt_duration(el, sizeof el, ui_now() - s->started);
        static const char spin[] = "|/-\\";
        ui_textf(y++, x, w, ST_HI, "%c writing ... %s", spin[(int)(ui_now() * 8) & 3], el);
    } else if (s->done_ok) {
        const hl_export_info *in = s->last.fmt == FMT_COLLAPSE_BF16 ? &s->last.rep.info : &s->last.info;
        char a[32], b[32], c[32];
        ui_textf(y++, x, w, ST_OK, "%s wrote %d tensors, %s parameters: %s (safetensors) + %s (.bin)%s",
                 ui_utf8 ? "\u2714" : "*", in->n_tensors, fmt_count(a, sizeof a, in->n_params),
                 fmt_bytes(b, sizeof b, (double)in->bytes_safetensors), fmt_bytes(c, sizeof c, (double)in->bytes_bin),
                 "");
        if (s->last.fmt == FMT_COLLAPSE_BF16 && y < tr.y + tr.h - 1)
            ui_textf(y++, x, w, ST_MAIN, "validation loss: HydraLoRA %.4f, collapsed rank-%d LoRA %.4f (%+.4f) on %lld examples",
                     s->last.rep.loss_adapter, s->last.rep.r_out, s->last.rep.loss_collapsed,
                     s->last.rep.loss_collapsed - s->last.rep.loss_adapter, (long long)s->last.rep.n_val);
        else if (y < tr.y + tr.h - 1)
            ui_textf(y++, x, w, ST_DIM, "from checkpoint step %lld", (long long)in->step);
    } else if (s->job.started && s->job.result != HL_OK) {
        ui_text(y++, x, w, ST_ERR, s->job.error);
    } else {
        ui_text(y++, x, w, ST_DIM, "r writes the adapter, with the keys the reference HydraLoRA code loads (lora_A, lora_B<i>, lora_route).");
    }

    tui_rect kr = {r.y + top_h, r.x, r.h - top_h, r.w};
    char title[96];
    snprintf(title, sizeof title, "Written keys %d", s->n_keys);
    ui_box(kr, ST_BOX, title, ST_TITLE);
    if (s->n_keys) {
        char note[64], a[32];
        snprintf(note, sizeof note, "%s parameters", fmt_count(a, sizeof a, s->total_params));
        ui_box_note(kr, ST_DIM, note);
    }
    tui_rect in = ui_inset(kr, 1);
    s->view_h = in.h;
    list_clamp(&s->kl, in.h);
    for (int i = 0; i < in.h; i++) {
        int k = s->kl.top + i;
        if (k >= s->n_keys)
            break;
        const key_row *kw = &s->keys[k];
        int sel = k == s->kl.sel;
        int st = sel ? ST_SEL : ST_MAIN;
        if (sel)
            ui_fill((tui_rect){in.y + i, in.x, 1, in.w - 1}, st);
        /* the export key with its last part (lora_A / lora_B3 / lora_route) highlighted */
        const char *lora = strstr(kw->name, ".lora_");
        int nw = in.w - 24;
        if (lora && !sel) {
            int pre = (int)(lora - kw->name) + 1;
            int d = ui_textn(in.y + i, in.x + 1, nw, ST_DIM, kw->name, (size_t)pre);
            ui_text(in.y + i, in.x + 1 + d, nw - d, ST_HI, lora + 1);
        } else {
            ui_text(in.y + i, in.x + 1, nw, st, kw->name);
        }
        ui_text_right(in.y + i, in.x + in.w - 23, 16, sel ? st : ST_TITLE, kw->shape);
        ui_text(in.y + i, in.x + in.w - 6, 5, sel ? st : ST_DIM, kw->dtype);
    }
    list_scrollbar(&s->kl, in.y, in.x + in.w - 1, in.h);
}

/* ---- input ----------------------------------------------------------------------------------- */

static void dest_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    export_scr *s = ctx;
    if (!ok || !*text)
        return;
    snprintf(s->dest, sizeof s->dest, "%s", text);
    s->dest_custom = 1;
    snprintf(app->settings.last_export, sizeof app->settings.last_export, "%s", text);
    app_save_settings(app);
}

static void source_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    (void)ctx;
    if (!ok || !*text)
        return;
    hl_run_config cfg;
    if (hl_engine_load_run_config(text, &cfg) != HL_OK) {
        app_msg(app, MSG_ERROR, "%s", hl_last_error());
        return;
    }
    app->cfg = cfg;
    app_config_changed(app);
    app_msg(app, MSG_OK, "run directory %s (its config is now the current config)", text);
}

static int action(void *self, tui_app *app, tui_action a) {
    export_scr *s = self;
    switch (a) {
    case ACT_FORMAT:
        s->fmt = (s->fmt + 1) % FMT_COUNT;
        return 1;
    case ACT_DEST:
        dialog_input(app, "Export destination", "Directory to write (replaced atomically if it exists):", s->dest, 1,
                     dest_done, s);
        return 1;
    case ACT_OPEN: {
        char rd[4096];
        run_dir_of(app, rd, sizeof rd);
        dialog_input(app, "Export source", "Run directory (with checkpoints/):", rd, 1, source_done, s);
        return 1;
    }
    case ACT_RUN: start_export(s); return 1;
    default: break;
    }
    return list_move(&s->kl, a, s->view_h > 0 ? s->view_h : 1);
}

static void tick(void *self, tui_app *app) {
    export_scr *s = self;
    if (job_poll(&s->job)) {
        if (s->job.result == HL_OK) {
            s->done_ok = 1;
            s->last = s->ea;
            read_manifest(s, s->ea.out);
            app_msg(app, MSG_OK, "adapter written to %s", s->ea.out);
        } else {
            s->done_ok = 0;
            app_msg(app, MSG_ERROR, "export: %s", s->job.error);
        }
    }
}

static int busy(void *self, tui_app *app) {
    (void)app;
    return job_running(&((export_scr *)self)->job);
}

static void shutdown_jobs(void *self, tui_app *app) {
    export_scr *s = self;
    job_stop(&s->job); /* an export is short and atomic: let it finish */
    tick(s, app);
}

static void *create(tui_app *app) {
    export_scr *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->app = app;
    job_init(&s->job);
    return s;
}

static void destroy(void *self) {
    export_scr *s = self;
    if (!s)
        return;
    job_free(&s->job);
    free(s->keys);
    free(s);
}

const tui_screen_ops scr_export_ops = {
    .name = "Export",
    .scope = SC_EXPORT,
    .create = create,
    .destroy = destroy,
    .tick = tick,
    .draw = draw,
    .action = action,
    .busy = busy,
    .shutdown = shutdown_jobs,
};
