/* hydralora watch RUN_DIR: follow a run that another process writes (launched with mpirun or
 * srun on a cluster, or in another terminal) — the workbench's Train and Experts screens, read
 * only; --plain prints progress lines instead (no terminal needed) until the run ends. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/engine/follow.h"
#include "tui/tui.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* Lines as hydralora train prints them, until the run ends (or Ctrl-C). Exit 0 when it finished
 * or stopped, 1 when it failed, 0 on Ctrl-C (the run itself goes on). */
static int watch_plain(const char *run_dir, int once) {
    hl_follow *f;
    if (hl_follow_open(&f, run_dir, 0)) {
        fprintf(stderr, "hydralora watch: %s\n", hl_last_error());
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    uint64_t seen = 0, last_event = 0;
    int64_t printed_step = -1, printed_eval = -1;
    int rc = 0;
    printf("following %s (Ctrl-C stops watching; the run goes on)\n", run_dir);
    for (;;) {
        seen = hl_follow_wait_change(f, seen, 500);
        const hl_snapshot *s = hl_follow_snapshot(f);
        for (uint64_t q = last_event + 1; q <= s->last_event_seq; q++) {
            const hl_engine_event *ev = &s->events[(q - 1) % HL_ENGINE_EVENTS];
            if (ev->seq == q && strncmp(ev->text, "eval loss", 9))
                printf("%s%s\n", ev->is_error ? "warning: " : "", ev->text);
        }
        if (s->last_event_seq > last_event)
            last_event = s->last_event_seq;
        if (s->eval_step >= 0 && s->eval_step != printed_eval && isfinite(s->eval_loss)) {
            printed_eval = s->eval_step;
            printf("eval loss %.6f at step %lld\n", s->eval_loss, (long long)s->eval_step);
        }
        if (s->step > 0 && s->step != printed_step) {
            printed_step = s->step;
            printf("step %lld/%lld  epoch %.2f  loss %.4f  lr %.3g  gnorm %.3g  %.0f tok/s\n", (long long)s->step,
                   (long long)s->total_steps, s->epoch, s->loss, s->lr, s->grad_norm, s->tokens_per_s);
        }
        fflush(stdout);
        int final = hl_job_state_is_final(s->state);
        if (final) {
            printf("run %s at step %lld/%lld\n", hl_job_state_name(s->state), (long long)s->step,
                   (long long)s->total_steps);
            if (s->state == HL_JOB_FAILED)
                rc = 1;
        }
        hl_snapshot_release(s);
        if (final || once || g_stop)
            break;
    }
    hl_follow_close(f);
    return rc;
}

int cmd_watch(int argc, char **argv) {
    int plain = 0, once = 0;
    const char *theme = NULL;
    hl_opt opts[] = {
        {"plain", 'p', HL_OPT_FLAG, &plain, NULL, "print progress lines instead of opening the workbench (no terminal needed)"},
        {"once", 0, HL_OPT_FLAG, &once, NULL, "with --plain: print the current state and exit"},
        {"theme", 0, HL_OPT_STRING, &theme, "NAME", "workbench colour theme"},
        {0}};
    hl_args args = {.usage = "hydralora watch RUN_DIR [--plain [--once]] [--theme NAME]",
                    .summary = "Follow a training run that another process writes - a run started with mpirun or srun on\n"
                               "a cluster, or in another terminal - from its run directory (local or on a shared file\n"
                               "system). The workbench opens on the Train screen (5 shows the experts); it reads the\n"
                               "run's metrics.jsonl as it grows and never changes the run. Start, pause and stop the run\n"
                               "where it was launched.",
                    .opts = opts,
                    .epilog = "examples:\n"
                              "  hydralora watch runs/gsm8k\n"
                              "  hydralora watch /shared/runs/gsm8k --plain",
                    .min_positional = 1,
                    .max_positional = 1};
    int rc = hl_args_parse(&args, argc, argv);
    if (rc >= 0)
        return rc;
    const char *run_dir = args.positional[0];
    if (once && !plain) {
        fprintf(stderr, "hydralora watch: --once needs --plain\n");
        return 2;
    }
    if (plain)
        return watch_plain(run_dir, once);
    char *targv[8];
    int targc = 0;
    targv[targc++] = "workbench";
    targv[targc++] = "--follow";
    targv[targc++] = (char *)run_dir;
    if (theme) {
        targv[targc++] = "--theme";
        targv[targc++] = (char *)theme;
    }
    targv[targc] = NULL;
    return hl_tui_run(targc, targv);
}
