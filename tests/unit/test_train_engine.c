/* The engine API as the workbench uses it, on a real (tiny) run: start, pause (the step
 * counter holds), resume, save-now, stop (checkpoint, STOPPED), resume the run to FINISHED;
 * snapshots stay valid while held; routing statistics have the right shape and are
 * distributions (weights and top-1 shares sum to 1, entropy <= ln N). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/engine/engine.h"
#include "tests/unit/hl_test.h"

/* Wait until pred(snapshot) holds or the job ends; returns the last state. */
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
static int checkpointed(const hl_snapshot *s, long k) { return s->last_checkpoint_step >= k; }

int main(void) {
    char dir[] = "/tmp/hl_test_engine_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return hl_test_finish();
    }
    char data[256], run[256], model[1024];
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(model, sizeof model, "%s/models/stories260K-hf", hl_test_shared_dir());
    FILE *f = fopen(data, "w");
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"instruction\": \"What is %d plus %d?\", \"output\": \"It is %d.\"}\n", i, i % 7, i + i % 7);
    fclose(f);

    hl_run_config cfg;
    hl_config_defaults(&cfg);
    const char *sets[] = {"max_steps=30", "max_len=48", "micro_batch=2", "grad_accum=1", "eval_every=5",
                          "save_every=0", "val_split=4", "threads=2", "seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        CHECK(hl_config_set(&cfg, sets[i]) == HL_OK, "%s", sets[i]);
    hl_config_set_field(&cfg, hl_config_field_find("model"), model);
    hl_config_set_field(&cfg, hl_config_field_find("data"), data);
    hl_config_set_field(&cfg, hl_config_field_find("out_dir"), run);
    hl_faults slow = {.step_delay_ms = 40}; /* so that pause and stop catch the run mid-way */

    hl_engine *e;
    CHECK(hl_engine_create(&e) == HL_OK, "create");
    hl_engine_set_faults(e, &slow);
    CHECK(hl_engine_start(e, &cfg, HL_START_NEW) == HL_OK, "start: %s", hl_last_error());
    CHECK(hl_engine_start(e, &cfg, HL_START_NEW) == HL_ERR_STATE, "a second start is refused while running");
    const hl_snapshot *early = hl_engine_snapshot(e);
    uint64_t early_version = early->version;

    CHECK(wait_for(e, step_at_least, 2, 120) == HL_JOB_RUNNING, "reaches step 2");
    CHECK(hl_engine_pause(e) == HL_OK, "pause");
    CHECK(wait_for(e, state_is, HL_JOB_PAUSED, 60) == HL_JOB_PAUSED, "state becomes paused");
    const hl_snapshot *s = hl_engine_snapshot(e);
    int64_t held = s->step;
    hl_snapshot_release(s);
    usleep(400 * 1000);
    s = hl_engine_snapshot(e);
    CHECK(s->step == held && s->state == HL_JOB_PAUSED, "no step while paused (%lld -> %lld)", (long long)held,
          (long long)s->step);
    hl_snapshot_release(s);
    CHECK(hl_engine_resume(e) == HL_OK && hl_engine_save_now(e) == HL_OK, "resume + save now");
    CHECK(wait_for(e, checkpointed, held, 60) == HL_JOB_RUNNING, "save-now writes a checkpoint");
    CHECK(wait_for(e, step_at_least, 8, 120) == HL_JOB_RUNNING, "reaches step 8 (an eval at 5)");

    s = hl_engine_snapshot(e);
    const hl_snapshot_routing *r = &s->routing;
    CHECK(r->n_layers == 5 && r->n_modules == 3 && r->n_experts == 4, "routing dims %d x %d x %d", r->n_layers,
          r->n_modules, r->n_experts);
    CHECK(r->module_target[0] == 4 && r->module_target[2] == 6, "modules gate..down");
    int dist_ok = 1;
    for (int l = 0; l < r->n_layers; l++)
        for (int m = 0; m < r->n_modules; m++) {
            double w = 0, t = 0;
            for (int x = 0; x < r->n_experts; x++) {
                w += r->weight_mean[hl_routing_index(r, l, m, x)];
                t += r->top1_share[hl_routing_index(r, l, m, x)];
            }
            float h = r->entropy[l * r->n_modules + m];
            dist_ok &= fabs(w - 1) < 1e-4 && fabs(t - 1) < 1e-4 && h > 0 && h <= logf(4.0f) + 1e-5f;
        }
    CHECK(dist_ok, "weights and top-1 shares sum to 1; 0 < entropy <= ln N");
    CHECK(r->hist_len >= 2 && r->hist_step[0] == 0 && r->hist_step[1] == 5, "routing history per eval (%d)",
          r->hist_len);
    CHECK(s->eval_hist.n >= 2 && isfinite(s->eval_loss_first) && s->eval_step >= 5, "eval losses");
    CHECK(s->loss_hist.n >= 8 && s->loss_hist.b[0].step_first == 1, "loss history");
    CHECK(isfinite(s->loss) && isfinite(s->lr) && isfinite(s->grad_norm) && s->tokens_per_s > 0 && s->mem_bytes > 0 &&
              s->trainable_params > 0 && s->total_steps == 30 && s->n_val == 4,
          "scalars");
    hl_snapshot_release(s);
    CHECK(early->version == early_version && early->step == 0, "a held snapshot does not change");
    hl_snapshot_release(early);

    CHECK(hl_engine_stop(e) == HL_OK, "stop");
    CHECK(hl_engine_join(e, 60000) == 1, "job ends after stop");
    CHECK(hl_engine_result(e) == HL_OK, "stop is a success");
    s = hl_engine_snapshot(e);
    int64_t stopped_at = s->step;
    CHECK(s->state == HL_JOB_STOPPED && s->last_checkpoint_step == s->step && s->step < 30, "stopped with a checkpoint");
    int saw = 0;
    for (int i = 0; i < HL_ENGINE_EVENTS; i++)
        saw |= s->events[i].seq && strstr(s->events[i].text, "stopped at step") != NULL;
    CHECK(saw, "an event says it stopped");
    hl_snapshot_release(s);
    CHECK(hl_engine_stop(e) == HL_ERR_STATE, "no job after it ended");

    hl_engine_set_faults(e, NULL);
    hl_run_config rc;
    CHECK(hl_engine_load_run_config(run, &rc) == HL_OK, "load run config");
    CHECK(hl_engine_start(e, &rc, HL_START_RESUME) == HL_OK, "resume: %s", hl_last_error());
    CHECK(hl_engine_join(e, 120000) == 1, "resumed job ends");
    s = hl_engine_snapshot(e);
    CHECK(s->state == HL_JOB_FINISHED && s->step == 30, "finished (%s at %lld, from %lld): %s",
          hl_job_state_name(s->state), (long long)s->step, (long long)stopped_at, s->error);
    CHECK(s->loss_hist.b[0].step_first == 1, "history rebuilt from metrics.jsonl on resume");
    hl_snapshot_release(s);
    char p[512];
    snprintf(p, sizeof p, "%s/adapter/adapter_model.bin", run);
    CHECK(access(p, R_OK) == 0, "adapter exported at the end");
    snprintf(p, sizeof p, "%s/config.json", run);
    CHECK(access(p, R_OK) == 0, "config.json written");

    /* Failure is reported through the snapshot and the result. */
    hl_run_config bad = cfg;
    hl_config_set_field(&bad, hl_config_field_find("data"), "/nonexistent/data.jsonl");
    snprintf(p, sizeof p, "%s/run_bad", dir);
    hl_config_set_field(&bad, hl_config_field_find("out_dir"), p);
    CHECK(hl_engine_start(e, &bad, HL_START_NEW) == HL_OK, "start bad");
    hl_engine_join(e, 60000);
    s = hl_engine_snapshot(e);
    CHECK(s->state == HL_JOB_FAILED && strstr(s->error, "/nonexistent/data.jsonl"), "failure names the file: %s",
          s->error);
    hl_snapshot_release(s);
    CHECK(hl_engine_result(e) != HL_OK, "result is the failure");
    hl_engine_free(e);

    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    CHECK(system(rm) == 0, "cleanup");
    return hl_test_finish();
}
