/* Training plumbing without a model: the downsampled plot series, the seeded data cursor
 * (a permutation per epoch; restoring a saved cursor continues the same order), padded
 * micro-batches (docs/method.md §5: pad 0, right padding, labels -100), checkpoint directories
 * (atomic save, exact round trip, prune, temp cleanup, injected ENOSPC), export helpers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/text/batch.h"
#include "core/train/checkpoint.h"
#include "core/engine/engine.h"
#include "core/train/export.h"
#include "tests/unit/hl_test.h"

static void test_series(void) {
    hl_series s;
    hl_series_init(&s);
    double sum = 0;
    const int64_t n = 100000;
    for (int64_t i = 1; i <= n; i++) {
        float v = (float)((i * 7919) % 1000) / 10.0f;
        if (i == 77777)
            v = 1e4f; /* a spike must survive downsampling in max */
        sum += v;
        hl_series_add(&s, i, v);
    }
    hl_series_add(&s, n + 1, NAN); /* skipped */
    CHECK(s.n <= HL_SERIES_MAX && s.n >= HL_SERIES_MAX / 4, "buckets %d", s.n);
    int64_t cnt = 0;
    double msum = 0, mx = 0;
    for (int i = 0; i < s.n; i++) {
        cnt += s.b[i].count;
        msum += (double)s.b[i].mean * s.b[i].count;
        if (s.b[i].max > mx)
            mx = s.b[i].max;
        if (i)
            CHECK(s.b[i].step_first == s.b[i - 1].step_last + 1, "buckets are contiguous");
        CHECK(s.b[i].min <= s.b[i].mean && s.b[i].mean <= s.b[i].max, "min <= mean <= max");
    }
    CHECK(cnt == n, "all samples counted: %lld", (long long)cnt);
    CHECK(fabs(msum - sum) / sum < 1e-4, "mean preserved");
    CHECK(mx == 1e4f, "spike kept in max");
    CHECK(s.b[0].step_first == 1 && s.b[s.n - 1].step_last == n, "covers all steps");
}

