/* Test helper: a small random LLaMA model built in memory (no files), in any dtype.
 * Weights ~ U(±1/√fan_in), norm weights 1 ± 0.2, so activations stay O(1). */
#ifndef HL_TINY_MODEL_H
#define HL_TINY_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "core/model/model.h"
#include "core/base/rng.h"
#include "core/base/tensor.h"

typedef struct {
    hl_model m;
    void *bufs[256];
    int n_bufs;
} hl_tiny_model;

static inline hl_weight hl_tiny_weight(hl_tiny_model *tm, hl_rng *rng, int64_t rows, int64_t cols, hl_dtype dt,
                                      float center, float scale) {
    size_t n = (size_t)(rows * cols);
    void *buf = malloc(n * hl_dtype_size(dt));
    tm->bufs[tm->n_bufs++] = buf;
    for (size_t i = 0; i < n; i++) {
        float f = center + scale * (2.0f * hl_rng_uniform(rng) - 1.0f);
        if (dt == HL_DTYPE_F32)
            ((float *)buf)[i] = f;
        else if (dt == HL_DTYPE_F16)
            ((uint16_t *)buf)[i] = hl_f32_to_f16(f);
        else
            ((uint16_t *)buf)[i] = hl_f32_to_bf16(f);
    }
    hl_weight w = {dt, buf, rows, cols};
    return w;
}

static inline void hl_tiny_model_init(hl_tiny_model *tm, const hl_llama_config *cfg, hl_dtype dt, uint64_t seed) {
    memset(tm, 0, sizeof *tm);
    hl_rng rng;
    hl_rng_seed(&rng, seed, HL_RNG_STREAM_USER);
    hl_model *m = &tm->m;
    m->cfg = *cfg;
    m->dtype = dt;
    int64_t D = cfg->dim, F = cfg->hidden_dim, Dq = (int64_t)cfg->n_heads * cfg->head_dim;
    int64_t Dkv = (int64_t)cfg->n_kv_heads * cfg->head_dim, V = cfg->vocab_size;
    float sD = 1.0f / sqrtf((float)D), sF = 1.0f / sqrtf((float)F), sQ = 1.0f / sqrtf((float)Dq);
    m->tok_embed = hl_tiny_weight(tm, &rng, V, D, dt, 0.0f, 1.0f);
    m->lm_head = cfg->tie_word_embeddings ? m->tok_embed : hl_tiny_weight(tm, &rng, V, D, dt, 0.0f, sD);
    m->final_norm = hl_tiny_weight(tm, &rng, 1, D, dt, 1.0f, 0.2f);
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    for (int l = 0; l < cfg->n_layers; l++) {
        hl_layer_weights *w = &m->layers[l];
        w->attn_norm = hl_tiny_weight(tm, &rng, 1, D, dt, 1.0f, 0.2f);
        w->wq = hl_tiny_weight(tm, &rng, Dq, D, dt, 0.0f, sD);
        w->wk = hl_tiny_weight(tm, &rng, Dkv, D, dt, 0.0f, sD);
        w->wv = hl_tiny_weight(tm, &rng, Dkv, D, dt, 0.0f, sD);
        w->wo = hl_tiny_weight(tm, &rng, D, Dq, dt, 0.0f, sQ);
        w->ffn_norm = hl_tiny_weight(tm, &rng, 1, D, dt, 1.0f, 0.2f);
        w->w_gate = hl_tiny_weight(tm, &rng, F, D, dt, 0.0f, sD);
        w->w_up = hl_tiny_weight(tm, &rng, F, D, dt, 0.0f, sD);
        w->w_down = hl_tiny_weight(tm, &rng, D, F, dt, 0.0f, sF);
    }
}

static inline void hl_tiny_model_free(hl_tiny_model *tm) {
    for (int i = 0; i < tm->n_bufs; i++)
        free(tm->bufs[i]);
    free(tm->m.layers);
    memset(tm, 0, sizeof *tm);
}

#endif
