/* Internals shared by core/train.c (loading, eval) and core/train_loop.c (the job). Not a
 * public header. */
#ifndef HL_TRAIN_PRIVATE_H
#define HL_TRAIN_PRIVATE_H

#include "core/batch.h"
#include "core/llama.h"
#include "core/train.h"
#include "datasets/records.h"

#define HL_TRAIN_MAX_FILES 64

typedef struct {
    hl_dataset files[HL_TRAIN_MAX_FILES];
    int n_files;
} trainer_data;

struct hl_trainer {
    hl_run_config cfg;
    hl_model model;
    int model_loaded;
    hl_tokenizer *tok;
    trainer_data data;
    hl_examples train, val;
    int64_t n_loaded, n_malformed, n_truncated, n_skipped, n_records_train;
    int max_len_requested; /* > 0: cfg.max_len was this, above the model's context, and was clamped */
    hl_adapters ad;
    int ad_ok;
    hl_adapters *use_ad; /* what the context runs with (own adapters or a swapped-in set) */
    hl_llama *ctx;
    unsigned ctx_flags;
    hl_microbatch mb;
};

hl_status trainer_open_base(hl_trainer *t, const hl_run_config *cfg);
hl_status trainer_load_examples(hl_trainer *t, unsigned what, void (*progress)(void *, size_t, size_t), void *pctx);
hl_status trainer_create_adapters(hl_trainer *t);
hl_status trainer_build_context(hl_trainer *t, unsigned flags);
void trainer_data_free(trainer_data *td);

#endif
