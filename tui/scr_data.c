/* Screen 1, Data: the catalog (license, size, what is on disk), downloads with live
 * progress, a record browser (search; a record as fields or as the model sees it),
 * field / length statistics with a token-length histogram, and clustering (elbow curve,
 * dendrogram cut, cluster sizes and top terms; a key sets N in the config). The panels
 * are drawn by data_views.c. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tui/paths.h"
#include "tui/plot.h"
#include "tui/scr_data.h"


/* ---- catalog ------------------------------------------------------------------------- */

static void refresh_local(data_scr *s) {
    if (!s->cat_ok)
        return;
    for (size_t i = 0; i < s->cat.n_entries; i++)
        hl_catalog_entry_local(&s->cat.entries[i], s->app->data_dir, &s->present_n[i], &s->present_bytes[i]);
}

static const hl_catalog_entry *cat_find(data_scr *s, const char *id) {
    return s->cat_ok ? hl_catalog_find(&s->cat, id) : NULL;
}

static int entry_index(data_scr *s, const hl_catalog_entry *e) { return (int)(e - s->cat.entries); }

static int entry_complete(data_scr *s, const hl_catalog_entry *e) {
    int i = entry_index(s, e);
    return s->present_n[i] == e->n_files;
}

/* The file of an entry a user most likely wants to open: a train split, else the first
 * data-looking file. */
static int entry_main_file(const hl_catalog_entry *e) {
    int best = -1;
    for (size_t i = 0; i < e->n_files; i++) {
        const char *n = e->files[i].name;
        size_t len = strlen(n);
        int data = (len > 6 && !strcmp(n + len - 6, ".jsonl")) || (len > 5 && !strcmp(n + len - 5, ".json")) ||
                   (len > 9 && !strcmp(n + len - 9, ".jsonl.gz"));
        if (!data)
            continue;
        if (strstr(n, "train"))
            return (int)i;
        if (best < 0)
            best = (int)i;
    }
    return best;
}

/* ---- downloads (worker) -------------------------------------------------------------- */

static void fetch_progress(void *user, const hl_download_progress *p) {
    tui_job *j = user;
    char stage[160], rate[32] = "", eta[32] = "";
    if (p->rate > 0 && !p->rows) {
        fmt_bytes(rate, sizeof rate, p->rate);
        strcat(rate, "/s");
    }
    if (p->eta >= 0)
        fmt_duration(eta, sizeof eta, p->eta);
    snprintf(stage, sizeof stage, "%s%s%s%s%s", p->label ? p->label : "", *rate ? "  " : "", rate,
             *eta ? "  ETA " : "", eta);
    job_progress(j, stage, (double)p->done, p->total >= 0 ? (double)p->total : -1);
}

static void fetch_event(void *user, const hl_fetch_info *info) {
    tui_job *j = user;
    if (info->event == HL_FETCH_START || info->event == HL_FETCH_SKIPPED) {
        char stage[160];
        snprintf(stage, sizeof stage, "%s (%zu/%zu)", info->file->name, info->index + 1, info->count);
        job_progress(j, stage, 0, info->file->size >= 0 ? (double)info->file->size : -1);
    }
}

static hl_status fetch_main(tui_job *j, void *arg) {
    fetch_arg *fa = arg;
    for (int i = 0; i < fa->n_entries; i++) {
        hl_fetch_opts o;
        memset(&o, 0, sizeof o);
        hl_download_opts_init(&o.download);
        o.data_dir = fa->data_dir;
        o.download.progress = fetch_progress;
        o.download.user = j;
        o.download.cancel = &j->cancel;
        o.on_event = fetch_event;
        o.user = j;
        size_t nd = 0, ns = 0;
        HL_TRY(hl_fetch_entry(fa->entries[i], &o, &nd, &ns));
        fa->files_done += nd + ns;
        if (job_cancelled(j))
            return hl_fail(HL_ERR_CANCELLED, "download cancelled");
    }
    return HL_OK;
}

static void start_fetch(data_scr *s, const hl_catalog_entry **es, int n, int quick) {
    if (job_running(&s->dl)) {
        app_msg(s->app, MSG_WARN, "a download is already running (x cancels it)");
        return;
    }
    memset(&s->fa, 0, sizeof s->fa);
    s->fa.self = s;
    for (int i = 0; i < n && i < 4; i++)
        s->fa.entries[s->fa.n_entries++] = es[i];
    snprintf(s->fa.data_dir, sizeof s->fa.data_dir, "%s", s->app->data_dir);
    s->quick_pending = quick;
    snprintf(s->dl_title, sizeof s->dl_title, "%s%s", es[0]->id, n > 1 ? " + more" : "");
    if (job_start(&s->dl, fetch_main, &s->fa) != 0) {
        app_msg(s->app, MSG_ERROR, "cannot start the download thread");
        return;
    }
    app_msg(s->app, MSG_INFO, "downloading %s into %s", s->dl_title, s->app->data_dir);
}

/* ---- loading a data file (worker) ------------------------------------------------------ */

