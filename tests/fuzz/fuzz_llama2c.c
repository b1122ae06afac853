/* libFuzzer target: the llama2.c checkpoint reader (v0/v1/v2) on arbitrary bytes.
 * Every weight view it hands out must lie inside the buffer (or an owned copy). */
#include <stddef.h>
#include <stdint.h>

#include "core/model/llama2c.h"

static unsigned touch(const hl_weight *w) {
    if (!w->data || w->rows * w->cols == 0)
        return 0;
    const unsigned char *p = w->data;
    size_t n = (size_t)(w->rows * w->cols) * hl_dtype_size(w->dtype);
    return p[0] + p[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_model m;
    if (hl_llama2c_load_memory(&m, data, size, "fuzz") != HL_OK)
        return 0;
    volatile unsigned sink = 0;
    sink += touch(&m.tok_embed) + touch(&m.lm_head) + touch(&m.final_norm);
    for (int l = 0; l < m.cfg.n_layers; l++) {
        const hl_layer_weights *L = &m.layers[l];
        sink += touch(&L->wq) + touch(&L->wk) + touch(&L->wv) + touch(&L->wo) + touch(&L->w_gate) +
                touch(&L->w_up) + touch(&L->w_down) + touch(&L->attn_norm) + touch(&L->ffn_norm);
    }
    hl_model_free(&m);
    (void)sink;
    return 0;
}
