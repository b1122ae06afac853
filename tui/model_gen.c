#include "tui/model_gen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/train/export.h"
#include "core/eval/generate.h"
#include "tui/app.h"
#include "tui/paths.h"

typedef struct {
    tui_job *job;
    char device[32];
    int threads;
    hl_compute compute; /* the run config's */
    const hl_model *model;
    const hl_tokenizer *tok;
    char prompt[4096];
    int use_adapter;
    char adapter_dir[4096];
    int max_new;
    /* results */
    int n_prompt, n_generated;
    hl_gen_finish finish;
    double seconds;
} gen_arg;

static int on_token(void *user, int seq, int token, const char *text, size_t len) {
    (void)seq;
    (void)token;
    gen_arg *a = user;
    if (len)
        job_append(a->job, text, len);
    a->n_generated++;
    return 0;
}

static hl_status gen_main(tui_job *j, void *p) {
    gen_arg *a = p;
    hl_adapters ad;
    memset(&ad, 0, sizeof ad);
    hl_backend *be = NULL;
    HL_TRY(app_worker_device(a->device, a->threads, &be));
    if (a->use_adapter) {
        job_progress(j, "loading the adapter", 0, -1);
        hl_status ls = hl_export_load(a->adapter_dir, &a->model->cfg, 41, &ad);
        if (ls != HL_OK) {
            hl_backend_close(be);
            return ls;
        }
    }
    hl_generator *g = NULL;
    hl_status st = hl_generator_create(&g, be, a->model, a->use_adapter ? &ad : NULL, a->tok);
    if (st == HL_OK)
        st = hl_generator_set_compute(g, a->compute);
    if (st == HL_OK) {
        hl_gen_params gp;
        hl_gen_params_default(&gp);
        gp.max_new_tokens = a->max_new;
        gp.on_token = on_token;
        gp.user = a;
        gp.cancel = (volatile int *)&j->cancel;
        const char *prompts[1] = {a->prompt};
        hl_gen_result res;
        memset(&res, 0, sizeof res);
        double t0 = ui_now();
        job_progress(j, "generating", 0, a->max_new);
        st = hl_generate(g, prompts, 1, &gp, &res);
        a->seconds = ui_now() - t0;
        a->n_prompt = res.n_prompt;
        a->n_generated = res.n_generated;
        a->finish = res.finish;
        hl_gen_result_free(&res);
        hl_generator_free(g);
    }
    if (a->use_adapter)
        hl_adapters_free(&ad);
    hl_backend_close(be);
    return st;
}

void tui_model_gen_init(tui_model_gen *g) {
    memset(g, 0, sizeof *g);
    job_init(&g->job);
    snprintf(g->status, sizeof g->status, "greedy, up to 256 new tokens. r generates, Enter edits the prompt, x stops.");
}

void tui_model_gen_free(tui_model_gen *g) {
    job_free(&g->job);
    free(g->arg);
    g->arg = NULL;
}

static int adapter_dir(struct tui_app *app, char *out, size_t n) {
    char rd[4096];
    if (app->snap->run_dir[0])
        snprintf(rd, sizeof rd, "%s", app->snap->run_dir);
    else
        hl_config_run_dir(&app->cfg, rd, sizeof rd);
    return paths_run_adapter(rd, out, n);
}

int tui_model_gen_start(tui_model_gen *g, struct tui_app *app, const char *prompt, int use_adapter) {
    if (job_running(&g->job)) {
        app_msg(app, MSG_WARN, "already generating (x stops)");
        return -1;
    }
    if (!app->model || !app->tok) {
        app_msg(app, MSG_WARN, "open a model with a tokenizer first");
        return -1;
    }
    job_poll(&g->job);
    gen_arg *a = g->arg ? g->arg : calloc(1, sizeof *a);
    if (!a)
        return -1;
    memset(a, 0, sizeof *a);
    g->arg = a;
    a->job = &g->job;
    snprintf(a->device, sizeof a->device, "%s", app->cfg.device);
    a->threads = app->cfg.threads;
    a->compute = app->cfg.compute;
    a->model = app->model;
    a->tok = app->tok;
    a->max_new = 256;
    snprintf(a->prompt, sizeof a->prompt, "%s", prompt);
    if (use_adapter) {
        if (!adapter_dir(app, a->adapter_dir, sizeof a->adapter_dir)) {
            app_msg(app, MSG_WARN, "no adapter in %s or its export/ yet: finish the run, or export a checkpoint (7 Export)",
                    a->adapter_dir);
            return -1;
        }
        a->use_adapter = 1;
    }
    job_clear_text(&g->job);
    job_append(&g->job, prompt, strlen(prompt));
    app->model_users++;
    g->borrowed = 1;
    if (job_start(&g->job, gen_main, a) != 0) {
        app->model_users--;
        g->borrowed = 0;
        return -1;
    }
    snprintf(g->status, sizeof g->status, "generating%s ...", use_adapter ? " with the adapter" : "");
    return 0;
}

void tui_model_gen_stop(tui_model_gen *g) { job_cancel(&g->job); }

void tui_model_gen_tick(tui_model_gen *g, struct tui_app *app) {
    if (!job_poll(&g->job))
        return;
    if (g->borrowed) {
        app->model_users--;
        g->borrowed = 0;
    }
    gen_arg *a = g->arg;
    if (g->job.result == HL_OK && a) {
        snprintf(g->status, sizeof g->status, "%s: %d prompt + %d new tokens, %.0f tok/s, stop: %s",
                 a->use_adapter ? "adapter" : "base model", a->n_prompt, a->n_generated,
                 a->seconds > 0 ? a->n_generated / a->seconds : 0, hl_gen_finish_name(a->finish));
        app_msg(app, MSG_OK, "generated %d tokens", a->n_generated);
    } else {
        snprintf(g->status, sizeof g->status, "failed: %.200s", g->job.error);
        app_msg(app, g->job.result == HL_ERR_CANCELLED ? MSG_WARN : MSG_ERROR, "generation: %s", g->job.error);
    }
}

int tui_model_gen_running(tui_model_gen *g) { return job_running(&g->job); }

size_t tui_model_gen_text(tui_model_gen *g, char *out, size_t n) { return job_get_text(&g->job, out, n); }

void tui_model_gen_status(tui_model_gen *g, char *out, size_t n) { snprintf(out, n, "%s", g->status); }
