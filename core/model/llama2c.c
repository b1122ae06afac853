/* llama2.c checkpoint reader (v0 / v1 / v2). Layouts in docs/file-formats.md §1.1-1.2. */
#include "core/model/llama2c.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/build.h"

#define LLAMA2C_MAGIC 0x616b3432u

static int32_t rd_i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

int hl_llama2c_has_magic(const void *data, size_t len) {
    return len >= 4 && (uint32_t)rd_i32(data) == LLAMA2C_MAGIC;
}

/* Element counts of every section, in the order they are stored for the version. */
typedef struct {
    uint64_t tok, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, rope, wcls;
} sections;

static sections section_sizes(const hl_llama_config *c) {
    uint64_t d = (uint64_t)c->dim, h = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers,
             q = (uint64_t)c->n_heads * (uint64_t)c->head_dim, kv = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim,
             V = (uint64_t)c->vocab_size;
    sections s = {
        .tok = V * d,
        .rms_att = L * d,
        .wq = L * q * d,
        .wk = L * kv * d,
        .wv = L * kv * d,
        .wo = L * d * q,
        .rms_ffn = L * d,
        .w1 = L * h * d,
        .w2 = L * d * h,
        .w3 = L * h * d,
        .rms_final = d,
        .rope = (uint64_t)c->max_seq_len * (uint64_t)(c->head_dim / 2), /* each of real, imag */
        .wcls = c->tie_word_embeddings ? 0 : V * d,
    };
    return s;
}

hl_status hl_llama2c_read_header(const void *data, size_t len, const char *label, hl_llama2c_header *out) {
    const unsigned char *p = data;
    const char *L = label ? label : "llama2.c checkpoint";
    memset(out, 0, sizeof *out);
    int magic = hl_llama2c_has_magic(data, len);
    size_t cfg_at = 0;
    if (magic) {
        if (len < 256)
            return hl_fail(HL_ERR_FORMAT, "%s: truncated llama2.c header (%zu of 256 bytes)", L, len);
        int32_t version = rd_i32(p + 4);
        if (version != 1 && version != 2)
            return hl_fail(HL_ERR_FORMAT, "%s: llama2.c checkpoint version %d is not supported (0, 1 and 2 are)", L,
                           version);
        out->version = version;
        out->header_bytes = 256;
        cfg_at = 8;
    } else {
        if (len < 28)
            return hl_fail(HL_ERR_FORMAT, "%s: file of %zu bytes is too small for a llama2.c checkpoint", L, len);
        out->version = 0;
        out->header_bytes = 28;
    }
    int32_t f[7];
    for (int i = 0; i < 7; i++)
        f[i] = rd_i32(p + cfg_at + 4 * (size_t)i);
    hl_llama_config *c = &out->cfg;
    c->dim = f[0];
    c->hidden_dim = f[1];
    c->n_layers = f[2];
    c->n_heads = f[3];
    c->n_kv_heads = f[4];
    if (f[5] == INT_MIN)
        return hl_fail(HL_ERR_FORMAT, "%s: vocab_size in the header is absurd", L);
    c->vocab_size = f[5] < 0 ? -f[5] : f[5];
    c->max_seq_len = f[6];
    c->rms_norm_eps = 1e-5f;   /* hard-coded in run.c */
    c->rope_theta = 10000.0f;  /* hard-coded in run.c */
    c->bos_id = 1;
    c->eos_id = 2;
    if (out->version == 0) {
        c->tie_word_embeddings = f[5] > 0;
    } else {
        if (f[5] < 0)
            return hl_fail(HL_ERR_FORMAT, "%s: negative vocab_size in a v%d header", L, out->version);
        c->tie_word_embeddings = p[36] != 0;
    }
    if (c->n_heads <= 0 || c->dim <= 0 || c->dim % c->n_heads)
        return hl_fail(HL_ERR_FORMAT,
                       "%s: header dim %d / n_heads %d do not describe a llama2.c model (not a llama2.c file?)", L,
                       c->dim, c->n_heads);
    c->head_dim = c->dim / c->n_heads;
    hl_status rc = hl_llama_config_check(c, L);
    if (rc != HL_OK)
        return hl_fail_context(HL_ERR_FORMAT, "not a valid llama2.c header");
    sections s = section_sizes(c);
    uint64_t total = 0;
    if (out->version == 2) {
        int32_t gs = rd_i32(p + 37); /* packed right after the shared_classifier byte */
        if (gs <= 0 || gs > (1 << 20))
            return hl_fail(HL_ERR_FORMAT, "%s: Q8_0 group size %d is invalid", L, gs);
        out->group_size = gs;
        uint64_t qt[] = {s.tok, s.wq, s.wk, s.wv, s.wo, s.w1, s.w2, s.w3, s.wcls};
        /* Every quantised tensor (per layer for the matrices) must be whole groups. */
        uint64_t Lc = (uint64_t)c->n_layers;
        for (size_t i = 0; i < sizeof qt / sizeof qt[0]; i++) {
            uint64_t per = (i == 0 || i == 8) ? qt[i] : qt[i] / Lc;
            if (per % (uint64_t)gs)
                return hl_fail(HL_ERR_FORMAT, "%s: a tensor of %llu elements is not a whole number of %d-groups", L,
                               (unsigned long long)per, gs);
            total += qt[i] + qt[i] / (uint64_t)gs * 4;
        }
        total += 4 * (s.rms_att + s.rms_ffn + s.rms_final);
    } else {
        uint64_t floats = s.tok + s.rms_att + s.wq + s.wk + s.wv + s.wo + s.rms_ffn + s.w1 + s.w2 + s.w3 +
                          s.rms_final + s.wcls + (out->version == 0 ? 2 * s.rope : 0);
        total = 4 * floats;
    }
    total += out->header_bytes;
    out->expected_size = (size_t)total;
    if (total != (uint64_t)len)
        return hl_fail(HL_ERR_FORMAT,
                       "%s: file has %zu bytes but a llama2.c v%d checkpoint with this header (dim %d, hidden %d, "
                       "%d layers, %d heads, %d kv heads, vocab %d%s, seq_len %d) has %llu%s",
                       L, len, out->version, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                       c->vocab_size, c->tie_word_embeddings ? "" : " unshared", c->max_seq_len,
                       (unsigned long long)total, total > len ? " (truncated?)" : "");
    return HL_OK;
}

