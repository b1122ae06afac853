/* The workbench application: the frame (tab bar, status line, function bar), the screen
 * table, modal dialogs and the state the screens share (run config, loaded model, engine
 * snapshot). UI thread only. */
#ifndef HL_TUI_APP_H
#define HL_TUI_APP_H

#include <stdint.h>

#include "core/backend/backend.h"
#include "core/train/config.h"
#include "core/engine/engine.h"
#include "core/model/model.h"
#include "core/model/tokenizer/tokenizer.h"
#include "tui/keys.h"
#include "tui/settings.h"
#include "tui/theme.h"
#include "tui/ui.h"
#include "tui/widgets.h"

typedef struct tui_app tui_app;

/* A screen is a module with this ops table (tig's view_ops, htop's PanelClass). */
typedef struct {
    const char *name;  /* tab title */
    unsigned scope;    /* SC_* of its key bindings */
    void *(*create)(tui_app *app);
    void (*destroy)(void *self);
    /* Called every frame for every screen (poll workers, absorb snapshots). */
    void (*tick)(void *self, tui_app *app);
    void (*draw)(void *self, tui_app *app, tui_rect r);
    /* An action from the key table (or the function bar). Returns 1 if handled. */
    int (*action)(void *self, tui_app *app, tui_action a);
    /* While capturing() is true, raw keys go here first (text fields). Returns 1 if used. */
    int (*capturing)(void *self);
    int (*text_key)(void *self, tui_app *app, int ch, int is_code);
    /* Mouse: button 1 press at (y, x) or wheel (dy = -1 up, +1 down). Returns 1 if used. */
    int (*click)(void *self, tui_app *app, int y, int x);
    int (*wheel)(void *self, tui_app *app, int y, int x, int dy);
    /* Short badge for the tab ("42%", "●"); NULL when none. */
    const char *(*badge)(void *self, tui_app *app);
    /* A job that should not be dropped silently is running (quit asks first). */
    int (*busy)(void *self, tui_app *app);
    /* Stop jobs cleanly before exit (cancel downloads, stop generation). */
    void (*shutdown)(void *self, tui_app *app);
    /* Requests from other screens (APP_REQ_*), for the screen that owns the thing asked for;
     * returns the answer of a query (0 when it does not handle `what`). The app dispatches
     * app_open_model & co. here, so screens never call each other. */
    int (*request)(void *self, tui_app *app, int what, const char *arg);
} tui_screen_ops;

enum {
    APP_REQ_OPEN_MODEL = 1, /* Model screen: load arg in the background */
    APP_REQ_MODEL_LOADING,  /* Model screen: 1 while a model is loading */
    APP_REQ_OPEN_DATA,      /* Data screen: load records + statistics of arg */
};

enum { SCR_DATA = 0, SCR_MODEL, SCR_CONFIG, SCR_TRAIN, SCR_EXPERTS, SCR_EVAL, SCR_EXPORT, SCR_COUNT };

extern const tui_screen_ops scr_data_ops, scr_model_ops, scr_config_ops, scr_train_ops, scr_experts_ops,
    scr_eval_ops, scr_export_ops;

/* Run the workbench with these screens (tui/workbench.c passes the table) until the user
 * quits; returns the process exit code. */
int app_run(int argc, char **argv, const tui_screen_ops *const screens[SCR_COUNT]);

/* Dialogs: one modal at a time. */
typedef void (*tui_dialog_cb)(tui_app *app, void *ctx, int ok, const char *text, int choice);

enum { MSG_INFO = 0, MSG_OK, MSG_WARN, MSG_ERROR };

struct tui_app {
    int running;
    int cur; /* current screen */
    void *scr[SCR_COUNT];
    const tui_screen_ops *ops[SCR_COUNT];

    tui_settings settings;
    tui_theme theme;
    char data_dir[4096];

    /* the run configuration every screen edits / uses */
    hl_run_config cfg;
    int cfg_dirty;          /* edited since the last save */
    uint64_t cfg_version;   /* bumped on every change, so screens can recompute estimates */

