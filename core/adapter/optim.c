/* AdamW, schedule and clipping (see optim.h). */
#include "core/adapter/optim.h"

#include <math.h>

hl_optim_config hl_optim_defaults(void) {
    hl_optim_config c = {
        .lr = 2e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f, .clip_norm = 1.0f};
    return c;
}

float hl_lr_at(const hl_optim_config *cfg, int64_t step) {
    if (step < cfg->warmup_steps)
        return cfg->lr * (float)((double)step / (double)(cfg->warmup_steps > 1 ? cfg->warmup_steps : 1));
    int64_t span = cfg->total_steps - cfg->warmup_steps;
    double progress = (double)(step - cfg->warmup_steps) / (double)(span > 1 ? span : 1);
    if (progress > 1.0) /* past the planned end: stay at 0 (HF's formula would rise again) */
        progress = 1.0;
    double f = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)((double)cfg->lr * (f > 0.0 ? f : 0.0));
}