static hl_status load_main(tui_job *j, void *arg) {
    load_arg *la = arg;
    job_progress(j, "reading records", 0, -1);
    hl_records_options ro = {.map = la->have_map ? &la->map : NULL};
    HL_TRY(hl_records_load(&la->ds, la->path, &ro));
    job_progress(j, la->tok ? "tokenising for statistics" : "statistics", 0, -1);
    hl_status st = hl_inspect_dataset(&la->ds, la->tok, la->max_len, &j->cancel, &la->insp);
    la->insp_ok = st == HL_OK;
    if (st != HL_OK && st != HL_ERR_CANCELLED) {
        /* records are still useful without statistics */
        hl_clear_error();
    }
    return HL_OK;
}

static hl_status inspect_main(tui_job *j, void *arg) {
    inspect_arg *ia = arg;
    job_progress(j, "tokenising for statistics", 0, -1);
    return hl_inspect_dataset(ia->ds, ia->tok, ia->max_len, &j->cancel, &ia->insp);
}

static void free_dataset(data_scr *s) {
    job_cancel(&s->ij);
    job_stop(&s->ij);
    if (job_poll(&s->ij) && s->ij.result == HL_OK)
        hl_inspect_free(&s->ia.insp);
    if (s->ij_borrowed) {
        s->app->model_users--;
        s->ij_borrowed = 0;
    }
    if (s->tk_ok)
        hl_tokenized_free(&s->tk);
    s->tk_ok = 0;
    if (s->insp_ok)
        hl_inspect_free(&s->insp);
    s->insp_ok = 0;
    if (s->ds_ok)
        hl_dataset_free(&s->ds);
    s->ds_ok = 0;
    if (s->rep_ok)
        hl_cluster_report_free(&s->rep);
    s->rep_ok = 0;
    for (int64_t i = 0; s->texts_owned && i < s->n_texts; i++)
        free(s->texts_owned[i]);
    free(s->texts_owned);
    free(s->texts_keep);
    s->texts_owned = NULL;
    s->texts_keep = NULL;
    s->n_texts = 0;
}

static void open_path(data_scr *s, const char *path, const hl_field_map *map) {
    if (job_running(&s->ld)) {
        app_msg(s->app, MSG_WARN, "still loading %s", s->la.path);
        return;
    }
    if (job_running(&s->cj)) {
        app_msg(s->app, MSG_WARN, "clustering is running on the open data set (x cancels it)");
        return;
    }
    memset(&s->la, 0, sizeof s->la);
    paths_expand_home(path, s->la.path, sizeof s->la.path);
    if (map) {
        s->la.map = *map;
        s->la.have_map = 1;
    }
    s->la.max_len = s->app->cfg.max_len;
    if (s->app->tok && !app_model_loading(s->app)) {
        s->la.tok = s->app->tok;
        s->la.model_version = s->app->model_version;
        s->app->model_users++;
        s->tok_borrowed = 1;
    }
    if (job_start(&s->ld, load_main, &s->la) != 0) {
        if (s->tok_borrowed)
            s->app->model_users--;
        s->tok_borrowed = 0;
        app_msg(s->app, MSG_ERROR, "cannot start the loader thread");
        return;
    }
    app_msg(s->app, MSG_INFO, "loading %s ...", s->la.path);
}

static int request(void *self, tui_app *app, int what, const char *arg) {
    (void)app;
    if (what == APP_REQ_OPEN_DATA)
        open_path(self, arg, NULL);
    return 0;
}

/* Sets data + field names in the run config. */
static void use_for_training(data_scr *s, const char *path, const hl_field_map *map) {
    hl_run_config *c = &s->app->cfg;
    snprintf(c->data, sizeof c->data, "%s", path);
    if (map) {
        snprintf(c->field_instruction, sizeof c->field_instruction, "%s", map->instruction);
        snprintf(c->field_input, sizeof c->field_input, "%s", map->input);
        snprintf(c->field_output, sizeof c->field_output, "%s", map->output);
    } else {
        c->field_instruction[0] = c->field_input[0] = c->field_output[0] = 0;
    }
    app_config_changed(s->app);
    snprintf(s->app->settings.last_data, sizeof s->app->settings.last_data, "%s", path);
    app_save_settings(s->app);
}

/* ---- quick start ------------------------------------------------------------------------- */

static void quick_paths(data_scr *s, char *model, size_t mn, char *tok, size_t tn, char *data, size_t dn) {
    const hl_catalog_entry *m = cat_find(s, "stories260K"), *d = cat_find(s, "gsm8k");
    model[0] = tok[0] = data[0] = 0;
    for (size_t i = 0; m && i < m->n_files; i++) {
        const char *n = m->files[i].name;
        if (strstr(n, ".bin") && strstr(n, "tok"))
            hl_catalog_file_path(tok, tn, s->app->data_dir, m, &m->files[i]);
        else if (strstr(n, ".bin"))
            hl_catalog_file_path(model, mn, s->app->data_dir, m, &m->files[i]);
    }
    if (d) {
        int f = entry_main_file(d);
        if (f >= 0)
            hl_catalog_file_path(data, dn, s->app->data_dir, d, &d->files[f]);
    }
    hl_clear_error();
}

