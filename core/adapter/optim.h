/* The optimizer's settings (AdamW as torch.optim.AdamW, decoupled weight decay; global-norm
 * clipping as torch.nn.utils.clip_grad_norm_) and the learning-rate schedule (linear warmup,
 * then cosine decay to 0, as transformers' get_cosine_schedule_with_warmup): device
 * independent. The step itself runs on a backend (hl_session_optim_step; the CPU's kernel is
 * core/backend/cpu/cpu_adamw.h). */
#ifndef HL_OPTIM_H
#define HL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "core/base/status.h"

typedef struct {
    float lr;            /* peak learning rate (2e-4 reference) */
    float beta1, beta2;  /* 0.9, 0.999 */
    float eps;           /* 1e-8 */
    float weight_decay;  /* decoupled; 0 reference */
    float clip_norm;     /* max global grad norm; <= 0 disables clipping (1.0 reference) */
    int64_t warmup_steps;/* optimizer steps of linear warmup */
    int64_t total_steps; /* optimizer steps in the run (cosine reaches 0 here) */
} hl_optim_config;

/* Reference defaults (docs/method.md §4); warmup/total left 0 for the caller. */
hl_optim_config hl_optim_defaults(void);

/* Learning rate for the optimizer step with 0-based index `step` (the k-th update uses
 * hl_lr_at(cfg, k)). HF LambdaLR semantics: step < warmup → lr·step/max(1, warmup);
 * else lr · max(0, ½(1 + cos(π · (step − warmup)/max(1, total − warmup)))).
 * Note the very first update of a run with warmup > 0 uses lr 0, as in transformers.
 * Steps past total_steps get 0. */
float hl_lr_at(const hl_optim_config *cfg, int64_t step);

#endif
