/* The Model screen's prompt box: one generation at a time in a worker thread, tokens
 * streamed into a text buffer the UI polls (core/eval/generate.h does the decoding). */
#ifndef HL_TUI_MODEL_GEN_H
#define HL_TUI_MODEL_GEN_H

#include <stddef.h>

#include "tui/job.h"

struct tui_app;

typedef struct {
    tui_job job;
    void *arg; /* private to model_gen.c */
    int borrowed; /* holds app->model_users */
    char status[256];
} tui_model_gen;

void tui_model_gen_init(tui_model_gen *g);
void tui_model_gen_free(tui_model_gen *g);
/* Starts generating from prompt with the app's model (and the adapter when asked) on the
 * config's device; the caller makes sure the model is loaded (not loading). Returns 0 when
 * started; otherwise reports on the status line and returns -1. */
int tui_model_gen_start(tui_model_gen *g, struct tui_app *app, const char *prompt, int use_adapter);
void tui_model_gen_stop(tui_model_gen *g);
/* Call every frame: finishes a generation (releases the model). */
void tui_model_gen_tick(tui_model_gen *g, struct tui_app *app);
int tui_model_gen_running(tui_model_gen *g);
size_t tui_model_gen_text(tui_model_gen *g, char *out, size_t n);
void tui_model_gen_status(tui_model_gen *g, char *out, size_t n);

#endif
