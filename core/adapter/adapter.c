/* HydraLoRA adapters, device independent: the layout (slabs, views with export keys),
 * initialisation from the seed, the dropout keys and the routing-statistics container
 * (docs/method.md §2). The arithmetic of one projection is each backend's (the CPU's is
 * core/backend/cpu/cpu_adapter.c). */
#include "core/adapter/adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/rng.h"

static const char *const target_names[HL_TARGET_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                          "gate_proj", "up_proj", "down_proj"};

const char *hl_target_name(int target) {
    return target >= 0 && target < HL_TARGET_COUNT ? target_names[target] : "?";
}

int hl_target_from_name(const char *name) {
    for (int t = 0; t < HL_TARGET_COUNT; t++) {
        size_t n = strlen(target_names[t]) - 5; /* without "_proj" */
        if (!strcmp(name, target_names[t]) || (strlen(name) == n && !strncmp(name, target_names[t], n)))
            return t;
    }
    return -1;
}

/* d_in / d_out of a target for a model. */
static void target_dims(const hl_llama_config *c, int t, int *d_in, int *d_out) {
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    switch (t) {
    case 0: *d_in = c->dim, *d_out = q; break;
    case 1:
    case 2: *d_in = c->dim, *d_out = kv; break;
    case 3: *d_in = q, *d_out = c->dim; break;
    case 4:
    case 5: *d_in = c->dim, *d_out = c->hidden_dim; break;
    default: *d_in = c->hidden_dim, *d_out = c->dim; break;
    }
}

hl_status hl_adapter_config_check(const hl_adapter_config *cfg) {
    if (cfg->variant < HL_VARIANT_HYDRA || cfg->variant > HL_VARIANT_UNIFORM)
        return hl_fail(HL_ERR_ARG, "unknown adapter variant %d", (int)cfg->variant);
    if (!cfg->targets || (cfg->targets & ~((1u << HL_TARGET_COUNT) - 1)))
        return hl_fail(HL_ERR_ARG, "adapter targets must be a non-empty subset of q,k,v,o,gate,up,down");
    if (cfg->r < 1 || cfg->r > HL_ADAPTER_MAX_RANK)
        return hl_fail(HL_ERR_ARG, "adapter rank r=%d out of range [1, %d]", cfg->r, HL_ADAPTER_MAX_RANK);
    if (cfg->variant != HL_VARIANT_LORA && (cfg->n_heads < 1 || cfg->n_heads > HL_ADAPTER_MAX_HEADS))
        return hl_fail(HL_ERR_ARG, "number of heads N=%d out of range [1, %d]", cfg->n_heads, HL_ADAPTER_MAX_HEADS);
    if (!isfinite(cfg->alpha))
        return hl_fail(HL_ERR_ARG, "lora alpha must be a finite number");
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return hl_fail(HL_ERR_ARG, "lora dropout %g must be in [0, 1)", (double)cfg->dropout);
    return HL_OK;
}

static int cfg_heads(const hl_adapter_config *cfg) { return cfg->variant == HL_VARIANT_LORA ? 1 : cfg->n_heads; }
static int cfg_nA(const hl_adapter_config *cfg) { return cfg->variant == HL_VARIANT_LORA_SPLIT ? cfg->n_heads : 1; }
static int cfg_router(const hl_adapter_config *cfg) {
    return cfg->variant == HL_VARIANT_HYDRA || cfg->variant == HL_VARIANT_LORA_SPLIT;
}

size_t hl_adapter_param_count(const hl_llama_config *mcfg, const hl_adapter_config *cfg) {
    int N = cfg_heads(cfg), nA = cfg_nA(cfg), R = cfg_router(cfg);
    size_t n = 0;
    for (int t = 0; t < HL_TARGET_COUNT; t++) {
        if (!(cfg->targets & (1u << t)))
            continue;
        int di, dout;
        target_dims(mcfg, t, &di, &dout);
        n += (size_t)nA * cfg->r * di + (size_t)N * dout * cfg->r + (R ? (size_t)N * di : 0);
    }
    return n * (size_t)mcfg->n_layers;
}

