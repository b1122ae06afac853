/* The model object (see model.h) and the helpers every loader uses to build one
 * (model_build.h): configuration checks, owned buffers and mappings, weight views with shape
 * checks, Meta-layout q/k permutation, the final check. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h" /* the embedded vocabulary a model may own */
#include "core/base/mapped_file.h"
#include "core/model/model.h"
#include "core/model/build.h"

const char *hl_model_format_name(hl_model_format format) {
    switch (format) {
    case HL_FORMAT_HF_SAFETENSORS: return "hf-safetensors";
    case HL_FORMAT_LLAMA2C_V0: return "llama2c-v0";
    case HL_FORMAT_LLAMA2C_V1: return "llama2c-v1";
    case HL_FORMAT_LLAMA2C_V2: return "llama2c-v2";
    case HL_FORMAT_GGUF: return "gguf";
    }
    return "?";
}

hl_status hl_llama_config_check(const hl_llama_config *c, const char *label) {
    const char *L = label ? label : "model config";
    /* Bounds far above any LLaMA (70B: dim 8192, ffn 28672, 80 layers) but low enough that
     * every size product below fits comfortably in 64 bits. */
    struct {
        const char *name;
        int v, lo, hi;
    } f[] = {
        {"dim (hidden_size)", c->dim, 1, 1 << 16},
        {"hidden_dim (intermediate_size)", c->hidden_dim, 1, 1 << 18},
        {"n_layers", c->n_layers, 1, 1024},
        {"n_heads", c->n_heads, 1, 1 << 12},
        {"n_kv_heads", c->n_kv_heads, 1, 1 << 12},
        {"head_dim", c->head_dim, 2, 1 << 12},
        {"vocab_size", c->vocab_size, 1, 1 << 22},
        {"max_seq_len", c->max_seq_len, 1, 1 << 24},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return hl_fail(HL_ERR_FORMAT, "%s: %s = %d is out of range [%d, %d]", L, f[i].name, f[i].v, f[i].lo,
                           f[i].hi);
    if (c->n_heads % c->n_kv_heads)
        return hl_fail(HL_ERR_FORMAT, "%s: n_heads %d is not a multiple of n_kv_heads %d", L, c->n_heads,
                       c->n_kv_heads);
    if (c->head_dim % 2)
        return hl_fail(HL_ERR_FORMAT, "%s: head_dim %d must be even for RoPE", L, c->head_dim);
    if ((int64_t)c->n_heads * c->head_dim > (1 << 16))
        return hl_fail(HL_ERR_FORMAT, "%s: n_heads × head_dim = %lld is absurd", L,
                       (long long)c->n_heads * c->head_dim);
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1))
        return hl_fail(HL_ERR_FORMAT, "%s: rms_norm_eps %g must be in (0, 1)", L, c->rms_norm_eps);
    if (!(c->rope_theta > 1 && isfinite(c->rope_theta)))
        return hl_fail(HL_ERR_FORMAT, "%s: rope_theta %g must be > 1", L, c->rope_theta);
    return HL_OK;
}

int64_t hl_model_param_count(const hl_llama_config *c) {
    int64_t d = c->dim, h = c->hidden_dim, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    int64_t per_layer = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * h;
    return V * d + (int64_t)c->n_layers * per_layer + d + (c->tie_word_embeddings ? 0 : V * d);
}

static size_t weight_bytes(const hl_weight *w) {
    return w->data ? (size_t)w->rows * (size_t)w->cols * hl_dtype_size(w->dtype) : 0;
}

size_t hl_model_weight_bytes(const hl_model *m) {
    size_t n = weight_bytes(&m->tok_embed) + weight_bytes(&m->final_norm);
    if (m->lm_head.data != m->tok_embed.data)
        n += weight_bytes(&m->lm_head);
    for (int l = 0; m->layers && l < m->cfg.n_layers; l++) {
        const hl_layer_weights *L = &m->layers[l];
        const hl_weight *ws[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                                 &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            n += weight_bytes(ws[i]);
    }
    return n;
}

void hl_model_free(hl_model *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n_maps; i++)
        hl_mapped_file_close(&m->maps[i]);
    free(m->maps);
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    hl_gguf_vocab_free(m->vocab);
    memset(m, 0, sizeof *m);
}

hl_status hl_model_begin(hl_model *m, const hl_llama_config *cfg, hl_model_format format, const char *path) {
    memset(m, 0, sizeof *m);
    HL_TRY(hl_llama_config_check(cfg, path));
    m->cfg = *cfg;
    m->format = format;
    snprintf(m->path, sizeof m->path, "%s", path ? path : "");
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->layers)
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    return HL_OK;
}