static void quick_finish(data_scr *s) {
    char model[4096], tok[4096], data[4096];
    quick_paths(s, model, sizeof model, tok, sizeof tok, data, sizeof data);
    const hl_catalog_entry *d = cat_find(s, "gsm8k");
    if (!*model || !*data || !paths_exists(model) || !paths_exists(data)) {
        app_msg(s->app, MSG_ERROR, "quick start: stories260K or GSM8K is not in the catalog / on disk");
        return;
    }
    hl_run_config *c = &s->app->cfg;
    snprintf(c->model, sizeof c->model, "%s", model);
    snprintf(c->tokenizer, sizeof c->tokenizer, "%s", paths_exists(tok) ? tok : "");
    use_for_training(s, data, d && d->has_fields ? &d->fields : NULL);
    if (!c->name[0] || !strcmp(c->name, "run"))
        snprintf(c->name, sizeof c->name, "stories260K-gsm8k");
    app_config_changed(s->app);
    app_open_model(s->app, model);
    open_path(s, data, d && d->has_fields ? &d->fields : NULL);
    s->focus = FOCUS_RIGHT;
    app_msg(s->app, MSG_OK, "quick start: model stories260K + data GSM8K train set; see 3 Config, then 4 Train (r)");
}

static void quick_start(data_scr *s) {
    const hl_catalog_entry *m = cat_find(s, "stories260K"), *d = cat_find(s, "gsm8k");
    if (!m || !d) {
        app_msg(s->app, MSG_ERROR, "the catalog has no stories260K / gsm8k entry");
        return;
    }
    refresh_local(s);
    const hl_catalog_entry *need[2];
    int n = 0;
    if (!entry_complete(s, m))
        need[n++] = m;
    if (!entry_complete(s, d))
        need[n++] = d;
    if (n)
        start_fetch(s, need, n, 1);
    else
        quick_finish(s);
}

/* ---- clustering (worker) -------------------------------------------------------------- */

static int cluster_progress(void *user, const char *stage, double done, double total) {
    tui_job *j = user;
    job_progress(j, stage, done, total);
    return job_cancelled(j);
}

static hl_status cluster_main(tui_job *j, void *arg) {
    cluster_arg *ca = arg;
    return hl_cluster_run(ca->texts, ca->n, &ca->opt, &ca->rep, cluster_progress, j);
}

static void start_cluster(data_scr *s, int ward, int force_k) {
    if (!s->ds_ok) {
        app_msg(s->app, MSG_WARN, "open a data set first (Enter on a catalog entry, or o)");
        return;
    }
    if (job_running(&s->cj)) {
        app_msg(s->app, MSG_WARN, "clustering is running (x cancels)");
        return;
    }
    if (!s->texts_keep) {
        /* the texts the paper clusters: instruction + input (docs/method.md §6) */
        s->n_texts = (int64_t)s->ds.n_records;
        s->texts_owned = calloc((size_t)s->n_texts, sizeof(char *));
        s->texts_keep = calloc((size_t)s->n_texts, sizeof(char *));
        if (!s->texts_owned || !s->texts_keep) {
            app_msg(s->app, MSG_ERROR, "out of memory");
            return;
        }
        for (int64_t i = 0; i < s->n_texts; i++) {
            char *p = NULL;
            if (hl_record_prompt(&s->ds.records[i], &p, NULL) != HL_OK)
                p = strdup("");
            s->texts_owned[i] = p;
            s->texts_keep[i] = p ? p : "";
        }
    }
    memset(&s->ca, 0, sizeof s->ca);
    s->ca.texts = s->texts_keep;
    s->ca.n = s->n_texts;
    s->ca.opt = hl_cluster_defaults();
    s->ca.opt.method = ward ? HL_CLUSTER_WARD : HL_CLUSTER_KMEANS;
    s->ca.opt.force_k = force_k;
    s->ca.opt.seed = (uint64_t)s->app->cfg.seed;
    if (job_start(&s->cj, cluster_main, &s->ca) != 0)
        return;
    s->panel = PANEL_CLUSTERS;
    app_msg(s->app, MSG_INFO, "clustering %lld records (%s) ...", (long long)s->n_texts, ward ? "Ward" : "k-means");
}

/* ---- ticks --------------------------------------------------------------------------------- */

/* The run config's data changed (a config loaded, the field edited, a run resumed): show
 * that data set instead of the one open, so what this screen shows is what training uses. */
static void follow_config_data(data_scr *s, tui_app *app) {
    if (!strcmp(app->cfg.data, s->cfg_data_seen) || job_running(&s->ld) || job_running(&s->cj))
        return; /* unchanged, or busy: try again next frame */
    snprintf(s->cfg_data_seen, sizeof s->cfg_data_seen, "%s", app->cfg.data);
    if (!app->cfg.data[0])
        return;
    char want[4096];
    paths_expand_home(app->cfg.data, want, sizeof want);
    if (s->ds_ok && !strcmp(want, s->ds_path))
        return;
    if (!paths_exists(want)) {
        app_msg(app, MSG_WARN, "the config's data set %s does not exist", app->cfg.data);
        return;
    }
    hl_field_map m;
    int have = app->cfg.field_instruction[0] && app->cfg.field_output[0] &&
               hl_field_map_set(&m, app->cfg.field_instruction, app->cfg.field_input, app->cfg.field_output) == HL_OK;
    open_path(s, want, have ? &m : NULL);
}

