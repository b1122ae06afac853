/* Pausing a run, on a real (tiny) run through the engine API as the workbench drives it:
 *  - "checkpoint now" while PAUSED writes the checkpoint at once, and the job stays paused
 *    (it used to wait for the resume);
 *  - the time spent paused is not training time: elapsed_s leaves it out, and so do the
 *    step times behind the ETA and tokens/s (metrics.jsonl step_s). A second run pauses
 *    twice with 16 micro-batches per step, so a pause usually lands between micro-batches;
 *    a "checkpoint now" there waits for the end of the step and says why (the step is half
 *    accumulated);
 *  - stop while PAUSED ends the run with a checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/engine/engine.h"
#include "tests/unit/hl_test.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Wait until pred(snapshot) holds or the job ends; returns the last state (IDLE on timeout). */
static hl_job_state wait_for(hl_engine *e, int (*pred)(const hl_snapshot *, long), long arg, int timeout_s) {
    uint64_t seen = 0;
    for (int i = 0; i < timeout_s * 20; i++) {
        seen = hl_engine_wait_change(e, seen, 50);
        const hl_snapshot *s = hl_engine_snapshot(e);
        hl_job_state st = s->state;
        int ok = pred(s, arg) || hl_job_state_is_final(st);
        hl_snapshot_release(s);
        if (ok)
            return st;
    }
    return HL_JOB_IDLE;
}
static int step_at_least(const hl_snapshot *s, long k) { return s->step >= k; }
static int state_is(const hl_snapshot *s, long st) { return (long)s->state == st; }
static int checkpointed_or_refused(const hl_snapshot *s, long k) {
    if (s->last_checkpoint_step >= k)
        return 1;
    for (int i = 0; i < HL_ENGINE_EVENTS; i++)
        if (s->events[i].seq && strstr(s->events[i].text, "in the middle of a step"))
            return 1;
    return 0;
}

static int has_event(const hl_snapshot *s, const char *text) {
    for (int i = 0; i < HL_ENGINE_EVENTS; i++)
        if (s->events[i].seq && strstr(s->events[i].text, text))
            return 1;
    return 0;
}

/* The largest "step_s" over the step lines of metrics.jsonl (-1 if none). */
static double max_step_seconds(const char *run) {
    char p[512], line[8192];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    double mx = -1;
    while (fgets(line, sizeof line, f)) {
        const char *k = strstr(line, "\"step_s\":");
        if (strstr(line, "\"event\":\"step\"") && k) {
            double v = strtod(k + 9, NULL);
            if (v > mx)
                mx = v;
        }
    }
    fclose(f);
    return mx;
}

