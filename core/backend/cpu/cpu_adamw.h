/* PRIVATE to the CPU backend (and its tests): AdamW over flat f32 host slabs with PyTorch's
 * semantics (torch.optim.AdamW, decoupled weight decay) after global-norm clipping
 * (torch.nn.utils.clip_grad_norm_). Deterministic: fixed-order reductions in double. */
#ifndef HL_BACKEND_CPU_ADAMW_H
#define HL_BACKEND_CPU_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "core/adapter/adapter.h"
#include "core/adapter/optim.h"
#include "core/base/status.h"

/* Global L2 norm of g[0..n) (double accumulation, fixed order). */
double hl_grad_norm(const float *g, size_t n);

/* One AdamW update of params[0..n) with moments m, v. `t` is the 1-based step count
 * including this update (bias correction). If cfg->clip_norm > 0 and the norm exceeds it,
 * grads are scaled IN PLACE by clip/(norm + 1e-6) first. Returns the pre-clip norm in
 * *grad_norm (may be NULL). Fails with HL_ERR_NUMERIC (and leaves params untouched) when
 * the gradient norm is not finite. */
hl_status hl_adamw_step(float *params, float *grads, float *m, float *v, size_t n, int64_t t, float lr,
                        const hl_optim_config *cfg, double *grad_norm);

/* The same over an adapter set's slabs. */
hl_status hl_adapters_adamw_step(hl_adapters *ad, int64_t t, float lr, const hl_optim_config *cfg,
                                 double *grad_norm);

#endif
