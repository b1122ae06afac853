/* Scoring a file of instruction records: the per-record loss under a base model plus an
 * exported adapter, with the prompt rules of training (`hydralora score --data`). */
#ifndef HL_SCORE_H
#define HL_SCORE_H

#include <stdint.h>

#include "core/train/config.h"
#include "core/base/status.h"

typedef struct {
    int64_t n;             /* scored records (records without target tokens are left out) */
    double *loss;          /* [n] mean target cross-entropy per record */
    int64_t *targets;      /* [n] target tokens per record */
    int64_t *line;         /* [n] line of the record in its file (1-based) */
    double mean_token;     /* Σ CE / Σ targets */
    double mean_record;    /* mean of loss[] */
    int64_t n_skipped;     /* records without any target token after truncation */
    int64_t n_malformed;   /* lines of the file that were not usable records */
} hl_score_result;

/* Per-record loss of the records in cfg->val_data (with cfg's tokenizer lookup, field map,
 * max_len, micro_batch, val_max, device, threads) under the base model plus the adapter exported in
 * adapter_dir (NULL: base model only), with the prompt rules of training (docs/method.md §5). */
hl_status hl_train_score(const hl_run_config *cfg, const char *adapter_dir, hl_score_result *res);
void hl_score_result_free(hl_score_result *res);

#endif