/* Views of n_layers consecutive [rows, cols] f32 matrices starting at *at; advances *at. */
static void take_layers(hl_model *m, const unsigned char **at, size_t field_offset, int64_t rows, int64_t cols) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
        hl_weight *w = (hl_weight *)((char *)&m->layers[l] + field_offset);
        *w = (hl_weight){HL_DTYPE_F32, *at, rows, cols};
        *at += (size_t)rows * (size_t)cols * 4;
    }
}

#define FIELD(name) offsetof(hl_layer_weights, name)

/* v2: dequantise n_layers (or 1) Q8_0 tensors of [rows, cols] at *at into owned f32. */
static hl_status take_q8(hl_model *m, const unsigned char **at, int gs, int64_t rows, int64_t cols, hl_weight *dst) {
    int64_t n = rows * cols;
    float *f;
    HL_TRY(hl_model_alloc_f32(m, n, &f));
    const unsigned char *q = *at, *sc = *at + n;
    for (int64_t g = 0; g < n / gs; g++) {
        float s;
        memcpy(&s, sc + 4 * g, 4);
        for (int j = 0; j < gs; j++)
            f[g * gs + j] = (float)(int8_t)q[g * gs + j] * s;
    }
    *at += (size_t)n + (size_t)(n / gs) * 4;
    *dst = (hl_weight){HL_DTYPE_F32, f, rows, cols};
    return HL_OK;
}

static hl_status load_v2(hl_model *m, const unsigned char *at, int gs) {
    const hl_llama_config *c = &m->cfg;
    int64_t d = c->dim, h = c->hidden_dim, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim;
    take_layers(m, &at, FIELD(attn_norm), 1, d);
    take_layers(m, &at, FIELD(ffn_norm), 1, d);
    m->final_norm = (hl_weight){HL_DTYPE_F32, at, 1, d};
    at += (size_t)d * 4;
    HL_TRY(take_q8(m, &at, gs, c->vocab_size, d, &m->tok_embed));
    struct {
        size_t off;
        int64_t rows, cols;
    } mats[] = {{FIELD(wq), q, d},     {FIELD(wk), kv, d},     {FIELD(wv), kv, d},   {FIELD(wo), d, q},
                {FIELD(w_gate), h, d}, {FIELD(w_down), d, h}, {FIELD(w_up), h, d}};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
        for (int l = 0; l < c->n_layers; l++)
            HL_TRY(take_q8(m, &at, gs, mats[i].rows, mats[i].cols,
                           (hl_weight *)((char *)&m->layers[l] + mats[i].off)));
    if (!c->tie_word_embeddings)
        HL_TRY(take_q8(m, &at, gs, c->vocab_size, d, &m->lm_head));
    return HL_OK;
}