static void tick(void *self, tui_app *app) {
    data_scr *s = self;
    follow_config_data(s, app);
    if (job_poll(&s->dl)) {
        refresh_local(s);
        if (s->dl.result == HL_OK) {
            app_msg(app, MSG_OK, "downloaded %s", s->dl_title);
            if (s->quick_pending)
                quick_finish(s);
        } else {
            app_msg(app, s->dl.result == HL_ERR_CANCELLED ? MSG_WARN : MSG_ERROR, "download: %s", s->dl.error);
        }
        s->quick_pending = 0;
    }
    if (job_poll(&s->ld)) {
        if (s->tok_borrowed) {
            app->model_users--;
            s->tok_borrowed = 0;
        }
        if (s->ld.result == HL_OK) {
            free_dataset(s);
            s->ds = s->la.ds;
            s->ds_ok = 1;
            s->insp = s->la.insp;
            s->insp_ok = s->la.insp_ok;
            s->insp_model = s->la.insp_ok && s->la.tok ? s->la.model_version : 0;
            s->ds_map = s->ds.map;
            snprintf(s->ds_path, sizeof s->ds_path, "%s", s->la.path);
            memset(&s->rl, 0, sizeof s->rl);
            list_set_n(&s->rl, (int)s->ds.n_records);
            s->tk_sel = -1;
            s->rec_scroll = 0;
            s->focus = FOCUS_RIGHT;
            char nb[32];
            app_msg(app, s->ds.n_malformed ? MSG_WARN : MSG_OK, "%s: %s records (%s), %zu malformed lines skipped",
                    s->ds_path, fmt_count(nb, sizeof nb, (int64_t)s->ds.n_records), s->ds.schema,
                    s->ds.n_malformed);
        } else {
            app_msg(app, MSG_ERROR, "%s", s->ld.error);
        }
    }
    if (job_poll(&s->ij)) {
        if (s->ij_borrowed) {
            app->model_users--;
            s->ij_borrowed = 0;
        }
        if (s->ij.result == HL_OK) {
            if (s->insp_ok)
                hl_inspect_free(&s->insp);
            s->insp = s->ia.insp;
            s->insp_ok = 1;
        }
    }
    /* a tokenizer appeared (or changed) after the data set was opened: token statistics */
    if (s->ds_ok && app->tok && !app_model_loading(app) && s->insp_model != app->model_version &&
        !job_running(&s->ld) && !job_running(&s->ij)) {
        memset(&s->ia, 0, sizeof s->ia);
        s->ia.ds = &s->ds;
        s->ia.tok = app->tok;
        s->ia.max_len = app->cfg.max_len;
        s->insp_model = app->model_version;
        app->model_users++;
        s->ij_borrowed = 1;
        if (job_start(&s->ij, inspect_main, &s->ia) != 0) {
            app->model_users--;
            s->ij_borrowed = 0;
        }
    }
    if (job_poll(&s->cj)) {
        if (s->cj.result == HL_OK) {
            if (s->rep_ok)
                hl_cluster_report_free(&s->rep);
            s->rep = s->ca.rep;
            s->rep_ok = 1;
            s->chosen_k = s->rep.chosen_k;
            s->cl_scroll = 0;
            if (s->rep.silhouette_n)
                app_msg(app, MSG_OK, "clustered: N = %d (silhouette %d, elbow %d); a sets N",
                        s->rep.proposed_n, s->rep.silhouette_n, s->rep.elbow_n);
            else
                app_msg(app, MSG_OK, "clustering done: proposed N = %d (%s); a sets N in the config", s->rep.proposed_n,
                        s->rep.proposal_method ? s->rep.proposal_method : "");
        } else {
            app_msg(app, s->cj.result == HL_ERR_CANCELLED ? MSG_WARN : MSG_ERROR, "clustering: %s", s->cj.error);
        }
    }
}

/* ---- drawing: catalog ---------------------------------------------------------------------- */

