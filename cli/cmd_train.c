/* hydralora train: run (or resume) a training job headless, through the same engine API
 * the workbench uses. Ctrl-C / SIGTERM finish the current step, checkpoint and exit with
 * 128 + the signal (130 / 143, as the shell reports a process the signal ended), so that
 * `train && export` stops there. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "core/train/config.h"
#include "core/engine/engine.h"

static volatile sig_atomic_t g_signal;

static void on_signal(int sig) { g_signal = sig; }

static void fmt_duration(char *buf, size_t size, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, size, "%02ld:%02ld", t / 60, t % 60);
}

static void print_fields(FILE *out) {
    static const char *const type_names[] = {"text", "path", "integer", "integer", "number", "true|false", "", ""};
    fprintf(out, "run config fields (JSON keys of --config FILE; also --set KEY=VALUE):\n");
    const char *group = "";
    for (int i = 0; i < hl_config_n_fields; i++) {
        const hl_config_field *f = &hl_config_fields[i];
        if (strcmp(group, f->group)) {
            group = f->group;
            fprintf(out, "\n[%s]\n", group);
        }
        char range[160] = "";
        if (f->choices) {
            size_t k = 0;
            for (int c = 0; f->choices[c] && k < sizeof range - 20; c++)
                k += (size_t)snprintf(range + k, sizeof range - k, "%s%s", c ? (f->type == HL_FIELD_FLAGS ? "," : "|") : "",
                                      f->choices[c]);
        } else if (f->min <= f->max) {
            snprintf(range, sizeof range, "%s %s%g, %g%s", type_names[f->type], f->min_open ? "(" : "[", f->min, f->max,
                     f->max_open ? ")" : "]");
        } else {
            snprintf(range, sizeof range, "%s", type_names[f->type]);
        }
        fprintf(out, "  %-18s %-26s default %s\n      %s\n", f->name, range, f->def[0] ? f->def : "\"\"", f->help);
    }
}

static void clear_line(int tty) {
    if (tty)
        fputs("\r\033[K", stderr);
}

const hl_faults *hl_cli_faults = NULL; /* see cli/commands.h: set only by hydralora-testhooks */

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *model = NULL, *data = NULL, *val_data = NULL, *name = NULL, *out = NULL;
    const char *resume = NULL;
    int overwrite = 0, print_config = 0, help_config = 0, quiet = 0;
    hl_multi sets = {0};
    hl_opt opts[] = {
        {"config", 'c', HL_OPT_STRING, &config, "FILE", "run config (JSON); fields absent from it keep their defaults"},
        {"set", 's', HL_OPT_MULTI, &sets, "KEY=VALUE", "override one config field (repeatable), e.g. --set lr=1e-4"},
        {"model", 'm', HL_OPT_STRING, &model, "PATH", "base model: folder or file (shortcut for --set model=PATH)"},
        {"data", 'd', HL_OPT_STRING, &data, "FILE", "training records (shortcut for --set data=FILE)"},
        {"val-data", 0, HL_OPT_STRING, &val_data, "FILE", "validation records (shortcut for --set val_data=FILE)"},
        {"name", 'n', HL_OPT_STRING, &name, "NAME", "run name: the run directory is runs/NAME"},
        {"out", 'o', HL_OPT_STRING, &out, "DIR", "run directory (instead of runs/NAME)"},
        {"resume", 'r', HL_OPT_STRING, &resume, "RUNDIR", "continue a run from its newest complete checkpoint"},
        {"overwrite", 0, HL_OPT_FLAG, &overwrite, NULL, "start over in a run directory that already holds a run"},
        {"print-config", 0, HL_OPT_FLAG, &print_config, NULL, "print the full validated config and exit"},
        {"help-config", 0, HL_OPT_FLAG, &help_config, NULL, "list every config field with its range and default"},
        {"quiet", 'q', HL_OPT_FLAG, &quiet, NULL, "no progress line (eval losses and errors are still printed)"},
        {0}};
    hl_args args = {
        .usage = "hydralora train (--config FILE | --model PATH --data FILE | --resume RUNDIR) [--set KEY=VALUE]...",
        .summary = "Fine-tune a LLaMA model with HydraLoRA (or LoRA / LoRA-Split / uniform). Writes the run directory\n"
                   "(config.json, metrics.jsonl, checkpoints/, adapter/). Ctrl-C finishes the current step, saves a\n"
                   "checkpoint and exits with status 130 (SIGTERM: 143); --resume continues bit for bit.\n"
                   "max_len is clamped to the model's context (with a message). --overwrite replaces the previous run\n"
                   "in the directory only once the new one has loaded its model and data and started.",
        .opts = opts,
        .epilog = "examples:\n"
                  "  hydralora train --model models/llama-2-7b --data gsm8k/train.jsonl --name gsm8k --set N=4\n"
                  "  hydralora train --config run.json --set lr=1e-4 --set max_steps=300\n"
                  "  hydralora train --resume runs/gsm8k",
        .min_positional = 0,
        .max_positional = 0};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    if (help_config) {
        print_fields(stdout);
        return 0;
    }

    hl_run_config cfg;
    hl_start_mode mode = overwrite ? HL_START_OVERWRITE : HL_START_NEW;
    hl_status st = HL_OK;
    if (resume) {
        if (config || model || data || name || out) {
            fprintf(stderr, "hydralora train: --resume takes the run's own config; only --set may change "
                            "bookkeeping fields (threads, eval_every, save_every, keep_last)\n");
            return 2;
        }
        st = hl_engine_load_run_config(resume, &cfg);
        mode = HL_START_RESUME;
    } else {
        hl_config_defaults(&cfg);
        if (config)
            st = hl_config_load_file(&cfg, config);
        const struct {
            const char *key, *val;
        } shortcuts[] = {{"model", model}, {"data", data}, {"val_data", val_data}, {"name", name}, {"out_dir", out}};
        for (size_t i = 0; st == HL_OK && i < sizeof shortcuts / sizeof shortcuts[0]; i++)
            if (shortcuts[i].val)
                st = hl_config_set_field(&cfg, hl_config_field_find(shortcuts[i].key), shortcuts[i].val);
    }
    for (int i = 0; st == HL_OK && i < sets.count; i++)
        st = hl_config_set(&cfg, sets.items[i]);
    if (st == HL_OK)
        st = hl_config_validate(&cfg);
    if (st) {
        const char *e = hl_last_error();
        const char *hint = !strcmp(e, "model: no base model given") ? " (pass --model PATH, or set \"model\" in the "
                                                                      "--config file)"
                           : !strcmp(e, "data: no training data given") ? " (pass --data FILE, or set \"data\" in the "
                                                                          "--config file)"
                                                                        : "";
        fprintf(stderr, "hydralora train: error: %s%s\n", e, hint);
        return st == HL_ERR_ARG || st == HL_ERR_RANGE ? 2 : 1;
    }
    if (print_config) {
        char *js = hl_config_to_json(&cfg);
        if (js) {
            printf("%s\n", js);
            free(js);
        }
        return 0;
    }

    hl_engine *e;
    if (hl_engine_create(&e)) {
        fprintf(stderr, "hydralora train: error: %s\n", hl_last_error());
        return 1;
    }
    hl_engine_set_faults(e, hl_cli_faults);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char run_dir[4200];
    hl_config_run_dir(&cfg, run_dir, sizeof run_dir);
    if (hl_engine_start(e, &cfg, mode)) {
        fprintf(stderr, "hydralora train: error: %s\n", hl_last_error());
        hl_engine_free(e);
        return 1;
    }
    int tty = isatty(2) && !quiet;
    uint64_t seen = 0, last_event = 0;
    int64_t printed_eval = -2;
    int stop_sent = 0;
    double last_line = 0;
    hl_job_state state = HL_JOB_LOADING;
    char error[600] = "";
    for (;;) {
        seen = hl_engine_wait_change(e, seen, 200);
        if (g_signal && !stop_sent) {
            stop_sent = 1;
            clear_line(tty);
            fprintf(stderr, "hydralora train: %s received: finishing the current step and saving a checkpoint...\n",
                    g_signal == SIGINT ? "interrupt" : "termination request");
            hl_engine_stop(e);
        }
        const hl_snapshot *s = hl_engine_snapshot(e);
        state = s->state;
        /* Events (data report, checkpoints, errors) as plain lines. */
        for (uint64_t q = last_event + 1; q <= s->last_event_seq; q++) {
            const hl_engine_event *ev = &s->events[(q - 1) % HL_ENGINE_EVENTS];
            if (ev->seq != q)
                continue; /* overwritten: older than the ring */
            if (!strncmp(ev->text, "eval loss", 9) || !strncmp(ev->text, "tokenizing", 10))
                continue;
            if (quiet && !ev->is_error)
                continue;
            /* the error that ended the job is printed once, as the error, below */
            if (ev->is_error && s->state == HL_JOB_FAILED && q == s->last_event_seq &&
                !strncmp(s->error, ev->text, strlen(ev->text)))
                continue;
            clear_line(tty);
            fprintf(stderr, "hydralora train: %s%s\n", ev->is_error ? "warning: " : "", ev->text);
        }
        if (s->last_event_seq > last_event)
            last_event = s->last_event_seq;
        if (s->eval_step != printed_eval && s->eval_step >= 0 && isfinite(s->eval_loss)) {
            printed_eval = s->eval_step;
            clear_line(tty);
            if (s->eval_step > 0 && isfinite(s->eval_loss_first))
                printf("eval loss %.6f at step %lld (before training %.6f)\n", s->eval_loss, (long long)s->eval_step,
                       s->eval_loss_first);
            else
                printf("eval loss %.6f at step %lld\n", s->eval_loss, (long long)s->eval_step);
            fflush(stdout);
        }
        double now = hl_now_seconds();
        if (!quiet && s->step > 0 && (s->state == HL_JOB_RUNNING || s->state == HL_JOB_PAUSED) &&
            (tty || now - last_line >= 5.0)) {
            char eta[24];
            fmt_duration(eta, sizeof eta, s->eta_s);
            fprintf(stderr, "%sstep %lld/%lld  epoch %.2f  loss %.4f  lr %.3g  gnorm %.3g  %.0f tok/s  pad %.1f%%  ETA %s%s%s",
                    tty ? "\r" : "", (long long)s->step, (long long)s->total_steps, s->epoch, s->loss, s->lr,
                    s->grad_norm, s->tokens_per_s, 100.0 * s->padding_share, eta,
                    s->state == HL_JOB_PAUSED ? "  (paused)" : "",
                    tty ? "\033[K" : "\n");
            fflush(stderr);
            last_line = now;
        }
        if (hl_job_state_is_final(s->state)) {
            snprintf(error, sizeof error, "%s", s->error);
            clear_line(tty);
            if (s->state == HL_JOB_FINISHED || s->state == HL_JOB_STOPPED) {
                char el[24];
                fmt_duration(el, sizeof el, s->elapsed_s);
                fprintf(stderr, "hydralora train: %s at step %lld/%lld, final loss %.4f, %s elapsed; run directory %s\n",
                        s->state == HL_JOB_FINISHED ? "finished" : "stopped", (long long)s->step,
                        (long long)s->total_steps, s->loss, el, s->run_dir);
                if (s->state == HL_JOB_STOPPED)
                    fprintf(stderr, "hydralora train: continue with: hydralora train --resume %s\n", s->run_dir);
            }
            hl_snapshot_release(s);
            break;
        }
        hl_snapshot_release(s);
    }
    hl_engine_join(e, -1);
    hl_engine_free(e);
    if (state == HL_JOB_FAILED) {
        fprintf(stderr, "hydralora train: error: %s\n", error);
        return 1;
    }
    if (state == HL_JOB_STOPPED && g_signal)
        return 128 + g_signal; /* interrupted: not a success a script may build on */
    return 0;
}