static void add_view(hl_adapters *ad, int layer, int target, int kind, int head, int64_t rows, int64_t cols,
                     size_t offset) {
    hl_param_view *v = &ad->views[ad->n_views++];
    const char *mod = target < 4 ? "self_attn" : "mlp";
    char tensor[32];
    int indexed = (kind == 0 && ad->nA > 1) || (kind == 1 && ad->cfg.variant != HL_VARIANT_LORA);
    const char *base = kind == 0 ? "lora_A" : kind == 1 ? "lora_B" : "lora_route";
    if (indexed)
        snprintf(tensor, sizeof tensor, "%s%d", base, head);
    else
        snprintf(tensor, sizeof tensor, "%s", base);
    snprintf(v->name, sizeof v->name, "base_model.model.model.layers.%d.%s.%s.%s.weight", layer, mod,
             hl_target_name(target), tensor);
    v->layer = layer;
    v->target = target;
    v->kind = kind;
    v->head = head;
    v->rows = rows;
    v->cols = cols;
    v->offset = offset;
}

hl_status hl_adapters_create(hl_adapters *ad, const hl_llama_config *mcfg, const hl_adapter_config *cfg,
                             uint64_t seed) {
    memset(ad, 0, sizeof *ad);
    HL_TRY(hl_adapter_config_check(cfg));
    ad->cfg = *cfg;
    ad->N = cfg_heads(cfg);
    ad->cfg.n_heads = ad->N;
    ad->nA = cfg_nA(cfg);
    ad->has_router = cfg_router(cfg);
    ad->scale = cfg->alpha / (float)cfg->r;
    ad->n_layers = mcfg->n_layers;
    ad->seed = seed;
    hl_rng drng;
    hl_rng_seed(&drng, seed, HL_RNG_STREAM_DROPOUT);
    ad->dropout_key = hl_rng_next(&drng);
    ad->n_params = hl_adapter_param_count(mcfg, &ad->cfg);
    int ntargets = 0;
    for (int t = 0; t < HL_TARGET_COUNT; t++)
        ntargets += !!(cfg->targets & (1u << t));
    int max_views = mcfg->n_layers * ntargets * (ad->nA + ad->N + 1);
    size_t bytes = ad->n_params * sizeof(float);
    ad->proj = calloc((size_t)mcfg->n_layers * HL_TARGET_COUNT, sizeof *ad->proj);
    ad->views = calloc((size_t)max_views + 1, sizeof *ad->views);
    ad->params = calloc(1, bytes + 64);
    ad->grads = calloc(1, bytes + 64);
    ad->m = calloc(1, bytes + 64);
    ad->v = calloc(1, bytes + 64);
    if (!ad->proj || !ad->views || !ad->params || !ad->grads || !ad->m || !ad->v) {
        hl_adapters_free(ad);
        return hl_fail(HL_ERR_NOMEM, "cannot allocate %zu bytes for adapter parameters, gradients and moments",
                       4 * bytes);
    }
    const int r = cfg->r, N = ad->N, nA = ad->nA;
    size_t off = 0;
    for (int l = 0; l < mcfg->n_layers; l++) {
        for (int t = 0; t < HL_TARGET_COUNT; t++) {
            if (!(cfg->targets & (1u << t)))
                continue;
            hl_adapter_proj *p = &ad->proj[l * HL_TARGET_COUNT + t];
            p->layer = l;
            p->target = t;
            target_dims(mcfg, t, &p->d_in, &p->d_out);
            p->A = ad->params + off, p->dA = ad->grads + off;
            for (int i = 0; i < nA; i++)
                add_view(ad, l, t, 0, i, r, p->d_in, off + (size_t)i * r * p->d_in);
            off += (size_t)nA * r * p->d_in;
            p->B = ad->params + off, p->dB = ad->grads + off;
            for (int i = 0; i < N; i++)
                add_view(ad, l, t, 1, i, p->d_out, r, off + (size_t)i * p->d_out * r);
            off += (size_t)N * p->d_out * r;
            if (ad->has_router) {
                p->R = ad->params + off, p->dR = ad->grads + off;
                add_view(ad, l, t, 2, 0, N, p->d_in, off);
                off += (size_t)N * p->d_in;
            }
        }
    }
    /* Reference init: A and router ~ U(−1/√d_in, 1/√d_in) (kaiming_uniform, a = √5), B = 0.
     * Draws in view-table order from the INIT stream. */
    hl_rng rng;
    hl_rng_seed(&rng, seed, HL_RNG_STREAM_INIT);
    for (int i = 0; i < ad->n_views; i++) {
        const hl_param_view *v = &ad->views[i];
        if (v->kind == 1)
            continue;
        double bound = 1.0 / sqrt((double)v->cols);
        float *x = ad->params + v->offset;
        for (int64_t j = 0; j < v->rows * v->cols; j++)
            x[j] = (float)((2.0 * hl_rng_uniform_double(&rng) - 1.0) * bound);
    }
    return HL_OK;
}

