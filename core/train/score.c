/* `hydralora score --data`: per-record loss under the base model and an exported adapter, with
 * the trainer's loading and eval pass (see score.h). */
#include "core/train/score.h"

#include <stdlib.h>
#include <string.h>

#include "core/train/export.h"
#include "core/train/train.h"

void hl_score_result_free(hl_score_result *res) {
    if (!res)
        return;
    free(res->loss);
    free(res->targets);
    free(res->line);
    memset(res, 0, sizeof *res);
}

hl_status hl_train_score(const hl_run_config *cfg_in, const char *adapter_dir, hl_score_result *res) {
    memset(res, 0, sizeof *res);
    hl_run_config cfg = *cfg_in;
    if (!cfg.val_data[0])
        return hl_fail(HL_ERR_ARG, "no data file to score");
    cfg.val_split = 0;
    hl_trainer *t;
    HL_TRY(hl_trainer_open(&t, &cfg, HL_TRAINER_VAL_DATA | HL_TRAINER_NO_ADAPTER));
    hl_status st = HL_OK;
    if (adapter_dir) {
        hl_adapters ad;
        st = hl_export_load(adapter_dir, &hl_trainer_model(t)->cfg, (uint64_t)cfg.seed, &ad);
        if (st == HL_OK) {
            st = hl_trainer_use_adapters(t, &ad); /* copied into the trainer's evaluation session */
            hl_adapters_free(&ad);
        }
    }
    const hl_examples *ex = hl_trainer_val(t);
    int64_t n = ex->n;
    if (st == HL_OK && n == 0)
        st = hl_fail(HL_ERR_ARG, "%s: no record with target tokens to score", cfg.val_data);
    if (st == HL_OK) {
        res->loss = malloc((size_t)n * sizeof *res->loss);
        res->targets = malloc((size_t)n * sizeof *res->targets);
        res->line = malloc((size_t)n * sizeof *res->line);
        if (!res->loss || !res->targets || !res->line)
            st = hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    if (st == HL_OK)
        st = hl_trainer_eval(t, &res->mean_token, res->loss, NULL);
    if (st == HL_OK) {
        res->n = n;
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            res->targets[i] = hl_examples_targets(ex, i);
            res->line[i] = ex->source[i] & 0xffffffff;
            sum += res->loss[i];
        }
        res->mean_record = sum / (double)n;
        hl_trainer_skipped(t, &res->n_malformed, &res->n_skipped);
    }
    hl_trainer_close(t);
    if (st)
        hl_score_result_free(res);
    return st;
}
