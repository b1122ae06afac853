/* `hydralora score --data FILE` (see score_data.h). */
#include "cli/score_data.h"

#include <stdio.h>

#include "core/backend/backend.h"
#include "core/train/config.h"
#include "core/train/score.h"
#include "core/train/train.h"

int hl_score_data_run(const char *model, const char *adapter, const char *data, const char *tokenizer,
                      int max_len, const char *device, int threads, int batch) {
    hl_run_config cfg;
    hl_config_defaults(&cfg);
    char num[32];
    hl_status st = hl_config_set_field(&cfg, hl_config_field_find("model"), model);
    if (!st)
        st = hl_config_set_field(&cfg, hl_config_field_find("val_data"), data);
    if (!st && tokenizer)
        st = hl_config_set_field(&cfg, hl_config_field_find("tokenizer"), tokenizer);
    if (!st && max_len > 0) {
        snprintf(num, sizeof num, "%d", max_len);
        st = hl_config_set_field(&cfg, hl_config_field_find("max_len"), num);
    }
    if (!st && device)
        st = hl_config_set_field(&cfg, hl_config_field_find("device"), device);
    if (!st && device)
        st = hl_backend_resolve(cfg.device, NULL, 0);
    if (!st && batch > 0) {
        snprintf(num, sizeof num, "%d", batch);
        st = hl_config_set_field(&cfg, hl_config_field_find("micro_batch"), num);
    }
    cfg.threads = threads > 0 ? threads : 0;
    if (st) {
        fprintf(stderr, "hydralora score: error: %s\n", hl_last_error());
        return 2;
    }
    hl_score_result r;
    if (hl_train_score(&cfg, adapter, &r)) {
        fprintf(stderr, "hydralora score: error: %s\n", hl_last_error());
        return 1;
    }
    if (r.n_malformed || r.n_skipped)
        fprintf(stderr, "hydralora score: %lld malformed line(s) and %lld record(s) without target tokens (after "
                        "truncation to %d) were skipped\n",
                (long long)r.n_malformed, (long long)r.n_skipped, cfg.max_len);
    int64_t tokens = 0;
    for (int64_t i = 0; i < r.n; i++) {
        printf("line=%lld targets=%lld loss=%.6f\n", (long long)r.line[i], (long long)r.targets[i], r.loss[i]);
        tokens += r.targets[i];
    }
    printf("mean_loss=%.6f tokens=%lld records=%lld mean_record_loss=%.6f\n", r.mean_token, (long long)tokens,
           (long long)r.n, r.mean_record);
    hl_score_result_free(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}
