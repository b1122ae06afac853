/* Private to the Data screen (scr_data.c: state, catalog, downloads, loading, keys;
 * data_views.c: drawing of the record, statistics and cluster panels). */
#ifndef HL_TUI_SCR_DATA_H
#define HL_TUI_SCR_DATA_H

#include "core/analysis/cluster.h"
#include "datasets/catalog.h"
#include "datasets/fetch.h"
#include "datasets/inspect.h"
#include "core/text/records.h"
#include "tui/app.h"
#include "tui/job.h"

enum { PANEL_RECORDS = 0, PANEL_STATS, PANEL_CLUSTERS, PANEL_COUNT };
enum { FOCUS_CATALOG = 0, FOCUS_RIGHT };

typedef struct data_scr data_scr;

typedef struct {
    data_scr *self;
    const hl_catalog_entry *entries[4];
    int n_entries;
    char data_dir[4096];
    size_t files_done, files_total;
} fetch_arg;

typedef struct {
    char path[4096];
    hl_field_map map;
    int have_map;
    const hl_tokenizer *tok; /* borrowed from the app (counted in model_users) */
    uint64_t model_version;
    int max_len;
    hl_dataset ds;
    hl_inspect insp;
    int insp_ok;
} load_arg;

typedef struct {
    const hl_dataset *ds;
    const hl_tokenizer *tok;
    int max_len;
    hl_inspect insp;
} inspect_arg;

typedef struct {
    const char **texts;
    int64_t n;
    hl_cluster_options opt;
    hl_cluster_report rep;
} cluster_arg;

struct data_scr {
    tui_app *app;
    hl_catalog cat;
    int cat_ok;
    char cat_err[512];
    size_t *present_n;
    uint64_t *present_bytes;
    tui_list cl;
    int focus, panel, model_view;

    /* downloads */
    tui_job dl;
    fetch_arg fa;
    int quick_pending; /* finish the quick start when the fetch ends */
    char dl_title[128];

    /* the open data set */
    tui_job ld;
    load_arg la;
    int ds_ok, tok_borrowed;
    hl_dataset ds;
    hl_inspect insp;
    int insp_ok;
    uint64_t insp_model; /* model version the token statistics used (0: none) */
    tui_job ij;          /* re-inspection with a newly opened tokenizer */
    inspect_arg ia;
    int ij_borrowed;
    char ds_path[4096];
    char cfg_data_seen[4096]; /* app->cfg.data when last compared: a change reopens the data set */
    hl_field_map ds_map;
    tui_list rl;
    int rec_h;      /* rows of the record list last drawn */
    int rec_scroll; /* scroll of the record view */
    char search[256];
    /* tokens of the selected record (model view) */
    int tk_sel;
    uint64_t tk_model;
    hl_tokenized tk;
    int tk_ok;

    /* clustering */
    tui_job cj;
    cluster_arg ca;
    hl_cluster_report rep;
    int rep_ok, chosen_k;
    const char **texts_keep;
    char **texts_owned;
    int64_t n_texts;
    int cl_scroll;
};

/* data_views.c */
void data_draw_records(data_scr *s, tui_rect r);
void data_draw_stats(data_scr *s, tui_rect r);
void data_draw_clusters(data_scr *s, tui_rect r);
int data_rec_matches(const hl_record *r, const char *q);

#endif
