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
#include "core/comm/comm.h"
#include "core/train/config.h"
#include "core/engine/engine.h"

static volatile sig_atomic_t g_signal;
/* data parallel (mpirun/srun): the communicator, this rank, the newest checkpoint step, for the
 * message of a rank that the launcher ends because another rank died */
static hl_comm *g_comm;
static int g_rank, g_ranks = 1;
static volatile sig_atomic_t g_last_ckpt = -1;

static size_t put_s(char *b, size_t n, size_t k, const char *s) {
    while (*s && k + 1 < n)
        b[k++] = *s++;
    return k;
}

static size_t put_d(char *b, size_t n, size_t k, long v) {
    char t[24];
    int m = 0;
    if (v < 0)
        return put_s(b, n, k, "none");
    do
        t[m++] = (char)('0' + v % 10), v /= 10;
    while (v && m < 23);
    while (m > 0 && k + 1 < n)
        b[k++] = t[--m];
    return k;
}

static void on_signal(int sig) {
    if (g_ranks > 1 && sig == SIGTERM && g_comm) {
        /* Several ranks and a rank of this host is gone: the launcher is ending the run (mpirun
         * and srun do when a rank dies). Say which one and end now; the last complete
         * checkpoint is intact (a checkpoint in progress is written to a temporary name). */
        char lost[400], b[700];
        if (hl_comm_lost_ranks(g_comm, lost, sizeof lost) > 0) {
            size_t k = put_s(b, sizeof b, 0, "hydralora train: rank ");
            k = put_d(b, sizeof b, k, g_rank);
            k = put_s(b, sizeof b, k, ": the run ends because a rank died: ");
            k = put_s(b, sizeof b, k, lost);
            k = put_s(b, sizeof b, k, g_last_ckpt >= 0 ? "; the last complete checkpoint is step-" : "; no checkpoint was written yet");
            if (g_last_ckpt >= 0)
                k = put_d(b, sizeof b, k, (long)g_last_ckpt);
            k = put_s(b, sizeof b, k, "\n");
            if (write(2, b, k) < 0)
                _exit(143);
            _exit(143);
        }
    }
    g_signal = sig;
}

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
                   "in the directory only once the new one has loaded its model and data and started.\n"
                   "Started by mpirun or srun as K processes, the K ranks train one run together (data parallel): the\n"
                   "batch stays micro_batch x grad_accum, each rank computes its share of every step's micro-batches,\n"
                   "gradients are summed over the ranks, and rank 0 alone writes the run directory; a checkpoint\n"
                   "resumes with any number of processes.",
        .opts = opts,
        .epilog = "examples:\n"
                  "  hydralora train --model models/llama-2-7b --data gsm8k/train.jsonl --name gsm8k --set N=4\n"
                  "  hydralora train --config run.json --set lr=1e-4 --set max_steps=300\n"
                  "  hydralora train --resume runs/gsm8k\n"
                  "  mpirun -np 4 -x OMP_NUM_THREADS=4 hydralora train --config run.json   (4 ranks x 4 threads)",
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

    /* Under mpirun/srun: the ranks of one data-parallel run (MPI starts here, before any thread). */
    hl_comm *comm = NULL;
    if (hl_comm_open(&comm)) {
        fprintf(stderr, "hydralora train: error: %s\n", hl_last_error());
        return 1;
    }
    g_comm = comm;
    g_rank = hl_comm_rank(comm);
    g_ranks = hl_comm_size(comm);
    int root = g_rank == 0;
    char who[32] = ""; /* "rank 1: " on the messages of ranks other than 0 */
    if (g_ranks > 1 && !root)
        snprintf(who, sizeof who, "rank %d: ", g_rank);
    if (g_ranks > 1 && root)
        fprintf(stderr, "hydralora train: %d ranks (%s), rank 0 writes the run directory\n", g_ranks,
                hl_comm_kind(comm));
    hl_engine *e;
    if (hl_engine_create(&e)) {
        fprintf(stderr, "hydralora train: %serror: %s\n", who, hl_last_error());
        hl_comm_close(comm);
        return 1;
    }
    hl_engine_set_faults(e, hl_cli_faults);
    /* (also one rank under a launcher: a GPU then sums through NCCL, as with several) */
    if (strcmp(hl_comm_kind(comm), "single"))
        hl_engine_set_comm(e, comm);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char run_dir[4200];
    hl_config_run_dir(&cfg, run_dir, sizeof run_dir);
    if (hl_engine_start(e, &cfg, mode)) {
        fprintf(stderr, "hydralora train: %serror: %s\n", who, hl_last_error());
        hl_engine_free(e);
        if (g_ranks > 1)
            hl_comm_abort(comm, 1); /* the other ranks may already wait for this one */
        hl_comm_close(comm);
        return 1;
    }
    if (!root)
        quiet = 1; /* rank 0 reports progress; the others only their own errors */
    int tty = isatty(2) && !quiet;
    int error_elsewhere = 0;
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
        g_last_ckpt = (sig_atomic_t)s->last_checkpoint_step;
        /* Events (data report, checkpoints, errors) as plain lines. */
        for (uint64_t q = last_event + 1; q <= s->last_event_seq; q++) {
            const hl_engine_event *ev = &s->events[(q - 1) % HL_ENGINE_EVENTS];
            if (ev->seq != q)
                continue; /* overwritten: older than the ring */
            if (!strncmp(ev->text, "eval loss", 9) || !strncmp(ev->text, "tokenizing", 10))
                continue;
            if ((quiet && !ev->is_error) || !root)
                continue; /* (other ranks: the error that ends the job is printed below) */
            /* the error that ended the job is printed once, as the error, below */
            if (ev->is_error && s->state == HL_JOB_FAILED && q == s->last_event_seq &&
                !strncmp(s->error, ev->text, strlen(ev->text)))
                continue;
            clear_line(tty);
            fprintf(stderr, "hydralora train: %s%s\n", ev->is_error ? "warning: " : "", ev->text);
        }
        if (s->last_event_seq > last_event)
            last_event = s->last_event_seq;
        if (root && s->eval_step != printed_eval && s->eval_step >= 0 && isfinite(s->eval_loss)) {
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
            error_elsewhere = s->error_elsewhere;
            clear_line(tty);
            if (root && (s->state == HL_JOB_FINISHED || s->state == HL_JOB_STOPPED)) {
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
        if (root || !error_elsewhere) /* (an error another rank had is that rank's to report) */
            fprintf(stderr, "hydralora train: %serror: %s\n", who, error);
        if (g_ranks > 1) {
            /* Ranks that failed at the same point (the same NaN, a failed checkpoint) end
             * together; one that failed alone must not leave the others waiting for it. A
             * moment first, so that the others can print their own messages. */
            usleep(500 * 1000);
            hl_comm_abort(comm, 1);
        }
        hl_comm_close(comm);
        return 1;
    }
    g_comm = NULL;
    hl_comm_close(comm);
    if (state == HL_JOB_STOPPED && g_signal)
        return 128 + g_signal; /* interrupted: not a success a script may build on */
    return 0;
}
