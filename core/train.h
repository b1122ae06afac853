/* The training loop (HYDRALORA.md §4-5): data into padded micro-batches, gradient
 * accumulation, AdamW with warmup + decay and clipping, eval loss, routing statistics,
 * metrics.jsonl, checkpoints, resume, and the final adapter export.
 *
 * Two levels:
 *  - hl_train_run: a whole job in the calling thread, talking to its owner through hooks
 *    (core/engine.c runs it in a thread; tests may call it directly);
 *  - hl_trainer: the loaded pieces (model, tokenizer, examples, adapters, compute context)
 *    for eval-only uses: score a data file, measure the mean routing weights for a
 *    collapsed export.
 *
 * Definitions used everywhere:
 *  - an optimizer step consumes micro_batch × grad_accum examples from the data cursor
 *    (seeded shuffle per epoch, continuing across epoch boundaries);
 *  - total steps = max_steps if set, else ceil(epochs × n_train / (micro_batch × grad_accum));
 *  - warmup steps = ceil(warmup_ratio × total steps) (as transformers);
 *  - step loss = mean over the step's micro-batches of each micro-batch's mean target CE;
 *  - eval loss = Σ target CE / Σ targets over the validation examples (token-weighted),
 *    without dropout; per-record loss = that record's mean target CE;
 *  - examples whose targets were all truncated away are skipped (counted in the data event).
 *
 * Test hooks (environment): HL_TEST_NAN_STEP=<k> makes the loss of step k NaN (the run
 * must stop naming step k and keep the last good checkpoint); HL_TEST_STEP_DELAY_MS=<ms>
 * sleeps after every step (so signal tests can catch a run mid-way);
 * HL_TEST_CKPT_ENOSPC (see checkpoint.h). */
#ifndef HL_TRAIN_H
#define HL_TRAIN_H

#include <stdint.h>

#include "core/adapter.h"
#include "core/batch.h"
#include "core/config.h"
#include "core/engine.h"
#include "core/model.h"
#include "core/status.h"
#include "core/tokenizer.h"

/* ---- whole job ---- */

enum {
    HL_TRAIN_CMD_STOP = 1u << 0, /* finish the step, checkpoint, end as STOPPED */
    HL_TRAIN_CMD_SAVE = 1u << 1, /* checkpoint after the current step */
    HL_TRAIN_CMD_PAUSED = 1u << 2, /* with SAVE: the job is paused and was woken only to write the
                                    * checkpoint; it polls again (and waits) once that is done */
};

typedef struct {
    void *ctx;
    /* Called between micro-batches and after every step with the current status; returns
     * HL_TRAIN_CMD_* bits. May block (that is how pause works). NULL: never. */
    unsigned (*poll)(void *ctx, const hl_snapshot *status);
    /* The status changed (step done, eval, checkpoint, state change, event). The pointer is
     * valid during the call only (copy what you need). NULL: ignored. */
    void (*publish)(void *ctx, const hl_snapshot *status);
} hl_train_hooks;

/* Run a job to its end in the calling thread. Returns HL_OK when it FINISHED or STOPPED
 * (the last published status says which), else the error (also published as FAILED, with
 * the message in status.error). cfg must have passed hl_config_validate. */
hl_status hl_train_run(const hl_run_config *cfg, hl_start_mode mode, const hl_train_hooks *hooks);

/* ---- loaded pieces, for evaluation ---- */

typedef struct hl_trainer hl_trainer;

enum {
    HL_TRAINER_TRAIN_DATA = 1u << 0, /* load + tokenize cfg->data (and split off validation) */
    HL_TRAINER_VAL_DATA = 1u << 1,   /* validation examples (cfg->val_data, or the split) */
    HL_TRAINER_NO_ADAPTER = 1u << 2, /* base model only */
};

/* Load model, tokenizer, examples (as `what` says) and fresh adapters (initialised from
 * cfg->seed) with a compute context for micro_batch × the longest example. */
hl_status hl_trainer_open(hl_trainer **out, const hl_run_config *cfg, unsigned what);
void hl_trainer_close(hl_trainer *t);

hl_adapters *hl_trainer_adapters(hl_trainer *t); /* NULL with HL_TRAINER_NO_ADAPTER */
const hl_model *hl_trainer_model(const hl_trainer *t);
const hl_tokenizer *hl_trainer_tokenizer(const hl_trainer *t);
const hl_examples *hl_trainer_val(const hl_trainer *t);
const hl_examples *hl_trainer_train(const hl_trainer *t);

/* Eval loss over the validation examples (see top). Per-example mean losses go to
 * per_example[i] (n = val->n; may be NULL; NaN for an example without targets). When
 * routing != NULL, the routing statistics of the pass are gathered there (an
 * hl_routing_stats from core/adapter.h, initialised by the caller for the model's layers
 * and the adapter's N). */
hl_status hl_trainer_eval(hl_trainer *t, double *loss, double *per_example, hl_routing_stats *routing);

/* Swap in another adapter set (e.g. a collapsed LoRA) for eval; NULL restores the own one.
 * The set must match the model; it is not owned. Rebuilds the compute context. */
hl_status hl_trainer_use_adapters(hl_trainer *t, hl_adapters *ad);

/* ---- scoring a data file ---- */

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
 * max_len, micro_batch, val_max, threads) under the base model plus the adapter exported in
 * adapter_dir (NULL: base model only), with the prompt rules of training (HYDRALORA.md §5). */
hl_status hl_train_score(const hl_run_config *cfg, const char *adapter_dir, hl_score_result *res);
void hl_score_result_free(hl_score_result *res);

/* Tokenizer lookup used by training: cfg->tokenizer if set, else the model's, both by the
 * one rule of hl_tokenizer_find (a folder, a model file or a tokenizer file). */
hl_status hl_train_load_tokenizer(hl_tokenizer **out, const hl_run_config *cfg);

#endif
