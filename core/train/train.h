/* The training loop (docs/method.md §4-5): data into padded micro-batches, gradient
 * accumulation, AdamW with warmup + decay and clipping, eval loss, routing statistics,
 * metrics.jsonl, checkpoints, resume, and the final adapter export.
 *
 * Two levels:
 *  - hl_train_run: a whole job in the calling thread, talking to its owner through hooks
 *    (core/engine/engine.c runs it in a thread; tests may call it directly);
 *  - hl_trainer: the loaded pieces (model, tokenizer, examples, the backend named by
 *    cfg->device and a session on it holding the adapters) for eval-only uses: score a data
 *    file, measure the mean routing weights for a collapsed export.
 * Everything that computes goes through the backend seam (core/backend/backend.h); adapter
 * values reach checkpoints and exports as host copies read from the session's slabs.
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
 * Tests inject failures (a NaN loss at step k, a slow step, a full disk at checkpoint k)
 * through hooks->faults (core/train/faults.h); the product never sets it. */
#ifndef HL_TRAIN_H
#define HL_TRAIN_H

#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/text/batch.h"
#include "core/backend/backend.h"
#include "core/train/config.h"
#include "core/train/faults.h"
#include "core/model/model.h"
#include "core/base/status.h"
#include "core/model/tokenizer/tokenizer.h"
#include "core/train/status.h"

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
    /* Failures to inject (tests only; NULL: none). */
    const hl_faults *faults;
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

/* Open the backend cfg->device (with cfg->threads), load model, tokenizer, examples (as
 * `what` says) and create an evaluation session on the backend with fresh adapters
 * (initialised from cfg->seed) for micro_batch × the longest example. */
hl_status hl_trainer_open(hl_trainer **out, const hl_run_config *cfg, unsigned what);
void hl_trainer_close(hl_trainer *t);

/* The session the trainer evaluates with (its own adapters, or the set swapped in by
 * hl_trainer_use_adapters) and that session's adapter layout (NULL with HL_TRAINER_NO_ADAPTER). */
hl_session *hl_trainer_session(hl_trainer *t);
const hl_adapters *hl_trainer_layout(const hl_trainer *t);
const hl_model *hl_trainer_model(const hl_trainer *t);
const hl_tokenizer *hl_trainer_tokenizer(const hl_trainer *t);
const hl_examples *hl_trainer_val(const hl_trainer *t);
const hl_examples *hl_trainer_train(const hl_trainer *t);
/* Records skipped while loading: malformed lines, and records without a target token after
 * truncation to max_len. */
void hl_trainer_skipped(const hl_trainer *t, int64_t *n_malformed, int64_t *n_no_target);

/* Eval loss over the validation examples (see top). Per-example mean losses go to
 * per_example[i] (n = val->n; may be NULL; NaN for an example without targets). When
 * routing != NULL, the routing statistics of the pass are gathered there (an
 * hl_routing_stats from core/adapter/adapter.h, initialised by the caller for the model's layers
 * and the adapter's N). */
hl_status hl_trainer_eval(hl_trainer *t, double *loss, double *per_example, hl_routing_stats *routing);

/* Evaluate with another adapter set (host layout + parameters, e.g. a collapsed LoRA or an
 * exported adapter) from now on; NULL returns to the trainer's own. The parameters are
 * copied into a second evaluation session (`ad` may be freed afterwards). */
hl_status hl_trainer_use_adapters(hl_trainer *t, const hl_adapters *ad);

/* Tokenizer lookup used by training: cfg->tokenizer if set, else the model's, both by the
 * one rule of hl_tokenizer_find (a folder, a model file or a tokenizer file). */
hl_status hl_train_load_tokenizer(hl_tokenizer **out, const hl_run_config *cfg);

#endif