hl_status hl_model_keep(hl_model *m, void *buf) {
    void **o = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *o);
    if (!o) {
        free(buf);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    m->owned = o;
    m->owned[m->n_owned++] = buf;
    return HL_OK;
}

hl_status hl_model_keep_map(hl_model *m, hl_mapped_file *mf) {
    hl_mapped_file *maps = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *maps);
    if (!maps) {
        hl_mapped_file_close(mf);
        return hl_fail(HL_ERR_NOMEM, "out of memory");
    }
    m->maps = maps;
    m->maps[m->n_maps++] = *mf;
    memset(mf, 0, sizeof *mf);
    return HL_OK;
}

hl_status hl_model_set_weight(hl_weight *dst, hl_weight src, int64_t rows, int64_t cols, const char *name,
                              const char *label) {
    if (src.rows != rows || src.cols != cols) {
        if (rows == 1)
            return hl_fail(HL_ERR_SHAPE, "%s: tensor %s has shape [%lld, %lld], expected [%lld]", label, name,
                           (long long)src.rows, (long long)src.cols, (long long)cols);
        return hl_fail(HL_ERR_SHAPE, "%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]", label, name,
                       (long long)src.rows, (long long)src.cols, (long long)rows, (long long)cols);
    }
    *dst = src;
    return HL_OK;
}

hl_status hl_model_alloc_f32(hl_model *m, int64_t numel, float **out) {
    *out = NULL;
    float *p = malloc((size_t)(numel > 0 ? numel : 1) * sizeof(float));
    if (!p)
        return hl_fail(HL_ERR_NOMEM, "out of memory (%lld floats)", (long long)numel);
    HL_TRY(hl_model_keep(m, p));
    *out = p;
    return HL_OK;
}

hl_status hl_model_align_weight(hl_model *m, hl_weight *w) {
    size_t es = hl_dtype_size(w->dtype);
    if (!w->data || (uintptr_t)w->data % es == 0)
        return HL_OK;
    size_t n = (size_t)w->rows * (size_t)w->cols * es;
    void *p = malloc(n ? n : 1);
    if (!p)
        return hl_fail(HL_ERR_NOMEM, "out of memory (%zu bytes)", n);
    memcpy(p, w->data, n);
    HL_TRY(hl_model_keep(m, p));
    w->data = p;
    return HL_OK;
}

static int model_owns(const hl_model *m, const void *p) {
    for (int i = 0; i < m->n_owned; i++)
        if (m->owned[i] == p)
            return 1;
    return 0;
}

hl_status hl_model_permute_meta_rows(hl_model *m, hl_weight *w, int n_heads, int head_dim) {
    if (w->rows != (int64_t)n_heads * head_dim || head_dim % 2)
        return hl_fail(HL_ERR_SHAPE, "q/k permutation: %lld rows is not %d heads × %d", (long long)w->rows, n_heads,
                       head_dim);
    size_t row = (size_t)w->cols * hl_dtype_size(w->dtype);
    size_t total = row * (size_t)w->rows;
    unsigned char *dst = malloc(total ? total : 1);
    if (!dst)
        return hl_fail(HL_ERR_NOMEM, "out of memory for a permuted q/k copy (%zu bytes)", total);
    const unsigned char *src = w->data;
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int r = 0; r < head_dim; r++) {
            int from = r < half ? 2 * r : 2 * (r - half) + 1;
            memcpy(dst + ((size_t)h * head_dim + r) * row, src + ((size_t)h * head_dim + from) * row, row);
        }
    if (model_owns(m, w->data)) {
        /* Source was already an owned copy (dequantised): overwrite it, drop the new buffer. */
        memcpy((void *)w->data, dst, total);
        free(dst);
        return HL_OK;
    }
    HL_TRY(hl_model_keep(m, dst));
    w->data = dst;
    return HL_OK;
}