static void draw_catalog(data_scr *s, tui_rect r) {
    ui_box(r, s->focus == FOCUS_CATALOG ? ST_HI : ST_BOX, "Catalog", ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    if (!s->cat_ok) {
        ui_text(in.y, in.x + 1, in.w - 2, ST_ERR, "catalog unavailable:");
        ui_text(in.y + 1, in.x + 1, in.w - 2, ST_ERR, s->cat_err);
        return;
    }
    list_set_n(&s->cl, (int)s->cat.n_entries);
    list_clamp(&s->cl, in.h);
    for (int i = 0; i < in.h; i++) {
        int row = s->cl.top + i;
        if (row >= s->cl.n)
            break;
        const hl_catalog_entry *e = &s->cat.entries[row];
        int sel = row == s->cl.sel;
        int base = sel ? (s->focus == FOCUS_CATALOG ? ST_SEL : ui_style(TK_MAIN_FG, TK_METER_BG, 0)) : ST_MAIN;
        if (sel)
            ui_fill((tui_rect){in.y + i, in.x, 1, in.w}, base);
        int complete = s->present_n[row] == e->n_files, partial = s->present_n[row] > 0;
        int downloading = job_running(&s->dl) && (s->fa.entries[0] == e || s->fa.entries[1] == e);
        const char *mark = downloading ? (ui_utf8 ? "\u21e3" : "v")
                           : complete  ? (ui_utf8 ? "\u2714" : "*")
                           : partial   ? (ui_utf8 ? "\u25d0" : "~")
                                       : " ";
        ui_text(in.y + i, in.x + 1, 1, sel ? base : complete ? ST_OK : ST_WARN, mark);
        int x = in.x + 3;
        int idw = in.w >= 40 ? 15 : 12;
        ui_text(in.y + i, x, idw, sel ? base | S_BOLD : ST_TITLE, e->id);
        x += idw + 1;
        char size[24];
        if (e->total_size >= 0)
            fmt_bytes(size, sizeof size, (double)e->total_size);
        else
            snprintf(size, sizeof size, "?");
        ui_text(in.y + i, x, 1, sel ? base : ST_DIM, e->kind == HL_CATALOG_MODEL ? "M" : "D");
        x += 2;
        ui_text_right(in.y + i, x, 9, sel ? base : ST_MAIN, size);
        x += 10;
        if (x < in.x + in.w - 2) {
            char lic[64];
            snprintf(lic, sizeof lic, "%s", e->license);
            ui_text(in.y + i, x, in.x + in.w - x - 1, sel ? base : ST_DIM, lic);
        }
    }
}

static void draw_entry(data_scr *s, tui_rect r) {
    ui_box(r, ST_BOX, "Entry", ST_TITLE);
    tui_rect in = ui_inset(r, 1);
    int y = in.y, x = in.x + 1, w = in.w - 2;
    if (!s->cat_ok || s->cat.n_entries == 0)
        return;
    const hl_catalog_entry *e = &s->cat.entries[s->cl.sel];
    int idx = s->cl.sel;
    /* a download in progress takes the top lines */
    if (job_running(&s->dl)) {
        char stage[160];
        double done, total;
        job_get_progress(&s->dl, stage, sizeof stage, &done, &total);
        char a[32], b[32], det[80];
        fmt_bytes(a, sizeof a, done);
        if (total > 0)
            fmt_bytes(b, sizeof b, total);
        snprintf(det, sizeof det, "%s / %s", a, total > 0 ? b : "?");
        ui_textf(y++, x, w, ST_HI, "Downloading %s", s->dl_title);
        ui_text(y++, x, w, ST_MAIN, stage);
        progress_draw(y++, x, w, NULL, done, total, det);
        ui_text(y++, x, w, ST_DIM, "x cancels (the partial file is kept and resumed later)");
        y++;
    }
    if (y < in.y + in.h)
        ui_text(y++, x, w, ST_TITLE, e->title);
    char sz[32] = "?", have[32];
    if (e->total_size >= 0)
        fmt_bytes(sz, sizeof sz, (double)e->total_size);
    fmt_bytes(have, sizeof have, (double)s->present_bytes[idx]);
    if (y < in.y + in.h) {
        int xx = x;
        xx += ui_text(y, xx, w, ST_DIM, "license ");
        xx += ui_text(y, xx, x + w - xx, ST_MAIN, e->license);
        y++;
    }
    if (y < in.y + in.h)
        ui_textf(y++, x, w, ST_MAIN, "%s %s, %zu files, %s   on disk: %zu/%zu (%s)",
                 e->kind == HL_CATALOG_MODEL ? "model" : "dataset", e->format, e->n_files, sz, s->present_n[idx],
                 e->n_files, have);
    if (*e->use && y < in.y + in.h)
        ui_textf(y++, x, w, ST_DIM, "use: %s", e->use);
    if (e->gated && y < in.y + in.h)
        ui_text(y++, x, w, ST_WARN, "gated: needs a Hugging Face token (HF_TOKEN)");
    if (*e->homepage && y < in.y + in.h)
        ui_text(y++, x, w, ST_DIM, e->homepage);
    /* quick start card */
    if (y + 3 < in.y + in.h) {
        y++;
        char model[4096], tok[4096], data[4096];
        quick_paths(s, model, sizeof model, tok, sizeof tok, data, sizeof data);
        int mh = *model && paths_exists(model), dh = *data && paths_exists(data);
        int using = !strcmp(s->app->cfg.model, model) && !strcmp(s->app->cfg.data, data) && *model;
        ui_text(y++, x, w, ST_HI, using ? "Quick start: in use" : "Quick start: press S");
        ui_textf(y++, x, w, mh ? ST_OK : ST_WARN, " %s model stories260K  %s", mh ? (ui_utf8 ? "\u2714" : "*") : "-",
                 mh ? "on disk" : "fetch 1 MB");
        ui_textf(y++, x, w, dh ? ST_OK : ST_WARN, " %s data  GSM8K train  %s", dh ? (ui_utf8 ? "\u2714" : "*") : "-",
                 dh ? "on disk" : "fetch 4 MB");
    }
}

/* ---- screen ops ---------------------------------------------------------------------------- */

static void draw(void *self, tui_app *app, tui_rect r) {
    data_scr *s = self;
    (void)app;
    int lw = r.w * 38 / 100;
    if (lw < 34)
        lw = 34;
    if (lw > 48)
        lw = 48;
    int ch = s->cat_ok ? (int)s->cat.n_entries + 2 : 4;
    if (ch > r.h / 2)
        ch = r.h / 2;
    draw_catalog(s, (tui_rect){r.y, r.x, ch, lw});
    draw_entry(s, (tui_rect){r.y + ch, r.x, r.h - ch, lw});
    tui_rect rr = {r.y, r.x + lw, r.h, r.w - lw};
    if (job_running(&s->ld)) {
        ui_box(rr, ST_BOX, "Data set", ST_TITLE);
        char stage[160];
        job_get_progress(&s->ld, stage, sizeof stage, NULL, NULL);
        ui_textf(rr.y + 2, rr.x + 2, rr.w - 4, ST_MAIN, "%s", s->la.path);
        ui_textf(rr.y + 3, rr.x + 2, rr.w - 4, ST_HI, "%s ...", stage);
        return;
    }
    if (!s->ds_ok) {
        ui_box(rr, ST_BOX, "Data set", ST_TITLE);
        int y = rr.y + 2, x = rr.x + 3, w = rr.w - 6;
        ui_text(y++, x, w, ST_TITLE, "No data set open.");
        y++;
        ui_text(y++, x, w, ST_MAIN, "S      quick start: stories260K + GSM8K");
        ui_text(y++, x, w, ST_MAIN, "Enter  open the selected catalog entry (when on disk)");
        ui_text(y++, x, w, ST_MAIN, "d      download the selected entry");
        ui_text(y++, x, w, ST_MAIN, "o      open any JSON / JSON-lines file");
        y++;
        char dd[4096];
        paths_display(s->app->data_dir, dd, sizeof dd, (size_t)(w > 12 ? w - 12 : 8), ui_utf8);
        ui_textf(y++, x, w, ST_DIM, "data dir: %s", dd);
        char want[4096];
        paths_expand_home(s->app->cfg.data, want, sizeof want);
        if (want[0] && !paths_exists(want)) { /* said here for as long as it is true */
            y++;
            char shown[4096];
            paths_display(want, shown, sizeof shown, (size_t)(w > 40 ? w - 34 : 8), ui_utf8);
            ui_textf(y++, x, w, ST_ERR, "The run config's data set does not exist:");
            ui_textf(y++, x, w, ST_ERR, "%s", shown);
        }
        return;
    }
    if (s->panel == PANEL_RECORDS)
        data_draw_records(s, rr);
    else if (s->panel == PANEL_STATS)
        data_draw_stats(s, rr);
    else
        data_draw_clusters(s, rr);
}

static void open_selected(data_scr *s) {
    if (!s->cat_ok || !s->cat.n_entries)
        return;
    const hl_catalog_entry *e = &s->cat.entries[s->cl.sel];
    if (e->kind == HL_CATALOG_MODEL) {
        if (!entry_complete(s, e)) {
            app_msg(s->app, MSG_WARN, "%s is not on disk yet: press d to download it", e->id);
            return;
        }
        char p[4096];
        int f = -1;
        for (size_t i = 0; i < e->n_files; i++)
            if (strstr(e->files[i].name, "config.json") || (strstr(e->files[i].name, ".bin") && !strstr(e->files[i].name, "tok")) ||
                strstr(e->files[i].name, ".gguf"))
                f = f < 0 ? (int)i : f;
        if (f < 0)
            return;
        if (strstr(e->files[f].name, "config.json")) {
            char dir[4096];
            hl_catalog_file_path(p, sizeof p, s->app->data_dir, e, &e->files[f]);
            snprintf(dir, sizeof dir, "%s", p);
            char *sl = strrchr(dir, '/');
            if (sl)
                *sl = 0;
            snprintf(p, sizeof p, "%s", dir);
        } else {
            hl_catalog_file_path(p, sizeof p, s->app->data_dir, e, &e->files[f]);
        }
        snprintf(s->app->cfg.model, sizeof s->app->cfg.model, "%s", p);
        app_config_changed(s->app);
        app_open_model(s->app, p);
        app_switch(s->app, SCR_MODEL);
        return;
    }
    int f = entry_main_file(e);
    if (f < 0) {
        app_msg(s->app, MSG_WARN, "%s has no JSON data file", e->id);
        return;
    }
    char p[4096];
    if (hl_catalog_file_path(p, sizeof p, s->app->data_dir, e, &e->files[f]) != HL_OK)
        return;
    if (!paths_exists(p)) {
        app_msg(s->app, MSG_WARN, "%s is not on disk yet: press d to download it", e->files[f].name);
        return;
    }
    open_path(s, p, e->has_fields ? &e->fields : NULL);
}

static void search_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)choice;
    data_scr *s = ctx;
    if (!ok)
        return;
    snprintf(s->search, sizeof s->search, "%s", text);
    if (!*text)
        return;
    for (int k = 0; k < s->rl.n; k++) {
        int i = (s->rl.sel + k) % s->rl.n;
        if (data_rec_matches(&s->ds.records[i], s->search)) {
            s->rl.sel = i;
            list_clamp(&s->rl, s->rec_h);
            s->rec_scroll = 0;
            return;
        }
    }
    app_msg(app, MSG_WARN, "no record contains \"%s\"", s->search);
}

