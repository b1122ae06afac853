/* libFuzzer target: the GGUF container parser, the llama model mapping and the embedded
 * vocabulary, on arbitrary bytes. Everything accepted must lie inside the buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/formats/gguf.h"
#include "core/model/gguf_model.h"
#include "core/model/model.h"

static unsigned touch(const hl_weight *w) {
    if (!w->data || w->rows * w->cols == 0)
        return 0;
    const unsigned char *p = w->data;
    size_t n = (size_t)(w->rows * w->cols) * hl_dtype_size(w->dtype);
    return p[0] + p[n - 1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_gguf *g = NULL;
    if (hl_gguf_parse(&g, data, size, "fuzz") != HL_OK)
        return 0;
    volatile unsigned sink = 0;
    for (int i = 0; i < hl_gguf_kv_count(g); i++) {
        const hl_gguf_kv *kv = hl_gguf_kv_at(g, i);
        if (kv->type == HL_GGUF_ARRAY && kv->count > 0) {
            char *s = NULL;
            double d;
            if (hl_gguf_array_string(kv, kv->count - 1, &s) == HL_OK)
                sink += (unsigned char)s[0];
            free(s);
            if (hl_gguf_array_number(kv, kv->count - 1, &d) == HL_OK)
                sink += (unsigned)(d != 0);
        }
    }
    for (int i = 0; i < hl_gguf_tensor_count(g); i++) {
        const hl_gguf_tensor *t = hl_gguf_tensor_at(g, i);
        if (t->nbytes)
            sink += ((const unsigned char *)t->data)[0] + ((const unsigned char *)t->data)[t->nbytes - 1];
    }
    hl_gguf_vocab *v = NULL;
    if (hl_gguf_vocab_load(g, &v) == HL_OK)
        sink += (unsigned)v->n;
    hl_gguf_vocab_free(v);
    hl_model m;
    if (hl_gguf_load_model(&m, g, "fuzz") == HL_OK) {
        sink += touch(&m.tok_embed) + touch(&m.lm_head) + touch(&m.final_norm);
        for (int l = 0; l < m.cfg.n_layers; l++) {
            const hl_layer_weights *L = &m.layers[l];
            sink += touch(&L->wq) + touch(&L->wk) + touch(&L->wv) + touch(&L->wo) + touch(&L->w_gate) +
                    touch(&L->w_up) + touch(&L->w_down) + touch(&L->attn_norm) + touch(&L->ffn_norm);
        }
        hl_model_free(&m);
    }
    hl_gguf_free(g);
    (void)sink;
    return 0;
}