static int is_perm(const int64_t *p, int64_t n) {
    char *seen = calloc((size_t)n, 1);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (p[i] < 0 || p[i] >= n || seen[p[i]])
            ok = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_cursor(void) {
    const int64_t n = 37;
    hl_data_cursor a, b;
    CHECK(hl_cursor_init(&a, n, 41, 1) == HL_OK, "init");
    int64_t seq[200];
    int identity = 1;
    for (int i = 0; i < 200; i++)
        seq[i] = hl_cursor_next(&a);
    for (int e = 0; e < 5; e++) {
        int64_t ep[37];
        if ((e + 1) * n > 200)
            break;
        memcpy(ep, seq + e * n, sizeof ep);
        CHECK(is_perm(ep, n), "epoch %d is a permutation", e);
    }
    for (int i = 0; i < n; i++)
        identity &= seq[i] == i;
    CHECK(!identity, "shuffled");
    CHECK(memcmp(seq, seq + n, (size_t)n * sizeof *seq) != 0, "epochs are reshuffled");
    CHECK(a.consumed == 200 && a.epoch == 200 / n, "consumed %lld epoch %lld", (long long)a.consumed, (long long)a.epoch);
    hl_cursor_free(&a);

    /* Save the cursor mid-epoch after k items; a restored one continues identically. */
    for (int k = 0; k < 120; k += 17) {
        hl_cursor_init(&a, n, 41, 1);
        for (int i = 0; i < k; i++)
            hl_cursor_next(&a);
        CHECK(hl_cursor_restore(&b, n, 1, a.epoch, a.pos, a.consumed, &a.epoch_rng) == HL_OK, "restore");
        int same = 1;
        for (int i = k; i < 200; i++)
            same &= hl_cursor_next(&b) == seq[i];
        CHECK(same, "restored cursor at %d continues the same order", k);
        hl_cursor_free(&a);
        hl_cursor_free(&b);
    }
    hl_cursor_init(&a, n, 42, 1);
    int differ = 0;
    for (int i = 0; i < n; i++)
        differ |= hl_cursor_next(&a) != seq[i];
    CHECK(differ, "another seed, another order");
    hl_cursor_free(&a);
    hl_cursor_init(&a, n, 41, 0);
    identity = 1;
    for (int i = 0; i < 2 * n; i++)
        identity &= hl_cursor_next(&a) == i % n;
    CHECK(identity, "shuffle off gives file order");
    hl_cursor_free(&a);
    CHECK(hl_cursor_restore(&b, n, 1, 0, n + 1, 0, &a.epoch_rng) == HL_ERR_FORMAT, "bad cursor refused");
    CHECK(hl_cursor_init(&a, 0, 41, 1) != HL_OK, "no examples refused");
}

static void test_microbatch(void) {
    hl_examples ex;
    hl_examples_init(&ex);
    int32_t ids1[5] = {1, 10, 11, 2, 20}, lab1[5] = {-100, -100, -100, -100, 20};
    int32_t ids2[3] = {1, 12, 2}, lab2[3] = {-100, 5, 2};
    CHECK(hl_examples_add(&ex, ids1, lab1, 5, 7) == HL_OK, "add");
    CHECK(hl_examples_add(&ex, ids2, lab2, 3, 8) == HL_OK, "add");
    for (int i = 0; i < 3000; i++)
        CHECK(hl_examples_add(&ex, ids2, lab2, 3, i) == HL_OK, "grow");
    CHECK(ex.n == 3002 && ex.max_len == 5 && ex.source[1] == 8, "bookkeeping");
    CHECK(hl_examples_targets(&ex, 0) == 1 && hl_examples_targets(&ex, 1) == 2, "targets exclude position 0");
    hl_microbatch mb;
    CHECK(hl_microbatch_init(&mb, 2, 8) == HL_OK, "mb init");
    int64_t w[2] = {1, 0};
    CHECK(hl_microbatch_fill(&mb, &ex, w, 2) == HL_OK, "fill");
    CHECK(mb.B == 2 && mb.T == 5, "padded to the longest: %dx%d", mb.B, mb.T);
    int exp_tok[10] = {1, 12, 2, 0, 0, 1, 10, 11, 2, 20};
    int exp_lab[10] = {-100, 5, 2, -100, -100, -100, -100, -100, -100, 20};
    CHECK(!memcmp(mb.tokens, exp_tok, sizeof exp_tok) && !memcmp(mb.labels, exp_lab, sizeof exp_lab),
          "right padding with id 0 and label -100");
    CHECK(mb.lengths[0] == 3 && mb.lengths[1] == 5 && mb.n_tokens == 8, "lengths");
    hl_microbatch_free(&mb);
    CHECK(hl_microbatch_init(&mb, 1, 4) == HL_OK, "mb init");
    CHECK(hl_microbatch_fill(&mb, &ex, w + 1, 1) == HL_ERR_ARG, "too long for the batch");
    hl_microbatch_free(&mb);
    hl_examples_free(&ex);
}

static int dir_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void test_checkpoint(void) {
    char run[] = "/tmp/hl_test_ckpt_XXXXXX";
    if (!mkdtemp(run)) {
        CHECK(0, "mkdtemp");
        return;
    }
    hl_llama_config mc = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 2, .n_kv_heads = 2, .head_dim = 8,
                          .vocab_size = 32, .max_seq_len = 16, .rms_norm_eps = 1e-5f, .rope_theta = 10000.f};
    hl_adapter_config ac = {.variant = HL_VARIANT_HYDRA, .targets = HL_TARGETS_DEFAULT | HL_TARGET_Q, .r = 4,
                            .n_heads = 3, .alpha = 8, .dropout = 0.1f};
    hl_adapters a, b;
    CHECK(hl_adapters_create(&a, &mc, &ac, 5) == HL_OK, "adapters: %s", hl_last_error());
    for (size_t i = 0; i < a.n_params; i++) {
        a.params[i] = (float)sin((double)i) * 0.1f;
        a.m[i] = (float)cos((double)i) * 1e-3f;
        a.v[i] = (float)(i % 13) * 1e-7f;
    }
    a.dropout_step = 123;
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    cfg.targets = ac.targets, cfg.r = 4, cfg.n_heads = 3, cfg.alpha = 8, cfg.seed = 5;
    hl_ckpt_state st = {.step = 8, .total_steps = 20, .epoch = 1, .pos = 3, .consumed = 40, .seed = 5,
                        .dropout_key = a.dropout_key, .dropout_step = 123, .n_params = (int64_t)a.n_params,
                        .tokens_seen = 999, .loss = 2.5, .elapsed_s = 1.5};
    hl_rng_seed(&st.data_rng, 77, 3);
    st.data_rng.s[2] = 0xfedcba9876543210ull; /* all 64 bits must survive JSON */
    char out[4200];
    CHECK(hl_checkpoint_save(run, &a, &st, &cfg, out, sizeof out) == HL_OK, "save: %s", hl_last_error());
    CHECK(hl_adapters_create(&b, &mc, &ac, 5) == HL_OK, "adapters b");
    memset(b.params, 0, b.n_params * sizeof(float)); /* must be overwritten by the load */
    hl_ckpt_state st2;
    CHECK(hl_checkpoint_load(out, &b, &st2, 1) == HL_OK, "load: %s", hl_last_error());
    CHECK(!memcmp(a.params, b.params, a.n_params * 4) && !memcmp(a.m, b.m, a.n_params * 4) &&
              !memcmp(a.v, b.v, a.n_params * 4),
          "params and moments bit-exact");
    CHECK(st2.step == 8 && st2.total_steps == 20 && st2.epoch == 1 && st2.pos == 3 && st2.consumed == 40 &&
              !memcmp(&st2.data_rng, &st.data_rng, sizeof st.data_rng) && st2.dropout_step == 123 &&
              st2.tokens_seen == 999 && st2.loss == 2.5,
          "state round trip");
    CHECK(b.dropout_step == 123, "dropout counter restored");
    hl_adapters_free(&b);
    /* Another configuration does not load. */
    hl_adapter_config ac2 = ac;
    ac2.r = 2;
    CHECK(hl_adapters_create(&b, &mc, &ac2, 5) == HL_OK, "adapters r=2");
    CHECK(hl_checkpoint_load(out, &b, &st2, 1) == HL_ERR_SHAPE, "mismatched config refused: %s", hl_last_error());
    hl_adapters_free(&b);

    /* More checkpoints, replace one, prune, list. */
    for (int s = 10; s <= 14; s += 2) {
        st.step = s;
        CHECK(hl_checkpoint_save(run, &a, &st, &cfg, NULL, 0) == HL_OK, "save %d", s);
    }
    st.step = 10;
    float keep = a.params[0];
    a.params[0] = 42.0f;
    CHECK(hl_checkpoint_save(run, &a, &st, &cfg, NULL, 0) == HL_OK, "replace step-10");
    hl_checkpoint_path(run, 10, out, sizeof out);
    CHECK(hl_checkpoint_load(out, &a, &st2, 0) == HL_OK && a.params[0] == 42.0f, "step-10 was replaced");
    a.params[0] = keep;
    int64_t *steps;
    int n;
    CHECK(hl_checkpoint_list(run, &steps, &n) == HL_OK && n == 4 && steps[0] == 8 && steps[3] == 14, "list");
    free(steps);
    CHECK(hl_checkpoint_prune(run, 2, 14) == HL_OK, "prune");
    CHECK(hl_checkpoint_list(run, &steps, &n) == HL_OK && n == 2 && steps[0] == 12 && steps[1] == 14,
          "prune keeps the newest 2 (%d left)", n);
    free(steps);
    CHECK(hl_checkpoint_prune(run, 1, 12) == HL_OK, "prune protecting 12");
    CHECK(hl_checkpoint_list(run, &steps, &n) == HL_OK && n == 1 && steps[0] == 12, "protected step kept");
    free(steps);

    /* Injected ENOSPC: nothing named step-16, no temp left, step-12 intact. */
    hl_faults full_disk = {.ckpt_enospc_step = 16};
    st.step = 16;
    CHECK(hl_checkpoint_save_faults(run, &a, &st, &cfg, &full_disk, NULL, 0) == HL_ERR_DISK_FULL, "ENOSPC reported");
    char p[4300];
    hl_checkpoint_path(run, 16, p, sizeof p);
    CHECK(!dir_exists(p), "no step-16 after a failed save");
    int removed = -1;
    CHECK(hl_checkpoint_clean_tmp(run, &removed) == HL_OK && removed == 0, "failed save left no temp dir (%d)",
          removed);
    /* A leftover temp dir (kill -9 mid-save) is not listed and is cleaned. */
    snprintf(p, sizeof p, "%s/checkpoints/.tmp-step-20-abc", run);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/checkpoints/step-21", run); /* no state.json: incomplete */
    mkdir(p, 0755);
    CHECK(hl_checkpoint_list(run, &steps, &n) == HL_OK && n == 1 && steps[0] == 12, "incomplete dirs not listed");
    free(steps);
    CHECK(hl_checkpoint_clean_tmp(run, &removed) == HL_OK && removed == 1, "temp dir cleaned");

    /* Export from a checkpoint needs no model; natural key order. */
    char exp[4300];
    snprintf(exp, sizeof exp, "%s/export", run);
    hl_export_info info;
    CHECK(hl_export_checkpoint(run, -1, exp, HL_DTYPE_BF16, &info) == HL_OK, "export: %s", hl_last_error());
    CHECK(info.step == 12 && info.n_tensors == a.n_views && info.n_params == (int64_t)a.n_params, "export info");
    hl_adapter_config rc;
    CHECK(hl_export_read_config(exp, &rc, NULL, 0) == HL_OK && rc.variant == HL_VARIANT_HYDRA && rc.n_heads == 3 &&
              rc.r == 4 && rc.targets == ac.targets,
          "export config reads back");
    hl_adapters c;
    if (hl_export_load(exp, &mc, 1, &c) == HL_OK) {
        float worst = 0;
        for (size_t i = 0; i < a.n_params; i++) {
            float d = fabsf(c.params[i] - a.params[i]);
            worst = d > worst ? d : worst;
        }
        CHECK(worst <= 0.001f, "bf16 export within bf16 rounding (%g)", worst);
        hl_adapters_free(&c);
    } else {
        CHECK(0, "export loads: %s", hl_last_error());
    }
    CHECK(hl_export_checkpoint(run, 99, exp, HL_DTYPE_F32, &info) == HL_ERR_NOT_FOUND &&
              strstr(hl_last_error(), "available: 12"),
          "missing step names the available ones: %s", hl_last_error());

    CHECK(hl_export_key_cmp("layers.2.x", "layers.10.x") < 0, "natural order");
    CHECK(hl_export_key_cmp("lora_B2", "lora_B10") < 0 && hl_export_key_cmp("a", "a") == 0, "natural order 2");
    hl_adapters_free(&a);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf '%s'", run);
    CHECK(system(rm) == 0, "cleanup");
}

static void test_engine_idle(void) {
    hl_engine *e;
    CHECK(hl_engine_create(&e) == HL_OK, "create");
    const hl_snapshot *s = hl_engine_snapshot(e);
    CHECK(s->state == HL_JOB_IDLE && !strcmp(hl_job_state_name(s->state), "idle"), "idle");
    hl_snapshot_release(s);
    CHECK(hl_engine_pause(e) == HL_ERR_STATE && hl_engine_stop(e) == HL_ERR_STATE && hl_engine_save_now(e) ==
              HL_ERR_STATE,
          "commands need a job");
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    CHECK(hl_engine_start(e, &cfg, HL_START_NEW) == HL_ERR_ARG, "an invalid config fails before any thread");
    CHECK(hl_engine_join(e, 0) == 1, "nothing running");
    uint64_t v = hl_engine_wait_change(e, 0, 10);
    CHECK(hl_engine_wait_change(e, v, 20) == v, "wait times out without a change");
    hl_engine_free(e);
}

int main(void) {
    test_series();
    test_cursor();
    test_microbatch();
    test_checkpoint();
    test_engine_idle();
    return hl_test_finish();
}