static void find_next(data_scr *s, int dir) {
    if (!s->search[0] || !s->ds_ok || !s->rl.n)
        return;
    for (int k = 1; k <= s->rl.n; k++) {
        int i = ((s->rl.sel + dir * k) % s->rl.n + s->rl.n) % s->rl.n;
        if (data_rec_matches(&s->ds.records[i], s->search)) {
            s->rl.sel = i;
            list_clamp(&s->rl, s->rec_h);
            s->rec_scroll = 0;
            return;
        }
    }
}

static void open_done(tui_app *app, void *ctx, int ok, const char *text, int choice) {
    (void)app;
    (void)choice;
    if (ok && *text)
        open_path(ctx, text, NULL);
}

static int action(void *self, tui_app *app, tui_action a) {
    data_scr *s = self;
    switch (a) {
    case ACT_QUICK: quick_start(s); return 1;
    case ACT_DOWNLOAD:
        if (s->cat_ok && s->cat.n_entries) {
            const hl_catalog_entry *e = &s->cat.entries[s->cl.sel];
            start_fetch(s, &e, 1, 0);
        }
        return 1;
    case ACT_CANCEL:
        if (job_running(&s->dl)) {
            job_cancel(&s->dl);
            app_msg(app, MSG_WARN, "cancelling the download ...");
        } else if (job_running(&s->cj)) {
            job_cancel(&s->cj);
        } else if (job_running(&s->ld)) {
            job_cancel(&s->ld);
        }
        return 1;
    case ACT_OPEN:
        dialog_input(app, "Open data file", "Path of a JSON / JSON-lines file (gzip ok):",
                     s->ds_path[0] ? s->ds_path : app->data_dir, 1, open_done, s);
        return 1;
    case ACT_USE:
        if (s->ds_ok) {
            use_for_training(s, s->ds_path, &s->ds.map);
            app_msg(app, MSG_OK, "config: data = %s (fields %s / %s / %s)", s->ds_path, s->ds.map.instruction,
                    s->ds.map.input[0] ? s->ds.map.input : "-", s->ds.map.output);
        } else {
            app_msg(app, MSG_WARN, "open a data set first");
        }
        return 1;
    case ACT_VIEW:
        s->panel = (s->panel + 1) % PANEL_COUNT;
        return 1;
    case ACT_MODE:
        s->model_view = !s->model_view;
        s->rec_scroll = 0;
        return 1;
    case ACT_SEARCH:
        if (s->ds_ok)
            dialog_input(app, "Search records", "Text to find (case-insensitive):", s->search, 0, search_done, s);
        return 1;
    case ACT_NEXT_MATCH: find_next(s, 1); return 1;
    case ACT_PREV_MATCH: find_next(s, -1); return 1;
    case ACT_CLUSTER: start_cluster(s, 0, 0); return 1;
    case ACT_WARD: start_cluster(s, 1, 0); return 1;
    case ACT_MORE:
    case ACT_LESS:
        if (s->rep_ok) {
            s->chosen_k += a == ACT_MORE ? 1 : -1;
            if (s->chosen_k < 1)
                s->chosen_k = 1;
            if (s->chosen_k > 64)
                s->chosen_k = 64;
        }
        return 1;
    case ACT_APPLY_N:
        if (s->rep_ok) {
            app->cfg.n_heads = s->chosen_k;
            app_config_changed(app);
            app_msg(app, MSG_OK, "config: n_heads (N) = %d", s->chosen_k);
        } else {
            app_msg(app, MSG_WARN, "run the clustering first (c)");
        }
        return 1;
    case ACT_FOCUS:
    case ACT_FOCUS_BACK: s->focus = !s->focus; return 1;
    case ACT_LEFT:
        s->focus = FOCUS_CATALOG;
        return 1;
    case ACT_RIGHT:
        if (s->ds_ok)
            s->focus = FOCUS_RIGHT;
        return 1;
    case ACT_ENTER:
        if (s->focus == FOCUS_CATALOG)
            open_selected(s);
        else if (s->panel == PANEL_RECORDS)
            s->model_view = !s->model_view;
        else if (s->panel == PANEL_CLUSTERS && s->rep_ok && s->chosen_k != s->rep.chosen_k)
            start_cluster(s, s->rep.method == HL_CLUSTER_WARD, s->chosen_k);
        return 1;
    default: break;
    }
    if (s->focus == FOCUS_CATALOG) {
        if (list_move(&s->cl, a, s->cat_ok ? (int)s->cat.n_entries : 1))
            return 1;
    } else if (s->panel == PANEL_RECORDS) {
        int old = s->rl.sel;
        if (list_move(&s->rl, a, s->rec_h)) {
            if (s->rl.sel != old)
                s->rec_scroll = 0;
            return 1;
        }
    } else if (s->panel == PANEL_CLUSTERS && s->rep_ok) {
        if (a == ACT_DOWN && s->cl_scroll + 1 < s->rep.chosen_k)
            s->cl_scroll++;
        if (a == ACT_UP && s->cl_scroll > 0)
            s->cl_scroll--;
        return 1;
    }
    return 0;
}