hl_status hl_llama2c_load_memory(hl_model *m, const void *data, size_t len, const char *label) {
    hl_llama2c_header hd;
    memset(m, 0, sizeof *m);
    HL_TRY(hl_llama2c_read_header(data, len, label, &hd));
    hl_model_format fmt = hd.version == 0 ? HL_FORMAT_LLAMA2C_V0 : hd.version == 1 ? HL_FORMAT_LLAMA2C_V1
                                                                                 : HL_FORMAT_LLAMA2C_V2;
    HL_TRY(hl_model_begin(m, &hd.cfg, fmt, label));
    const hl_llama_config *c = &m->cfg;
    int64_t d = c->dim, h = c->hidden_dim, q = (int64_t)c->n_heads * c->head_dim,
            kv = (int64_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    const unsigned char *at = (const unsigned char *)data + hd.header_bytes;
    sections s = section_sizes(c);
    hl_status rc = HL_OK;
    if (hd.version == 2) {
        rc = load_v2(m, at, hd.group_size);
    } else if (hd.version == 1) {
        take_layers(m, &at, FIELD(attn_norm), 1, d);
        take_layers(m, &at, FIELD(ffn_norm), 1, d);
        m->final_norm = (hl_weight){HL_DTYPE_F32, at, 1, d};
        at += (size_t)d * 4;
        m->tok_embed = (hl_weight){HL_DTYPE_F32, at, V, d};
        at += (size_t)s.tok * 4;
        take_layers(m, &at, FIELD(wq), q, d);
        take_layers(m, &at, FIELD(wk), kv, d);
        take_layers(m, &at, FIELD(wv), kv, d);
        take_layers(m, &at, FIELD(wo), d, q);
        take_layers(m, &at, FIELD(w_gate), h, d);
        take_layers(m, &at, FIELD(w_down), d, h);
        take_layers(m, &at, FIELD(w_up), h, d);
        if (!c->tie_word_embeddings)
            m->lm_head = (hl_weight){HL_DTYPE_F32, at, V, d};
    } else {
        m->tok_embed = (hl_weight){HL_DTYPE_F32, at, V, d};
        at += (size_t)s.tok * 4;
        take_layers(m, &at, FIELD(attn_norm), 1, d);
        take_layers(m, &at, FIELD(wq), q, d);
        take_layers(m, &at, FIELD(wk), kv, d);
        take_layers(m, &at, FIELD(wv), kv, d);
        take_layers(m, &at, FIELD(wo), d, q);
        take_layers(m, &at, FIELD(ffn_norm), 1, d);
        take_layers(m, &at, FIELD(w_gate), h, d);
        take_layers(m, &at, FIELD(w_down), d, h);
        take_layers(m, &at, FIELD(w_up), h, d);
        m->final_norm = (hl_weight){HL_DTYPE_F32, at, 1, d};
        at += (size_t)d * 4;
        at += (size_t)s.rope * 2 * 4; /* legacy freq_cis_real/imag: RoPE is recomputed */
        if (!c->tie_word_embeddings)
            m->lm_head = (hl_weight){HL_DTYPE_F32, at, V, d};
    }
    if (c->tie_word_embeddings)
        m->lm_head = m->tok_embed;
    /* llama2.c stores q/k in Meta's interleaved order; the engine wants rotate_half. */
    for (int l = 0; l < c->n_layers && rc == HL_OK; l++) {
        rc = hl_model_permute_meta_rows(m, &m->layers[l].wq, c->n_heads, c->head_dim);
        if (rc == HL_OK)
            rc = hl_model_permute_meta_rows(m, &m->layers[l].wk, c->n_kv_heads, c->head_dim);
    }
    if (rc == HL_OK)
        rc = hl_model_finish(m);
    if (rc != HL_OK)
        hl_model_free(m);
    return rc;
}
