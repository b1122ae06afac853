/* A llama-architecture GGUF file as an hl_model (see gguf_model.h): the
 * configuration from the llama.* keys, F32/F16/BF16 views into the image, Q8_0 dequantised,
 * q/k rows permuted from Meta's layout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/gguf_model.h"
#include "core/model/build.h"
#include "core/base/tensor.h"

static hl_status gguf_cfg_int(const hl_gguf *g, const char *key, int required, int dflt, int *out) {
    int64_t v;
    hl_status rc = hl_gguf_get_int(g, key, &v);
    if (rc == HL_ERR_NOT_FOUND && !required) {
        hl_clear_error();
        *out = dflt;
        return HL_OK;
    }
    if (rc != HL_OK)
        return rc;
    if (v < 0 || v > INT32_MAX)
        return hl_fail(HL_ERR_FORMAT, "%s: key %s = %lld is out of range", hl_gguf_label(g), key, (long long)v);
    *out = (int)v;
    return HL_OK;
}

/* A view (F32/F16/BF16) or owned f32 copy (Q8_0) of tensor `name`, checked to be the PyTorch
 * shape [rows, cols] (GGUF ne = {cols, rows}); rank 1 for norms. */
static hl_status gguf_weight(hl_model *m, const hl_gguf *g, const char *name, int rank, int64_t rows, int64_t cols,
                             hl_weight *dst) {
    const hl_gguf_tensor *t = hl_gguf_find_tensor(g, name);
    if (!t) {
        if (rank == 1)
            return hl_fail(HL_ERR_FORMAT, "%s: tensor %s is missing (expected shape [%lld])", hl_gguf_label(g), name,
                           (long long)cols);
        return hl_fail(HL_ERR_FORMAT, "%s: tensor %s is missing (expected PyTorch shape [%lld, %lld], GGUF ne "
                       "[%lld, %lld])", hl_gguf_label(g), name, (long long)rows, (long long)cols, (long long)cols,
                       (long long)rows);
    }
    int ok = rank == 1 ? (t->n_dims == 1 && t->ne[0] == cols)
                       : (t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows);
    if (!ok) {
        if (rank == 1)
            return hl_fail(HL_ERR_SHAPE, "%s: tensor %s has GGUF ne [%lld, %lld] (rank %u), expected [%lld]",
                           hl_gguf_label(g), name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims, (long long)cols);
        return hl_fail(HL_ERR_SHAPE, "%s: tensor %s has GGUF ne [%lld, %lld] (rank %u), expected [%lld, %lld] "
                       "(PyTorch [%lld, %lld])", hl_gguf_label(g), name, (long long)t->ne[0], (long long)t->ne[1],
                       t->n_dims, (long long)cols, (long long)rows, (long long)rows, (long long)cols);
    }
    switch (t->type) {
    case HL_GGML_F32: *dst = (hl_weight){HL_DTYPE_F32, t->data, rows, cols}; return hl_model_align_weight(m, dst);
    case HL_GGML_F16: *dst = (hl_weight){HL_DTYPE_F16, t->data, rows, cols}; return hl_model_align_weight(m, dst);
    case HL_GGML_BF16: *dst = (hl_weight){HL_DTYPE_BF16, t->data, rows, cols}; return hl_model_align_weight(m, dst);
    case HL_GGML_Q8_0: {
        float *f;
        HL_TRY(hl_model_alloc_f32(m, rows * cols, &f));
        HL_TRY(hl_ggml_to_f32(t->type, t->data, rows * cols, f));
        *dst = (hl_weight){HL_DTYPE_F32, f, rows, cols};
        return HL_OK;
    }
    default:
        return hl_fail(HL_ERR_FORMAT, "%s: tensor %s is %s; supported: F32, F16, BF16, Q8_0", hl_gguf_label(g), name,
                       hl_ggml_type_name(t->type));
    }
}

static const char *gguf_tensor_name(const void *g, int i) { return hl_gguf_tensor_at(g, i)->name; }