static int wheel(void *self, tui_app *app, int y, int x, int dy) {
    data_scr *s = self;
    (void)app;
    (void)y;
    (void)x;
    if (s->focus == FOCUS_RIGHT && s->panel == PANEL_RECORDS && s->ds_ok && y > s->rec_h + 2) {
        s->rec_scroll += dy * 2;
        if (s->rec_scroll < 0)
            s->rec_scroll = 0;
        return 1;
    }
    return 0;
}

static int click(void *self, tui_app *app, int y, int x) {
    data_scr *s = self;
    (void)app;
    int lw = COLS * 38 / 100;
    if (lw < 34)
        lw = 34;
    if (lw > 48)
        lw = 48;
    if (x < lw) {
        s->focus = FOCUS_CATALOG;
        int row = s->cl.top + (y - 2);
        if (s->cat_ok && y >= 2 && row >= 0 && row < (int)s->cat.n_entries) {
            if (row == s->cl.sel)
                open_selected(s);
            s->cl.sel = row;
        }
    } else if (s->ds_ok) {
        s->focus = FOCUS_RIGHT;
        if (s->panel == PANEL_RECORDS && y >= 2 && y < 2 + s->rec_h) {
            int row = s->rl.top + (y - 2);
            if (row < s->rl.n) {
                s->rl.sel = row;
                s->rec_scroll = 0;
            }
        }
    }
    return 1;
}

