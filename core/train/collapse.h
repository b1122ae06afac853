/* Collapsing a HydraLoRA checkpoint into one plain LoRA with the mean routing weights (the
 * `export --collapse` of a run). Needs the base model and validation records: it evaluates. */
#ifndef HL_COLLAPSE_H
#define HL_COLLAPSE_H

#include <stdint.h>

#include "core/train/config.h"
#include "core/train/export.h"
#include "core/base/status.h"

/* Approximate plain LoRA (docs/method.md §7): per adapted projection B = Σ_i ω̄_i B_i with ω̄
 * the mean router weights over the validation examples of `cfg` (LoRA-Split: A and B
 * concatenated, rank N·r, alpha scaled so that alpha/r is unchanged). Also measures the
 * validation loss with the real adapters and with the collapsed one. */
typedef struct {
    hl_export_info info;
    double loss_adapter;   /* validation loss with the HydraLoRA adapters */
    double loss_collapsed; /* ... with the collapsed plain LoRA */
    int64_t n_val;
    int r_out;             /* rank of the collapsed LoRA */
} hl_collapse_report;

hl_status hl_export_collapse(const char *run_dir, int64_t step, const hl_run_config *cfg, const char *out_dir,
                             hl_dtype dtype, hl_collapse_report *rep);

#endif