static void make_config(hl_run_config *cfg, const char *model, const char *data, const char *run, const char *accum,
                        const char *steps) {
    hl_config_defaults(cfg);
    const char *sets[] = {"max_len=48", "micro_batch=1", "eval_every=0", "save_every=0", "val_split=4",
                          "threads=1", "seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECK(hl_config_set(cfg, sets[i]) == HL_OK, "%s", sets[i]);
    hl_config_set_field(cfg, hl_config_field_find("grad_accum"), accum);
    hl_config_set_field(cfg, hl_config_field_find("max_steps"), steps);
    hl_config_set_field(cfg, hl_config_field_find("model"), model);
    hl_config_set_field(cfg, hl_config_field_find("data"), data);
    hl_config_set_field(cfg, hl_config_field_find("out_dir"), run);
}

int main(void) {
    char dir[] = "/tmp/hl_test_pause_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return hl_test_finish();
    }
    char data[256], run1[256], run2[256], model[1024];
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    snprintf(run1, sizeof run1, "%s/run1", dir);
    snprintf(run2, sizeof run2, "%s/run2", dir);
    snprintf(model, sizeof model, "%s/models/stories260K-hf", hl_test_shared_dir());
    FILE *f = fopen(data, "w");
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"instruction\": \"What is %d plus %d?\", \"output\": \"It is %d.\"}\n", i, i % 7, i + i % 7);
    fclose(f);

    /* 1. one micro-batch per step: the pause lands between steps */
    hl_run_config cfg;
    make_config(&cfg, model, data, run1, "1", "400");
    hl_engine *e;
    CHECK(hl_engine_create(&e) == HL_OK, "create");
    hl_faults slow = {.step_delay_ms = 40}; /* steps slow enough that the pause lands between them */
    hl_engine_set_faults(e, &slow);
    CHECK(hl_engine_start(e, &cfg, HL_START_NEW) == HL_OK, "start: %s", hl_last_error());
    CHECK(wait_for(e, step_at_least, 3, 120) == HL_JOB_RUNNING, "reaches step 3");
    CHECK(hl_engine_pause(e) == HL_OK, "pause");
    CHECK(wait_for(e, state_is, HL_JOB_PAUSED, 60) == HL_JOB_PAUSED, "paused");
    const hl_snapshot *s = hl_engine_snapshot(e);
    int64_t held = s->step;
    CHECK(s->last_checkpoint_step < held, "no checkpoint at step %lld yet", (long long)held);
    hl_snapshot_release(s);
    CHECK(hl_engine_save_now(e) == HL_OK, "save now while paused");
    wait_for(e, checkpointed_or_refused, held, 20);
    s = hl_engine_snapshot(e);
    CHECK(s->last_checkpoint_step == held, "the checkpoint of step %lld is written while paused (last: %lld)",
          (long long)held, (long long)s->last_checkpoint_step);
    hl_snapshot_release(s);
    char ck[512];
    snprintf(ck, sizeof ck, "%s/checkpoints/step-%lld", run1, (long long)held);
    struct stat sb;
    CHECK(stat(ck, &sb) == 0 && S_ISDIR(sb.st_mode), "%s exists before any resume", ck);
    CHECK(wait_for(e, state_is, HL_JOB_PAUSED, 10) == HL_JOB_PAUSED, "still paused after writing it");
    usleep(300 * 1000);
    s = hl_engine_snapshot(e);
    CHECK(s->step == held && s->state == HL_JOB_PAUSED, "no step taken by the checkpoint (%lld -> %lld, %s)",
          (long long)held, (long long)s->step, hl_job_state_name(s->state));
    double elapsed_paused = s->elapsed_s;
    hl_snapshot_release(s);
    CHECK(hl_engine_save_now(e) == HL_OK, "a second save now at the same step");
    usleep(500 * 1000);
    s = hl_engine_snapshot(e);
    CHECK(has_event(s, "already written") && s->state == HL_JOB_PAUSED, "a second one says it is already written");
    hl_snapshot_release(s);
    usleep(1200 * 1000);
    CHECK(hl_engine_resume(e) == HL_OK, "resume");
    CHECK(wait_for(e, step_at_least, held + 2, 60) == HL_JOB_RUNNING, "steps again after resume");
    s = hl_engine_snapshot(e);
    /* ~2 s were spent paused; a few steps of a 260K-parameter model take a fraction of that */
    CHECK(s->elapsed_s - elapsed_paused < 1.5, "elapsed time leaves the pause out (%.2f s -> %.2f s)", elapsed_paused,
          s->elapsed_s);
    hl_snapshot_release(s);
    CHECK(hl_engine_stop(e) == HL_OK && hl_engine_join(e, 60000) == 1, "stop");

    hl_engine_free(e);

    /* 2. sixteen micro-batches per step: a pause usually lands inside a step (a fresh engine: a new
     * job's first snapshot still shows the previous job's step) */
    CHECK(hl_engine_create(&e) == HL_OK, "create 2");
    /* no step delay here: most of the time is inside steps, so pauses land there */
    make_config(&cfg, model, data, run2, "16", "2000");
    CHECK(hl_engine_start(e, &cfg, HL_START_NEW) == HL_OK, "start 2: %s", hl_last_error());
    CHECK(wait_for(e, step_at_least, 2, 120) == HL_JOB_RUNNING, "run 2 reaches step 2");
    double paused_total = 0;
    for (int round = 0; round < 2; round++) {
        CHECK(hl_engine_pause(e) == HL_OK, "pause %d", round);
        CHECK(wait_for(e, state_is, HL_JOB_PAUSED, 60) == HL_JOB_PAUSED, "paused %d", round);
        s = hl_engine_snapshot(e);
        int64_t at = s->step;
        hl_snapshot_release(s);
        CHECK(hl_engine_save_now(e) == HL_OK, "save now %d", round);
        CHECK(wait_for(e, checkpointed_or_refused, at, 20) == HL_JOB_PAUSED,
              "paused %d: the checkpoint is written at once, or the reason is given", round);
        s = hl_engine_snapshot(e);
        printf("pause %d at step %lld: %s\n", round, (long long)at,
               s->last_checkpoint_step >= at             ? "between steps, checkpoint written"
               : has_event(s, "in the middle of a step") ? "inside a step, reason given"
                                                         : "no checkpoint and no reason");
        hl_snapshot_release(s);
        double t0 = now_s();
        usleep(1500 * 1000);
        paused_total += now_s() - t0;
        CHECK(hl_engine_resume(e) == HL_OK, "resume %d", round);
        CHECK(wait_for(e, step_at_least, at + 3, 60) == HL_JOB_RUNNING, "steps again %d", round);
    }
    CHECK(hl_engine_stop(e) == HL_OK && hl_engine_join(e, 60000) == 1, "stop 2");
    double mx = max_step_seconds(run2);
    CHECK(mx >= 0 && mx < paused_total / 4, "no step time holds a pause: longest step %.3f s, paused %.1f s", mx,
          paused_total);
    s = hl_engine_snapshot(e);
    CHECK(s->state == HL_JOB_STOPPED, "run 2 stopped");
    hl_snapshot_release(s);
    hl_engine_free(e);

    /* 3. stop while paused ends the run (it used to stay PAUSED for good when the pause had
     * landed right after a step: the stop was taken by one poll and the next one waited) */
    char run3[256];
    snprintf(run3, sizeof run3, "%s/run3", dir);
    for (int round = 0; round < 3; round++) {
        CHECK(hl_engine_create(&e) == HL_OK, "create 3");
        make_config(&cfg, model, data, run3, "1", "2000");
        CHECK(hl_engine_start(e, &cfg, round ? HL_START_OVERWRITE : HL_START_NEW) == HL_OK, "start 3: %s",
              hl_last_error());
        CHECK(wait_for(e, step_at_least, 3, 120) == HL_JOB_RUNNING, "run 3 reaches step 3");
        CHECK(hl_engine_pause(e) == HL_OK, "pause 3");
        CHECK(wait_for(e, state_is, HL_JOB_PAUSED, 60) == HL_JOB_PAUSED, "paused 3");
        CHECK(hl_engine_stop(e) == HL_OK, "stop while paused");
        int joined = hl_engine_join(e, 30000);
        CHECK(joined == 1, "round %d: the paused run stops (does not wait for a resume)", round);
        if (!joined) /* unstick it, so that this test fails instead of hanging */
            hl_engine_resume(e);
        s = hl_engine_snapshot(e);
        CHECK(s->state == HL_JOB_STOPPED && s->last_checkpoint_step == s->step, "round %d: STOPPED with a checkpoint",
              round);
        hl_snapshot_release(s);
        hl_engine_free(e);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return hl_test_finish();
}