static const char *badge(void *self, tui_app *app) {
    data_scr *s = self;
    (void)app;
    static char b[16];
    if (job_running(&s->dl)) {
        double d, t;
        job_get_progress(&s->dl, NULL, 0, &d, &t);
        if (t > 0) {
            snprintf(b, sizeof b, "%d%%", (int)(100 * d / t));
            return b;
        }
        return ui_utf8 ? "\u21e3" : "v";
    }
    if (job_running(&s->cj) || job_running(&s->ld))
        return "...";
    return NULL;
}

static int busy(void *self, tui_app *app) {
    data_scr *s = self;
    (void)app;
    return job_running(&s->dl) || job_running(&s->cj);
}

static void shutdown_jobs(void *self, tui_app *app) {
    data_scr *s = self;
    job_cancel(&s->dl);
    job_cancel(&s->cj);
    job_cancel(&s->ld);
    job_stop(&s->dl);
    job_stop(&s->cj);
    job_stop(&s->ld);
    job_cancel(&s->ij);
    job_stop(&s->ij);
    s->quick_pending = 0;
    tick(s, app); /* absorb (and later free) whatever the workers produced */
}

static void *create(tui_app *app) {
    data_scr *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->app = app;
    job_init(&s->dl);
    job_init(&s->ld);
    job_init(&s->cj);
    job_init(&s->ij);
    s->tk_sel = -1;
    if (hl_catalog_load(&s->cat) == HL_OK) {
        s->cat_ok = 1;
        s->present_n = calloc(s->cat.n_entries + 1, sizeof(size_t));
        s->present_bytes = calloc(s->cat.n_entries + 1, sizeof(uint64_t));
        refresh_local(s);
        /* start on the small default data set */
        const hl_catalog_entry *d = hl_catalog_find(&s->cat, "gsm8k");
        if (d)
            s->cl.sel = entry_index(s, d);
    } else {
        snprintf(s->cat_err, sizeof s->cat_err, "%s", hl_last_error());
        app_msg(app, MSG_ERROR, "catalog: %s", s->cat_err);
    }
    /* Open the run config's data set, so the screen never shows one the config does not
     * use; a config without data takes the one used last time. Say when either is gone. */
    const char *last = app->settings.last_data;
    if (!app->cfg.data[0] && *last && paths_exists(last)) {
        snprintf(app->cfg.data, sizeof app->cfg.data, "%s", last);
        app->cfg.field_instruction[0] = app->cfg.field_input[0] = app->cfg.field_output[0] = 0;
        app_config_changed(app);
    } else if (!app->cfg.data[0] && *last) {
        app_note(app, "The data set of the last session, %s, is gone.", last);
    }
    snprintf(s->cfg_data_seen, sizeof s->cfg_data_seen, "%s", app->cfg.data);
    if (app->cfg.data[0] && paths_exists(app->cfg.data)) {
        hl_field_map m;
        int have = app->cfg.field_instruction[0] && app->cfg.field_output[0] &&
                   hl_field_map_set(&m, app->cfg.field_instruction, app->cfg.field_input, app->cfg.field_output) == HL_OK;
        open_path(s, app->cfg.data, have ? &m : NULL);
    } else if (app->cfg.data[0]) {
        /* not a dialog: training with it fails with its own message; the screen keeps saying it */
        app_msg(app, MSG_WARN, "the run config's data set %s does not exist (o opens another one, u uses it)",
                app->cfg.data);
    }
    return s;
}

static void destroy(void *self) {
    data_scr *s = self;
    if (!s)
        return;
    job_free(&s->dl);
    job_free(&s->ld);
    free_dataset(s);
    job_free(&s->cj);
    job_free(&s->ij);
    if (s->cat_ok)
        hl_catalog_free(&s->cat);
    free(s->present_n);
    free(s->present_bytes);
    free(s);
}

const tui_screen_ops scr_data_ops = {
    .name = "Data",
    .scope = SC_DATA,
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
    .request = request,
};
