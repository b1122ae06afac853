/* CPU decoder: the seam's KV-cache calls on core/backend/cpu/llama_infer.c (see cpu.h). The cache is one
 * f32 array per layer for keys and one for values, [slots][max_seq][kv dim]; prefix sharing
 * copies rows. The decoder keeps its own copy of the adapter parameters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend/cpu/cpu.h"
#include "core/backend/cpu/llama.h"

typedef struct {
    hl_infer *inf;
    hl_adapters ad; /* own copy (parameters only) */
    int has_ad;
    float *scratch; /* logits rows when the caller asks for argmax only */
    size_t scratch_rows;
} cpu_decoder;

/* A parameters-only copy of `src` (same layout, same values). */
static hl_status copy_adapters(hl_adapters *dst, const hl_adapters *src, const hl_llama_config *mcfg) {
    HL_TRY(hl_adapters_create(dst, mcfg, &src->cfg, src->seed));
    if (dst->n_params != src->n_params) {
        hl_adapters_free(dst);
        return hl_fail(HL_ERR_SHAPE, "adapter has %zu parameters, its configuration implies %zu", src->n_params,
                       dst->n_params);
    }
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
    dst->dropout_step = src->dropout_step;
    hl_adapters_release(dst, HL_ADAPTER_GRADS | HL_ADAPTER_MOMENTS);
    return HL_OK;
}

hl_status cpu_decoder_init(hl_decoder *d, const hl_adapters *ad) {
    cpu_enter(d->be);
    cpu_decoder *cd = calloc(1, sizeof *cd);
    if (!cd)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    hl_status st = HL_OK;
    if (ad) {
        st = copy_adapters(&cd->ad, ad, &d->model->cfg);
        cd->has_ad = st == HL_OK;
    }
    if (st == HL_OK)
        st = hl_infer_create(&cd->inf, d->model, cd->has_ad ? &cd->ad : NULL, d->slots, d->max_seq, d->max_rows);
    if (st != HL_OK) {
        if (cd->has_ad)
            hl_adapters_free(&cd->ad);
        free(cd);
        return st;
    }
    d->impl = cd;
    return HL_OK;
}

void cpu_decoder_free(hl_decoder *d) {
    cpu_decoder *cd = d->impl;
    if (!cd)
        return;
    hl_infer_free(cd->inf);
    if (cd->has_ad)
        hl_adapters_free(&cd->ad);
    free(cd->scratch);
    free(cd);
    d->impl = NULL;
}

size_t cpu_decoder_bytes(const hl_decoder *d) {
    const cpu_decoder *cd = d->impl;
    return hl_infer_bytes(cd->inf) + (cd->has_ad ? cd->ad.n_params * sizeof(float) : 0) +
           cd->scratch_rows * (size_t)d->model->cfg.vocab_size * sizeof(float);
}

/* First index of the largest value (torch.argmax's tie rule: values compared with `>`, so a NaN
 * never wins unless it is first); 0 when that value is not finite. The maximum in 16 independent
 * lanes (vectorised), then the first index holding it. */
static int row_argmax(const float *x, int n, int32_t *out) {
    float m[16];
    for (int k = 0; k < 16; k++)
        m[k] = x[0];
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            m[k] = x[i + k] > m[k] ? x[i + k] : m[k];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float bv = m[0];
    for (int k = 1; k < 16; k++)
        bv = m[k] > bv ? m[k] : bv;
    if (!isfinite(bv))
        return 0;
    int best = 0;
    while (x[best] != bv)
        best++;
    *out = best;
    return 1;
}

hl_status cpu_decoder_forward(hl_decoder *d, const int32_t *tokens, int B, int Tq, const int *pos0, const int *slot,
                              float *logits, int all_logits, int32_t *argmax) {
    cpu_decoder *cd = d->impl;
    const int V = d->model->cfg.vocab_size;
    size_t rows = (size_t)B * (all_logits ? (size_t)Tq : 1);
    float *out = logits;
    if (!out) {
        if (rows > cd->scratch_rows) {
            float *p = realloc(cd->scratch, rows * (size_t)V * sizeof(float));
            if (!p)
                return hl_fail(HL_ERR_NOMEM, "out of memory for %zu logits rows", rows);
            cd->scratch = p;
            cd->scratch_rows = rows;
        }
        out = cd->scratch;
    }
    cpu_enter(d->be);
    HL_TRY(hl_infer_forward(cd->inf, tokens, B, Tq, pos0, slot, out, all_logits));
    if (!argmax)
        return HL_OK;
    int bad = 0; /* rows in parallel for a batch (the message is set on this thread afterwards) */
#pragma omp parallel for schedule(static) reduction(| : bad) if (B > 1 && (int64_t)B * V >= 65536)
    for (int b = 0; b < B; b++) {
        size_t row = all_logits ? (size_t)b * Tq + (size_t)Tq - 1 : (size_t)b;
        bad |= !row_argmax(out + row * (size_t)V, V, &argmax[b]);
    }
    if (bad)
        return hl_fail(HL_ERR_NUMERIC, "the model produced non-finite logits during generation");
    return HL_OK;
}

hl_status cpu_decoder_share_prefix(hl_decoder *d, int dst_slot, int src_slot, int n) {
    cpu_decoder *cd = d->impl;
    hl_infer_copy_prefix(cd->inf, dst_slot, src_slot, n);
    return HL_OK;
}

hl_status cpu_decoder_release(hl_decoder *d, int slot) {
    (void)d;
    (void)slot; /* the cache is one fixed array: nothing to return */
    return HL_OK;
}

hl_status cpu_decoder_set_compute(hl_decoder *d, hl_compute c) {
    cpu_decoder *cd = d->impl;
    hl_infer_set_compute(cd->inf, c);
    return HL_OK;
}