static hl_status gguf_load_model_inner(hl_model *m, const hl_gguf *g, const char *label) {
    const char *arch = NULL;
    hl_status rc = hl_gguf_get_string(g, "general.architecture", &arch);
    if (rc != HL_OK)
        return rc;
    if (strcmp(arch, "llama") != 0)
        return hl_fail(HL_ERR_FORMAT, "%s: architecture \"%.60s\" is not supported (llama only)", hl_gguf_label(g), arch);
    hl_llama_config c;
    memset(&c, 0, sizeof c);
    HL_TRY(gguf_cfg_int(g, "llama.embedding_length", 1, 0, &c.dim));
    HL_TRY(gguf_cfg_int(g, "llama.feed_forward_length", 1, 0, &c.hidden_dim));
    HL_TRY(gguf_cfg_int(g, "llama.block_count", 1, 0, &c.n_layers));
    HL_TRY(gguf_cfg_int(g, "llama.attention.head_count", 1, 0, &c.n_heads));
    HL_TRY(gguf_cfg_int(g, "llama.attention.head_count_kv", 0, c.n_heads, &c.n_kv_heads));
    HL_TRY(gguf_cfg_int(g, "llama.context_length", 0, 2048, &c.max_seq_len));
    if (c.n_heads <= 0 || c.dim % c.n_heads)
        return hl_fail(HL_ERR_FORMAT, "%s: embedding_length %d is not a multiple of head_count %d", hl_gguf_label(g), c.dim,
                       c.n_heads);
    HL_TRY(gguf_cfg_int(g, "llama.rope.dimension_count", 0, c.dim / c.n_heads, &c.head_dim));
    if (c.head_dim != c.dim / c.n_heads)
        return hl_fail(HL_ERR_FORMAT, "%s: rope.dimension_count %d differs from the head size %d (partial RoPE is "
                       "not supported)", hl_gguf_label(g), c.head_dim, c.dim / c.n_heads);
    double eps = 1e-5, theta = 10000.0;
    if (hl_gguf_find_kv(g, "llama.attention.layer_norm_rms_epsilon"))
        HL_TRY(hl_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    if (hl_gguf_find_kv(g, "llama.rope.freq_base"))
        HL_TRY(hl_gguf_get_float(g, "llama.rope.freq_base", &theta));
    c.rms_norm_eps = (float)eps;
    c.rope_theta = (float)theta;
    const hl_gguf_tensor *emb = hl_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->ne[1] <= 0 || emb->ne[1] > INT32_MAX)
        return hl_fail(HL_ERR_FORMAT, "%s: tensor token_embd.weight is missing or not 2-D", hl_gguf_label(g));
    c.vocab_size = (int)emb->ne[1];
    c.tie_word_embeddings = hl_gguf_find_tensor(g, "output.weight") == NULL;
    int bos = 1, eos = 2;
    HL_TRY(gguf_cfg_int(g, "tokenizer.ggml.bos_token_id", 0, 1, &bos));
    HL_TRY(gguf_cfg_int(g, "tokenizer.ggml.eos_token_id", 0, 2, &eos));
    c.bos_id = bos;
    c.eos_id = eos;
    {
        static const char *const layer_suffixes[] = {
            "attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
            "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", NULL};
        static const char *const top[] = {"token_embd.weight", "output_norm.weight", "output.weight", NULL};
        HL_TRY(hl_model_check_tensor_names(hl_gguf_label(g), "llama.block_count", c.n_layers, hl_gguf_tensor_count(g),
                                           gguf_tensor_name, g, "blk.", layer_suffixes, top, NULL));
    }
    HL_TRY(hl_model_begin(m, &c, HL_FORMAT_GGUF, label));
    int64_t d = c.dim, h = c.hidden_dim, q = (int64_t)c.n_heads * c.head_dim, kv = (int64_t)c.n_kv_heads * c.head_dim;
    HL_TRY(gguf_weight(m, g, "token_embd.weight", 2, c.vocab_size, d, &m->tok_embed));
    HL_TRY(gguf_weight(m, g, "output_norm.weight", 1, 1, d, &m->final_norm));
    if (c.tie_word_embeddings)
        m->lm_head = m->tok_embed;
    else
        HL_TRY(gguf_weight(m, g, "output.weight", 2, c.vocab_size, d, &m->lm_head));
    char name[96];
    for (int l = 0; l < c.n_layers; l++) {
        hl_layer_weights *W = &m->layers[l];
        struct {
            const char *suffix;
            int rank;
            int64_t rows, cols;
            hl_weight *dst;
        } spec[] = {{"attn_norm", 1, 1, d, &W->attn_norm}, {"attn_q", 2, q, d, &W->wq},
                    {"attn_k", 2, kv, d, &W->wk},          {"attn_v", 2, kv, d, &W->wv},
                    {"attn_output", 2, d, q, &W->wo},      {"ffn_norm", 1, 1, d, &W->ffn_norm},
                    {"ffn_gate", 2, h, d, &W->w_gate},     {"ffn_up", 2, h, d, &W->w_up},
                    {"ffn_down", 2, d, h, &W->w_down}};
        for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, spec[i].suffix);
            HL_TRY(gguf_weight(m, g, name, spec[i].rank, spec[i].rows, spec[i].cols, spec[i].dst));
        }
        /* llama.cpp stores q/k in Meta's interleaved order; the engine wants rotate_half. */
        HL_TRY(hl_model_permute_meta_rows(m, &W->wq, c.n_heads, c.head_dim));
        HL_TRY(hl_model_permute_meta_rows(m, &W->wk, c.n_kv_heads, c.head_dim));
    }
    if (hl_gguf_find_kv(g, "tokenizer.ggml.tokens")) {
        HL_TRY(hl_gguf_vocab_load(g, &m->vocab));
        if (m->vocab->n != c.vocab_size)
            return hl_fail(HL_ERR_FORMAT, "%s: the embedded tokenizer has %d tokens but the model has vocab %d",
                           hl_gguf_label(g), m->vocab->n, c.vocab_size);
    }
    return hl_model_finish(m);
}

hl_status hl_gguf_load_model(hl_model *m, const hl_gguf *g, const char *label) {
    memset(m, 0, sizeof *m);
    hl_status rc = gguf_load_model_inner(m, g, label ? label : hl_gguf_label(g));
    if (rc != HL_OK)
        hl_model_free(m);
    return rc;
}
