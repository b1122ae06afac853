/* Random-weight LLaMA models built in memory for benchmarks (speed does not depend on the
 * values): U(±1/√fan_in) weights, norms 1 ± 0.1, filled in parallel with a per-chunk xorshift,
 * stored in any dtype. Header-only, for bench/ programs only. */
#ifndef HL_BENCH_MODEL_H
#define HL_BENCH_MODEL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model.h"
#include "core/base/tensor.h"

typedef struct {
    hl_model m;
    void *bufs[64];
    int n;
} bench_model;

/* A rows × cols weight U(center ± scale) in dtype dt; exits on out of memory (a benchmark). */
static hl_weight bench_rand_weight(bench_model *bm, int64_t rows, int64_t cols, hl_dtype dt, float center,
                                   float scale) {
    size_t n = (size_t)(rows * cols);
    void *buf = malloc(n * hl_dtype_size(dt));
    if (!buf) {
        fprintf(stderr, "bench: out of memory for a %lld x %lld weight\n", (long long)rows, (long long)cols);
        exit(1);
    }
    bm->bufs[bm->n++] = buf;
    const size_t chunk = 1 << 16;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < (n + chunk - 1) / chunk; c++) {
        uint64_t s = 0x9E3779B97F4A7C15ull * (c + 1 + (uint64_t)bm->n * 1000003u);
        for (size_t i = c * chunk; i < n && i < (c + 1) * chunk; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            float f = center + scale * ((float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
            if (dt == HL_DTYPE_F32)
                ((float *)buf)[i] = f;
            else
                ((uint16_t *)buf)[i] = dt == HL_DTYPE_BF16 ? hl_f32_to_bf16(f) : hl_f32_to_f16(f);
        }
    }
    hl_weight w = {dt, buf, rows, cols};
    return w;
}

static void bench_model_build(bench_model *bm, const hl_llama_config *c, hl_dtype dt) {
    memset(bm, 0, sizeof *bm);
    hl_model *m = &bm->m;
    m->cfg = *c;
    m->dtype = dt;
    int64_t D = c->dim, F = c->hidden_dim, Dq = (int64_t)c->n_heads * c->head_dim;
    int64_t Dkv = (int64_t)c->n_kv_heads * c->head_dim;
    float s = 1.0f / sqrtf((float)D);
    m->tok_embed = bench_rand_weight(bm, c->vocab_size, D, dt, 0.0f, 1.0f);
    m->lm_head = c->tie_word_embeddings ? m->tok_embed : bench_rand_weight(bm, c->vocab_size, D, dt, 0.0f, s);
    m->final_norm = bench_rand_weight(bm, 1, D, dt, 1.0f, 0.1f);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    for (int l = 0; l < c->n_layers; l++) {
        hl_layer_weights *w = &m->layers[l];
        w->attn_norm = bench_rand_weight(bm, 1, D, dt, 1.0f, 0.1f);
        w->ffn_norm = bench_rand_weight(bm, 1, D, dt, 1.0f, 0.1f);
        w->wq = bench_rand_weight(bm, Dq, D, dt, 0.0f, s);
        w->wk = bench_rand_weight(bm, Dkv, D, dt, 0.0f, s);
        w->wv = bench_rand_weight(bm, Dkv, D, dt, 0.0f, s);
        w->wo = bench_rand_weight(bm, D, Dq, dt, 0.0f, 1.0f / sqrtf((float)Dq));
        w->w_gate = bench_rand_weight(bm, F, D, dt, 0.0f, s);
        w->w_up = bench_rand_weight(bm, F, D, dt, 0.0f, s);
        w->w_down = bench_rand_weight(bm, D, F, dt, 0.0f, 1.0f / sqrtf((float)F));
    }
}

static void bench_model_free(bench_model *bm) {
    for (int i = 0; i < bm->n; i++)
        free(bm->bufs[i]);
    free(bm->m.layers);
    memset(bm, 0, sizeof *bm);
}

#endif