hl_status hl_model_finish(hl_model *m) {
    const hl_llama_config *c = &m->cfg;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    typedef struct {
        const hl_weight *w;
        int64_t rows, cols;
        const char *what;
    } shape_check;
    shape_check chk[9];
    if (!m->tok_embed.data)
        return hl_fail(HL_ERR_INTERNAL, "%s: embedding not loaded", m->path);
    if (!m->lm_head.data)
        m->lm_head = m->tok_embed;
    /* Tally bytes per dtype to name the storage dtype of the big matrices. */
    size_t by_dtype[3] = {0};
    by_dtype[m->tok_embed.dtype] += weight_bytes(&m->tok_embed);
    for (int l = 0; l < c->n_layers; l++) {
        const hl_layer_weights *L = &m->layers[l];
        int n = 0;
        chk[n++] = (shape_check){&L->attn_norm, 1, c->dim, "attn_norm"};
        chk[n++] = (shape_check){&L->wq, q, c->dim, "wq"};
        chk[n++] = (shape_check){&L->wk, kv, c->dim, "wk"};
        chk[n++] = (shape_check){&L->wv, kv, c->dim, "wv"};
        chk[n++] = (shape_check){&L->wo, c->dim, q, "wo"};
        chk[n++] = (shape_check){&L->ffn_norm, 1, c->dim, "ffn_norm"};
        chk[n++] = (shape_check){&L->w_gate, c->hidden_dim, c->dim, "w_gate"};
        chk[n++] = (shape_check){&L->w_up, c->hidden_dim, c->dim, "w_up"};
        chk[n++] = (shape_check){&L->w_down, c->dim, c->hidden_dim, "w_down"};
        for (int i = 0; i < n; i++) {
            if (!chk[i].w->data || chk[i].w->rows != chk[i].rows || chk[i].w->cols != chk[i].cols)
                return hl_fail(HL_ERR_INTERNAL, "%s: layer %d %s not loaded with shape [%lld, %lld]", m->path, l,
                               chk[i].what, (long long)chk[i].rows, (long long)chk[i].cols);
            if ((unsigned)chk[i].w->dtype < 3 && chk[i].rows > 1)
                by_dtype[chk[i].w->dtype] += weight_bytes(chk[i].w);
        }
    }
    int best = 0;
    for (int d = 1; d < 3; d++)
        if (by_dtype[d] > by_dtype[best])
            best = d;
    m->dtype = (hl_dtype)best;
    return HL_OK;
}

/* ---- tensor names against the configured layer count (every loader) ---- */

static int in_list(const char *s, const char *const *list) {
    for (int i = 0; list && list[i]; i++)
        if (!strcmp(s, list[i]))
            return 1;
    return 0;
}

static int ends_with_any(const char *s, const char *const *list) {
    size_t n = strlen(s);
    for (int i = 0; list && list[i]; i++) {
        size_t k = strlen(list[i]);
        if (n >= k && !strcmp(s + n - k, list[i]))
            return 1;
    }
    return 0;
}

hl_status hl_model_check_tensor_names(const char *L, const char *layers_key, int n_layers, int n,
                                      const char *(*names)(const void *src, int i), const void *src,
                                      const char *layer_prefix, const char *const *layer_suffixes,
                                      const char *const *top, const char *const *ignore) {
    size_t pl = strlen(layer_prefix);
    long max_layer = -1;
    const char *unknown = NULL;
    int n_unknown = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names(src, i);
        if (ends_with_any(name, ignore) || in_list(name, top))
            continue;
        if (!strncmp(name, layer_prefix, pl) && name[pl] >= '0' && name[pl] <= '9') {
            char *end;
            long k = strtol(name + pl, &end, 10);
            if (*end == '.' && k >= 0 && k < (1L << 20) && in_list(end + 1, layer_suffixes)) {
                if (k > max_layer)
                    max_layer = k;
                continue;
            }
        }
        if (n_unknown++ == 0)
            unknown = name;
    }
    if (max_layer + 1 > n_layers) {
        char extra[160];
        if (max_layer == n_layers)
            snprintf(extra, sizeof extra, "%s%ld.*", layer_prefix, max_layer);
        else
            snprintf(extra, sizeof extra, "%s%d.* to %s%ld.*", layer_prefix, n_layers, layer_prefix, max_layer);
        return hl_fail(HL_ERR_FORMAT, "%s: %s is %d, but the weights hold %ld layers: %s would be ignored (correct "
                       "the layer count, or use the weights it was written for)",
                       L, layers_key, n_layers, max_layer + 1, extra);
    }
    if (max_layer + 1 < n_layers)
        return hl_fail(HL_ERR_FORMAT, "%s: %s is %d, but the weights hold only %ld layer%s (no %s%ld.* tensors)", L,
                       layers_key, n_layers, max_layer + 1, max_layer == 0 ? "" : "s", layer_prefix, max_layer + 1);
    if (n_unknown)
        return hl_fail(HL_ERR_FORMAT, "%s: tensor %s%s is not part of a LLaMA model of this config; refusing to ignore "
                       "it", L, unknown, n_unknown > 1 ? " (and others)" : "");
    return HL_OK;
}
