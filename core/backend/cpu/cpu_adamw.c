/* AdamW and the gradient norm on host slabs (see cpu_adamw.h). */
#include "core/backend/cpu/cpu_adamw.h"

#include <math.h>

#define HL_NORM_CHUNKS 256 /* fixed partition: the same sum whatever the thread count */

double hl_grad_norm(const float *g, size_t n) {
    double part[HL_NORM_CHUNKS];
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int c = 0; c < HL_NORM_CHUNKS; c++) {
        size_t a = n * (size_t)c / HL_NORM_CHUNKS, b = n * (size_t)(c + 1) / HL_NORM_CHUNKS;
        double s = 0.0;
        for (size_t i = a; i < b; i++)
            s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < HL_NORM_CHUNKS; c++)
        s += part[c];
    return sqrt(s);
}

hl_status hl_adamw_step(float *params, float *grads, float *m, float *v, size_t n, int64_t t, float lr,
                        const hl_optim_config *cfg, double *grad_norm) {
    double norm = hl_grad_norm(grads, n);
    if (grad_norm)
        *grad_norm = norm;
    if (!isfinite(norm))
        return hl_fail(HL_ERR_NUMERIC, "gradient norm is %g at step %lld (NaN or inf): lower the learning rate?",
                       norm, (long long)t);
    if (t < 1)
        return hl_fail(HL_ERR_ARG, "AdamW step count must start at 1 (got %lld)", (long long)t);
    /* torch clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied only when < 1 */
    float gscale = 1.0f;
    if (cfg->clip_norm > 0.0f) {
        double coef = (double)cfg->clip_norm / (norm + 1e-6);
        if (coef < 1.0)
            gscale = (float)coef;
    }
    /* torch AdamW (non-amsgrad, single-tensor path):
     *   p ← p·(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
     *   p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps) */
    const float b1 = cfg->beta1, b2 = cfg->beta2;
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = 1.0f - lr * cfg->weight_decay, eps = cfg->eps;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        if (gscale != 1.0f)
            grads[i] = g = g * gscale;
        params[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
    return HL_OK;
}

hl_status hl_adapters_adamw_step(hl_adapters *ad, int64_t t, float lr, const hl_optim_config *cfg,
                                 double *grad_norm) {
    return hl_adamw_step(ad->params, ad->grads, ad->m, ad->v, ad->n_params, t, lr, cfg, grad_norm);
}
