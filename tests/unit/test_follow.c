/* The run follower (core/engine/follow.h): a snapshot rebuilt from a run directory that another
 * process writes — lines appended one by one, a partly written last line, a foreign line, a
 * metrics.jsonl rewritten by a resume (renamed over) or restarted in place, and the end states;
 * the values must be the ones written into the lines here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/train/config.h"
#include "core/engine/follow.h"
#include "hl_test.h"

static char dir[256], metrics[300];

static void append(const char *text) {
    FILE *f = fopen(metrics, "a");
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static void step_line(int step, double loss, double lr) {
    char l[400];
    snprintf(l, sizeof l,
             "{\"event\":\"step\",\"step\":%d,\"epoch\":%.6f,\"loss\":%.9g,\"loss_hex\":\"%a\",\"lr\":%.9g,"
             "\"grad_norm\":%g,\"loss_smooth\":%g,\"eval_loss\":null,\"tokens\":100,\"tokens_seen\":%d,"
             "\"tokens_per_s\":%d.0,\"step_s\":0.5,\"elapsed_s\":%d.0,\"eta_s\":%d.0,\"mem_bytes\":1000}\n",
             step, step / 10.0, loss, loss, lr, 0.5 + step, loss + 0.01, 100 * step, 1000 + step, step, 10 - step);
    append(l);
}

static const char *eval_line =
    "{\"event\":\"eval\",\"step\":2,\"eval_loss\":2.5,\"n_val\":4,\"targets\":40,\"seconds\":0.1,"
    "\"routing\":{\"source\":\"val\",\"modules\":[\"q_proj\",\"v_proj\"],\"n_experts\":3,"
    "\"weight_mean\":[[[0.5,0.25,0.25],[0.2,0.3,0.5]],[[0.1,0.1,0.8],[0.6,0.2,0.2]]],"
    "\"top1_share\":[[[1,0,0],[0,0,1]],[[0,0,1],[0.75,0.25,0]]],"
    "\"entropy\":[[1.04,0.9],[0.6,0.95]]}}\n";

static const hl_snapshot *poll_snap(hl_follow *f) {
    CHECK(hl_follow_poll_now(f) == HL_OK, "poll: %s", hl_last_error());
    return hl_follow_snapshot(f);
}

static int has_event(const hl_snapshot *s, const char *text) {
    for (int i = 0; i < HL_ENGINE_EVENTS; i++)
        if (s->events[i].seq && strstr(s->events[i].text, text))
            return 1;
    return 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/hl_follow_XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return hl_test_finish();
    }
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
    hl_follow *f = NULL;

    /* not a run directory */
    CHECK(hl_follow_open(&f, dir, 50) == HL_ERR_NOT_FOUND && !f, "a folder without config.json");
    CHECK(strstr(hl_last_error(), "not a run directory") != NULL, "message: %s", hl_last_error());
    CHECK(hl_follow_open(&f, "/nonexistent/run", 50) == HL_ERR_NOT_FOUND, "a missing folder");

    hl_run_config cfg;
    hl_config_defaults(&cfg);
    snprintf(cfg.model, sizeof cfg.model, "models/tiny");
    cfg.r = 4;
    cfg.n_heads = 3;
    char cpath[300];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    CHECK(hl_config_save_file(&cfg, cpath) == HL_OK, "config: %s", hl_last_error());

    CHECK(hl_follow_open(&f, dir, 50) == HL_OK && f, "open: %s", hl_last_error());
    if (!f)
        return hl_test_finish();
    const hl_snapshot *s = hl_follow_snapshot(f);
    CHECK(s->state == HL_JOB_LOADING && s->cfg.r == 4 && s->cfg.n_heads == 3 && !strcmp(s->cfg.model, "models/tiny"),
          "before metrics: state %s, config r=%d N=%d model %s", hl_job_state_name(s->state), s->cfg.r, s->cfg.n_heads,
          s->cfg.model);
    CHECK(!strcmp(s->run_dir, dir) && has_event(s, "following"), "run dir and the following event");
    hl_snapshot_release(s);

    append("{\"event\":\"start\",\"step\":0,\"time\":1700000000,\"total_steps\":10,\"n_train\":80,\"n_val\":4,"
           "\"trainable_params\":1234,\"mem_planned\":5678,\"threads\":2}\n");
    step_line(1, 3.0, 1e-4);
    step_line(2, 2.75, 2e-4);
    append(eval_line);
    append("not json at all\n");
    append("{\"event\":\"step\",\"step\":3,\"loss\":2.5"); /* torn: no newline yet */
    s = poll_snap(f);
    CHECK(s->state == HL_JOB_RUNNING && s->total_steps == 10 && s->n_train == 80 && s->n_val == 4 &&
              s->trainable_params == 1234 && s->mem_planned == 5678,
          "start line: %s %lld %lld", hl_job_state_name(s->state), (long long)s->total_steps, (long long)s->n_train);
    CHECK(s->step == 2 && s->loss == 2.75 && s->lr == 2e-4 && s->grad_norm == 2.5 && s->tokens_seen == 200,
          "last complete step: step %lld loss %g lr %g gnorm %g", (long long)s->step, s->loss, s->lr, s->grad_norm);
    CHECK(s->loss_hist.n == 2 && s->loss_hist.b[1].last == 2.75f && s->lr_hist.n == 2 && s->tokens_per_s_hist.n == 2,
          "histories: %d loss buckets", s->loss_hist.n);
    CHECK(fabs(s->tokens_per_s - (0.9 * 1001 + 0.1 * 1002)) < 1e-9, "tokens/s EMA %g", s->tokens_per_s);
    CHECK(s->eval_loss == 2.5 && s->eval_step == 2 && s->eval_hist.n == 1, "eval %g at %lld", s->eval_loss,
          (long long)s->eval_step);
    const hl_snapshot_routing *r = &s->routing;
    CHECK(r->n_layers == 2 && r->n_modules == 2 && r->n_experts == 3 && r->source == 1 && r->step == 2 &&
              r->hist_len == 1,
          "routing shape %d %d %d", r->n_layers, r->n_modules, r->n_experts);
    if (r->n_layers == 2 && r->weight_mean) {
        CHECK(r->module_target[0] == 0 && r->module_target[1] == 2, "modules q_proj, v_proj -> %d %d",
              r->module_target[0], r->module_target[1]);
        CHECK(r->weight_mean[hl_routing_index(r, 1, 0, 2)] == 0.8f && r->top1_share[hl_routing_index(r, 1, 1, 0)] == 0.75f,
              "routing values");
        CHECK(r->entropy[1 * 2 + 0] == 0.6f && r->hist_weight_mean[hl_routing_index(r, 0, 1, 2)] == 0.5f,
              "entropy and history");
    }
    uint64_t v = s->version;
    hl_snapshot_release(s);

    /* the torn line completes */
    append(",\"lr\":3e-4,\"grad_norm\":1,\"tokens_seen\":300}\n");
    s = poll_snap(f);
    CHECK(s->step == 3 && s->loss == 2.5 && s->version > v, "completed line: step %lld", (long long)s->step);
    hl_snapshot_release(s);

    append("{\"event\":\"checkpoint\",\"step\":3,\"time\":1,\"text\":\"x/checkpoints/step-3\"}\n");
    step_line(4, 2.25, 4e-4);
    s = poll_snap(f);
    CHECK(s->last_checkpoint_step == 3 && has_event(s, "checkpoint step-3 saved"), "checkpoint %lld",
          (long long)s->last_checkpoint_step);
    hl_snapshot_release(s);

    /* the follower thread picks up lines by itself */
    s = hl_follow_snapshot(f);
    v = s->version;
    hl_snapshot_release(s);
    step_line(5, 2.0, 5e-4);
    uint64_t v2 = hl_follow_wait_change(f, v, 5000);
    s = hl_follow_snapshot(f);
    CHECK(v2 > v && s->step == 5, "thread: version %llu -> %llu, step %lld", (unsigned long long)v,
          (unsigned long long)v2, (long long)s->step);
    hl_snapshot_release(s);

    /* a resume trims metrics.jsonl to its checkpoint and renames the new file over it */
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", metrics);
    FILE *o = fopen(tmp, "w");
    fputs("{\"event\":\"start\",\"step\":0,\"time\":1700000000,\"total_steps\":10,\"n_train\":80,\"n_val\":4}\n", o);
    fputs("{\"event\":\"step\",\"step\":1,\"loss\":3.0,\"lr\":1e-4}\n", o);
    fputs("{\"event\":\"step\",\"step\":2,\"loss\":2.75,\"lr\":2e-4}\n", o);
    fputs("{\"event\":\"resume\",\"step\":2,\"time\":2,\"text\":\"x/checkpoints/step-2\"}\n", o);
    fclose(o);
    rename(tmp, metrics);
    s = poll_snap(f);
    CHECK(s->step == 2 && s->loss_hist.n == 2 && s->last_checkpoint_step == 2 && s->state == HL_JOB_RUNNING,
          "after the rewrite: step %lld, %d loss buckets, ckpt %lld", (long long)s->step, s->loss_hist.n,
          (long long)s->last_checkpoint_step);
    CHECK(has_event(s, "rewritten") && has_event(s, "resumed from checkpoint step-2"), "rewrite events");
    hl_snapshot_release(s);

    /* lifecycle ends */
    append("{\"event\":\"error\",\"step\":2,\"time\":3,\"text\":\"loss is nan at step 3\"}\n");
    s = poll_snap(f);
    CHECK(s->state == HL_JOB_FAILED && strstr(s->error, "loss is nan at step 3"), "error: %s %s",
          hl_job_state_name(s->state), s->error);
    hl_snapshot_release(s);
    append("{\"event\":\"resume\",\"step\":2,\"time\":4,\"text\":\"x\"}\n");
    step_line(3, 2.4, 1e-4);
    append("{\"event\":\"finish\",\"step\":3,\"time\":5,\"text\":\"x/adapter\"}\n");
    s = poll_snap(f);
    CHECK(s->state == HL_JOB_FINISHED && s->step == 3 && has_event(s, "finished: 3 steps"), "finish: %s",
          hl_job_state_name(s->state));
    hl_snapshot_release(s);

    /* a new run started in the same directory truncates the file in place and writes more than before */
    o = fopen(metrics, "w");
    fputs("{\"event\":\"start\",\"step\":0,\"time\":1800000000,\"total_steps\":99,\"n_train\":7,\"n_val\":0}\n", o);
    for (int k = 1; k <= 40; k++)
        fprintf(o, "{\"event\":\"step\",\"step\":%d,\"loss\":%d.5,\"lr\":1e-3}\n", k, k);
    fclose(o);
    s = poll_snap(f);
    CHECK(s->total_steps == 99 && s->step == 40 && s->loss == 40.5 && s->loss_hist.n == 40 &&
              s->state == HL_JOB_RUNNING,
          "restarted in place: total %lld step %lld loss %g buckets %d", (long long)s->total_steps, (long long)s->step,
          s->loss, s->loss_hist.n);
    hl_snapshot_release(s);

    hl_follow_close(f);
    hl_test_remove_dir(dir);
    return hl_test_finish();
}