void hl_adapters_free(hl_adapters *ad) {
    free(ad->proj);
    free(ad->views);
    free(ad->params);
    free(ad->grads);
    free(ad->m);
    free(ad->v);
    memset(ad, 0, sizeof *ad);
}

void hl_adapters_release(hl_adapters *ad, unsigned which) {
    if (which & HL_ADAPTER_GRADS) {
        free(ad->grads);
        ad->grads = NULL;
        for (int i = 0; ad->proj && i < ad->n_layers * HL_TARGET_COUNT; i++)
            ad->proj[i].dA = ad->proj[i].dB = ad->proj[i].dR = NULL;
    }
    if (which & HL_ADAPTER_MOMENTS) {
        free(ad->m);
        free(ad->v);
        ad->m = ad->v = NULL;
    }
}

void hl_adapters_zero_grad(hl_adapters *ad) { memset(ad->grads, 0, ad->n_params * sizeof(float)); }

const hl_param_view *hl_adapters_find(const hl_adapters *ad, const char *name) {
    for (int i = 0; i < ad->n_views; i++)
        if (!strcmp(ad->views[i].name, name))
            return &ad->views[i];
    return NULL;
}

hl_status hl_adapters_set_tensor(hl_adapters *ad, const char *name, const float *data, int64_t rows, int64_t cols) {
    const hl_param_view *v = hl_adapters_find(ad, name);
    if (!v)
        return hl_fail(HL_ERR_NOT_FOUND, "adapter tensor '%s' is not part of this adapter configuration", name);
    if (v->rows != rows || v->cols != cols)
        return hl_fail(HL_ERR_SHAPE, "adapter tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", name,
                       (long long)rows, (long long)cols, (long long)v->rows, (long long)v->cols);
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(data[i]))
            return hl_fail(HL_ERR_NUMERIC, "adapter tensor '%s' contains NaN or inf", name);
    memcpy(ad->params + v->offset, data, (size_t)(rows * cols) * sizeof(float));
    return HL_OK;
}

/* ---- routing statistics ------------------------------------------------------------- */

hl_status hl_routing_stats_init(hl_routing_stats *st, int n_layers, int N) {
    memset(st, 0, sizeof *st);
    st->n_layers = n_layers;
    st->N = N;
    size_t np = (size_t)n_layers * HL_TARGET_COUNT;
    st->tokens = calloc(np, sizeof *st->tokens);
    st->entropy_sum = calloc(np, sizeof *st->entropy_sum);
    st->weight_sum = calloc(np * (size_t)N, sizeof *st->weight_sum);
    st->top1 = calloc(np * (size_t)N, sizeof *st->top1);
    if (!st->tokens || !st->entropy_sum || !st->weight_sum || !st->top1) {
        hl_routing_stats_free(st);
        return hl_fail(HL_ERR_NOMEM, "cannot allocate routing statistics");
    }
    return HL_OK;
}

void hl_routing_stats_reset(hl_routing_stats *st) {
    size_t np = (size_t)st->n_layers * HL_TARGET_COUNT;
    memset(st->tokens, 0, np * sizeof *st->tokens);
    memset(st->entropy_sum, 0, np * sizeof *st->entropy_sum);
    memset(st->weight_sum, 0, np * (size_t)st->N * sizeof *st->weight_sum);
    memset(st->top1, 0, np * (size_t)st->N * sizeof *st->top1);
}

void hl_routing_stats_free(hl_routing_stats *st) {
    free(st->tokens);
    free(st->entropy_sum);
    free(st->weight_sum);
    free(st->top1);
    memset(st, 0, sizeof *st);
}

/* ---- dropout ----------------------------------------------------------------------------- */

uint64_t hl_adapter_dropout_key(const hl_adapters *ad, int layer, int target) {
    return hl_rng_hash(hl_rng_hash(ad->dropout_key, ad->dropout_step), (uint64_t)layer * HL_TARGET_COUNT + target);
}
