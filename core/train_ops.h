/* How the trainer (core/) reaches the record loader and prompt builder (datasets/).
 *
 * Data flows datasets/ → core/, and the build links the static libraries in the order
 * hldata, hlcore: code in hlcore cannot pull objects out of hldata by itself. So the
 * trainer calls datasets/ through this table, and the entry points that may start a
 * training or scoring job (hl_engine_start, hl_train_run, hl_trainer_open, hl_train_score,
 * hl_export_collapse) are static inline wrappers that first register the table: the
 * references to hl_records_load & co. then sit in the CALLER's object file, which the
 * linker resolves from hldata. Callers need to do nothing. */
#ifndef HL_TRAIN_OPS_H
#define HL_TRAIN_OPS_H

#include "core/status.h"
#include "datasets/records.h"

typedef struct {
    hl_status (*records_load)(hl_dataset *ds, const char *path, const hl_records_options *opts);
    void (*dataset_free)(hl_dataset *ds);
    const hl_record *(*dataset_get)(const hl_dataset *ds, size_t i);
    hl_status (*field_map_set)(hl_field_map *map, const char *instruction, const char *input, const char *output);
    hl_status (*record_tokenize)(const hl_tokenizer *tok, const hl_record *rec, int max_len, hl_tokenized *out);
    void (*tokenized_free)(hl_tokenized *t);
    hl_status (*records_split)(size_t n, double val_fraction, size_t val_count, uint64_t seed, size_t **train_idx,
                               size_t *n_train, size_t **val_idx, size_t *n_val);
} hl_train_data_ops;

/* Implemented in core/train.c. */
void hl_train_set_data_ops(const hl_train_data_ops *ops);

static inline void hl_train_link_datasets(void) {
    static const hl_train_data_ops ops = {
        hl_records_load, hl_dataset_free, hl_dataset_get,  hl_field_map_set,
        hl_record_tokenize, hl_tokenized_free, hl_records_split,
    };
    hl_train_set_data_ops(&ops);
}

#endif
