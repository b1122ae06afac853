/* Internals shared by core/train/train.c (loading, eval) and core/train/loop.c (the job). Not a
 * public header. */
#ifndef HL_TRAIN_PRIVATE_H
#define HL_TRAIN_PRIVATE_H

#include "core/backend/backend.h"
#include "core/text/batch.h"
#include "core/train/train.h"
#include "core/text/records.h"

#define HL_TRAIN_MAX_FILES 64

typedef struct {
    hl_dataset files[HL_TRAIN_MAX_FILES];
    int n_files;
    char tag_field[64]; /* records' source field to keep (routing by source; "" none) */
} trainer_data;

struct hl_trainer {
    hl_run_config cfg;
    hl_model model;
    int model_loaded;
    hl_tokenizer *tok;
    trainer_data data;
    hl_examples train, val;
    int64_t *val_rec;    /* [val.n]: (data file << 32) | index into that file's records[] */
    hl_examples probe;   /* run config probe_data: held-out sets per file, evaluated at eval intervals */
    int probe_first, probe_count; /* their files in data.files */
    int64_t *probe_rec;  /* [probe.n]: like val_rec */
    int64_t n_loaded, n_malformed, n_truncated, n_skipped, n_records_train;
    int max_len_requested; /* > 0: cfg.max_len was this, above the model's context, and was clamped */
    hl_backend *be;
    hl_adapter_config acfg;
    int with_adapters;  /* 0: base model only */
    hl_session *sess;   /* own session: adapters initialised from cfg.seed (or the base model) */
    unsigned sess_flags;
    hl_session *alt;    /* evaluation session with a swapped-in adapter set, or NULL */
    hl_microbatch mb;   /* padded micro-batches (cfg.packing off) */
    hl_packed pk;       /* packed micro-batches (cfg.packing on): micro_batch rows of max_len */
    int packing;
    int32_t *row_start, *row_len; /* [micro_batch]: the example table of hl_batch_padded */
};

hl_status trainer_open_base(hl_trainer *t, const hl_run_config *cfg);
hl_status trainer_load_examples(hl_trainer *t, unsigned what, void (*progress)(void *, size_t, size_t), void *pctx);
/* Take the adapter configuration from cfg (nothing is allocated until the session). */
hl_status trainer_create_adapters(hl_trainer *t);
/* (Re)create the own session with HL_SESSION_* flags for micro_batch × the longest example. */
hl_status trainer_build_session(hl_trainer *t, unsigned flags);
/* The micro-batch last filled (t->pk when packing, else t->mb) as a seam batch. */
hl_batch trainer_batch(hl_trainer *t);
void trainer_data_free(trainer_data *td);

#endif