    /* the model opened on the Model screen (read-only once loaded; shared with workers) */
    hl_model *model;
    hl_tokenizer *tok;
    char model_path[4096];
    uint64_t model_version;
    int model_users;        /* workers currently reading model/tok (eval, generation) */

    /* the device of app->cfg (device, threads) for memory plans, opened by app_backend */
    hl_backend *be;
    char be_device[32];
    int be_threads;
    char be_error[512];

    /* the training engine and its latest snapshot (taken on the UI thread each frame) */
    hl_engine *engine;
    const hl_snapshot *snap; /* never NULL after startup */
    uint64_t snap_version;

    /* status line */
    char msg[1024];
    int msg_level;
    double msg_time;
    int msg_from_engine; /* the status line shows an engine event, not the answer to a key */
    int msg_transient;   /* ...an answer that describes engine work in flight ("pausing ..."):
                          * the engine's next news replaces it at once */
    int news_state;      /* engine job state the status line last reported on */

    /* what the user should know from startup (a remembered file that is gone, a theme that
     * is not there): shown together in one dialog once the screens exist */
    char notes[2048];

    /* quit handling */
    int quit_requested;
    int stopping;           /* quitting: waiting for the engine's stop checkpoint */
    double frame_time;

    /* function bar hit boxes */
    int fbar_n;
    int fbar_x0[32], fbar_x1[32];
    tui_action fbar_act[32];
    int tab_x0[SCR_COUNT], tab_x1[SCR_COUNT];
};

/* Status line message (also used for errors: the text of hl_last_error()). */
void app_msg(tui_app *app, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An answer that says the engine is about to do something ("pausing ..."): the next state
 * change or engine event replaces it, so it never outlives what it announces. */
void app_msg_pending(tui_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A startup note (see notes above); after startup the same as a warning dialog. */
void app_note(tui_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void app_switch(tui_app *app, int screen);
void app_config_changed(tui_app *app); /* after editing app->cfg */
void app_save_settings(tui_app *app);
/* Replace the shared model (takes ownership); refuses (returns -1) while workers use it. */
int app_set_model(tui_app *app, hl_model *model, hl_tokenizer *tok, const char *path);

/* Cross-screen requests (answered by the owning screen through its `request` op). */
void app_open_model(tui_app *app, const char *path);  /* Model screen: load in the background */
void app_open_data(tui_app *app, const char *path);   /* Data screen: load records + statistics */
int app_model_loading(tui_app *app);

/* The device the run config names (cfg.device, cfg.threads), for memory plans on the UI thread:
 * opened on first use and again when those fields change. NULL when it cannot be used (the
 * reason in app->be_error). Workers open their own backend by name (app_worker_device). */
hl_backend *app_backend(tui_app *app);
/* Open the backend a worker computes on: the config's device and threads, copied at the
 * start of the job (name and threads are the job's copies). */
hl_status app_worker_device(const char *name, int threads, hl_backend **out);

/* Modal dialogs (dialog.c). Text is copied. */
void dialog_msg(tui_app *app, const char *title, const char *text, int level);
void dialog_confirm(tui_app *app, const char *title, const char *text, tui_dialog_cb cb, void *ctx);
void dialog_input(tui_app *app, const char *title, const char *prompt, const char *initial, int paths,
                  tui_dialog_cb cb, void *ctx);
void dialog_choice(tui_app *app, const char *title, const char *const *items, int n, int sel, tui_dialog_cb cb,
                   void *ctx);
/* File browser starting in dir; dirs_ok: a directory can be chosen ('.' or Space). */
void dialog_files(tui_app *app, const char *title, const char *dir, int dirs_ok, tui_dialog_cb cb, void *ctx);
void dialog_help(tui_app *app);
int dialog_active(void);
void dialog_draw(tui_app *app);
/* Returns 1 if the dialog consumed the key. */
int dialog_key(tui_app *app, int ch, int is_code);
int dialog_click(tui_app *app, int y, int x);
int dialog_wheel(tui_app *app, int dy);
void dialog_close(void);

/* A centred rectangle of at most h×w inside the screen. */
tui_rect app_center(int h, int w);

#endif
